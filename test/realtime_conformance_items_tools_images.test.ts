// Realtime conformance, conversation items, function calling, images and video frames
// (realtime-protocol.md §11, scenarios 28-31) against a real gateway on the demo runtime. The
// demo weights never emit a tool call, so the model side of function calling (29) runs on a second
// gateway whose runtime replays a scripted Qwen3 `<tool_call>` reply (test/helpers/realtime.ts).
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TOOL_IDS } from '../src/fusion/tool_format.js';
import { sharedTokenizer } from '../src/fusion/model_input.js';
import type { TestGateway } from './helpers/gateway.js';
import { appendAudio, errorsOf, fixturePcm, RtClient, scriptedRuntime, startRealtimeGateway, userText, type ScriptedRuntime, type Wire } from './helpers/realtime.js';
import { checkEventTypes, checkResponseCycle } from './helpers/realtime_invariants.js';

let gw: TestGateway;
let png: Buffer;
let jpeg: Buffer;

beforeAll(async () => {
  gw = await startRealtimeGateway({ playbackLeadMs: '60000' });
  await gw.gateway.runtime.capabilities();
  png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
  jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 20, g: 130, b: 90 } } }).jpeg().toBuffer();
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

const respId = (e: Wire): string => (e.response as { id: string }).id;
const itemOf = (e: Wire) => e.item as { id: string; type: string; role?: string; status: string; call_id?: string; name?: string; arguments?: string; content?: Record<string, unknown>[] };

async function gaSession(g: TestGateway = gw): Promise<RtClient> {
  const c = await RtClient.connect(g.wsUrl);
  await c.next('session.created');
  c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } } });
  await c.next('session.updated');
  return c;
}

describe('scenario 28: item CRUD', () => {
  it('previous_item_id "root" inserts first, an unknown previous_item_id is an error, retrieve returns audio, delete twice errors', async () => {
    const c = await gaSession();
    c.send({ type: 'conversation.item.create', item: userText('first', 'item_a') });
    expect(itemOf(await c.next('conversation.item.added')).id).toBe('item_a');
    await c.next('conversation.item.done');
    c.send({ type: 'conversation.item.create', previous_item_id: 'root', item: userText('before everything', 'item_root') });
    const rootAdded = await c.next('conversation.item.added');
    expect(rootAdded.previous_item_id).toBeNull();
    c.send({ type: 'conversation.item.create', previous_item_id: 'item_a', item: userText('after a', 'item_c') });
    expect((await c.next('conversation.item.added')).previous_item_id).toBe('item_a');
    c.send({ type: 'conversation.item.create', event_id: 'bad_prev', previous_item_id: 'item_nope', item: userText('x') });
    const bad = await c.next('error');
    expect(bad.error).toMatchObject({ code: 'invalid_value', param: 'previous_item_id', event_id: 'bad_prev' });
    // Audio content comes back on retrieve (and only there).
    const audio = fixturePcm('weather_24k').subarray(0, 24_000).toString('base64');
    c.send({ type: 'conversation.item.create', item: { id: 'item_audio', type: 'message', role: 'user', content: [{ type: 'input_audio', audio }] } });
    const added = await c.next((e) => e.type === 'conversation.item.added' && itemOf(e).id === 'item_audio');
    expect(itemOf(added).content![0]).not.toHaveProperty('audio');
    c.send({ type: 'conversation.item.retrieve', item_id: 'item_audio' });
    const retrieved = await c.next('conversation.item.retrieved');
    expect(itemOf(retrieved).content![0]).toMatchObject({ type: 'input_audio', audio });
    c.send({ type: 'conversation.item.retrieve', event_id: 'ret_nope', item_id: 'item_nope' });
    expect((await c.next('error')).error).toMatchObject({ event_id: 'ret_nope' });
    c.send({ type: 'conversation.item.delete', item_id: 'item_c' });
    expect(await c.next('conversation.item.deleted')).toMatchObject({ item_id: 'item_c' });
    c.send({ type: 'conversation.item.delete', event_id: 'del_again', item_id: 'item_c' });
    expect((await c.next('error')).error).toMatchObject({ event_id: 'del_again', param: 'item_id' });
    // The conversation is still usable: a response over it.
    c.send({ type: 'response.create', response: { max_output_tokens: 3 } });
    const id = respId(await c.next('response.created'));
    await c.responseDone(id);
    checkResponseCycle(c.events, id);
    expect(errorsOf(c.events)).toHaveLength(3);
    checkEventTypes(c.events, 'ga');
    await c.close();
  });
});

