// Realtime conformance, responses, ordering and cancel (realtime-protocol.md §11, scenarios 20, 21,
// 24-27; 22 and 23 need server VAD and live in realtime_conformance_audio_vad) against a real
// gateway on the demo runtime. The demo model has random weights and never stops by itself, so
// every response has a small token limit (or is cancelled). Speech is sent unpaced here
// (--playback-lead-ms 60000): what is checked is the event structure, not the pace.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from './helpers/gateway.js';
import { errorsOf, RtClient, startRealtimeGateway, userText, type Wire } from './helpers/realtime.js';
import { checkAllResponses, checkResponseCycle, checkEventTypes } from './helpers/realtime_invariants.js';

let gw: TestGateway;
let speechOut = false;

beforeAll(async () => {
  gw = await startRealtimeGateway({ playbackLeadMs: '60000' });
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

const respId = (e: Wire): string => (e.response as { id: string }).id;
const resp = (e: Wire) => e.response as { id: string; status: string; status_details: { type: string; reason?: string } | null; conversation_id: string | null; usage: { output_tokens: number; output_token_details: { audio_tokens: number } } };

async function textSession(extra: Record<string, unknown> = {}): Promise<RtClient> {
  const c = await RtClient.connect(gw.wsUrl);
  await c.next('session.created');
  c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } }, ...extra } });
  await c.next('session.updated');
  c.send({ type: 'conversation.item.create', item: userText('Tell me about the sea.') });
  await c.next('conversation.item.done');
  return c;
}

/** Sends response.create and returns its id (from response.created). */
async function respond(c: RtClient, response: Record<string, unknown> = {}): Promise<string> {
  c.send({ type: 'response.create', response });
  return respId(await c.next('response.created'));
}

describe('scenario 20: the response lifecycle contract', () => {
  it('a text response: every event is in the SDK union and the §7 invariants hold', async () => {
    const c = await textSession();
    const id = await respond(c, { max_output_tokens: 6 });
    await c.responseDone(id);
    const cycle = checkResponseCycle(c.events, id, 'ga');
    expect(cycle.items).toHaveLength(1);
    expect(cycle.items[0]).toMatchObject({ type: 'message', role: 'assistant' });
    expect(cycle.items[0]!.content).toEqual([{ type: 'output_text', text: cycle.text[0] }]);
    checkEventTypes(c.events, 'ga');
    // rate_limits.updated, when sent, comes right after response.created or response.done.
    const rl = c.events.findIndex((e) => e.type === 'rate_limits.updated');
    if (rl >= 0) expect([cycle.createdAt + 1, cycle.doneAt + 1]).toContain(rl);
    await c.close();
  });

  it('an audio response: audio part, transcript and audio deltas inside it, item ids and statuses identical in response.done', async (ctx) => {
    ctx.skip(!speechOut, 'the runtime has no speech output yet');
    const c = await textSession();
    const id = await respond(c, { output_modalities: ['audio'], max_output_tokens: 3 });
    const done = await c.responseDone(id, 30_000);
    const cycle = checkResponseCycle(c.events, id, 'ga');
    expect(cycle.audioDeltas).toBeGreaterThan(0);
    expect(cycle.items[0]!.content).toEqual([{ type: 'output_audio', transcript: cycle.text[0] }]);
    const part = c.events.find((e) => e.type === 'response.content_part.added' && e.response_id === id)!;
    expect(part.part).toEqual({ type: 'audio', transcript: '' });
    // Audio deltas are standalone padded base64 of whole PCM16 samples, in multiples of 6 bytes
    // so clients that join base64 strings before decoding get whole samples (§2.5).
    for (const e of c.events.filter((x) => x.type === 'response.output_audio.delta')) expect(Buffer.from(e.delta as string, 'base64').length % 6).toBe(0);
    expect(resp(done).usage.output_token_details.audio_tokens).toBeGreaterThan(0);
    checkEventTypes(c.events, 'ga');
    await c.close();
  });

  it('beta and DashScope render the same cycle with their own event names', async () => {
    for (const [path, dialect] of [['/v1/realtime', 'beta'], ['/api-ws/v1/realtime', 'dashscope']] as const) {
      const c = await RtClient.connect(gw.wsUrl, { path, ...(dialect === 'beta' ? { headers: { 'OpenAI-Beta': 'realtime=v1' } } : {}) });
      await c.next('session.created');
      c.send({ type: 'session.update', session: { modalities: ['text'], turn_detection: null } });
      await c.next('session.updated');
      c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello' }] } });
      await c.next('conversation.item.created');
      c.send({ type: 'response.create', response: dialect === 'beta' ? { max_response_output_tokens: 4 } : { max_tokens: 4 } });
      const id = respId(await c.next('response.created'));
      await c.responseDone(id);
      checkResponseCycle(c.events, id, dialect);
      expect(c.events.map((e) => e.type)).toContain('response.text.delta');
      expect(errorsOf(c.events)).toEqual([]);
      await c.close();
    }
  });
});

