// Chat completions against a scripted runtime whose sessions speak (audio events) and emit chosen
// tokens: speech in both dialects and both response modes, tool calls, stop sequences, the audio
// id round trip, and that a client going away cancels and closes the session. The demo runtime
// cannot speak yet and its tokens are noise, so these paths are pinned here.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QwenTokenizer } from '../src/codecs/text/tokenizer.js';
import { TOOL_IDS } from '../src/fusion/tool_format.js';
import type { GenerateRequest, ModelChunk, RuntimeBackend, RuntimeCapabilities, RuntimeEvent, RuntimeSession } from '../src/runtime/contract.js';
import { AUDIO_TTL_SECONDS, AudioTranscriptStore } from '../src/gateway/chat/audio_store.js';
import { StopMatcher } from '../src/gateway/chat/stop.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const tokenizer = QwenTokenizer.load();
const AUDIO_STEP = 2400; // 0.1 s at 24 kHz

/** What the next session generates: token ids, with audio after every `audioEvery` tokens (0 = none). */
interface Script {
  ids: number[];
  audioEvery: number;
  /** Delay per token (ms), for abort tests. */
  delayMs: number;
}

class ScriptedSession implements RuntimeSession {
  length = 0;
  cancelled = false;
  closed = false;
  request: GenerateRequest | undefined;
  constructor(private readonly script: Script) {}
  async append(chunk: ModelChunk): Promise<void> {
    this.length += chunk.ids.length;
    await Promise.resolve();
  }
  async *generate(request: GenerateRequest): AsyncGenerator<RuntimeEvent> {
    this.request = request;
    const { ids, audioEvery, delayMs } = this.script;
    let out = 0;
    let samples = 0;
    for (let i = 0; i < ids.length && out < request.maxTokens; i++) {
      await new Promise((r) => setTimeout(r, delayMs));
      if (this.cancelled) break;
      yield { type: 'token', id: ids[i]!, thinking: false, forced: false };
      out++;
      if (request.speech && audioEvery > 0 && out % audioEvery === 0) {
        const chunk = new Float32Array(AUDIO_STEP).map((_, k) => 0.5 * Math.sin((2 * Math.PI * 440 * (samples + k)) / 24000));
        yield { type: 'audio', samples: chunk, sampleOffset: samples, tokenStart: out - audioEvery, tokenEnd: out };
        samples += AUDIO_STEP;
      }
    }
    const reason = this.cancelled ? 'cancelled' : out >= request.maxTokens && out < ids.length ? 'length' : 'stop';
    yield { type: 'done', reason, usage: { promptTokens: this.length, outputTokens: out, thinkingTokens: 0 } };
  }
  cancel(): void {
    this.cancelled = true;
  }
  async truncate(length: number): Promise<void> {
    this.length = length;
    await Promise.resolve();
  }
  close(): void {
    this.closed = true;
  }
}

class ScriptedRuntime implements RuntimeBackend {
  readonly kind = 'native' as const;
  script: Script = { ids: [], audioEvery: 0, delayMs: 0 };
  sessions: ScriptedSession[] = [];
  health() {
    return Promise.resolve({ reachable: true, modelLoaded: true, detail: 'scripted' });
  }
  open(): Promise<RuntimeSession> {
    const s = new ScriptedSession(this.script);
    this.sessions.push(s);
    return Promise.resolve(s);
  }
  capabilities(): Promise<RuntimeCapabilities> {
    return Promise.resolve({ audioIn: true, imageIn: true, videoIn: true, speechOut: true, voices: ['Cherry', 'Ethan'], maxContext: 4096 });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const runtime = new ScriptedRuntime();
let gw: TestGateway;

beforeAll(async () => {
  gw = await startTestGateway({}, { runtime });
});
afterAll(async () => {
  await gw?.gateway.close();
});

async function say(text: string, audioEvery = 0, delayMs = 0): Promise<void> {
  runtime.script = { ids: await tokenizer.encode(text), audioEvery, delayMs };
}

async function post(body: unknown, path = '/v1/chat/completions'): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

interface Delta {
  role?: string;
  content?: string;
  audio?: { id?: string; expires_at?: number; data?: string; transcript?: string };
  tool_calls?: { index: number; id: string; type: string; function: { name: string; arguments: string } }[];
}
type Chunk = { choices: { delta: Delta; finish_reason: string | null }[]; usage?: unknown };

async function stream(body: unknown, path = '/v1/chat/completions'): Promise<{ status: number; chunks: Chunk[]; done: boolean }> {
  const res = await fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...(body as object), stream: true }) });
  const text = await res.text();
  const blocks = text.split('\n\n').filter((b) => b.startsWith('data: ')).map((b) => b.slice(6));
  return { status: res.status, chunks: blocks.filter((b) => b !== '[DONE]').map((b) => JSON.parse(b) as Chunk), done: blocks.includes('[DONE]') };
}

