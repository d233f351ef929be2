// The vLLM-Omni backend's turns against a recorded-shape server (test/helpers/vllm_omni_server.ts):
// the request it sends, how it folds vLLM-Omni's text/audio/tool-call chunks into TurnEvents,
// cancellation, and its coded failures.
import { createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { TurnEvent, TurnRequest } from '../src/runtime/contract.js';
import { RuntimeError } from '../src/runtime/errors.js';
import { VllmOmniRuntime, decodeWav } from '../src/runtime/vllm-omni.js';
import { startFakeVllmOmni, tone, toPcm16, wavPcm16, wavPieces, type FakeVllmOmni, type Step } from './helpers/vllm_omni_server.js';

const MODEL = 'Qwen/Qwen3-Omni-30B-A3B-Instruct';
let srv: FakeVllmOmni;

beforeEach(async () => {
  srv = await startFakeVllmOmni(MODEL);
});
afterEach(async () => {
  await srv.close();
});

function runtime(options: ConstructorParameters<typeof VllmOmniRuntime>[2] = {}): VllmOmniRuntime {
  return new VllmOmniRuntime(`${srv.url}/`, MODEL, options);
}

function textTurn(extra: Partial<TurnRequest> = {}): TurnRequest {
  return { messages: [{ role: 'user', content: 'Hello?' }], maxTokens: 64, ...extra };
}

async function collect(gen: AsyncGenerator<TurnEvent>): Promise<TurnEvent[]> {
  const out: TurnEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

async function failure(gen: AsyncGenerator<TurnEvent>): Promise<RuntimeError> {
  try {
    await collect(gen);
  } catch (err) {
    expect(err).toBeInstanceOf(RuntimeError);
    return err as RuntimeError;
  }
  throw new Error('the turn did not fail');
}

function joined(events: TurnEvent[]): Float32Array {
  const parts = events.filter((e): e is Extract<TurnEvent, { type: 'audio' }> => e.type === 'audio');
  const out = new Float32Array(parts.reduce((n, p) => n + p.samples.length, 0));
  for (const p of parts) out.set(p.samples, p.sampleOffset);
  return out;
}

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);

describe('vllm-omni request shape', () => {
  it('sends messages with WAV and JPEG data URIs, modalities, the voice, tools and sampling', async () => {
    const wav = wavPcm16(tone(0.1, 300, 0.3, 16_000), 16_000);
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather now', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    srv.enqueue({ kind: 'stream', steps: [{ text: 'ok' }, { audio: wavPcm16(tone(0.05)) }] });
    await collect(
      runtime().turn({
        messages: [
          { role: 'system', content: 'You are Qwen.' },
          { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'audio', wav }, { type: 'image', bytes: JPEG, mime: 'image/jpeg' }] },
          { role: 'assistant', content: '', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: '{"city":"Paris"}' }] },
          { role: 'tool', content: '{"temp":21}', toolCallId: 'call_1' },
        ],
        tools,
        maxTokens: 256,
        sampling: { temperature: 0.4, topP: 0.9, topK: 20, seed: 42, repetitionPenalty: 1.05 },
        speech: { voice: 'Chelsie' },
      }),
    );
    expect(srv.requests).toHaveLength(1);
    const req = srv.requests[0]!;
    expect(req.path).toBe('/v1/chat/completions');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.accept).toBe('text/event-stream');
    expect(req.body).toEqual({
      model: MODEL,
      messages: [
        { role: 'system', content: 'You are Qwen.' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'audio_url', audio_url: { url: `data:audio/wav;base64,${wav.toString('base64')}` } },
            { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${JPEG.toString('base64')}` } },
          ],
        },
        { role: 'assistant', content: '', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', content: '{"temp":21}', tool_call_id: 'call_1' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      modalities: ['text', 'audio'],
      max_tokens: 256,
      audio: { voice: 'Chelsie', format: 'wav' },
      speaker: 'Chelsie',
      temperature: 0.4,
      top_p: 0.9,
      top_k: 20,
      seed: 42,
      repetition_penalty: 1.05,
      tools,
      tool_choice: 'auto',
    });
  });

  it('asks for text only without speech, and sends only the sampling fields that were set', async () => {
    await collect(runtime().turn(textTurn({ sampling: { temperature: 0 } })));
    const body = srv.requests[0]!.body!;
    expect(body.modalities).toEqual(['text']);
    expect(body).not.toHaveProperty('audio');
    expect(body).not.toHaveProperty('speaker');
    expect(body).not.toHaveProperty('tools');
    expect(body).not.toHaveProperty('top_p');
    expect(body.temperature).toBe(0);
  });

  it('rejects bad input before sending anything', async () => {
    expect((await failure(runtime().turn(textTurn({ maxTokens: 0 })))).code).toBe('generation_invalid');
    expect((await failure(runtime().turn(textTurn({ sampling: { topP: 2 } })))).code).toBe('sampling_invalid');
    const notWav = { role: 'user' as const, content: [{ type: 'audio' as const, wav: Buffer.from('not a wav file') }] };
    expect((await failure(runtime().turn({ messages: [notWav], maxTokens: 8 }))).code).toBe('generation_invalid');
    expect(srv.requests).toHaveLength(0);
  });
});

describe('vllm-omni stream shape (the recorded server)', () => {
  it('writes chunks in vLLM-Omni field order with data: framing and [DONE]', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'Hi' }, { audio: wavPcm16(tone(0.01)) }], promptTokens: 5, completionTokens: 2 });
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, messages: [], stream: true, modalities: ['text', 'audio'] }),
    });
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const text = await res.text();
    const events = text.split('\n\n');
    expect(events.pop()).toBe('');
    const head = String.raw`"id":"chatcmpl-[0-9a-f]{32}","object":"chat.completion.chunk","created":\d+,"model":"Qwen/Qwen3-Omni-30B-A3B-Instruct"`;
    expect(events[0]).toMatch(new RegExp(String.raw`^data: \{${head},"choices":\[\{"index":0,"delta":\{"role":"assistant","content":""\},"logprobs":null,"finish_reason":null\}\],"prompt_token_ids":null,"prompt_text":null,"modality":"text"\}$`));
    expect(events[1]).toMatch(new RegExp(String.raw`^data: \{${head},"choices":\[\{"index":0,"delta":\{"content":"Hi"\},"logprobs":null,"finish_reason":null,"token_ids":null\}\],"metrics":null,"modality":"text"\}$`));
    // Text ends first: its finish_reason is held back until the audio stage ends.
    expect(events[2]).toMatch(new RegExp(String.raw`^data: \{${head},"choices":\[\{"index":0,"delta":\{"content":""\},"logprobs":null,"finish_reason":null,"stop_reason":null,"token_ids":null\}\],"metrics":null,"modality":"text"\}$`));
    expect(events[3]).toMatch(
      new RegExp(String.raw`^data: \{${head},"choices":\[\{"index":0,"delta":\{"role":"assistant","content":"UklGR[A-Za-z0-9+/=]+"\},"logprobs":null,"finish_reason":"stop","stop_reason":null,"token_ids":null\}\],"usage":\{"prompt_tokens":5,"total_tokens":5,"completion_tokens":0\},"metrics":null,"modality":"audio"\}$`),
    );
    expect(events[4]).toMatch(new RegExp(String.raw`^data: \{${head},"choices":\[\],"usage":\{"prompt_tokens":5,"total_tokens":7,"completion_tokens":2\}\}$`));
    expect(events[5]).toBe('data: [DONE]');
    expect(events).toHaveLength(6);
  });
});

describe('vllm-omni turns', () => {
  it('streams text and 24 kHz speech with running sample offsets; the joined audio is the tone', async () => {
    const samples = tone(1.05, 440, 0.5);
    const pieces = wavPieces(samples, 4800);
    const steps: Step[] = [{ text: 'Hi' }, { audio: pieces[0]! }, { text: ' there' }, { text: '.' }, ...pieces.slice(1).map((audio) => ({ audio }))];
    srv.enqueue({ kind: 'stream', steps, promptTokens: 17, completionTokens: 9, writeBytes: 16_381 });
    const events = await collect(runtime().turn(textTurn({ speech: {} })));
    expect(srv.requests[0]!.body!.audio).toEqual({ format: 'wav' });
    expect(events.filter((e) => e.type === 'text').map((e) => e.delta)).toEqual(['Hi', ' there', '.']);
    const audio = events.filter((e) => e.type === 'audio');
    expect(audio.map((e) => e.sampleOffset)).toEqual([0, 4800, 9600, 14400, 19200, 24000]);
    expect(audio.at(-1)!.samples.length).toBe(1200);
    const expected = Float32Array.from(toPcm16(samples), (v) => v / 32768);
    expect(joined(events)).toEqual(expected);
    expect(Math.max(...joined(events).map((v, i) => Math.abs(v - samples[i]!)))).toBeLessThan(1e-4);
    expect(events.at(-1)).toEqual({ type: 'done', reason: 'stop', usage: { promptTokens: 17, outputTokens: 9 } });
    expect(events.filter((e) => e.type === 'done')).toHaveLength(1);
  });

  it('streams a text-only reply and reports length when the token budget ran out', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'One' }, { text: ' twö 你好 🙂' }], finishReason: 'length', promptTokens: 3, completionTokens: 2, writeBytes: 7 });
    const events = await collect(runtime().turn(textTurn()));
    expect(events).toEqual([
      { type: 'text', delta: 'One' },
      { type: 'text', delta: ' twö 你好 🙂' },
      { type: 'done', reason: 'length', usage: { promptTokens: 3, outputTokens: 2 } },
    ]);
  });

  it('ends with stop when speech was asked for but the engine produced none (the fallback stop chunk)', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'Quiet.' }] });
    const events = await collect(runtime().turn(textTurn({ speech: { voice: 'Ethan' } })));
    expect(events.map((e) => e.type)).toEqual(['text', 'done']);
    expect(events.at(-1)).toMatchObject({ reason: 'stop' });
  });

  it('joins streamed tool-call deltas into tool_call events and ends with tool_calls', async () => {
    srv.enqueue({
      kind: 'stream',
      steps: [{ toolCall: { name: 'get_weather', arguments: ['{"city": ', '"Paris"}'] } }, { toolCall: { name: 'get_time', arguments: ['{"tz": "CET"}'] } }],
      promptTokens: 30,
      completionTokens: 12,
    });
    const events = await collect(runtime().turn(textTurn({ tools: [{ type: 'function', function: { name: 'get_weather' } }] })));
    expect(events).toEqual([
      { type: 'tool_call', name: 'get_weather', arguments: '{"city": "Paris"}' },
      { type: 'tool_call', name: 'get_time', arguments: '{"tz": "CET"}' },
      { type: 'done', reason: 'tool_calls', usage: { promptTokens: 30, outputTokens: 12 } },
    ]);
  });

  it('keeps tool_calls as the reason when speech was asked for (the audio stage sends "stop")', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ toolCall: { name: 'lookup', arguments: ['{}'] } }, { audio: wavPcm16(tone(0.02)) }] });
    const events = await collect(runtime().turn(textTurn({ speech: {}, tools: [{ type: 'function', function: { name: 'lookup' } }] })));
    expect(events.map((e) => e.type)).toEqual(['audio', 'tool_call', 'done']);
    expect(events.at(-1)).toMatchObject({ reason: 'tool_calls' });
  });
});

describe('vllm-omni cancel', () => {
  const slow = (n: number, ms: number): Step[] => Array.from({ length: n }, (_, i): Step[] => [{ text: `w${i} ` }, { delayMs: ms }]).flat();

  it('aborting mid-stream ends the turn with cancelled and closes the HTTP stream within 100 ms', async () => {
    srv.enqueue({ kind: 'stream', steps: slow(200, 20) });
    const ctl = new AbortController();
    const events: TurnEvent[] = [];
    let abortedAt = 0;
    for await (const e of runtime().turn(textTurn({ signal: ctl.signal }))) {
      events.push(e);
      if (e.type === 'text' && events.length === 3) {
        abortedAt = performance.now();
        ctl.abort();
      }
    }
    expect(events.at(-1)).toMatchObject({ type: 'done', reason: 'cancelled' });
    expect(events).toHaveLength(4);
    const rec = await srv.closed(0);
    expect(rec.finished).toBe(false);
    expect(rec.closedEarlyAt! - abortedAt).toBeLessThan(100);
  });

  it('aborting while waiting for the server ends the turn promptly', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'a' }, { delayMs: 5_000 }, { text: 'b' }] });
    const ctl = new AbortController();
    const gen = runtime().turn(textTurn({ signal: ctl.signal }));
    expect((await gen.next()).value).toEqual({ type: 'text', delta: 'a' });
    const pending = gen.next();
    await new Promise((r) => setTimeout(r, 50));
    const abortedAt = performance.now();
    ctl.abort();
    const next = await pending;
    expect(performance.now() - abortedAt).toBeLessThan(100);
    expect(next.value).toMatchObject({ type: 'done', reason: 'cancelled' });
    expect((await gen.next()).done).toBe(true);
    const rec = await srv.closed(0);
    expect(rec.closedEarlyAt! - abortedAt).toBeLessThan(100);
  });

  it('a consumer that stops iterating closes the stream; an already aborted signal sends nothing', async () => {
    srv.enqueue({ kind: 'stream', steps: slow(100, 20) });
    for await (const e of runtime().turn(textTurn())) {
      if (e.type === 'text') break;
    }
    const rec = await srv.closed(0);
    expect(rec.finished).toBe(false);

    const ctl = new AbortController();
    ctl.abort();
    expect(await collect(runtime().turn(textTurn({ signal: ctl.signal })))).toEqual([{ type: 'done', reason: 'cancelled', usage: { promptTokens: 0, outputTokens: 0 } }]);
    expect(srv.requests).toHaveLength(1);
  });
});

describe('vllm-omni failures are coded RuntimeErrors', () => {
  it('HTTP errors name the status and the server message', async () => {
    srv.enqueue({ kind: 'error', status: 500, message: 'CUDA out of memory' });
    let err = await failure(runtime().turn(textTurn()));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toBe('vLLM-Omni answered HTTP 500: CUDA out of memory');

    srv.enqueue({ kind: 'error', status: 400, message: "Invalid audio format 'ogg'." });
    err = await failure(runtime().turn(textTurn()));
    expect(err.code).toBe('generation_invalid');
    expect(err.message).toContain('HTTP 400');

    srv.enqueue({ kind: 'error', status: 400, message: "Invalid speaker 'Nobody'. Supported: aiden, chelsie, ethan" });
    err = await failure(runtime().turn(textTurn({ speech: { voice: 'Nobody' } })));
    expect(err.code).toBe('voice_unknown');

    srv.enqueue({ kind: 'error', status: 503, message: 'busy' });
    expect((await failure(runtime().turn(textTurn()))).code).toBe('server_busy');

    err = await failure(new VllmOmniRuntime(srv.url, 'other/model').turn(textTurn()));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toContain('HTTP 404: The model `other/model` does not exist.');
  });

  it('malformed events, in-stream errors, cut-off streams and non-SSE answers', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'a' }, { raw: 'data: {"id": broken\n\n' }] });
    let err = await failure(runtime().turn(textTurn()));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toContain('not JSON');

    srv.enqueue({ kind: 'stream', steps: [{ text: 'a' }, { streamError: { message: 'EngineCore encountered an issue.', type: 'InternalServerError', code: 500 } }] });
    err = await failure(runtime().turn(textTurn()));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toBe('vLLM-Omni failed mid-reply (500): EngineCore encountered an issue.');

    srv.enqueue({ kind: 'stream', steps: [{ text: 'a' }, { delayMs: 20 }, { hangUp: true }] });
    err = await failure(runtime().turn(textTurn()));
    expect(err.code).toBe('backend_failed');

    srv.enqueue({ kind: 'raw', status: 200, contentType: 'application/json', body: '{"choices":[]}' });
    err = await failure(runtime().turn(textTurn()));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toContain('not an event stream');

    srv.enqueue({ kind: 'stream', steps: [{ raw: 'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n' }, { raw: 'data: [DONE]\n\n' }, { stall: true }] });
    const events = await collect(runtime().turn(textTurn()));
    expect(events).toEqual([{ type: 'text', delta: 'x' }, { type: 'done', reason: 'stop', usage: { promptTokens: 0, outputTokens: 0 } }]); // a chunk without modality is text; [DONE] ends the turn
  });

  it('a stream that stalls fails after the idle timeout and is closed', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'a' }, { stall: true }] });
    const t0 = performance.now();
    const err = await failure(runtime({ idleTimeoutMs: 300 }).turn(textTurn()));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toContain('sent nothing for 300 ms');
    expect(performance.now() - t0).toBeLessThan(2_000);
    expect((await srv.closed(0)).finished).toBe(false);

    srv.enqueue({ kind: 'silent' });
    const err2 = await failure(runtime({ idleTimeoutMs: 200 }).turn(textTurn()));
    expect(err2.code).toBe('backend_failed');
    expect(err2.message).toContain('sent nothing for 200 ms before answering');
  });

  it('an unreachable server', async () => {
    const port = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const p = (s.address() as { port: number }).port;
        s.close(() => resolve(p));
      });
    });
    const err = await failure(new VllmOmniRuntime(`http://127.0.0.1:${port}`, MODEL).turn(textTurn()));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('bounds: line length, speech per turn, and the 24 kHz rate', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ audio: wavPcm16(tone(0.5)) }] });
    let err = await failure(runtime({ maxEventChars: 10_000 }).turn(textTurn({ speech: {} })));
    expect(err.code).toBe('backend_failed');
    expect(err.message).toContain('longer than 10000 characters');

    srv.enqueue({ kind: 'stream', steps: wavPieces(tone(1), 4800).map((audio) => ({ audio })) });
    err = await failure(runtime({ maxAudioSeconds: 0.5 }).turn(textTurn({ speech: {} })));
    expect(err.message).toContain('more than 0.5 s of speech');

    srv.enqueue({ kind: 'stream', steps: [{ audio: wavPcm16(tone(0.1, 440, 0.5, 16_000), 16_000) }] });
    err = await failure(runtime().turn(textTurn({ speech: {} })));
    expect(err.message).toContain('16000 Hz');

    srv.enqueue({ kind: 'stream', steps: [{ raw: 'data: {"choices":[{"index":0,"delta":{"content":"!!notbase64!!"}}],"modality":"audio"}\n\n' }] });
    err = await failure(runtime().turn(textTurn({ speech: {} })));
    expect(err.message).toContain('not base64');
  });
});