describe('scenario 21: one response at a time in the default conversation', () => {
  it('a second response.create gets conversation_already_has_active_response and the first completes untouched; an out-of-band one runs in parallel', async () => {
    const c = await textSession();
    c.send({ type: 'response.create', response: { max_output_tokens: 16 } });
    c.send({ type: 'response.create', event_id: 'second', response: { max_output_tokens: 16 } });
    c.send({ type: 'response.create', response: { conversation: 'none', max_output_tokens: 4, metadata: { topic: 'side' } } });
    const first = respId(await c.next('response.created'));
    const err = await c.seen('error');
    expect(err.error).toMatchObject({ code: 'conversation_already_has_active_response', event_id: 'second' });
    const oob = await c.seen((e) => e.type === 'response.created' && respId(e) !== first);
    const oobDone = await c.responseDone(respId(oob));
    const firstDone = await c.responseDone(first);
    // The out-of-band response started while the first was active.
    expect(c.events.indexOf(oob)).toBeLessThan(c.events.indexOf(firstDone));
    expect(resp(oob).conversation_id).toBeNull();
    expect(resp(oobDone)).toMatchObject({ metadata: { topic: 'side' } });
    expect(resp(firstDone).status).toBe('incomplete');
    checkResponseCycle(c.events, first);
    checkResponseCycle(c.events, respId(oob));
    // Out-of-band output is not added to the conversation.
    const oobItems = c.events.filter((e) => e.type === 'response.output_item.added' && e.response_id === respId(oob)).map((e) => (e.item as { id: string }).id);
    expect(c.events.filter((e) => e.type === 'conversation.item.added' && oobItems.includes((e.item as { id: string }).id))).toEqual([]);
    expect(errorsOf(c.events)).toHaveLength(1);
    await c.close();
  });
});

