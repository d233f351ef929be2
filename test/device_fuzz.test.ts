// Property tests over the device framing (docs/device-protocol.md §2, §7): the parser is total
// (any bytes give a frame or a named error, never a throw) and agrees with an independent reading
// of the spec; and on a live link, arbitrary messages never crash or hang it: each is followed by a
// probe event whose answer must come, and every bad frame is answered by exactly one ERROR frame.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/load.js';
import type { SettingKey } from '../src/config/settings.js';
import type { Gateway } from '../src/gateway/app.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, parseDeviceFrame, registerDeviceRoutes } from '../src/gateway/device/index.js';
import { sharedTokenizer } from '../src/fusion/model_input.js';
import { DeviceClient, FRAME, decodeFrame } from '../examples/device-sdk/device_client.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
const KEY = 'sk-device-fuzz';
const CAP = 4096;
const GA_TYPES = new Set(['session.update', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'output_audio_buffer.clear', 'conversation.item.create', 'conversation.item.retrieve', 'conversation.item.truncate', 'conversation.item.delete', 'response.create', 'response.cancel', 'session.close']);

/** Frames around the interesting edges: random types and payloads, lengths off by a little or a lot. */
const structuredFrame = fc
  .record({
    type: fc.oneof(fc.constantFrom(0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07), fc.integer({ min: 0, max: 255 })),
    payload: fc.oneof(
      { weight: 20, arbitrary: fc.uint8Array({ maxLength: 300 }) },
      { weight: 3, arbitrary: fc.constantFrom(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2]), Buffer.from('{"type":"input_audio_buffer.clear"}'), Buffer.from('{"type":')) },
      { weight: 1, arbitrary: fc.constant(Buffer.alloc(CAP)) }, // over the cap with its header
    ),
    // 0: honest; small: off by a few bytes; huge: over the cap or the whole uint32 range.
    lengthDelta: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 2, arbitrary: fc.integer({ min: -6, max: 6 }) }, { weight: 1, arbitrary: fc.constantFrom(CAP, 0x7fffffff, 0xffffffff) }),
  })
  .map(({ type, payload, lengthDelta }) => {
    const frame = encodeFrame(type, payload);
    frame.writeUInt32BE(Math.min(0xffffffff, Math.max(0, payload.length + lengthDelta)), 1);
    return frame;
  });

const anyMessage = fc.oneof(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), structuredFrame);

/** The spec read independently: what the parser must say about one message. */
function specVerdict(m: Buffer, cap: number): string {
  if (m.length < 5) return 'frame_truncated';
  const declared = m.readUInt32BE(1);
  if (m.length > cap || declared > cap - 5) return 'frame_too_large';
  if (declared !== m.length - 5) return 'frame_length_mismatch';
  const type = m[0]!;
  if (type === 0 || type > 7) return 'unknown_frame_type';
  if (type === 0x02 || type === 0x05 || type === 0x07) return 'unexpected_frame_type';
  return 'ok';
}

/** How many ERROR frames the live link owes for one message (after the hello, VAD off). */
function errorsOwed(m: Buffer | string, cap: number): [min: number, max: number] {
  if (typeof m === 'string') return [1, 1];
  if (specVerdict(m, cap) !== 'ok') return [1, 1];
  const payload = m.subarray(5);
  switch (m[0]) {
    case FRAME.HELLO:
      return [1, 1]; // unexpected_hello
    case FRAME.AUDIO_IN:
      return payload.length === 0 || payload.length % 2 === 1 ? [1, 1] : [0, 0];
    case FRAME.JPEG:
      // A JPEG is accepted, or refused by the 2 frames/s rate limit.
      return payload.length >= 3 && payload[0] === 0xff && payload[1] === 0xd8 && payload[2] === 0xff ? [0, 1] : [1, 1];
    default: {
      let v: unknown;
      try {
        v = JSON.parse(payload.toString('utf8'));
      } catch {
        return [1, 1];
      }
      const known = typeof v === 'object' && v !== null && !Array.isArray(v) && GA_TYPES.has((v as { type?: string }).type ?? '');
      return known ? [0, 1] : [1, 1];
    }
  }
}

