// Realtime conformance, input audio, server VAD and barge-in (realtime-protocol.md §11, scenarios
// 14-19, 22, 23) against a real gateway on the demo runtime, with speech from espeak-ng
// (test/fixtures/realtime, made by scripts/realtime_fixtures.sh). The detector runs on audio time,
// so silence is appended as fast as the socket takes it; only the barge-in streams in real time.
// Speech output is paced (the default 300 ms lead) so a response is still playing when the user
// talks over it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from './helpers/gateway.js';
import { appendAudio, errorsOf, fixturePcm, RtClient, silence, startRealtimeGateway, streamAudio, type Wire } from './helpers/realtime.js';
import { checkAllResponses, checkEventTypes, checkInputTurns, checkResponseCycle } from './helpers/realtime_invariants.js';

let gw: TestGateway;
let speechOut = false;
const weather = fixturePcm('weather_24k');
const interrupt = fixturePcm('interrupt_24k');

beforeAll(async () => {
  gw = await startRealtimeGateway();
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

const respId = (e: Wire): string => (e.response as { id: string }).id;
const status = (e: Wire): { status: string; status_details: { reason?: string } | null } => e.response as never;

/** A GA session with these settings applied (waits for session.updated). */
async function session(settings: Record<string, unknown>): Promise<RtClient> {
  const c = await RtClient.connect(gw.wsUrl);
  await c.next('session.created');
  c.send({ type: 'session.update', session: { type: 'realtime', ...settings } });
  await c.next('session.updated');
  return c;
}

const MANUAL = { output_modalities: ['text'], max_output_tokens: 6, audio: { input: { turn_detection: null } } };
const vad = (extra: Record<string, unknown> = {}) => ({
  type: 'server_vad',
  threshold: 0.5,
  prefix_padding_ms: 300,
  silence_duration_ms: 300,
  create_response: true,
  interrupt_response: true,
  ...extra,
});

describe('scenarios 14-16: manual turns', () => {
  it('14: append 1 s of speech, commit, response.create: committed, the user item, then one response cycle', async () => {
    const c = await session(MANUAL);
    const from = c.mark();
    appendAudio(c, weather.subarray(0, 48_000));
    c.send({ type: 'input_audio_buffer.commit' });
    c.send({ type: 'response.create' });
    const created = await c.next('response.created');
    const done = await c.responseDone(respId(created));
    const types = c.since(from).map((e) => e.type);
    expect(types.slice(0, 4)).toEqual(['input_audio_buffer.committed', 'conversation.item.added', 'conversation.item.done', 'response.created']);
    const committed = c.events.find((e) => e.type === 'input_audio_buffer.committed')!;
    const userItem = c.events.find((e) => e.type === 'conversation.item.done')!.item as { id: string; role: string; content: { type: string }[] };
    expect(userItem).toMatchObject({ id: committed.item_id, role: 'user', status: 'completed' });
    expect(userItem.content.map((p) => p.type)).toEqual(['input_audio']);
    // The demo model never stops by itself: the token limit ends it (incomplete), never a failure.
    expect(['completed', 'incomplete']).toContain(status(done).status);
    checkResponseCycle(c.events, respId(created));
    checkInputTurns(c.events);
    checkEventTypes(c.events, 'ga');
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  });

  it('15: a commit with under 100 ms gives input_audio_buffer_commit_empty and creates no item', async () => {
    const c = await session(MANUAL);
    appendAudio(c, weather.subarray(0, 4_800 - 480)); // 90 ms
    c.send({ type: 'input_audio_buffer.commit', event_id: 'commit_15' });
    const err = await c.next('error');
    expect(err.error).toMatchObject({ code: 'input_audio_buffer_commit_empty', event_id: 'commit_15' });
    expect((err.error as { message: string }).message).toMatch(/Expected at least 100ms of audio/);
    const later = await c.quiet(100);
    expect([...c.events, ...later].map((e) => e.type)).not.toContain('input_audio_buffer.committed');
    expect(c.events.map((e) => e.type)).not.toContain('conversation.item.added');
    // Exactly 100 ms is enough.
    appendAudio(c, weather.subarray(0, 4_800));
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.committed');
    await c.close();
  });

  it('16: input_audio_buffer.clear answers cleared, and a commit after it reports an empty buffer', async () => {
    const c = await session(MANUAL);
    appendAudio(c, weather.subarray(0, 24_000));
    c.send({ type: 'input_audio_buffer.clear' });
    await c.next('input_audio_buffer.cleared');
    c.send({ type: 'input_audio_buffer.commit' });
    const err = await c.next('error');
    expect(err.error).toMatchObject({ code: 'input_audio_buffer_commit_empty' });
    expect((err.error as { message: string }).message).toMatch(/only has 0\.00ms/);
    await c.close();
  });
});

describe('scenario 17: server_vad', () => {
  it('speech then silence: speech_started (with prefix padding), speech_stopped, committed, the user item and an automatic response', async () => {
    const c = await session({ output_modalities: ['text'], max_output_tokens: 6, audio: { input: { turn_detection: vad() } } });
    appendAudio(c, Buffer.concat([silence(1000), weather, silence(600)]));
    const started = await c.next('input_audio_buffer.speech_started');
    const stopped = await c.next('input_audio_buffer.speech_stopped');
    const committed = await c.next('input_audio_buffer.committed');
    const added = await c.next('conversation.item.added');
    await c.next('conversation.item.done');
    const created = await c.next('response.created');
    await c.responseDone(respId(created));
    expect(stopped.item_id).toBe(started.item_id);
    expect(committed.item_id).toBe(started.item_id);
    expect((added.item as { id: string; role: string }).role).toBe('user');
    expect((added.item as { id: string }).id).toBe(started.item_id);
    // Speech begins at 1000 ms of session audio; audio_start_ms reaches back by the 300 ms padding.
    expect(started.audio_start_ms).toBeGreaterThanOrEqual(600);
    expect(started.audio_start_ms).toBeLessThanOrEqual(800);
    // The utterance ends ~1620 ms later; the end excludes the trailing silence.
    expect(stopped.audio_end_ms as number).toBeGreaterThan(2400);
    expect(stopped.audio_end_ms as number).toBeLessThan(3000);
    checkInputTurns(c.events);
    checkEventTypes(c.events, 'ga');
    checkAllResponses(c.events);
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  });

  it('create_response:false commits the turn without a response', async () => {
    const c = await session({ output_modalities: ['text'], audio: { input: { turn_detection: vad({ create_response: false }) } } });
    appendAudio(c, Buffer.concat([silence(300), weather, silence(600)]));
    await c.next('input_audio_buffer.committed');
    const later = await c.quiet(300);
    expect([...c.events, ...later].map((e) => e.type)).not.toContain('response.created');
    await c.close();
  });
});

describe('server_vad in the other dialects', () => {
  it('beta and DashScope: the same turn with one conversation.item.created per item and their event names', async () => {
    for (const [path, dialect, pcm, bytesPerSecond] of [
      ['/v1/realtime', 'beta', weather, 48_000],
      ['/api-ws/v1/realtime', 'dashscope', fixturePcm('weather_16k'), 32_000],
    ] as const) {
      const c = await RtClient.connect(gw.wsUrl, dialect === 'beta' ? { headers: { 'OpenAI-Beta': 'realtime=v1' } } : { path, query: 'model=qwen3-omni-flash-realtime' });
      await c.next('session.created');
      const td = { type: 'server_vad', silence_duration_ms: 300 };
      c.send({ type: 'session.update', session: dialect === 'beta' ? { modalities: ['text'], max_response_output_tokens: 4, turn_detection: td } : { modalities: ['text'], max_tokens: 4, turn_detection: td } });
      await c.next('session.updated');
      const rate = bytesPerSecond / 2;
      appendAudio(c, Buffer.concat([silence(300, rate), pcm, silence(600, rate)]), 20, bytesPerSecond);
      const committed = await c.next('input_audio_buffer.committed');
      const created = await c.next('response.created');
      await c.responseDone(respId(created));
      checkInputTurns(c.events, dialect);
      if (dialect === 'beta') checkEventTypes(c.events, 'beta');
      checkAllResponses(c.events, dialect);
      const announced = c.events.filter((e) => e.type === 'conversation.item.created' && (e.item as { id: string }).id === committed.item_id);
      expect(announced).toHaveLength(1);
      expect(c.events.map((e) => e.type)).not.toContain('conversation.item.added');
      expect(errorsOf(c.events)).toEqual([]);
      await c.close();
    }
  });
});

describe('scenario 18: input audio transcription', () => {
  it('deltas, then exactly one completed per committed item, interleaving with the response; the transcript lands on the item', async () => {
    const c = await session({
      output_modalities: ['text'],
      max_output_tokens: 4,
      audio: { input: { turn_detection: null, transcription: { model: 'whisper-1', language: 'en' } } },
    });
    appendAudio(c, weather);
    c.send({ type: 'input_audio_buffer.commit' });
    const committed = await c.next('input_audio_buffer.committed');
    c.send({ type: 'response.create' });
    const isTerminal = (e: Wire): boolean =>
      e.type === 'conversation.item.input_audio_transcription.completed' || e.type === 'conversation.item.input_audio_transcription.failed';
    const terminal = await c.seen((e) => isTerminal(e) && e.item_id === committed.item_id, 10_000);
    await c.seen('response.done');
    await c.quiet(100);
    // An ASR failure would be one `failed` with an error object; this runtime transcribes.
    expect(terminal, JSON.stringify(terminal)).toMatchObject({
      type: 'conversation.item.input_audio_transcription.completed',
      item_id: committed.item_id,
      content_index: 0,
      transcript: expect.any(String) as unknown,
    });
    expect(c.events.filter(isTerminal)).toHaveLength(1);
    const deltas = c.events.filter((e) => e.type === 'conversation.item.input_audio_transcription.delta');
    expect(deltas.length).toBeGreaterThan(0);
    expect(deltas.every((e) => e.item_id === committed.item_id && e.content_index === 0)).toBe(true);
    expect(deltas.map((e) => e.delta as string).join('')).toBe(terminal.transcript);
    c.send({ type: 'conversation.item.retrieve', item_id: committed.item_id });
    const item = (await c.next('conversation.item.retrieved')).item as { content: { transcript: string | null }[] };
    expect(item.content[0]!.transcript).toBe(terminal.transcript);
    checkInputTurns(c.events);
    checkEventTypes(c.events, 'ga');
    checkAllResponses(c.events);
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  });
});

describe('scenario 19: idle timeout', () => {
  it('silence after a response gives input_audio_buffer.timeout_triggered, then a response', async () => {
    const c = await session({
      output_modalities: ['text'],
      max_output_tokens: 4,
      audio: { input: { turn_detection: vad({ idle_timeout_ms: 5000 }) } },
    });
    // One turn and its response, then the client keeps streaming silence.
    appendAudio(c, Buffer.concat([silence(300), weather, silence(600)]));
    const first = await c.next('response.created');
    await c.responseDone(respId(first));
    const t0 = performance.now();
    let stop = false;
    const streaming = streamAudio(c, silence(9000), { speedup: 1, stop: () => stop });
    const timeout = await c.next('input_audio_buffer.timeout_triggered', 9000);
    const elapsed = performance.now() - t0;
    const second = await c.next('response.created');
    stop = true;
    await streaming;
    expect(elapsed).toBeGreaterThanOrEqual(4900);
    expect(elapsed).toBeLessThan(7000);
    expect(timeout).toMatchObject({ item_id: expect.any(String) as unknown, audio_start_ms: expect.any(Number) as unknown, audio_end_ms: expect.any(Number) as unknown });
    expect(timeout.audio_end_ms as number).toBeGreaterThanOrEqual(timeout.audio_start_ms as number);
    await c.responseDone(respId(second));
    checkAllResponses(c.events);
    checkEventTypes(c.events, 'ga');
    await c.close();
  }, 20_000);
});

describe('scenario 22: barge-in', () => {
  it('speech during response audio cancels it (turn_detected) within 300 ms, closes its parts, sends no more of its audio, keeps only what was sent, and answers the new turn', async (ctx) => {
    ctx.skip(!speechOut, 'the runtime has no speech output yet');
    const c = await session({ max_output_tokens: 24, audio: { input: { turn_detection: vad() } } });
    appendAudio(c, Buffer.concat([silence(300), weather, silence(500)]));
    const first = await c.next('response.created');
    const id = respId(first);
    await c.next((e) => e.type === 'response.output_audio.delta' && e.response_id === id, 30_000);
    // The user talks over the reply, streaming the mic in real time.
    const from = c.mark();
    let stop = false;
    // The utterance starts 2 ms into the fixture: speech onset is when streaming starts.
    const onsetAt = performance.now();
    const talking = streamAudio(c, Buffer.concat([interrupt, silence(600)]), { stop: () => stop });
    const started = await c.next('input_audio_buffer.speech_started', 10_000);
    const startedAt = c.times[c.events.indexOf(started)]!;
    const done = await c.responseDone(id, 5_000);
    const doneAt = c.times[c.events.indexOf(done)]!;
    expect(status(done)).toMatchObject({ status: 'cancelled', status_details: { type: 'cancelled', reason: 'turn_detected' } });
    // Stop latency: detection to done, and speech onset (as streamed in real time) to done (§11.22: < 300 ms).
    console.log(`barge-in: speech_started -> response.done ${(doneAt - startedAt).toFixed(1)} ms, onset -> response.done ${(doneAt - onsetAt).toFixed(1)} ms`);
    expect(doneAt - startedAt).toBeLessThan(300);
    expect(doneAt - onsetAt).toBeLessThan(300);
    const cycle = checkResponseCycle(c.events, id);
    expect(cycle.items[0]!.status).toBe('incomplete');
    // The closing cascade follows speech_started.
    const doneIndex = c.events.indexOf(done);
    expect(c.events.indexOf(started)).toBeLessThan(doneIndex);
    expect(c.events.slice(c.events.indexOf(started), doneIndex).map((e) => e.type)).toEqual(
      expect.arrayContaining(['response.output_audio.done', 'response.output_audio_transcript.done', 'response.content_part.done', 'conversation.item.done', 'response.output_item.done']),
    );
    // The new turn gets its own response.
    const second = await c.next((e) => e.type === 'response.created' && respId(e) !== id, 15_000);
    stop = true;
    await talking;
    // No audio of the old response after its done.
    expect(c.events.slice(doneIndex).filter((e) => e.response_id === id)).toEqual([]);
    // The assistant item holds exactly the audio the client was sent.
    const sent = c.events
      .filter((e) => e.type === 'response.output_audio.delta' && e.response_id === id)
      .reduce((n, e) => n + Buffer.from(e.delta as string, 'base64').length, 0);
    c.send({ type: 'response.cancel' });
    await c.responseDone(respId(second), 10_000);
    c.send({ type: 'conversation.item.retrieve', item_id: cycle.items[0]!.id });
    const retrieved = await c.next('conversation.item.retrieved');
    const content = (retrieved.item as { content: { audio?: string; transcript: string }[] }).content[0]!;
    expect(Buffer.from(content.audio ?? '', 'base64').length).toBe(sent);
    expect(content.transcript).toBe(cycle.text[0]!.slice(0, content.transcript.length));
    expect(c.since(from).some((e) => e.type === 'input_audio_buffer.speech_stopped')).toBe(true);
    checkInputTurns(c.events);
    checkEventTypes(c.events, 'ga');
    checkAllResponses(c.events);
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  }, 40_000);
});

describe('scenario 23: interrupt_response false', () => {
  it('speech during a response does not cancel it; the new turn is answered after it', async (ctx) => {
    ctx.skip(!speechOut, 'the runtime has no speech output yet');
    const c = await session({ max_output_tokens: 4, audio: { input: { turn_detection: vad({ interrupt_response: false }) } } });
    appendAudio(c, Buffer.concat([silence(300), weather, silence(500)]));
    const first = await c.next('response.created');
    const id = respId(first);
    // A second utterance while the first reply runs (appended fast: the detector uses audio time).
    appendAudio(c, Buffer.concat([interrupt, silence(500)]));
    const started = await c.next('input_audio_buffer.speech_started');
    await c.next('input_audio_buffer.committed');
    const done = await c.responseDone(id, 30_000);
    expect(c.events.indexOf(started)).toBeLessThan(c.events.indexOf(done));
    expect(status(done).status).not.toBe('cancelled');
    const second = await c.next((e) => e.type === 'response.created' && respId(e) !== id, 10_000);
    expect(c.events.indexOf(second)).toBeGreaterThan(c.events.indexOf(done));
    c.send({ type: 'response.cancel' });
    await c.responseDone(respId(second), 10_000);
    checkAllResponses(c.events);
    checkInputTurns(c.events);
    checkEventTypes(c.events, 'ga');
    await c.close();
  }, 40_000);
});