describe('response.input', () => {
  it('an out-of-band response over its own input (an item reference and a new item) leaves the conversation alone', async () => {
    const c = await textSession();
    const userItem = c.events.find((e) => e.type === 'conversation.item.done')!.item as { id: string };
    const id = await respond(c, {
      conversation: 'none',
      max_output_tokens: 3,
      input: [{ type: 'item_reference', id: userItem.id }, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Summarize.' }] }],
    });
    const done = await c.responseDone(id);
    expect(resp(done).conversation_id).toBeNull();
    checkResponseCycle(c.events, id);
    expect(c.events.filter((e) => e.type === 'conversation.item.added')).toHaveLength(1);
    c.send({ type: 'response.create', event_id: 'badref', response: { conversation: 'none', input: [{ type: 'item_reference', id: 'item_nope' }] } });
    expect((await c.next('error')).error).toMatchObject({ code: 'invalid_value', event_id: 'badref' });
    await c.close();
  });
});

describe('scenario 24: client cancel', () => {
  it('response.cancel gives cancelled/client_cancelled; a second cancel gives response_cancel_not_active; a wrong response_id is an error', async () => {
    const c = await textSession();
    const id = await respond(c, { max_output_tokens: 2000 });
    await c.next((e) => e.type === 'response.output_text.delta' && e.response_id === id);
    c.send({ type: 'response.cancel', event_id: 'wrong', response_id: 'resp_nope' });
    const wrong = await c.next('error');
    expect(wrong.error).toMatchObject({ type: 'invalid_request_error', event_id: 'wrong' });
    c.send({ type: 'response.cancel', response_id: id });
    const done = await c.responseDone(id);
    expect(resp(done)).toMatchObject({ status: 'cancelled', status_details: { type: 'cancelled', reason: 'client_cancelled' } });
    const cycle = checkResponseCycle(c.events, id);
    expect(cycle.items[0]!.status).toBe('incomplete');
    c.send({ type: 'response.cancel', event_id: 'again' });
    const again = await c.next('error');
    expect(again.error).toMatchObject({ code: 'response_cancel_not_active', message: 'Cancellation failed: no active response found', event_id: 'again' });
    // Nothing of the cancelled response follows its done.
    const after = await c.quiet(150);
    expect(after.filter((e) => e.response_id === id)).toEqual([]);
    await c.close();
  });
});

describe('scenario 25: truncate', () => {
  it('after a cancel, truncate to 1250 ms shortens the server-side audio and transcript; too long or a user item is an error', async (ctx) => {
    ctx.skip(!speechOut, 'the runtime has no speech output yet');
    const c = await textSession();
    const id = await respond(c, { output_modalities: ['audio'], max_output_tokens: 40 });
    // Cancel once the client holds more than 1.25 s of the reply's audio (48 bytes per ms).
    const received = (): number =>
      c.events.filter((e) => e.type === 'response.output_audio.delta' && e.response_id === id).reduce((n, e) => n + Buffer.from(e.delta as string, 'base64').length, 0);
    await c.seen(() => received() > 1400 * 48, 30_000);
    c.send({ type: 'response.cancel' });
    await c.responseDone(id);
    const cycle = checkResponseCycle(c.events, id);
    const itemId = cycle.items[0]!.id;
    const fullTranscript = (cycle.items[0]!.content![0] as { transcript: string }).transcript;
    c.send({ type: 'conversation.item.truncate', event_id: 'tr', item_id: itemId, content_index: 0, audio_end_ms: 1250 });
    const truncated = await c.next((e) => e.type === 'conversation.item.truncated' || e.type === 'error');
    expect(truncated, JSON.stringify(truncated)).toMatchObject({ type: 'conversation.item.truncated', item_id: itemId, content_index: 0, audio_end_ms: 1250 });
    c.send({ type: 'conversation.item.retrieve', item_id: itemId });
    const retrieved = await c.next('conversation.item.retrieved');
    const part = (retrieved.item as { content: { audio: string; transcript: string }[] }).content[0]!;
    expect(Buffer.from(part.audio, 'base64').length).toBe(1250 * 48);
    expect(part.transcript.length).toBeLessThanOrEqual(fullTranscript.length);
    expect(fullTranscript.startsWith(part.transcript)).toBe(true);
    // Beyond the (now 1250 ms) audio: invalid_value with OpenAI's message.
    c.send({ type: 'conversation.item.truncate', event_id: 'tr2', item_id: itemId, content_index: 0, audio_end_ms: 5000 });
    const tooLong = await c.next('error');
    expect(tooLong.error).toMatchObject({ code: 'invalid_value', event_id: 'tr2' });
    expect((tooLong.error as { message: string }).message).toMatch(/already shorter than 5000ms/);
    // Truncating to nothing leaves no audio and no transcript: the text follows the audio heard.
    c.send({ type: 'conversation.item.truncate', item_id: itemId, content_index: 0, audio_end_ms: 0 });
    await c.next('conversation.item.truncated');
    c.send({ type: 'conversation.item.retrieve', item_id: itemId });
    const emptied = (await c.next('conversation.item.retrieved')).item as { content: { audio?: string; transcript: string }[] };
    expect(emptied.content[0]!.transcript).toBe('');
    expect(Buffer.from(emptied.content[0]!.audio ?? '', 'base64').length).toBe(0);
    // A user item cannot be truncated.
    const userItem = c.events.find((e) => e.type === 'conversation.item.done' && (e.item as { role?: string }).role === 'user')!;
    c.send({ type: 'conversation.item.truncate', event_id: 'tr3', item_id: (userItem.item as { id: string }).id, content_index: 0, audio_end_ms: 0 });
    expect((await c.next('error')).error).toMatchObject({ event_id: 'tr3' });
    await c.close();
  }, 40_000);
});

describe('scenario 26: token limit', () => {
  it('max_output_tokens 5 ends incomplete/max_output_tokens with every part and item closed', async () => {
    const c = await textSession();
    const id = await respond(c, { max_output_tokens: 5 });
    const done = await c.responseDone(id);
    expect(resp(done)).toMatchObject({ status: 'incomplete', status_details: { type: 'incomplete', reason: 'max_output_tokens' } });
    expect(resp(done).usage.output_tokens).toBe(5);
    const cycle = checkResponseCycle(c.events, id);
    expect(cycle.items[0]!.status).toBe('incomplete');
    await c.close();
  });

  it('a session-level max_output_tokens applies to responses without their own', async () => {
    const c = await textSession({ max_output_tokens: 3 });
    const id = await respond(c);
    const done = await c.responseDone(id);
    expect(resp(done).usage.output_tokens).toBe(3);
    await c.close();
  });
});

describe('scenario 27: output modalities', () => {
  it('text-only sessions get output_text events and a text part, no audio; a response.create override to audio applies to that response only', async (ctx) => {
    const c = await textSession();
    const id = await respond(c, { max_output_tokens: 4 });
    await c.responseDone(id);
    const cycle = checkResponseCycle(c.events, id);
    const mine = c.events.filter((e) => e.response_id === id).map((e) => e.type);
    expect(mine).toContain('response.output_text.delta');
    expect(mine).toContain('response.output_text.done');
    expect(mine.filter((t) => t.includes('audio'))).toEqual([]);
    expect(c.events.find((e) => e.type === 'response.content_part.added' && e.response_id === id)!.part).toEqual({ type: 'text', text: '' });
    expect(cycle.items[0]!.content![0]!.type).toBe('output_text');
    ctx.skip(!speechOut, 'the runtime has no speech output yet: the audio override is not checked');
    const audioId = await respond(c, { output_modalities: ['audio'], max_output_tokens: 2 });
    const audioDone = await c.responseDone(audioId, 30_000);
    expect((audioDone.response as { output_modalities: string[] }).output_modalities).toEqual(['audio']);
    expect(c.events.some((e) => e.type === 'response.output_audio.delta' && e.response_id === audioId)).toBe(true);
    checkResponseCycle(c.events, audioId);
    const backId = await respond(c, { max_output_tokens: 2 });
    await c.responseDone(backId);
    expect(c.events.filter((e) => e.response_id === backId).map((e) => e.type)).toContain('response.output_text.delta');
    checkAllResponses(c.events);
    await c.close();
  }, 40_000);
});