describe('scenario 29: function calling', () => {
  let scripted: TestGateway;
  let runtime: ScriptedRuntime;
  const tool = { type: 'function', name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } };

  beforeAll(async () => {
    runtime = scriptedRuntime();
    scripted = await startRealtimeGateway({}, runtime);
  });
  afterAll(async () => {
    await scripted?.gateway.close();
  });

  it('the model calls the tool: function_call item, argument events, done with name/arguments/call_id; the output then gets a final answer', async () => {
    const tok = sharedTokenizer();
    const body = await tok.encode('\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n');
    runtime.replies.push([TOOL_IDS.toolCall, ...body, TOOL_IDS.toolCallEnd], await tok.encode('It is sunny in Paris.'));
    const c = await gaSession(scripted);
    c.send({ type: 'session.update', session: { type: 'realtime', tools: [tool], tool_choice: 'auto' } });
    await c.next('session.updated');
    c.send({ type: 'conversation.item.create', item: userText('Weather in Paris?') });
    c.send({ type: 'response.create', response: { max_output_tokens: 64 } });
    const id = respId(await c.next('response.created'));
    const done = await c.responseDone(id);
    const cycle = checkResponseCycle(c.events, id);
    const mine = c.events.filter((e) => e.response_id === id || (e.type === 'conversation.item.added' && itemOf(e).type === 'function_call') || (e.type === 'conversation.item.done' && itemOf(e).type === 'function_call'));
    expect(mine.map((e) => e.type).filter((t, i, a) => !(t.endsWith('.delta') && a[i - 1] === t))).toEqual([
      'response.output_item.added',
      'conversation.item.added',
      'response.function_call_arguments.delta',
      'response.function_call_arguments.done',
      'conversation.item.done',
      'response.output_item.done',
    ]);
    const argsDone = c.events.find((e) => e.type === 'response.function_call_arguments.done')!;
    expect(argsDone).toMatchObject({ name: 'get_weather', call_id: expect.stringMatching(/^call_/) as unknown });
    expect(JSON.parse(argsDone.arguments as string)).toEqual({ city: 'Paris' });
    const call = cycle.items[0]!;
    expect(call).toMatchObject({ type: 'function_call', status: 'completed', name: 'get_weather', call_id: argsDone.call_id, arguments: argsDone.arguments });
    expect((done.response as { status: string }).status).toBe('completed');

    // The client runs the tool and asks for the final answer.
    c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: argsDone.call_id, output: '{"sky":"sunny"}' } });
    const out = await c.next((e) => e.type === 'conversation.item.added' && itemOf(e).type === 'function_call_output');
    expect(out.previous_item_id).toBe(call.id);
    c.send({ type: 'response.create', response: { max_output_tokens: 64 } });
    const final = respId(await c.next('response.created'));
    await c.responseDone(final);
    const answer = checkResponseCycle(c.events, final);
    expect(answer.text[0]).toBe('It is sunny in Paris.');
    expect(answer.response.status).toBe('completed');
    expect(errorsOf(c.events)).toEqual([]);
    checkEventTypes(c.events, 'ga');
    await c.close();
  });

  it('a function_call_output with an unknown call_id is an error', async () => {
    const c = await gaSession(scripted);
    c.send({ type: 'conversation.item.create', event_id: 'orphan', item: { type: 'function_call_output', call_id: 'call_nope', output: '{}' } });
    expect((await c.next('error')).error).toMatchObject({ code: 'invalid_value', event_id: 'orphan' });
    await c.close();
  });

  it('the demo model answers over a client-supplied function_call and its output', async () => {
    const c = await gaSession();
    c.send({ type: 'conversation.item.create', item: userText('Weather in Paris?') });
    c.send({ type: 'conversation.item.create', item: { type: 'function_call', call_id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' } });
    c.send({ type: 'conversation.item.create', item: { type: 'function_call_output', call_id: 'call_1', output: '{"sky":"sunny"}' } });
    c.send({ type: 'response.create', response: { tools: [tool], max_output_tokens: 4 } });
    const id = respId(await c.next('response.created'));
    await c.responseDone(id);
    checkResponseCycle(c.events, id);
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  });
});

describe('scenario 30: image input', () => {
  it('PNG and JPEG data URIs are accepted and counted as image tokens; other data URIs and URLs give invalid_value', async () => {
    const c = await gaSession();
    c.send({
      type: 'conversation.item.create',
      item: {
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'What is this?' },
          { type: 'input_image', image_url: `data:image/png;base64,${png.toString('base64')}` },
          { type: 'input_image', image_url: `data:image/jpeg;base64,${jpeg.toString('base64')}`, detail: 'low' },
        ],
      },
    });
    const added = await c.next('conversation.item.done');
    expect(itemOf(added).content!.map((p) => p.type)).toEqual(['input_text', 'input_image', 'input_image']);
    c.send({ type: 'conversation.item.create', event_id: 'txt', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:text/plain;base64,aGVsbG8=' }] } });
    expect((await c.next('error')).error).toMatchObject({ code: 'invalid_value', param: 'item.content[0].image_url', event_id: 'txt' });
    c.send({ type: 'conversation.item.create', event_id: 'url', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'https://example.com/cat.png' }] } });
    expect((await c.next('error')).error).toMatchObject({ code: 'invalid_value', param: 'item.content[0].image_url', event_id: 'url' });
    // Declared PNG but not image bytes.
    c.send({ type: 'conversation.item.create', event_id: 'fake', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: 'data:image/png;base64,aGVsbG8gd29ybGQ=' }] } });
    expect((await c.next('error')).error).toMatchObject({ code: 'invalid_value', event_id: 'fake' });
    c.send({ type: 'response.create', response: { max_output_tokens: 3 } });
    const id = respId(await c.next('response.created'));
    const done = await c.responseDone(id);
    const usage = (done.response as { usage: { input_token_details: { image_tokens: number } } }).usage;
    expect(usage.input_token_details.image_tokens).toBeGreaterThan(0);
    checkResponseCycle(c.events, id);
    expect(errorsOf(c.events)).toHaveLength(3);
    await c.close();
  });
});

