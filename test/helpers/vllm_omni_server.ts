// A recorded-shape stand-in for a vLLM-Omni server serving Qwen3-Omni, for tests: the GPU engine
// cannot run here. It answers `GET /health`, `GET /v1/models` and `POST /v1/chat/completions`
// (stream: true) byte for byte the way vLLM-Omni's serving code writes them, records every request,
// and plays scripted replies (text, speech as base64 WAV, tool calls, errors, stalls, hang-ups).
//
// Where each shape comes from (vllm-project/vllm-omni unless noted):
// - `vllm_omni/entrypoints/openai/serving_chat.py`, `chat_completion_stream_generator`: the SSE
//   framing (`yield f"data: {data}\n\n"`, a final `yield "data: [DONE]\n\n"`), the first text chunk
//   (`DeltaMessage(role=role, content="")`, with `prompt_token_ids`, `prompt_text`, `modality`),
//   text deltas (`ChatCompletionResponseStreamChoice(index, delta, logprobs, finish_reason=None,
//   token_ids)` + `modality`, `metrics`), the finishing text chunk (adds `stop_reason`), the rule
//   that only the chunk ending the last produced modality carries `finish_reason`, the fallback
//   `{delta: {}, finish_reason: "stop"}` chunk, the usage chunk (`choices: []`, dumped with
//   `exclude_unset=True, exclude_none=True`), and in-stream errors (`create_streaming_error_response`).
//   Every chunk is `chunk.model_dump_json(exclude_unset=True)`: compact JSON, fields in model order,
//   only the fields the code passed (None included when passed).
// - same file, `_create_audio_choice(stream=True)`: audio chunks put the base64 WAV of the newest
//   audio piece in `delta.content` with `role`, plus `stop_reason`, `token_ids`; the chunk gets a
//   running `usage` (`completion_tokens=0`) and `modality: "audio"`.
// - `vllm_omni/entrypoints/openai/audio_utils_mixin.py`, `create_audio`: WAV via
//   `soundfile.write(..., format="WAV")` (PCM_16, a 44-byte header), 24 kHz for Qwen3-Omni.
// - `vllm_omni/entrypoints/openai/protocol/chat_completion.py`: `OmniChatCompletionStreamResponse`
//   adds `modality` (last) to vLLM's `ChatCompletionStreamResponse`; its `metrics` override keeps
//   the parent's position.
// - vllm-project/vllm `vllm/entrypoints/openai/chat_completion/protocol.py` (field order of
//   `ChatCompletionStreamResponse`: id, object, created, model, choices, usage, system_fingerprint,
//   prompt_token_ids, prompt_text, metrics; `ChatCompletionResponseStreamChoice`: index, delta,
//   logprobs, finish_reason, stop_reason, token_ids) and `vllm/entrypoints/openai/engine/protocol.py`
//   (`UsageInfo`: prompt_tokens, total_tokens, completion_tokens; `ErrorInfo`: message, type, param,
//   code; `DeltaToolCall`: id, type, index, function). Pre-stream errors are FastAPI JSONResponses
//   of `ErrorResponse` (compact JSON); in-stream ones go through Python's `json.dumps` (", " and ": ").
// - Tool-call deltas as vLLM's streaming tool parsers (hermes) emit them: first
//   `{id: "chatcmpl-tool-...", type: "function", index, function: {name}}`, then
//   `{index, function: {arguments}}` pieces; finish_reason "tool_calls".
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export type Step =
  | { text: string }
  | { toolCall: { name: string; arguments: string[] } }
  /** One code2wav piece: a whole WAV file, sent base64 in an audio chunk. */
  | { audio: Buffer }
  | { delayMs: number }
  /** Written as-is (malformed events, comments, oversized lines). */
  | { raw: string }
  /** vLLM's in-stream error event, then `data: [DONE]`; the stream ends. */
  | { streamError: { message: string; type?: string; code?: number } }
  /** Stop writing and keep the connection open (a hung engine). */
  | { stall: true }
  /** Destroy the connection without `[DONE]`. */
  | { hangUp: true };

export type Reply =
  | {
      kind: 'stream';
      steps: Step[];
      /** The thinker's finish reason (default "stop"; "tool_calls" when tool calls were streamed). */
      finishReason?: 'stop' | 'length';
      promptTokens?: number;
      /** Default: one token per text or tool-call step, plus the end token. */
      completionTokens?: number;
      /** Split every write into pieces of this many bytes (exercises the client's line buffering). */
      writeBytes?: number;
    }
  /** A pre-stream error, as vLLM's `create_error_response` + JSONResponse send it. */
  | { kind: 'error'; status: number; message: string; type?: string }
  | { kind: 'raw'; status: number; contentType: string; body: string }
  /** Never answer (an engine hung before the headers). */
  | { kind: 'silent' };

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: Record<string, unknown> | undefined;
  /** performance.now() when the response closed before it was finished (the client hung up). */
  closedEarlyAt?: number;
  finished: boolean;
}

