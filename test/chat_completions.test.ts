// POST /v1/chat/completions and the DashScope alias end to end: a real gateway, the real native
// runtime on the demo checkpoint (random weights: its words are noise, so these tests check
// shapes and invariants, never words), plain fetch (the `openai` package is not installed).
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NativeRuntime } from '../src/runtime/native.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

let gw: TestGateway;
let engineSessions: () => number;
const SPEECH_WAV = readFileSync(join(import.meta.dirname, 'fixtures', 'audio', 'speech_en.wav'));
let png: Buffer;

beforeAll(async () => {
  const cache = mkdtempSync(join(tmpdir(), 'omni-chat-'));
  gw = await startTestGateway({ modelCache: cache });
  const engine = await (gw.gateway.runtime as NativeRuntime).start();
  engineSessions = () => engine.activeSessions;
  png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

const url = (path = '/v1/chat/completions') => `${gw.url}${path}`;
const base = { model: 'qwen3-omni-demo', temperature: 0, max_tokens: 8, thinking: { type: 'disabled' } };

async function post(body: unknown, path?: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

function parseSse(text: string): { events: Record<string, unknown>[]; done: boolean } {
  const events: Record<string, unknown>[] = [];
  let done = false;
  for (const block of text.split('\n\n')) {
    if (!block.startsWith('data: ')) continue;
    const data = block.slice('data: '.length);
    if (data === '[DONE]') done = true;
    else events.push(JSON.parse(data) as Record<string, unknown>);
  }
  return { events, done };
}

async function postStream(body: unknown, path?: string): Promise<{ status: number; contentType: string | null; events: Record<string, unknown>[]; done: boolean }> {
  const res = await fetch(url(path), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, contentType: res.headers.get('content-type'), ...parseSse(await res.text()) };
}

interface Choice {
  index: number;
  message: { role: string; content: string | null; tool_calls?: { id: string; type: string; function: { name: string; arguments: string } }[] };
  finish_reason: string;
}
interface ChunkChoice {
  delta: { role?: string; content?: string; tool_calls?: unknown[] };
  finish_reason: string | null;
}

function expectError(r: { status: number; body: Record<string, unknown> }, code: string, param: string | null): { message: string } {
  expect(r.status).toBe(400);
  expect(r.body.error).toMatchObject({ type: 'invalid_request_error', code, param });
  return r.body.error as { message: string };
}

async function waitForNoSessions(): Promise<void> {
  for (let i = 0; i < 200 && engineSessions() > 0; i++) await new Promise((r) => setTimeout(r, 25));
  expect(engineSessions()).toBe(0);
}

describe('chat completions (demo runtime)', () => {
  it('answers a text request without streaming', async () => {
    const r = await post({ ...base, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello there' }] });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ object: 'chat.completion', model: 'qwen3-omni-demo' });
    expect(r.body.id).toMatch(/^chatcmpl_/);
    const choice = (r.body.choices as Choice[])[0]!;
    expect(choice.message.role).toBe('assistant');
    expect(typeof choice.message.content).toBe('string');
    expect(['stop', 'length']).toContain(choice.finish_reason);
    const usage = r.body.usage as { prompt_tokens: number; completion_tokens: number; total_tokens: number };
    expect(usage.prompt_tokens).toBeGreaterThan(5);
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBeLessThanOrEqual(8);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    if (choice.finish_reason === 'length') expect(usage.completion_tokens).toBe(8);
    await waitForNoSessions();
  });

  it('streams the same greedy reply as SSE chunks, with a usage-only chunk when asked', async () => {
    const body = { ...base, messages: [{ role: 'user', content: 'Count to three' }] };
    const whole = await post(body);
    const s = await postStream({ ...body, stream: true, stream_options: { include_usage: true } });
    expect(s.status).toBe(200);
    expect(s.contentType).toMatch(/^text\/event-stream/);
    expect(s.done).toBe(true);
    const chunks = s.events as { id: string; object: string; model: string; choices: ChunkChoice[]; usage: unknown }[];
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'qwen3-omni-demo' && c.id === chunks[0]!.id)).toBe(true);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    const usageChunk = chunks[chunks.length - 1]!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual(whole.body.usage);
    const final = chunks[chunks.length - 2]!;
    expect(final.choices[0]!.finish_reason).toBe((whole.body.choices as Choice[])[0]!.finish_reason);
    // every other chunk carries usage: null and no finish reason
    for (const c of chunks.slice(0, -2)) {
      expect(c.usage).toBeNull();
      expect(c.choices[0]!.finish_reason).toBeNull();
    }
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe((whole.body.choices as Choice[])[0]!.message.content);
  });

  it('streams without a usage chunk by default, and serves the DashScope alias', async () => {
    const s = await postStream({ ...base, stream: true, messages: [{ role: 'user', content: 'Hi' }] }, '/compatible-mode/v1/chat/completions');
    expect(s.status).toBe(200);
    expect(s.done).toBe(true);
    const last = s.events[s.events.length - 1] as { choices: ChunkChoice[]; usage?: unknown };
    expect(last.choices[0]!.finish_reason).not.toBeNull();
    expect('usage' in last).toBe(false);
    // DashScope compatible mode is stream-only
    const r = await post({ ...base, messages: [{ role: 'user', content: 'Hi' }] }, '/compatible-mode/v1/chat/completions');
    expectError(r, 'invalid_value', 'stream');
  });

  it('takes an image part (data URI) and counts its tokens in the prompt', async () => {
    const text = await post({ ...base, max_tokens: 2, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }] }] });
    const withImage = await post({
      ...base,
      max_tokens: 2,
      messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } }, { type: 'text', text: 'What is this?' }] }],
    });
    expect(withImage.status).toBe(200);
    const tokens = (r: typeof text) => (r.body.usage as { prompt_tokens: number }).prompt_tokens;
    // 64x48 resizes to 64x64: a 4x4 patch grid, 4 tokens after merging, plus the two markers
    expect(tokens(withImage) - tokens(text)).toBe(6);
  });

  it("hands each request's patches and features back to the pool once the engine holds the prompt", async () => {
    const runtime = gw.gateway.runtime as NativeRuntime;
    const open = runtime.open.bind(runtime);
    const fed: { array: Float32Array; length: number }[] = [];
    runtime.open = async (options) => {
      const session = await open(options);
      const append = session.append.bind(session);
      session.append = (chunk) => {
        for (const m of chunk.media ?? []) {
          const array = m.kind === 'audio' ? m.features : m.pixelValues;
          fed.push({ array, length: array.length });
        }
        return append(chunk);
      };
      return session;
    };
    try {
      const image = { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } };
      const audio = { type: 'input_audio', input_audio: { data: SPEECH_WAV.toString('base64'), format: 'wav' } };
      const res = await post({ ...base, max_tokens: 2, messages: [{ role: 'user', content: [image, audio, { type: 'text', text: 'What is this?' }] }] });
      expect(res.status).toBe(200);
    } finally {
      delete (runtime as Partial<NativeRuntime>).open; // the prototype's method again
    }
    // The engine got the whole of each item; afterwards their memory is back in the pool.
    expect(fed.map((f) => f.length > 0)).toEqual([true, true]);
    expect(fed.map((f) => f.array.length)).toEqual([0, 0]);
  });

  it('takes input_audio as bare base64 (OpenAI) and as a data: URI (DashScope), and a video frame list', async () => {
    const audio = SPEECH_WAV.toString('base64');
    const openai = await post({ ...base, max_tokens: 2, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: audio, format: 'wav' } }] }] });
    expect(openai.status).toBe(200);
    expect((openai.body.usage as { prompt_tokens: number }).prompt_tokens).toBeGreaterThan(20);
    const dash = await postStream(
      { ...base, max_tokens: 2, stream: true, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: `data:;base64,${audio}`, format: 'wav' } }] }] },
      '/compatible-mode/v1/chat/completions',
    );
    expect(dash.status).toBe(200);
    expect(dash.done).toBe(true);
    const frame = `data:image/png;base64,${png.toString('base64')}`;
    const frames = await post({ ...base, max_tokens: 2, messages: [{ role: 'user', content: [{ type: 'video', video: [frame, frame] }, { type: 'text', text: 'describe' }] }] });
    expect(frames.status).toBe(200);
  });

  it('refuses bad media with a 400 naming the field', async () => {
    const part = (p: unknown) => ({ ...base, messages: [{ role: 'user', content: [p] }] });
    const garbage = await post(part({ type: 'input_audio', input_audio: { data: 'not*base64!', format: 'wav' } }));
    expect(expectError(garbage, 'invalid_value', 'messages[0].content[0].input_audio.data').message).toMatch(/Invalid base64/);
    const notAudio = await post(part({ type: 'input_audio', input_audio: { data: png.toString('base64'), format: 'wav' } }));
    expectError(notAudio, 'audio_format_unsupported', 'messages[0].content[0].input_audio.data');
    const remote = await post(part({ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }));
    expect(expectError(remote, 'invalid_value', 'messages[0].content[0].image_url.url').message).toMatch(/does not fetch/);
    const remoteAudio = await post(part({ type: 'input_audio', input_audio: { data: 'http://example.com/a.wav', format: 'wav' } }));
    expectError(remoteAudio, 'invalid_value', 'messages[0].content[0].input_audio.data');
    const badImage = await post(part({ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }));
    expect(badImage.status).toBe(400);
    expect((badImage.body.error as { param: string }).param).toBe('messages[0].content[0].image_url.url');
    const video = await post(part({ type: 'video_url', video_url: { url: 'data:video/mp4;base64,AAAA' } }));
    expectError(video, 'video_unsupported', 'messages[0].content[0].video_url.url');
    const unknownPart = await post(part({ type: 'file', file: {} }));
    expectError(unknownPart, 'invalid_value', 'messages[0].content[0].type');
    expectError(await post(part({ type: 'image_url', image_url: {} })), 'missing_required_parameter', 'messages[0].content[0].image_url.url');
    await waitForNoSessions();
  });

  it('validates the request with OpenAI-style codes and params', async () => {
    expectError(await post({ model: 'm' }), 'missing_required_parameter', 'messages');
    expectError(await post({ model: 'm', messages: [{ role: 'wizard', content: 'x' }] }), 'invalid_value', 'messages[0].role');
    expectError(await post({ ...base, temperature: 'hot', messages: [{ role: 'user', content: 'x' }] }), 'invalid_type', 'temperature');
    expectError(await post({ ...base, n: 2, messages: [{ role: 'user', content: 'x' }] }), 'unsupported_value', 'n');
    expectError(await post({ ...base, tools: [{ type: 'function', function: { name: 'no spaces' } }], messages: [{ role: 'user', content: 'x' }] }), 'invalid_value', 'tools[0].function.name');
    expectError(await post({ ...base, messages: [{ role: 'user', content: null }] }), 'invalid_type', 'messages[0].content');
    expectError(await post({ ...base, tool_choice: 'required', messages: [{ role: 'user', content: 'x' }] }), 'unsupported_value', 'tool_choice');
    expectError(await post({ ...base, thinking: { type: 'enabled', budget_tokens: 10_000_000 }, messages: [{ role: 'user', content: 'x' }] }), 'thinking_budget_invalid', 'thinking.budget_tokens');
    expectError(await post([1, 2]), 'invalid_type', null);
    expectError(await post({ ...base, messages: [{ role: 'tool', content: 'x' }] }), 'missing_required_parameter', 'messages[0].tool_call_id');
    expectError(await post({ ...base, messages: [{ role: 'assistant', audio: { id: 'audio_nope' } }, { role: 'user', content: 'x' }] }), 'invalid_value', 'messages[0].audio.id');
    expectError(await post({ ...base, max_tokens: 1_000_000, messages: [{ role: 'user', content: 'x' }] }), 'context_length_exceeded', 'max_tokens');
    // the OpenAI rule: streamed audio is PCM16 only (checked before what the model can do)
    const wavStream = await post({ ...base, stream: true, modalities: ['text', 'audio'], audio: { voice: 'Cherry', format: 'wav' }, messages: [{ role: 'user', content: 'x' }] });
    expect(expectError(wavStream, 'unsupported_value', 'audio.format').message).toBe("'audio.format' does not support 'wav' when stream=true. Supported values are: 'pcm16'.");
    const noAudio = await post({ ...base, modalities: ['text', 'audio'], messages: [{ role: 'user', content: 'x' }] });
    expectError(noAudio, 'missing_required_parameter', 'audio');
  });

  it('refuses audio output while the model cannot speak, and streams it once it can', async () => {
    const caps = await gw.gateway.runtime.capabilities();
    const body = { ...base, stream: true, modalities: ['text', 'audio'], audio: { voice: caps.voices[0] ?? 'Cherry', format: 'pcm16' }, messages: [{ role: 'user', content: 'Say hi' }] };
    if (!caps.speechOut) {
      const r = await post(body);
      expect(expectError(r, 'modality_unsupported', 'modalities').message).toMatch(/cannot speak/);
      return;
    }
    const s = await postStream(body);
    expect(s.status).toBe(200);
    const audio = s.events.map((e) => (e as { choices: { delta: { audio?: { id?: string; data?: string } } }[] }).choices[0]?.delta.audio).filter((a) => a !== undefined);
    expect(audio[0]!.id).toMatch(/^audio_/);
    expect(audio.some((a) => a.data)).toBe(true);
  });

  it('answers a tools request with a well-formed message', async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }];
    const r = await post({ ...base, max_tokens: 16, tools, tool_choice: 'auto', messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    expect(r.status).toBe(200);
    const choice = (r.body.choices as Choice[])[0]!;
    expect(['stop', 'length', 'tool_calls']).toContain(choice.finish_reason);
    for (const call of choice.message.tool_calls ?? []) {
      expect(call.id).toMatch(/^call_/);
      expect(call.type).toBe('function');
      expect(typeof call.function.name).toBe('string');
      expect(typeof call.function.arguments).toBe('string');
    }
    if (choice.finish_reason === 'tool_calls') expect(choice.message.tool_calls?.length).toBeGreaterThan(0);
    // a conversation with an earlier call and its result renders and runs too
    const followUp = await post({
      ...base,
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'call_1', content: '{"temp_c": 21}' },
      ],
    });
    expect(followUp.status).toBe(200);
    // the tools block is in the prompt: it is longer than without tools
    const plain = await post({ ...base, messages: [{ role: 'user', content: 'Weather in Paris?' }] });
    expect((r.body.usage as { prompt_tokens: number }).prompt_tokens).toBeGreaterThan((plain.body.usage as { prompt_tokens: number }).prompt_tokens + 50);
  });

  it('cancels the generation and frees the session when the client goes away mid-stream', async () => {
    const aborter = new AbortController();
    const res = await fetch(url(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...base, max_tokens: 2000, stream: true, messages: [{ role: 'user', content: 'Tell a long story' }] }),
      signal: aborter.signal,
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let seen = '';
    const decoder = new TextDecoder();
    while (!seen.includes('"content"')) {
      const { value } = (await reader.read()) as { value?: Uint8Array };
      seen += decoder.decode(value);
    }
    expect(engineSessions()).toBe(1);
    aborter.abort();
    await waitForNoSessions();
    // and the gateway keeps serving
    expect((await post({ ...base, max_tokens: 2, messages: [{ role: 'user', content: 'still there?' }] })).status).toBe(200);
  });

  it('bounds the request body', async () => {
    const big = 'A'.repeat(22 * 1024 * 1024);
    const r = await post({ ...base, messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: big, format: 'wav' } }] }] });
    expect(r.status).toBe(413);
    expect(r.body.error).toMatchObject({ code: 'payload_too_large' });
  });
});
