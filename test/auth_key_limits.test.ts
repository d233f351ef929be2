// API keys held as digests with per-key limits: the keys file, constant-time lookup, and each
// limit (sessions at once, requests, input audio and tokens per minute) refusing with its own
// message and refilling over time; `rate_limits.updated` reports what is left.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiKeys, presentedKey } from '../src/gateway/auth/api_keys.js';
import { KeyUsage, parseKeyLimits } from '../src/gateway/auth/key_limits.js';
import type { ProtocolError } from '../src/gateway/realtime/model.js';

const sha = (k: string): string => createHash('sha256').update(k).digest('hex');

function keysFile(json: unknown): string {
  const f = join(mkdtempSync(join(tmpdir(), 'omni-keys-')), 'keys.json');
  writeFileSync(f, JSON.stringify(json));
  return f;
}

describe('API keys', () => {
  it('finds plain keys and file keys by digest, with the file limits, and rejects others', () => {
    const file = keysFile({ keys: [{ name: 'team-a', sha256: sha('sk-team-a'), limits: { sessions: 2 } }] });
    const keys = ApiKeys.load('sk-one, sk-two', file);
    expect(keys.open).toBe(false);
    expect(keys.find('sk-two')?.name).toBe('key-2');
    expect(keys.find('sk-team-a')?.name).toBe('team-a');
    expect(keys.find('sk-team-a')?.usage.limits).toEqual({ sessions: 2 });
    expect(keys.find('sk-three')).toBeUndefined();
    expect(ApiKeys.parse('').open).toBe(true);
  });

  it('names what is wrong in a keys file', () => {
    expect(() => ApiKeys.load('', keysFile({ nope: 1 }))).toThrow(/expected \{ "keys"/);
    expect(() => ApiKeys.load('', keysFile({ keys: [{ sha256: 'abc' }] }))).toThrow(/keys\[0\]\.sha256 must be 64 hex digits/);
    expect(() => ApiKeys.load('', keysFile({ keys: [{ sha256: sha('x'), limits: { sessions: 1.5 } }] }))).toThrow(/limits\.sessions must be a positive number \(integer\)/);
    expect(() => parseKeyLimits({ bogus: 1 }, 'limits')).toThrow(/limits\.bogus is not a limit/);
    expect(() => ApiKeys.load('', '/nonexistent/keys.json')).toThrow(/cannot read the API keys file/);
  });

  it('reads the credential from Bearer, api-key, or the browser subprotocol', () => {
    expect(presentedKey({ authorization: 'Bearer sk-a' })).toBe('sk-a');
    expect(presentedKey({ 'api-key': 'sk-b' })).toBe('sk-b');
    expect(presentedKey({}, 'sk-c')).toBe('sk-c');
    expect(presentedKey({ authorization: 'Basic xyz' })).toBeUndefined();
  });
});

describe('per-key limits', () => {
  const refusal = (f: () => void): ProtocolError => {
    try {
      f();
    } catch (err) {
      return err as ProtocolError;
    }
    throw new Error('expected a refusal');
  };

  it('sessions at once: the next one is refused until one is released (twice-released counts once)', () => {
    const u = new KeyUsage({ sessions: 2 });
    const a = u.openSession();
    u.openSession();
    expect(refusal(() => u.openSession()).code).toBe('session_limit_reached');
    a();
    a();
    expect(u.openSessions).toBe(1);
    u.openSession();
    expect(u.openSessions).toBe(2);
  });

  it('requests per minute refill continuously', () => {
    let t = 0;
    const u = new KeyUsage({ requestsPerMinute: 2 }, () => t);
    u.request();
    u.request();
    const e = refusal(() => u.request());
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.message).toMatch(/requests: 2 per minute/);
    t += 30_000;
    u.request();
    expect(u.report()).toEqual([{ name: 'requests', limit: 2, remaining: 0, reset_seconds: 60 }]);
  });

  it('input audio seconds per minute: audio over the budget is refused, naming audio', () => {
    let t = 0;
    const u = new KeyUsage({ audioSecondsPerMinute: 10 }, () => t);
    u.audioSeconds(6);
    const e = refusal(() => u.audioSeconds(6));
    expect(e.param).toBe('audio');
    t += 60_000;
    u.audioSeconds(6);
  });

  it('tokens are charged after the reply; a key in debt is refused its next request', () => {
    let t = 0;
    const u = new KeyUsage({ tokensPerMinute: 1000 }, () => t);
    u.request();
    u.chargeTokens(1500);
    expect(refusal(() => u.request()).message).toMatch(/tokens: 1000 per minute/);
    t += 60_000;
    u.request();
    expect(u.report()[0]).toMatchObject({ name: 'tokens', limit: 1000, remaining: 500 });
  });
});