describe('vllm-omni WAV decoding and health', () => {
  it('decodes float32, extensible and stereo WAVs with extra chunks', () => {
    const frames = 3;
    const list = Buffer.concat([Buffer.from('LIST', 'latin1'), Buffer.from([5, 0, 0, 0]), Buffer.from('INFOx', 'latin1'), Buffer.from([0])]);
    const fmt = Buffer.alloc(8 + 40);
    fmt.write('fmt ', 0, 'latin1');
    fmt.writeUInt32LE(40, 4);
    fmt.writeUInt16LE(0xfffe, 8);
    fmt.writeUInt16LE(2, 10); // stereo
    fmt.writeUInt32LE(24_000, 12);
    fmt.writeUInt32LE(24_000 * 8, 16);
    fmt.writeUInt16LE(8, 20);
    fmt.writeUInt16LE(32, 22);
    fmt.writeUInt16LE(22, 24);
    fmt.writeUInt16LE(32, 26);
    fmt.writeUInt32LE(3, 28);
    fmt.writeUInt16LE(3, 32); // sub-format: IEEE float
    const data = Buffer.alloc(8 + frames * 8);
    data.write('data', 0, 'latin1');
    data.writeUInt32LE(frames * 8, 4);
    [0.5, 0.25, -1, 1, 0.1, 0.3].forEach((v, i) => data.writeFloatLE(v, 8 + i * 4));
    const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), list, fmt, data]);
    const head = Buffer.alloc(8);
    head.write('RIFF', 0, 'latin1');
    head.writeUInt32LE(body.length, 4);
    const out = decodeWav(Buffer.concat([head, body]));
    expect(out.sampleRate).toBe(24_000);
    expect(out.samples).toHaveLength(3);
    expect(out.samples[0]).toBe(0.375);
    expect(out.samples[1]).toBe(0);
    expect(out.samples[2]).toBeCloseTo(0.2, 6);
    expect(() => decodeWav(Buffer.from('RIFF0000WAVEjunk', 'latin1'))).toThrow(RuntimeError);
  });

  it('health still answers from /health and /v1/models; sessions stay unsupported', async () => {
    const rt = runtime();
    expect(await rt.health(1_000)).toEqual({ reachable: true, modelLoaded: true, model: MODEL, detail: `vLLM-Omni serves ${MODEL}` });
    expect(await new VllmOmniRuntime(srv.url, 'other/model').health(1_000)).toMatchObject({ reachable: true, modelLoaded: false });
    await expect(rt.open()).rejects.toMatchObject({ code: 'backend_unsupported' });
  });
});