describe('parser', () => {
  it('is total and matches the spec for arbitrary messages', () => {
    fc.assert(
      fc.property(anyMessage, fc.constantFrom(CAP, DEFAULT_MAX_FRAME_BYTES), (m, cap) => {
        const r = parseDeviceFrame(m, cap);
        const verdict = specVerdict(m, cap);
        if (verdict === 'ok') {
          expect(r.ok).toBe(true);
          if (r.ok) {
            expect(r.frame.type).toBe(m[0]);
            expect(Buffer.compare(r.frame.payload, m.subarray(5))).toBe(0);
          }
        } else {
          expect(r.ok).toBe(false);
          if (!r.ok) {
            expect(r.error.code).toBe(verdict);
            expect(r.error.message.length).toBeGreaterThan(0);
            expect(['frame', 'frame.length', 'frame.type']).toContain(r.error.param);
          }
        }
      }),
      { numRuns: 20_000 },
    );
  });

  it('round-trips every frame a device may send', () => {
    fc.assert(
      fc.property(fc.constantFrom(0x01, 0x03, 0x04, 0x06), fc.uint8Array({ maxLength: 2048 }), (type, payload) => {
        const r = parseDeviceFrame(encodeFrame(type, payload));
        expect(r.ok && r.frame.type === type && Buffer.compare(r.frame.payload, Buffer.from(payload)) === 0).toBe(true);
      }),
    );
  });
});

