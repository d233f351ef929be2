// Realtime conformance, bad input, limits and connection lifecycle (realtime-protocol.md §11,
// scenarios 32-40) against a real gateway on the demo runtime. Every bad event must give exactly
// one `error` and leave the socket usable; transport limits close with the documented codes.
// WebRTC (scenarios 41-43) is issue 9 and is not covered here; chat completions (44-45) are in
// chat_completions.test.ts.
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionRegistry } from '../src/gateway/connections.js';
import { GatewayMetrics } from '../src/gateway/metrics.js';
import { DASHSCOPE_CLIENT_EVENT_TYPES } from '../src/gateway/realtime/dialects/dashscope.js';
import { GA_CLIENT_EVENT_TYPES } from '../src/gateway/realtime/dialects/ga.js';
import type { RealtimeSession } from '../src/gateway/realtime/session.js';
import { PING_INTERVAL_MS, registerRealtimeRoutes, selectRealtimeProtocol } from '../src/gateway/realtime/transport.js';
import type { NativeRuntime } from '../src/runtime/native.js';
import type { TestGateway } from './helpers/gateway.js';
import { appendAudio, errorsOf, fixturePcm, RtClient, silence, startRealtimeGateway, type Wire } from './helpers/realtime.js';
import { checkEventTypes, checkResponseCycle } from './helpers/realtime_invariants.js';

let gw: TestGateway;
let engineSessions: () => number;

beforeAll(async () => {
  gw = await startRealtimeGateway({ playbackLeadMs: '60000' });
  const engine = await (gw.gateway.runtime as NativeRuntime).start();
  engineSessions = () => engine.activeSessions;
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

const respId = (e: Wire): string => (e.response as { id: string }).id;

/** A manual-turn GA session (commit reports how much audio the buffer holds). */
async function manual(path = '/v1/realtime'): Promise<RtClient> {
  const c = await RtClient.connect(gw.wsUrl, path === '/v1/realtime' ? {} : { path, query: 'model=qwen3-omni-flash-realtime' });
  await c.next('session.created');
  c.send({ type: 'session.update', session: path === '/v1/realtime' ? { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } } : { modalities: ['text'], turn_detection: null } });
  await c.next('session.updated');
  return c;
}

/** The socket still works: a session.update is answered. */
async function stillUsable(c: RtClient): Promise<void> {
  c.send({ type: 'session.update', session: c.events[0]!.session && (c.events[0]!.session as { type?: string }).type ? { type: 'realtime' } : {} });
  await c.next('session.updated');
}

async function nextError(c: RtClient): Promise<{ code: string | null; param: string | null; message: string; event_id?: string | null }> {
  return (await c.next('error')).error as never;
}

describe('scenarios 32-34: frames that are not events', () => {
  it('32: malformed JSON (text, truncated object, array, string) gives one invalid_json each; {} gives missing_required_parameter type; the socket stays usable', async () => {
    const c = await manual();
    for (const raw of ['not json', '{"type":"session.upd', '[1,2]', '"a string"']) {
      c.ws.send(raw);
      expect((await nextError(c)).code).toBe('invalid_json');
    }
    c.ws.send('{}');
    expect(await nextError(c)).toMatchObject({ code: 'missing_required_parameter', param: 'type' });
    await stillUsable(c);
    expect(errorsOf(c.events)).toHaveLength(5);
    checkEventTypes(c.events, 'ga');
    await c.close();
  });

  it('unknown fields and missing required fields of a known event are named in param', async () => {
    const c = await manual();
    c.send({ type: 'input_audio_buffer.commit', bogus: 1 });
    expect(await nextError(c)).toMatchObject({ code: 'unknown_parameter', param: 'bogus' });
    c.send({ type: 'conversation.item.create', item: { role: 'user', content: [] } });
    expect(await nextError(c)).toMatchObject({ code: 'missing_required_parameter', param: 'item.type' });
    c.send({ type: 'session.update', session: { type: 'realtime', bogus_field: true } });
    expect(await nextError(c)).toMatchObject({ code: 'unknown_parameter', param: 'session.bogus_field' });
    await stillUsable(c);
    await c.close();
  });

  it('33: an unknown type gives invalid_value on type, listing the dialect\'s event types', async () => {
    const c = await manual();
    c.send({ type: 'nope', event_id: 'n1' });
    const err = await nextError(c);
    expect(err).toMatchObject({ code: 'invalid_value', param: 'type', event_id: 'n1' });
    for (const t of GA_CLIENT_EVENT_TYPES) expect(err.message).toContain(`'${t}'`);
    await stillUsable(c);
    await c.close();
    const d = await manual('/api-ws/v1/realtime');
    d.send({ type: 'conversation.item.truncate', item_id: 'x', content_index: 0, audio_end_ms: 0 });
    const dErr = await nextError(d);
    expect(dErr).toMatchObject({ code: 'invalid_value', param: 'type' });
    for (const t of DASHSCOPE_CLIENT_EVENT_TYPES) expect(dErr.message).toContain(`'${t}'`);
    await d.close();
  });

  it('34: a binary frame gives invalid_event and the socket stays open', async () => {
    const c = await manual();
    c.ws.send(Buffer.from([1, 2, 3, 4]), { binary: true });
    const err = await nextError(c);
    expect(err).toMatchObject({ code: 'invalid_event', message: 'Expected a text WebSocket message; binary frames are not supported.' });
    await stillUsable(c);
    await c.close();
  });
});

describe('scenarios 35-37: audio payloads', () => {
  it('35: base64 garbage (@@@@, url-safe, whitespace, bad length) gives invalid_value on audio and appends nothing', async () => {
    const c = await manual();
    for (const audio of ['@@@@', 'ab-_AAAA', 'AAAA AAAA', 'AAAA\nAAAA', 'AAA', 'AAAAA===']) {
      c.send({ type: 'input_audio_buffer.append', audio });
      expect(await nextError(c), audio).toMatchObject({ code: 'invalid_value', param: 'audio' });
    }
    c.send({ type: 'input_audio_buffer.commit' });
    const empty = await nextError(c);
    expect(empty.code).toBe('input_audio_buffer_commit_empty');
    expect(empty.message).toMatch(/only has 0\.00ms/);
    await c.close();
  });

  it('36: 15 MiB + 1 byte of audio gives string_above_max_length (socket open); a frame above maxPayload closes 1009', async () => {
    const c = await manual();
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(15 * 1024 * 1024 + 1).toString('base64') });
    expect(await nextError(c)).toMatchObject({ code: 'string_above_max_length', param: 'audio' });
    await stillUsable(c);
    c.ws.send(`{"type":"input_audio_buffer.append","audio":"${'A'.repeat(22 * 1024 * 1024)}"}`);
    expect((await c.closed).code).toBe(1009);
  }, 30_000);

  it('37: odd PCM16 byte count, a RIFF/WAV header (GA) and MP3 bytes give invalid_value; DashScope strips a WAV header', async () => {
    const c = await manual();
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(961).toString('base64') });
    expect(await nextError(c)).toMatchObject({ code: 'invalid_value', param: 'audio' });
    const wav = wavFile(fixturePcm('weather_24k').subarray(0, 9600), 24_000);
    c.send({ type: 'input_audio_buffer.append', audio: wav.toString('base64') });
    expect(await nextError(c)).toMatchObject({ code: 'invalid_value', param: 'audio' });
    c.send({ type: 'input_audio_buffer.append', audio: mp3Frames().toString('base64') });
    const mp3 = await nextError(c);
    expect(mp3).toMatchObject({ code: 'invalid_value', param: 'audio' });
    expect(mp3.message).toMatch(/MP3/);
    c.send({ type: 'input_audio_buffer.commit' });
    expect((await nextError(c)).message).toMatch(/only has 0\.00ms/);
    await c.close();

    // DashScope: the header is stripped and the 200 ms of 16 kHz audio behind it is kept.
    const d = await manual('/api-ws/v1/realtime');
    d.send({ type: 'input_audio_buffer.append', audio: wavFile(fixturePcm('weather_16k').subarray(0, 6400), 16_000).toString('base64') });
    d.send({ type: 'input_audio_buffer.commit' });
    await d.next('input_audio_buffer.committed');
    expect(errorsOf(d.events)).toEqual([]);
    await d.close();
  });
});