describe('scenario 31: video frames (input_image_buffer.append)', () => {
  it('DashScope: a frame before audio is image_before_audio; frames interleaved with audio join the turn; too many per second is rate_limit_exceeded; oversized is string_above_max_length', async () => {
    const c = await RtClient.connect(gw.wsUrl, { path: '/api-ws/v1/realtime', query: 'model=qwen3-omni-flash-realtime' });
    await c.next('session.created');
    c.send({ type: 'session.update', session: { modalities: ['text'], turn_detection: null } });
    await c.next('session.updated');
    const frame = jpeg.toString('base64');
    c.send({ type: 'input_image_buffer.append', image: frame });
    const early = await c.next('error');
    expect(early.error).toMatchObject({ code: 'image_before_audio', message: 'Error append image before append audio.' });
    const speech = fixturePcm('weather_16k');
    appendAudio(c, speech.subarray(0, 16_000), 20, 32_000);
    c.send({ type: 'input_image_buffer.append', image: frame });
    appendAudio(c, speech.subarray(16_000, 32_000), 20, 32_000);
    c.send({ type: 'input_image_buffer.append', image: frame });
    // A third frame within the same second is over the cap: dropped, session kept.
    c.send({ type: 'input_image_buffer.append', image: frame });
    const limited = await c.next('error');
    expect(limited.error).toMatchObject({ code: 'rate_limit_exceeded' });
    const big = Buffer.concat([jpeg.subarray(0, 3), Buffer.alloc(600 * 1024)]);
    c.send({ type: 'input_image_buffer.append', image: big.toString('base64') });
    expect((await c.next('error')).error).toMatchObject({ code: 'string_above_max_length', param: 'image' });
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.committed');
    const item = itemOf(await c.next('conversation.item.created'));
    expect(item.content!.map((p) => p.type)).toEqual(['input_image', 'input_image', 'input_audio']);
    c.send({ type: 'response.create', response: { max_tokens: 3 } });
    const id = respId(await c.next('response.created'));
    const done = await c.responseDone(id);
    checkResponseCycle(c.events, id, 'dashscope');
    expect((done.response as { usage: { input_token_details: { image_tokens: number } } }).usage.input_token_details.image_tokens).toBeGreaterThan(0);
    expect(errorsOf(c.events)).toHaveLength(3);
    await c.close();
  });

  it('GA accepts input_image_buffer.append as an extension (no audio needed first); the frame joins the next committed turn', async () => {
    const c = await gaSession();
    c.send({ type: 'input_image_buffer.append', image: png.toString('base64') });
    appendAudio(c, fixturePcm('weather_24k').subarray(0, 24_000));
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.committed');
    const item = itemOf(await c.next('conversation.item.added'));
    expect(item.content!.map((p) => p.type)).toEqual(['input_image', 'input_audio']);
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  });
});