describe('live link', () => {
  let gw: TestGateway;
  let client: DeviceClient;

  beforeAll(async () => {
    const flags: Partial<Record<SettingKey, string>> = { modelCache: DEMO_CACHE, apiKeys: KEY };
    const config = loadConfig({ flags: { port: '0', logLevel: 'info', ...flags }, env: {} });
    const routes = (app: FastifyInstance, g: Gateway): void =>
      registerDeviceRoutes(app, { config, runtime: g.runtime, connections: g.connections, tokenizer: sharedTokenizer(), maxFrameBytes: CAP, path: '/test/device-fuzz' });
    gw = await startTestGateway(flags, { routes });
    client = await DeviceClient.connect({ url: `${gw.wsUrl}/test/device-fuzz`, apiKey: KEY });
    client.sendEvent({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } } });
    await client.waitFor('session.updated');
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await gw?.gateway.close();
  });

  it('arbitrary hellos: a valid one gets the welcome, any other exactly one ERROR, and the link still takes a good hello', async () => {
    const audio = fc.record({ codec: fc.constantFrom('pcm16', 'opus', 'mp3'), rate: fc.constantFrom(8000, 16000, 24000, 44100, 48000), frame_ms: fc.constantFrom(10, 20, 25), bitrate: fc.integer({ min: 0, max: 600_000 }) }, { requiredKeys: [] });
    const hello = fc.record({ version: fc.oneof(fc.constant(1), fc.constant(1), fc.jsonValue()), model: fc.constantFrom('qwen3-omni', 'nope', ''), audio_in: audio, audio_out: audio, extra: fc.jsonValue() }, { requiredKeys: [] });
    const validHello = fc.record(
      { version: fc.constant(1), model: fc.constant('qwen3-omni'), audio_in: fc.record({ codec: fc.constant('pcm16'), rate: fc.constantFrom(8000, 16000, 24000, 48000) }), audio_out: fc.record({ codec: fc.constant('opus'), frame_ms: fc.constantFrom(10, 20, 40, 60) }, { requiredKeys: ['codec'] }) },
      { requiredKeys: ['version'] },
    );
    const payload = fc.oneof(validHello.map((h) => Buffer.from(JSON.stringify(h))), hello.map((h) => Buffer.from(JSON.stringify(h))), fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '')), fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)));
    let welcomed = 0;
    await fc.assert(
      fc.asyncProperty(payload, async (p) => {
        const ws = new WebSocket(`${gw.wsUrl}/test/device-fuzz`, { headers: { authorization: `Bearer ${KEY}` } });
        const frames: { type: number; json: { type: string; error?: { code: string } } }[] = [];
        ws.on('message', (d: Buffer) => {
          const f = decodeFrame(d);
          frames.push({ type: f.type, json: JSON.parse(f.payload.toString('utf8')) as { type: string } });
        });
        await new Promise((r) => ws.once('open', r));
        ws.send(encodeFrame(FRAME.HELLO, p));
        ws.send(encodeFrame(FRAME.HELLO, Buffer.from('{"version":1}')));
        const t0 = Date.now();
        while (!frames.some((f) => f.type === FRAME.WELCOME) || frames.length < 2) {
          if (Date.now() - t0 > 5000) throw new Error(`no welcome: ${JSON.stringify(frames)}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        if (frames[0]!.type === FRAME.WELCOME) {
          // The fuzzed hello was valid: the good one after it is a second hello.
          welcomed++;
          expect(frames[1]!.json.type).toBe('session.created');
          while (!frames.some((f) => f.type === FRAME.ERROR)) await new Promise((r) => setTimeout(r, 5));
          expect(frames.find((f) => f.type === FRAME.ERROR)!.json.error!.code).toBe('unexpected_hello');
        } else {
          expect(frames[0]!.type).toBe(FRAME.ERROR);
          expect(frames[0]!.json.error!.code).toMatch(/^[a-z_]+$/);
          expect(frames[1]!.type).toBe(FRAME.WELCOME);
        }
        ws.close();
        await new Promise((r) => ws.once('close', r));
      }),
      { numRuns: 150 },
    );
    expect(welcomed).toBeGreaterThan(0);
  }, 120_000);

  it('arbitrary messages never crash or hang the link; each bad frame gets exactly one ERROR frame', async () => {
    let n = 0;
    const seen = new Map<string, number>();
    await fc.assert(
      fc.asyncProperty(fc.oneof({ weight: 9, arbitrary: anyMessage }, { weight: 1, arbitrary: fc.string({ maxLength: 40 }) }), async (m) => {
        const probe = `probe-${++n}`;
        const before = client.received.length;
        if (typeof m === 'string') client.ws.send(m);
        else client.sendRaw(m);
        client.sendEvent({ type: 'response.cancel', event_id: probe });
        const answer = await client.waitFor((e) => e.type === 'error' && (e.error as { event_id: string | null }).event_id === probe, 5000, before);
        const between = client.received.slice(before, client.received.indexOf(answer, before));
        const errors = between.filter((e) => e.type === 'error');
        const [min, max] = errorsOwed(typeof m === 'string' ? m : Buffer.from(m), CAP);
        for (const e of errors) seen.set((e.error as { code: string }).code, (seen.get((e.error as { code: string }).code) ?? 0) + 1);
        if (max === 0) seen.set('accepted', (seen.get('accepted') ?? 0) + 1);
        expect(errors.length, `${JSON.stringify(errors)} for ${typeof m === 'string' ? m : Buffer.from(m).toString('hex').slice(0, 80)}`).toBeGreaterThanOrEqual(min);
        expect(errors.length).toBeLessThanOrEqual(max);
        for (const e of errors) {
          const body = e.error as { code: string; message: string; param: string | null };
          expect(body.code).toMatch(/^[a-z_]+$/);
          expect(body.message.length).toBeGreaterThan(0);
        }
        expect((answer.error as { code: string }).code).toBe('response_cancel_not_active');
      }),
      // Seeded: the coverage check below must not depend on the draw.
      { numRuns: 400, seed: 20261129 },
    );
    // The generator reaches every kind of refusal and also valid frames.
    for (const code of ['frame_truncated', 'frame_length_mismatch', 'frame_too_large', 'unknown_frame_type', 'unexpected_frame_type', 'invalid_json', 'invalid_audio_frame', 'unexpected_hello', 'invalid_event', 'accepted']) {
      expect(seen.get(code) ?? 0, `${code} in ${JSON.stringify([...seen])}`).toBeGreaterThan(0);
    }
    expect(client.closeInfo).toBeUndefined();
    expect(gw.logs.filter((l) => /"level":(50|60)/.test(l))).toEqual([]);
  }, 120_000);
});
