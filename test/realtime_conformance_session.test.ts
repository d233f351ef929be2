// Realtime conformance, session configuration (realtime-protocol.md §11, scenarios 7-13), against
// a real gateway on the demo runtime (random weights: replies are noise, so only shapes, codes and
// order are checked). Speech is sent unpaced here (--playback-lead-ms 60000) to keep audio
// responses short; pacing and barge-in are covered in realtime_conformance_audio_vad.
import OpenAI6 from 'openai6';
import { OpenAIRealtimeWS } from 'openai6/realtime/ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from './helpers/gateway.js';
import { API_KEY, appendAudio, errorsOf, fixturePcm, MODEL, plainTcp, RtClient, scriptedRuntime, silence, startRealtimeGateway, toMulaw8k, userText, type Wire } from './helpers/realtime.js';
import { checkAllResponses, checkEventTypes, checkResponseCycle } from './helpers/realtime_invariants.js';

let gw: TestGateway;
let speechOut = false;

beforeAll(async () => {
  gw = await startRealtimeGateway({ playbackLeadMs: '60000' });
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

const connect = (o: Parameters<typeof RtClient.connect>[1] = {}) => RtClient.connect(gw.wsUrl, o);
interface SessionWire {
  instructions: string;
  output_modalities?: string[];
  modalities?: string[];
  output_audio_format?: string;
  audio: { input: { format: unknown }; output: { format: unknown; voice: string } };
}
interface AudioItem {
  content: { audio: string }[];
}
const session = (e: Wire) => e.session as SessionWire;

describe('scenario 7: events sent before session.created', () => {
  it('are queued and answered in order, session.created still first (openai 6.x client, sent on open)', async () => {
    const client = new OpenAI6({ apiKey: API_KEY, baseURL: `${gw.url}/v1` });
    const rt = new OpenAIRealtimeWS({ model: MODEL, options: plainTcp as never }, client);
    const events: Wire[] = [];
    rt.on('event', (e) => events.push(e as unknown as Wire));
    rt.on('error', (e) => events.push({ type: 'sdk-error', message: String(e) }));
    rt.socket.on('open', () => {
      rt.send({ type: 'session.update', session: { type: 'realtime', instructions: 'Be brief.', output_modalities: ['text'] } });
      rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }] } });
      rt.send({ type: 'response.create', response: { max_output_tokens: 4 } });
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no response.done: ${events.map((e) => e.type).join(', ')}`)), 15_000);
      rt.on('response.done', () => {
        clearTimeout(t);
        resolve();
      });
    });
    rt.close();
    const types = events.map((e) => e.type);
    expect(types.slice(0, 5)).toEqual(['session.created', 'session.updated', 'conversation.item.added', 'conversation.item.done', 'response.created']);
    expect(types).not.toContain('error');
    expect(types).not.toContain('sdk-error');
    expect(session(events[1]!).instructions).toBe('Be brief.');
    checkAllResponses(events, 'ga');
    checkEventTypes(events, 'ga');
  });

  it('a runtime that cannot warm up gives server_error and close 1011/1013', async () => {
    const failing = await startRealtimeGateway({}, scriptedRuntime({ failOpen: 'no weights here' }));
    try {
      const c = await RtClient.connect(failing.wsUrl, {
        onOpen: (ws) => ws.send(JSON.stringify({ type: 'response.create', response: { output_modalities: ['text'] } })),
      });
      const close = await c.closed;
      expect([1011, 1013]).toContain(close.code);
      expect(c.events[0]!.type).toBe('session.created');
      expect(errorsOf(c.events).some((e) => e.type === 'server_error' || e.code === 'server_error')).toBe(true);
    } finally {
      await failing.gateway.close();
    }
  });
});

describe('scenarios 8-10: invalid session.update is refused whole', () => {
  it('8: without session.type: missing_required_parameter session.type, echoing the client event_id; config unchanged', async () => {
    const c = await connect();
    await c.next('session.created');
    c.send({ type: 'session.update', event_id: 'evt_client_8', session: { instructions: 'changed' } });
    const err = await c.next('error');
    expect(err.error).toMatchObject({ type: 'invalid_request_error', code: 'missing_required_parameter', param: 'session.type', event_id: 'evt_client_8' });
    c.send({ type: 'session.update', session: { type: 'realtime' } });
    const updated = await c.next('session.updated');
    expect(session(updated).instructions).toBe('');
    await c.close();
  });

  it('9: an unknown field (session.modalities on GA) gives unknown_parameter; nothing of the update applies; a later valid update works', async () => {
    const c = await connect();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', instructions: 'should not stick', modalities: ['text'] } });
    const err = await c.next('error');
    expect(err.error).toMatchObject({ code: 'unknown_parameter', param: 'session.modalities' });
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } });
    const updated = await c.next('session.updated');
    expect(session(updated).instructions).toBe('');
    expect(session(updated).output_modalities).toEqual(['text']);
    expect(errorsOf(c.events)).toHaveLength(1);
    await c.close();
  });

  it('10: audio/pcm at 16000 gives integer_below_min_value; audio/flac gives invalid_value; the previous format stays', async () => {
    const c = await connect();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 16000 } } } } });
    expect((await c.next('error')).error).toMatchObject({ code: 'integer_below_min_value', param: 'session.audio.input.format.rate' });
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/flac' } } } } });
    expect((await c.next('error')).error).toMatchObject({ code: 'invalid_value', param: 'session.audio.input.format.type' });
    c.send({ type: 'session.update', session: { type: 'realtime' } });
    const updated = await c.next('session.updated');
    expect(session(updated).audio.input.format).toEqual({ type: 'audio/pcm', rate: 24000 });
    // The format in effect is still 24 kHz PCM16: 100 ms of it (4800 bytes) commits.
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } });
    await c.next('session.updated');
    c.send({ type: 'input_audio_buffer.append', audio: silence(100).toString('base64') });
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.committed');
    await c.close();
  });
});

describe('scenario 11: G.711 in and out', () => {
  it('GA audio/pcmu: 8 kHz μ-law appends are decoded and the reply audio is μ-law at 8000 bytes/s', async (ctx) => {
    ctx.skip(!speechOut, 'the runtime has no speech output yet');
    const c = await connect();
    await c.next('session.created');
    c.send({
      type: 'session.update',
      session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' }, turn_detection: null }, output: { format: { type: 'audio/pcmu' } } } },
    });
    const updated = await c.next('session.updated');
    expect(session(updated).audio.output.format).toEqual({ type: 'audio/pcmu' });
    appendAudio(c, toMulaw8k(fixturePcm('weather_24k')), 20, 8000);
    c.send({ type: 'input_audio_buffer.commit' });
    const committed = await c.next('input_audio_buffer.committed');
    c.send({ type: 'response.create', response: { max_output_tokens: 3 } });
    const created = await c.next('response.created');
    const id = (created.response as { id: string }).id;
    const done = await c.responseDone(id, 30_000);
    const cycle = checkResponseCycle(c.events, id, 'ga');
    expect(cycle.audioDeltas).toBeGreaterThan(0);
    const bytes = c.events.filter((e) => e.type === 'response.output_audio.delta' && e.response_id === id).reduce((n, e) => n + Buffer.from(e.delta as string, 'base64').length, 0);
    // μ-law is one byte per 8 kHz sample (160 bytes per 20 ms): the bytes match the speech length
    // the response reports (usage audio tokens are 80 ms each), where PCM16 at 24 kHz would be 6x.
    const audioTokens = (done.response as { usage: { output_token_details: { audio_tokens: number } } }).usage.output_token_details.audio_tokens;
    expect(audioTokens).toBeGreaterThan(0);
    expect(Math.abs(bytes / 8 - audioTokens * 80)).toBeLessThanOrEqual(80);
    // The item keeps the same audio: retrieve returns it in the session's output format.
    c.send({ type: 'conversation.item.retrieve', item_id: cycle.items[0]!.id });
    const retrieved = await c.next('conversation.item.retrieved');
    expect(Buffer.from((retrieved.item as AudioItem).content[0]!.audio, 'base64').length).toBe(bytes);
    // The μ-law user turn was decoded: it holds the 1.96 s utterance (retrieved back as μ-law).
    c.send({ type: 'conversation.item.retrieve', item_id: committed.item_id });
    const user = await c.next('conversation.item.retrieved');
    const userBytes = Buffer.from((user.item as AudioItem).content[0]!.audio, 'base64').length;
    expect(userBytes).toBeGreaterThan(8000 * 1.9);
    expect(userBytes).toBeLessThan(8000 * 2.1);
    expect((done.response as { status: string }).status).not.toBe('failed');
    checkEventTypes(c.events, 'ga');
    await c.close();
  });

  it('beta g711_ulaw in and out: appends decode and a response completes with μ-law deltas', async (ctx) => {
    ctx.skip(!speechOut, 'the runtime has no speech output yet');
    const c = await connect({ headers: { 'OpenAI-Beta': 'realtime=v1' } });
    await c.next('session.created');
    c.send({ type: 'session.update', session: { input_audio_format: 'g711_ulaw', output_audio_format: 'g711_ulaw', turn_detection: null } });
    expect(session(await c.next('session.updated')).output_audio_format).toBe('g711_ulaw');
    appendAudio(c, toMulaw8k(fixturePcm('weather_24k')), 20, 8000);
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.committed');
    c.send({ type: 'response.create', response: { max_response_output_tokens: 3 } });
    const id = ((await c.next('response.created')).response as { id: string }).id;
    await c.responseDone(id, 30_000);
    const cycle = checkResponseCycle(c.events, id, 'beta');
    // On a failure, say how the response ended and what errors came, not only that no audio did.
    const ended = c.events.find((e) => e.type === 'response.done')?.response as { status?: string; status_details?: unknown } | undefined;
    expect(cycle.audioDeltas, JSON.stringify({ status: ended?.status, details: ended?.status_details, errors: errorsOf(c.events) })).toBeGreaterThan(0);
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  });
});

describe('scenario 12: voice', () => {
  it('can change before the first audio output, and not after it (invalid_value on session.audio.output.voice)', async (ctx) => {
    ctx.skip(!speechOut, 'the runtime has no speech output yet');
    const c = await connect();
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 'marin' } } } });
    expect(session(await c.next('session.updated')).audio.output.voice).toBe('marin');
    c.send({ type: 'response.create', response: { max_output_tokens: 3 } });
    const id = ((await c.next('response.created')).response as { id: string }).id;
    await c.responseDone(id, 30_000);
    expect(c.events.some((e) => e.type === 'response.output_audio.delta')).toBe(true);
    c.send({ type: 'session.update', event_id: 'v2', session: { type: 'realtime', audio: { output: { voice: 'cedar' } } } });
    const err = await c.next('error');
    expect(err.error).toMatchObject({ code: 'invalid_value', param: 'session.audio.output.voice', event_id: 'v2' });
    // Restating the same voice is not a change.
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 'marin' } } } });
    await c.next('session.updated');
    await c.close();
  });
});

describe('scenario 13: DashScope modalities', () => {
  it('["audio"] alone gives invalid_value on session.modalities with the documented message', async () => {
    const c = await connect({ path: '/api-ws/v1/realtime', query: 'model=qwen3-omni-flash-realtime' });
    await c.next('session.created');
    c.send({ type: 'session.update', session: { modalities: ['audio'] } });
    const err = await c.next('error');
    expect(err.error).toEqual({
      type: 'invalid_request_error',
      code: 'invalid_value',
      message: "Invalid modalities: ['audio']. Supported combinations are: ['text'] and ['audio', 'text'].",
      param: 'session.modalities',
    });
    c.send({ type: 'session.update', session: { modalities: ['text'] } });
    expect(session(await c.next('session.updated')).modalities).toEqual(['text']);
    await c.close();
  });
});

describe('text items typed before any audio', () => {
  it('a text user item then a text response in GA', async () => {
    const c = await connect();
    await c.next('session.created');
    c.send({ type: 'conversation.item.create', item: userText('Hi') });
    await c.next('conversation.item.done');
    c.send({ type: 'response.create', response: { output_modalities: ['text'], max_output_tokens: 4 } });
    const id = ((await c.next('response.created')).response as { id: string }).id;
    await c.responseDone(id);
    checkResponseCycle(c.events, id, 'ga');
    await c.close();
  });
});
