// Hostile input against the realtime API: property tests over every client event type of every
// dialect (the parser either returns a command or throws a coded ProtocolError, never anything
// else), and a live socket fed random and mutated events: the session answers each bad event with
// an error, never crashes or closes, and still serves a valid event afterwards.
import fc from 'fast-check';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { betaDialect, dashscopeDialect, gaDialect } from '../src/gateway/realtime/dialects/index.js';
import { ProtocolError, type Dialect } from '../src/gateway/realtime/model.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const DIALECTS: Dialect[] = [gaDialect, betaDialect, dashscopeDialect];
const base = { id: 'sess_fuzz', model: 'qwen3-omni', expiresAt: 2_000_000_000, defaultVoice: 'Cherry' };

/** Values of the JSON kinds clients actually send, plus awkward ones. */
const jsonValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.double({ noNaN: false }),
    fc.string(),
    fc.constantFrom('', 'AAAA', '@@@@', 'UklGRg==', '-_-_', 'realtime', 'audio/pcm', 'inf', 'server_vad'),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 12 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

/** An event of a real type with random fields, or random fields under known keys. */
function eventOf(dialect: Dialect): fc.Arbitrary<unknown> {
  const known = ['session', 'audio', 'image', 'item', 'item_id', 'content_index', 'audio_end_ms', 'previous_item_id', 'response', 'response_id', 'event_id'];
  return fc.record(
    {
      type: fc.oneof(fc.constantFrom(...dialect.clientEventTypes), fc.string(), jsonValue),
      fields: fc.dictionary(fc.constantFrom(...known), jsonValue, { maxKeys: 4 }),
    },
    { requiredKeys: ['fields'] },
  ).map(({ type, fields }) => (type === undefined ? fields : { type, ...fields }));
}

/** An event of exactly `type` with random fields under the keys events use. */
function eventOfType(type: string): fc.Arbitrary<unknown> {
  const known = ['session', 'audio', 'image', 'item', 'item_id', 'content_index', 'audio_end_ms', 'previous_item_id', 'response', 'response_id', 'event_id'];
  return fc.dictionary(fc.constantFrom(...known), jsonValue, { maxKeys: 4 }).map((fields) => ({ type, ...fields }));
}

function checkParse(dialect: Dialect, event: unknown): void {
  const config = dialect.initialConfig(base);
  try {
    const cmd = dialect.parse(event, config);
    expect(typeof cmd.type).toBe('string');
  } catch (err) {
    expect(err).toBeInstanceOf(ProtocolError);
    const e = err as ProtocolError;
    expect(e.message.length).toBeGreaterThan(0);
    expect(e.errorType).toMatch(/^(invalid_request_error|server_error)$/);
  }
}

// 10,000 cases per event type and dialect (issue 11): the parser either returns a command or
// throws a coded ProtocolError, whatever the fields hold.
describe('dialect parsers under arbitrary input', () => {
  for (const dialect of DIALECTS) {
    for (const type of dialect.clientEventTypes) {
      it(`${dialect.name} ${type}: 10,000 random events parse to a command or a coded ProtocolError`, () => {
        fc.assert(
          fc.property(eventOfType(type), (event) => checkParse(dialect, event)),
          { numRuns: 10_000 },
        );
      });
    }
    it(`${dialect.name}: arbitrary JSON values and unknown types are refused with coded errors`, () => {
      fc.assert(
        fc.property(fc.oneof(jsonValue, eventOf(dialect)), (event) => checkParse(dialect, event)),
        { numRuns: 10_000 },
      );
    });
  }
});

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway({ modelCache: join(tmpdir(), 'omni-test-demo-cache') });
}, 120_000);
afterAll(async () => {
  await gw?.gateway.close();
});

describe('a live session fed hostile events', () => {
  it('answers every bad frame with an error, stays open, and still serves a valid request', async () => {
    const ws = new WebSocket(`${gw.wsUrl}/v1/realtime?model=qwen3-omni`);
    const events: { type: string; error?: { code: string | null } }[] = [];
    ws.on('message', (d: Buffer) => events.push(JSON.parse(d.toString('utf8')) as { type: string }));
    let closed = false;
    ws.on('close', () => (closed = true));
    await new Promise((r) => ws.once('open', r));
    const samples = fc.sample(
      fc.oneof(
        eventOf(gaDialect).map((e) => JSON.stringify(e)),
        fc.string({ maxLength: 64 }),
        fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
      ),
      { numRuns: 400, seed: 7 },
    );
    // Commands that would legitimately start work (responses) are made harmless: the fuzz is about
    // input handling, not about running 400 model replies.
    for (const s of samples) {
      if (typeof s === 'string' && /response\.create|session\.close/.test(s)) continue;
      ws.send(s);
    }
    ws.send(JSON.stringify({ type: 'session.update', event_id: 'last', session: { type: 'realtime', output_modalities: ['text'], instructions: 'still here' } }));
    const deadline = Date.now() + 30_000;
    while (!events.some((e) => e.type === 'session.updated' && (e as { session?: { instructions?: string } }).session?.instructions === 'still here')) {
      if (Date.now() > deadline) throw new Error(`no answer to the last event; got ${events.length} events`);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(closed).toBe(false);
    const errors = events.filter((e) => e.type === 'error');
    expect(errors.length).toBeGreaterThan(0);
    for (const e of errors) expect(e.error?.code === null || typeof e.error?.code === 'string').toBe(true);
    expect(events.some((e) => e.type === 'error' && e.error?.code === 'server_error')).toBe(false);
    ws.close();
  }, 60_000);
});