const user = [{ role: 'user', content: 'Speak to me' }];
const audioBody = { model: 'qwen3-omni-flash', modalities: ['text', 'audio'], messages: user };

describe('chat completions with a speaking runtime', () => {
  it('streams OpenAI audio deltas: id first, base64 PCM16 24 kHz data, text as transcript', async () => {
    const text = 'Hello there, this is a spoken reply.';
    await say(text, 2);
    const s = await stream({ ...audioBody, audio: { voice: 'Ethan', format: 'pcm16' }, stream_options: { include_usage: true } });
    expect(s.status).toBe(200);
    expect(s.done).toBe(true);
    expect(runtime.sessions.at(-1)!.request!.speech).toEqual({ voice: 'Ethan' });
    const audio = s.chunks.map((c) => c.choices[0]?.delta.audio).filter((a): a is NonNullable<Delta['audio']> => a !== undefined);
    expect(audio[0]!.id).toMatch(/^audio_/);
    expect(audio[0]!.expires_at).toBeGreaterThan(Date.now() / 1000);
    expect(audio.slice(1).every((a) => a.id === undefined)).toBe(true);
    expect(audio.map((a) => a.transcript ?? '').join('')).toBe(text);
    expect(s.chunks.every((c) => c.choices[0]?.delta.content === undefined || c.choices[0]?.delta.content === '')).toBe(true);
    const pcm = Buffer.from(audio.map((a) => a.data ?? '').join(''), 'base64');
    const tokens = (await tokenizer.encode(text)).length;
    expect(pcm.length).toBe(Math.floor(tokens / 2) * AUDIO_STEP * 2);
    expect(pcm.subarray(0, 4).toString('latin1')).not.toBe('RIFF');
    // every data chunk is whole base64 (6-byte aligned PCM), so the concatenation decodes
    for (const a of audio) if (a.data) expect(a.data.endsWith('=')).toBe(false);
    expect(s.chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
    expect(s.chunks.at(-1)!.choices).toEqual([]);
  });

  it('non-stream: content null, audio as a 24 kHz WAV with the transcript, and the id works in the next turn', async () => {
    await say('A short answer.', 1);
    const r = await post({ ...audioBody, audio: { voice: 'Cherry', format: 'wav' } });
    expect(r.status).toBe(200);
    const message = (r.body.choices as { message: { content: string | null; audio: { id: string; data: string; expires_at: number; transcript: string } } }[])[0]!.message;
    expect(message.content).toBeNull();
    expect(message.audio.transcript).toBe('A short answer.');
    const wav = Buffer.from(message.audio.data, 'base64');
    expect(wav.subarray(0, 4).toString('latin1')).toBe('RIFF');
    expect(wav.readUInt32LE(24)).toBe(24000);
    expect(wav.readUInt16LE(34)).toBe(16);
    // the reply referenced by id is replaced by its transcript
    await say('ok');
    const next = await post({ model: 'm', messages: [...user, { role: 'assistant', audio: { id: message.audio.id } }, { role: 'user', content: 'And?' }] });
    expect(next.status).toBe(200);
    const pcm = await post({ ...audioBody, audio: { voice: 'Cherry', format: 'pcm16' } });
    const raw = Buffer.from((pcm.body.choices as { message: { audio: { data: string } } }[])[0]!.message.audio.data, 'base64');
    expect(raw.subarray(0, 4).toString('latin1')).not.toBe('RIFF');
    expect(raw.length % 2).toBe(0);
  });

  it('DashScope alias: wav accepted with stream, sent as headerless PCM16, text in delta.content', async () => {
    await say('Qwen speaks.', 1);
    const s = await stream({ ...audioBody, audio: { voice: 'Cherry', format: 'wav' } }, '/compatible-mode/v1/chat/completions');
    expect(s.status).toBe(200);
    const deltas = s.chunks.map((c) => c.choices[0]?.delta).filter((d): d is Delta => d !== undefined);
    expect(deltas.map((d) => d.content ?? '').join('')).toBe('Qwen speaks.');
    const data = Buffer.from(deltas.map((d) => d.audio?.data ?? '').join(''), 'base64');
    expect(data.length).toBeGreaterThan(0);
    expect(data.subarray(0, 4).toString('latin1')).not.toBe('RIFF');
    // DashScope defaults the audio settings
    const defaults = await stream({ ...audioBody }, '/compatible-mode/v1/chat/completions');
    expect(defaults.status).toBe(200);
    expect(runtime.sessions.at(-1)!.request!.speech).toEqual({ voice: 'Cherry' });
  });

  it('refuses unknown voices and formats', async () => {
    const voice = await post({ ...audioBody, audio: { voice: 'alloy', format: 'wav' } });
    expect(voice.status).toBe(400);
    expect(voice.body.error).toMatchObject({ code: 'invalid_value', param: 'audio.voice' });
    expect((voice.body.error as { message: string }).message).toMatch(/'Cherry', 'Ethan'/);
    const mp3 = await post({ ...audioBody, audio: { voice: 'Cherry', format: 'mp3' } });
    expect(mp3.body.error).toMatchObject({ code: 'unsupported_value', param: 'audio.format' });
  });

  it('turns <tool_call> blocks into tool_calls, streamed and not', async () => {
    const body = await tokenizer.encode('\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n');
    runtime.script = { ids: [TOOL_IDS.toolCall, ...body, TOOL_IDS.toolCallEnd], audioEvery: 0, delayMs: 0 };
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const r = await post({ model: 'm', tools, messages: user });
    const choice = (r.body.choices as { message: { content: string; tool_calls: { id: string; type: string; function: { name: string; arguments: string } }[] }; finish_reason: string }[])[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.tool_calls).toHaveLength(1);
    expect(choice.message.tool_calls[0]).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(choice.message.tool_calls[0]!.id).toMatch(/^call_/);
    expect(JSON.parse(choice.message.tool_calls[0]!.function.arguments)).toEqual({ city: 'Paris' });
    const s = await stream({ model: 'm', tools, messages: user });
    const calls = s.chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather' } });
    expect(s.chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
  });

  it('stops at a stop sequence, without showing it, and cancels the generation', async () => {
    await say('one two STOP three four five');
    const r = await post({ model: 'm', stop: ['STOP'], messages: user });
    const choice = (r.body.choices as { message: { content: string }; finish_reason: string }[])[0]!;
    expect(choice.message.content).toBe('one two ');
    expect(choice.finish_reason).toBe('stop');
    expect(runtime.sessions.at(-1)!.cancelled).toBe(true);
    const s = await stream({ model: 'm', stop: 'STOP', messages: user });
    expect(s.chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('one two ');
  });

  it('reports length when max_tokens runs out', async () => {
    await say('one two three four five six seven');
    const r = await post({ model: 'm', max_completion_tokens: 2, messages: user });
    expect((r.body.choices as { finish_reason: string }[])[0]!.finish_reason).toBe('length');
    expect(runtime.sessions.at(-1)!.request!.maxTokens).toBe(2);
  });

  it('cancels and closes the session when the client goes away, streamed or not', async () => {
    await say('word '.repeat(500), 0, 5);
    for (const streamed of [true, false]) {
      const aborter = new AbortController();
      const pending = fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'm', stream: streamed, messages: user }),
        signal: aborter.signal,
      });
      while (runtime.sessions.at(-1)?.request === undefined || runtime.sessions.at(-1)!.closed) await new Promise((r) => setTimeout(r, 5));
      const session = runtime.sessions.at(-1)!;
      await new Promise((r) => setTimeout(r, 30));
      aborter.abort();
      await pending.then((res) => res.text()).catch(() => undefined);
      for (let i = 0; i < 100 && !session.closed; i++) await new Promise((r) => setTimeout(r, 10));
      expect(session.cancelled).toBe(true);
      expect(session.closed).toBe(true);
    }
  });
});

describe('StopMatcher', () => {
  it('holds back a possible start of a stop sequence across deltas', () => {
    const m = new StopMatcher(['</end>', 'xyz']);
    expect(m.push('abc</')).toEqual({ text: 'abc', stopped: false });
    expect(m.push('en')).toEqual({ text: '', stopped: false });
    // 'x' could start 'xyz': held too
    expect(m.push('x')).toEqual({ text: '</en', stopped: false });
    expect(m.push('x</end> more')).toEqual({ text: 'xx', stopped: true });
    const n = new StopMatcher(['ab']);
    expect(n.push('za')).toEqual({ text: 'z', stopped: false });
    expect(n.flush()).toBe('a');
  });
});

describe('AudioTranscriptStore', () => {
  it('forgets a transcript at its expiry', () => {
    let now = 1000;
    const store = new AudioTranscriptStore(() => now);
    const expiresAt = store.expiryFromNow();
    expect(expiresAt).toBe(1000 + AUDIO_TTL_SECONDS);
    store.put('audio_a', 'hello', expiresAt);
    now = expiresAt - 1;
    expect(store.get('audio_a')).toBe('hello');
    now = expiresAt;
    expect(store.get('audio_a')).toBeUndefined();
  });
});