describe('scenario 38: flood and slow readers', () => {
  it('1000 tiny appends are taken in order without errors, and events keep flowing', async () => {
    const c = await manual();
    const start = performance.now();
    const tiny = Buffer.alloc(96); // 2 ms at 24 kHz
    for (let i = 0; i < 500; i++) c.send({ type: 'input_audio_buffer.append', audio: tiny.toString('base64') });
    c.send({ type: 'input_audio_buffer.clear' });
    const one = fixturePcm('weather_24k');
    for (let i = 0; i < 500; i++) c.send({ type: 'input_audio_buffer.append', audio: one.subarray(i * 96, (i + 1) * 96).toString('base64') });
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.cleared');
    const committed = await c.next('input_audio_buffer.committed');
    expect(performance.now() - start).toBeLessThan(5000);
    expect(errorsOf(c.events)).toEqual([]);
    // Exactly the 500 appends after the clear were committed (1000 ms): order was kept.
    c.send({ type: 'conversation.item.retrieve', item_id: committed.item_id });
    const item = (await c.next('conversation.item.retrieved')).item as { content: { audio: string }[] };
    const ms = Buffer.from(item.content[0]!.audio, 'base64').length / 48;
    expect(ms).toBeGreaterThan(990);
    expect(ms).toBeLessThan(1010);
    await stillUsable(c);
    await c.close();
  });

  it('a client that stops reading is closed with 1013 once its outbound buffer passes the bound, and its session is released', async () => {
    const c = await manual();
    const audio = Buffer.alloc(2 * 1024 * 1024, 1).toString('base64');
    c.send({ type: 'conversation.item.create', item: { id: 'item_big', type: 'message', role: 'user', content: [{ type: 'input_audio', audio }] } });
    await c.next('conversation.item.done', 20_000);
    const sessions = gw.gateway.realtimeSessions.size;
    const socket = (c.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    socket.pause();
    for (let i = 0; i < 40; i++) c.send({ type: 'conversation.item.retrieve', item_id: 'item_big' });
    // The gateway gives up on the reader and releases the session without waiting for it.
    for (let i = 0; i < 200 && gw.gateway.realtimeSessions.size >= sessions; i++) await new Promise((r) => setTimeout(r, 25));
    expect(gw.gateway.realtimeSessions.size).toBe(sessions - 1);
    socket.resume();
    expect((await c.closed).code).toBe(1013);
  }, 30_000);
});

describe('scenario 39: keepalive', () => {
  let app: FastifyInstance;
  const sessions = new Set<RealtimeSession>();
  let wsUrl: string;

  beforeAll(async () => {
    // The same routes on a small app with a 150 ms ping interval (the default is OpenAI's 20 s).
    app = Fastify();
    await app.register(websocket, { options: { handleProtocols: selectRealtimeProtocol } });
    registerRealtimeRoutes(app, { config: gw.config, runtime: gw.gateway.runtime, connections: new ConnectionRegistry(new GatewayMetrics()), pingIntervalMs: 150, sessions });
    wsUrl = (await app.listen({ host: '127.0.0.1', port: 0 })).replace(/^http/, 'ws');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('pings about every 20 s by default', () => {
    expect(PING_INTERVAL_MS).toBe(20_000);
  });

  it('a client that answers pings stays; one that stops ponging is dropped within two intervals and its session released', async () => {
    const good = await RtClient.connect(wsUrl);
    let pings = 0;
    good.ws.on('ping', () => pings++);
    const bad = await RtClient.connect(wsUrl, { wsOptions: { autoPong: false } });
    await good.next('session.created');
    await bad.next('session.created');
    expect(sessions.size).toBe(2);
    const t0 = performance.now();
    const closed = await bad.closed;
    expect(performance.now() - t0).toBeLessThan(2 * 150 + 400);
    expect(closed.code).toBe(1006);
    for (let i = 0; i < 40 && sessions.size > 1; i++) await new Promise((r) => setTimeout(r, 5));
    expect(sessions.size).toBe(1);
    expect(pings).toBeGreaterThanOrEqual(1);
    expect(good.ws.readyState).toBe(good.ws.OPEN);
    // Client pings are answered.
    const pong = new Promise<Buffer>((resolve) => good.ws.once('pong', resolve));
    good.ws.ping(Buffer.from('hey'));
    expect((await pong).toString()).toBe('hey');
    await good.close();
  });
});

describe('scenario 40: graceful close', () => {
  it('a client close 1000 mid-response stops the backend generation within 200 ms', async () => {
    // Sessions of earlier tests are released asynchronously: start from a quiet engine.
    for (let i = 0; i < 200 && engineSessions() > 0; i++) await new Promise((r) => setTimeout(r, 10));
    const before = engineSessions();
    const c = await manual();
    c.send({ type: 'response.create', response: { max_output_tokens: 4000 } });
    const id = respId(await c.next('response.created'));
    await c.next((e) => e.type === 'response.output_text.delta' && e.response_id === id);
    expect(engineSessions()).toBe(before + 1);
    const t0 = performance.now();
    await c.close(1000);
    while (engineSessions() > before && performance.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
    expect(engineSessions()).toBe(before);
    expect(performance.now() - t0).toBeLessThan(200);
  });

  it('GA session.close closes 1000; DashScope session.finish answers session.finished, then closes 1000', async () => {
    const c = await manual();
    c.send({ type: 'session.close' });
    expect((await c.closed).code).toBe(1000);
    expect(errorsOf(c.events)).toEqual([]);
    const d = await manual('/api-ws/v1/realtime');
    d.send({ type: 'session.finish' });
    await d.next('session.finished');
    expect((await d.closed).code).toBe(1000);
  });

  it('a response still finishes its cycle when the client closes right after asking', async () => {
    const c = await manual();
    appendAudio(c, Buffer.concat([fixturePcm('weather_24k'), silence(100)]));
    c.send({ type: 'input_audio_buffer.commit' });
    c.send({ type: 'response.create', response: { max_output_tokens: 3 } });
    const id = respId(await c.next('response.created'));
    await c.responseDone(id);
    checkResponseCycle(c.events, id);
    await c.close();
  });
});

/** A minimal RIFF/WAVE file around PCM16 mono. */
function wavFile(pcm: Buffer, rate: number): Buffer {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

/** Two MPEG-1 layer III frames (128 kb/s, 44.1 kHz: 417 bytes each). */
function mp3Frames(): Buffer {
  const frame = Buffer.alloc(417);
  frame.set([0xff, 0xfb, 0x90, 0x00]);
  return Buffer.concat([frame, frame]);
}
