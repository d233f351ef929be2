// Keys on every endpoint: without a key or with a wrong one, the realtime sockets answer an error
// and close 3000, and the HTTP APIs answer 401; an ephemeral secret minted with a key opens a
// realtime session that starts with the secret's configuration, and an expired or forged one is
// refused. Per-key limits from the keys file: sessions at once (close 1008), requests per minute
// (rate_limit_exceeded, and rate_limits.updated reports the key's budgets).
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ClientSecrets } from '../src/gateway/realtime/client_secrets.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const sha = (k: string): string => createHash('sha256').update(k).digest('hex');
type Event = { type: string; [k: string]: unknown };

let gw: TestGateway;
beforeAll(async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'omni-keys-')), 'keys.json');
  writeFileSync(file, JSON.stringify({ keys: [{ name: 'limited', sha256: sha('sk-limited'), limits: { sessions: 1, requestsPerMinute: 1 } }] }));
  gw = await startTestGateway({ modelCache: join(tmpdir(), 'omni-test-demo-cache'), apiKeys: 'sk-good', apiKeysFile: file, clientSecretKey: 'test-signing-key' });
}, 120_000);
afterAll(async () => {
  await gw?.gateway.close();
});

function open(path: string, headers: Record<string, string> = {}, protocols?: string[]): Promise<{ ws: WebSocket; events: Event[]; closed: Promise<{ code: number; reason: string }> }> {
  const ws = new WebSocket(`${gw.wsUrl}${path}`, protocols, { headers });
  const events: Event[] = [];
  ws.on('message', (d: Buffer) => events.push(JSON.parse(d.toString('utf8')) as Event));
  const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, events, closed }));
    ws.once('error', reject);
  });
}

async function waitFor(events: Event[], p: (e: Event) => boolean): Promise<Event> {
  const t0 = Date.now();
  for (;;) {
    const hit = events.find(p);
    if (hit) return hit;
    if (Date.now() - t0 > 20_000) throw new Error(`timed out; got ${events.map((e) => e.type).join(', ')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('unauthorised access', () => {
  for (const path of ['/v1/realtime?model=qwen3-omni', '/api-ws/v1/realtime?model=qwen3-omni']) {
    it(`${path}: no key -> error then close 3000; wrong key -> invalid_api_key then close 3000`, async () => {
      const a = await open(path);
      expect((await a.closed).code).toBe(3000);
      expect(a.events.map((e) => e.type)).toEqual(['error']);
      const b = await open(path, { authorization: 'Bearer sk-wrong' });
      expect(await b.closed).toEqual({ code: 3000, reason: 'invalid_request_error.invalid_api_key' });
      expect((b.events[0]!.error as { code: string }).code).toBe('invalid_api_key');
    });
  }

  it('HTTP APIs answer 401 without a valid key, and serve with one', async () => {
    const chat = (headers: Record<string, string>) =>
      fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ model: 'qwen3-omni', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }) });
    expect((await chat({})).status).toBe(401);
    const wrong = await chat({ authorization: 'Bearer sk-wrong' });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe('invalid_api_key');
    expect((await chat({ authorization: 'Bearer sk-good' })).status).toBe(200);
    const secrets = await fetch(`${gw.url}/v1/realtime/client_secrets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(secrets.status).toBe(401);
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });
});

describe('ephemeral client secrets', () => {
  it('a minted secret opens a browser-style session that starts with its configuration', async () => {
    const res = await fetch(`${gw.url}/v1/realtime/client_secrets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-good' },
      body: JSON.stringify({ expires_after: { anchor: 'created_at', seconds: 60 }, session: { type: 'realtime', instructions: 'Be brief.', output_modalities: ['text'] } }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { value: string; expires_at: number; session: { instructions: string } };
    expect(body.value).toMatch(/^ek_/);
    expect(body.session.instructions).toBe('Be brief.');
    const s = await open('/v1/realtime?model=qwen3-omni', {}, ['realtime', `openai-insecure-api-key.${body.value}`]);
    expect(s.ws.protocol).toBe('realtime');
    const created = await waitFor(s.events, (e) => e.type === 'session.created');
    expect(created.session).toMatchObject({ instructions: 'Be brief.', output_modalities: ['text'] });
    s.ws.close();
  });

  it('an expired or forged secret is refused', async () => {
    const signer = new ClientSecrets('test-signing-key');
    const expired = signer.issue({ exp: Math.floor(Date.now() / 1000) - 1 });
    const a = await open('/v1/realtime?model=qwen3-omni', { authorization: `Bearer ${expired}` });
    expect((await a.closed).code).toBe(3000);
    expect((a.events[0]!.error as { message: string }).message).toMatch(/expired/);
    const forged = new ClientSecrets('another-key').issue({ exp: Math.floor(Date.now() / 1000) + 60 });
    const b = await open('/v1/realtime?model=qwen3-omni', { authorization: `Bearer ${forged}` });
    expect((await b.closed).code).toBe(3000);
  });
});

describe('per-key limits', () => {
  it('sessions at once, requests per minute, and rate_limits.updated from the key', async () => {
    const auth = { authorization: 'Bearer sk-limited' };
    const first = await open('/v1/realtime?model=qwen3-omni', auth);
    const second = await open('/v1/realtime?model=qwen3-omni', auth);
    expect((await second.closed).code).toBe(1008);
    expect((second.events[0]!.error as { code: string }).code).toBe('session_limit_reached');
    first.ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], max_output_tokens: 2 } }));
    first.ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } }));
    first.ws.send(JSON.stringify({ type: 'response.create' }));
    await waitFor(first.events, (e) => e.type === 'response.done');
    const limits = await waitFor(first.events, (e) => e.type === 'rate_limits.updated');
    expect(limits.rate_limits).toEqual([expect.objectContaining({ name: 'requests', limit: 1, remaining: 0 })]);
    first.ws.send(JSON.stringify({ type: 'response.create', event_id: 'again' }));
    const refused = await waitFor(first.events, (e) => e.type === 'error');
    expect(refused.error).toMatchObject({ code: 'rate_limit_exceeded', event_id: 'again' });
    first.ws.close();
    await first.closed;
    // The slot is free again once the first session ended.
    const third = await open('/v1/realtime?model=qwen3-omni', auth);
    await waitFor(third.events, (e) => e.type === 'session.created');
    third.ws.close();
  }, 60_000);
});