export interface FakeVllmOmni {
  url: string;
  model: string;
  requests: RecordedRequest[];
  /** Replies for the next chat completion requests, in order (default: a short text reply). */
  enqueue(...replies: Reply[]): void;
  /** Resolves when the response of `requests[i]` has closed (finished or hung up on). */
  closed(i: number): Promise<RecordedRequest>;
  close(): Promise<void>;
}

export async function startFakeVllmOmni(model = 'Qwen/Qwen3-Omni-30B-A3B-Instruct'): Promise<FakeVllmOmni> {
  const queue: Reply[] = [];
  const requests: RecordedRequest[] = [];
  const closeWaiters = new Map<number, (() => void)[]>();
  const closedSet = new Set<number>();
  const markClosed = (i: number): void => {
    closedSet.add(i);
    for (const w of closeWaiters.get(i) ?? []) w();
    closeWaiters.delete(i);
  };

  const server: Server = createServer((req, res) => {
    void handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === 'GET' && req.url === '/health') {
      res.writeHead(200).end();
      return;
    }
    if (req.method === 'GET' && req.url === '/v1/models') {
      const data = [{ id: model, object: 'model', created: 1764374400, owned_by: 'vllm', root: model, parent: null, max_model_len: 65536, permission: [] }];
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data }));
      return;
    }
    if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ detail: 'Not Found' }));
      return;
    }
    const raw = await readBody(req);
    let body: Record<string, unknown> | undefined;
    try {
      body = JSON.parse(raw) as Record<string, unknown>;
    } catch {
      body = undefined;
    }
    const rec: RecordedRequest = { method: req.method, path: req.url, headers: req.headers, body, finished: false };
    const index = requests.push(rec) - 1;
    res.on('close', () => {
      if (!res.writableFinished) rec.closedEarlyAt = performance.now();
      rec.finished = res.writableFinished;
      markClosed(index);
    });
    if (!body) return sendError(res, 400, 'Invalid JSON body', 'BadRequestError');
    if (body.model !== undefined && body.model !== model) {
      return sendError(res, 404, `The model \`${JSON.stringify(body.model).replace(/^"|"$/g, "")}\` does not exist.`, 'NotFoundError', 'model');
    }
    const reply = queue.shift() ?? { kind: 'stream', steps: [{ text: 'Hello' }, { text: '.' }] };
    if (reply.kind === 'error') return sendError(res, reply.status, reply.message, reply.type ?? (reply.status >= 500 ? 'InternalServerError' : 'BadRequestError'));
    if (reply.kind === 'silent') return;
    if (reply.kind === 'raw') {
      res.writeHead(reply.status, { 'content-type': reply.contentType }).end(reply.body);
      return;
    }
    const requested = Array.isArray(body.modalities) ? (body.modalities as string[]) : ['text', 'audio'];
    await stream(res, reply, requested);
  }

  async function stream(res: ServerResponse, reply: Extract<Reply, { kind: 'stream' }>, requested: string[]): Promise<void> {
    // FastAPI StreamingResponse(media_type="text/event-stream"); Starlette adds the charset.
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8' });
    const write = async (s: string): Promise<void> => {
      if (res.destroyed) return;
      const bytes = Buffer.from(s, 'utf8');
      const step = reply.writeBytes ?? bytes.length;
      for (let at = 0; at < bytes.length; at += step) {
        res.write(bytes.subarray(at, at + step));
        if (reply.writeBytes) await sleep(0);
      }
    };
    const event = (obj: unknown): Promise<void> => write(`data: ${JSON.stringify(obj)}\n\n`);

    const id = `chatcmpl-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const head = { id, object: 'chat.completion.chunk', created, model };
    const promptTokens = reply.promptTokens ?? 42;
    const seen = new Set<string>();
    const finished = new Set<string>();
    let stopEmitted = false;
    let toolsStreamed = false;
    let toolIndex = -1;
    let tokens = 0;
    // serving_chat.py: finish_reason only when every requested modality was seen and all seen finished.
    const gate = (reason: string | null): string | null => {
      const subset = [...seen].every((m) => requested.includes(m)) && seen.size < new Set(requested).size;
      if (reason === null || subset || ![...seen].every((m) => finished.has(m))) return null;
      stopEmitted = true;
      return reason;
    };
    const lastTextStep = reply.steps.reduce((last, s, i) => ('text' in s || 'toolCall' in s ? i : last), -1);
    const textFinal = async (): Promise<void> => {
      seen.add('text');
      finished.add('text');
      tokens++;
      const reason = gate(toolsStreamed ? 'tool_calls' : (reply.finishReason ?? 'stop'));
      const delta = toolsStreamed ? {} : { content: '' };
      await event({ ...head, choices: [{ index: 0, delta, logprobs: null, finish_reason: reason, stop_reason: null, token_ids: null }], metrics: null, modality: 'text' });
    };

    if (requested.includes('text')) {
      seen.add('text');
      await event({ ...head, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], prompt_token_ids: null, prompt_text: null, modality: 'text' });
    }
    const audioSteps = reply.steps.filter((s) => 'audio' in s).length;
    let audioSent = 0;
    for (let i = 0; i < reply.steps.length; i++) {
      const s = reply.steps[i]!;
      if ('text' in s) {
        tokens++;
        await event({ ...head, choices: [{ index: 0, delta: { content: s.text }, logprobs: null, finish_reason: null, token_ids: null }], metrics: null, modality: 'text' });
      } else if ('toolCall' in s) {
        toolsStreamed = true;
        toolIndex++;
        tokens++;
        const first = { id: `chatcmpl-tool-${randomUUID().replace(/-/g, '')}`, type: 'function', index: toolIndex, function: { name: s.toolCall.name } };
        await event({ ...head, choices: [{ index: 0, delta: { tool_calls: [first] }, logprobs: null, finish_reason: null, token_ids: null }], metrics: null, modality: 'text' });
        for (const piece of s.toolCall.arguments) {
          await event({ ...head, choices: [{ index: 0, delta: { tool_calls: [{ index: toolIndex, function: { arguments: piece } }] }, logprobs: null, finish_reason: null, token_ids: null }], metrics: null, modality: 'text' });
        }
      } else if ('audio' in s) {
        seen.add('audio');
        audioSent++;
        const last = audioSent === audioSteps;
        if (last) finished.add('audio');
        const reason = gate(last ? 'stop' : null);
        await event({
          ...head,
          choices: [{ index: 0, delta: { role: 'assistant', content: s.audio.toString('base64') }, logprobs: null, finish_reason: reason, stop_reason: null, token_ids: null }],
          usage: { prompt_tokens: promptTokens, total_tokens: promptTokens, completion_tokens: 0 },
          metrics: null,
          modality: 'audio',
        });
      } else if ('delayMs' in s) {
        await sleep(s.delayMs);
      } else if ('raw' in s) {
        await write(s.raw);
      } else if ('streamError' in s) {
        const e = s.streamError;
        await write(`data: ${pyJsonDumps({ error: { message: e.message, type: e.type ?? 'InternalServerError', param: null, code: e.code ?? 500 } })}\n\n`);
        await write('data: [DONE]\n\n');
        res.end();
        return;
      } else if ('stall' in s) {
        return; // the connection stays open until the client gives up
      } else if ('hangUp' in s) {
        res.destroy();
        return;
      }
      if (i === lastTextStep) await textFinal();
    }
    if (lastTextStep < 0 && requested.includes('text')) await textFinal();
    if (finished.size > 0 && !stopEmitted) {
      await event({ ...head, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] });
    }
    const completion = reply.completionTokens ?? tokens;
    await event({ ...head, choices: [], usage: { prompt_tokens: promptTokens, total_tokens: promptTokens + completion, completion_tokens: completion } });
    await write('data: [DONE]\n\n');
    res.end();
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    model,
    requests,
    enqueue: (...replies) => void queue.push(...replies),
    closed: (i) =>
      new Promise((resolve) => {
        const done = (): void => resolve(requests[i]!);
        if (closedSet.has(i)) return done();
        closeWaiters.set(i, [...(closeWaiters.get(i) ?? []), done]);
      }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** vLLM's `create_error_response` as FastAPI sends it: `{"error":{"message","type","param","code"}}`. */
function sendError(res: ServerResponse, status: number, message: string, type: string, param: string | null = null): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message, type, param, code: status } }));
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (b: Buffer) => parts.push(b));
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Python's `json.dumps` defaults: ", " and ": " separators, non-ASCII escaped. */
export function pyJsonDumps(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
  if (Array.isArray(value)) return `[${value.map(pyJsonDumps).join(', ')}]`;
  return `{${Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => `${pyJsonDumps(k)}: ${pyJsonDumps(v)}`)
    .join(', ')}}`;
}

// ---- audio the way soundfile writes it ----

/** A sine tone, mono float samples. */
export function tone(seconds: number, hz = 440, amplitude = 0.5, rate = 24_000): Float32Array {
  const n = Math.round(seconds * rate);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = amplitude * Math.sin((2 * Math.PI * hz * i) / rate);
  return out;
}

/** PCM16 values as libsndfile converts floats (x * 0x7FFF, rounded, clipped). */
export function toPcm16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 0x7fff)));
  return out;
}

/** `soundfile.write(buf, x, rate, format="WAV")`: RIFF, a 16-byte PCM fmt chunk, data (44-byte header). */
export function wavPcm16(samples: Float32Array, rate = 24_000): Buffer {
  const pcm = toPcm16(samples);
  const buf = Buffer.alloc(44 + pcm.length * 2);
  buf.write('RIFF', 0, 'latin1');
  buf.writeUInt32LE(36 + pcm.length * 2, 4);
  buf.write('WAVE', 8, 'latin1');
  buf.write('fmt ', 12, 'latin1');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'latin1');
  buf.writeUInt32LE(pcm.length * 2, 40);
  for (let i = 0; i < pcm.length; i++) buf.writeInt16LE(pcm[i]!, 44 + i * 2);
  return buf;
}

/** Splits a tone into code2wav-sized WAV pieces. */
export function wavPieces(samples: Float32Array, pieceSamples: number, rate = 24_000): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < samples.length; at += pieceSamples) out.push(wavPcm16(samples.subarray(at, at + pieceSamples), rate));
  return out;
}
