// vLLM-Omni (an OpenAI-compatible serving engine) as the runtime. Readiness follows vLLM's
// documented endpoints: `GET /health` answers 200 once the engine is up, and `GET /v1/models`
// lists the served models as `{ object: "list", data: [{ id, object: "model", ... }] }`.
//
// Turns go to `POST /v1/chat/completions` with `stream: true`, in the shape vLLM-Omni's
// `vllm_omni/entrypoints/openai/serving_chat.py` (vllm-project/vllm-omni) reads and writes:
//
// Request (what serving_chat.py reads):
// - `modalities: ["text"]` or `["text","audio"]`; `audio: {voice, format: "wav"}` (only `format` is
//   read, by `_resolve_audio_format`); the voice goes in the top-level `speaker` field, which
//   `_preprocess_chat` reads (`getattr(request, "voice") or getattr(request, "speaker")`) and the
//   Qwen3-Omni serving README documents ("Pass a `speaker` field in the request body").
// - Media as data URIs: audio as vLLM's `{type:"audio_url", audio_url:{url:"data:audio/wav;base64,..."}}`
//   (what examples/online_serving/qwen3_omni uses, and the shape serving_chat.py itself builds when it
//   injects audio from video), images as `{type:"image_url", image_url:{url:"data:image/jpeg;base64,..."}}`.
// - `max_tokens`, `temperature`, `top_p`, `top_k`, `seed` go to the thinker stage (serving_chat.py's
//   `_OPENAI_SAMPLING_FIELDS`; note it reads `max_tokens`, not `max_completion_tokens`).
//   `repetition_penalty` is sent as vLLM's extra sampling param, but that revision of serving_chat.py
//   does not copy it into the thinker's params (only `sampling_params_list` would), so it may be ignored.
// - Tools in the OpenAI function shape with `tool_choice: "auto"` (the server needs
//   `--enable-auto-tool-choice --tool-call-parser ...`, else it answers 400).
//
// Stream (what `chat_completion_stream_generator` writes): `data: <json>\n\n` lines, then
// `data: [DONE]\n\n`. Every chunk carries a top-level `modality`:
// - `"text"`: OpenAI deltas in `choices[0].delta` (`content`, `tool_calls` as vLLM's DeltaToolCall:
//   `{id?, type?, index, function: {name?, arguments?}}`), the first one `{role, content: ""}`.
// - `"audio"`: `choices[0].delta.content` is a whole base64 WAV file (soundfile, PCM16, 24 kHz for
//   Qwen3-Omni) holding the newest piece of speech; the chunk also carries a running `usage`.
// - `finish_reason` is set only on the chunk that ends the last modality (text or audio), or on a
//   fallback `{delta:{}, finish_reason:"stop"}` chunk without `modality`.
// - With `stream_options.include_usage`, a last chunk `{choices: [], usage: {...}}`.
// - Failures after the headers: `data: {"error": {"message", "type", "param", "code"}}` then `[DONE]`.
//
// Speech comes back at 24 kHz (the TurnEvent contract). A WAV at another rate is an error
// (`backend_failed`, naming the rate) rather than resampled here: the runtime may not import the
// codecs, and Qwen3-Omni always speaks at 24 kHz (serving_chat.py: "Qwen3-Omni omits sr and runs at 24kHz").
import type {
  RuntimeBackend,
  RuntimeCapabilities,
  RuntimeHealth,
  RuntimeSession,
  TurnEvent,
  TurnMessage,
  TurnPart,
  TurnRequest,
} from './contract.js';
import { RuntimeError, type RuntimeErrorCode } from './errors.js';
import { resolveSampling } from './sampling.js';

interface ModelList {
  data?: { id?: unknown }[];
}

/** The rate of `audio` TurnEvents. */
export const TURN_AUDIO_RATE = 24_000;

export interface VllmOmniOptions {
  /** A turn fails when the server sends nothing for this long, headers included (default 60 s). */
  idleTimeoutMs?: number;
  /** Longest SSE line or event accepted, in characters (default 32 Mi: one base64 WAV of ~4 min). */
  maxEventChars?: number;
  /** Most reply speech per turn, in seconds (default 600). */
  maxAudioSeconds?: number;
  /** Bearer token for servers started with `--api-key`. */
  apiKey?: string;
}

type Usage = { promptTokens: number; outputTokens: number };
type ReadResult = { done: boolean; value?: Uint8Array };

/** Speakers of the released Qwen3-Omni checkpoints (config `talker_config.speaker_id`). */
export const QWEN3_OMNI_SPEAKERS: readonly string[] = ['Ethan', 'Chelsie', 'Aiden'];

export class VllmOmniRuntime implements RuntimeBackend {
  readonly kind = 'vllm-omni' as const;
  private readonly base: string;
  private readonly idleTimeoutMs: number;
  private readonly maxEventChars: number;
  private readonly maxAudioSamples: number;
  private readonly apiKey: string | undefined;

  constructor(
    baseUrl: string,
    private readonly model: string,
    options: VllmOmniOptions = {},
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.maxEventChars = options.maxEventChars ?? 32 * 1024 * 1024;
    this.maxAudioSamples = Math.round((options.maxAudioSeconds ?? 600) * TURN_AUDIO_RATE);
    this.apiKey = options.apiKey;
  }

  async health(timeoutMs: number): Promise<RuntimeHealth> {
    const signal = AbortSignal.timeout(timeoutMs);
    const down = (detail: string): RuntimeHealth => ({ reachable: false, modelLoaded: false, detail });
    let res: Response;
    try {
      res = await fetch(`${this.base}/health`, { signal });
    } catch (err) {
      const reason = signal.aborted ? `no answer within ${timeoutMs} ms` : describeFetchError(err);
      return down(`vLLM-Omni at ${this.base} is unreachable: ${reason}`);
    }
    await res.body?.cancel();
    if (res.status !== 200) return down(`vLLM-Omni at ${this.base} answered /health with HTTP ${res.status}`);
    let ids: string[];
    try {
      const models = await fetch(`${this.base}/v1/models`, { signal, headers: this.authHeaders() });
      if (models.status !== 200) throw new Error(`HTTP ${models.status}`);
      const body = (await models.json()) as ModelList;
      ids = (body.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
    } catch (err) {
      return {
        reachable: true,
        modelLoaded: false,
        detail: `vLLM-Omni at ${this.base} is up but /v1/models failed: ${describeFetchError(err)}`,
      };
    }
    const wanted = this.model || ids[0];
    if (!wanted || !ids.includes(wanted)) {
      return {
        reachable: true,
        modelLoaded: false,
        detail: this.model
          ? `vLLM-Omni at ${this.base} does not serve model "${this.model}" (it serves: ${ids.join(', ') || 'none'})`
          : `vLLM-Omni at ${this.base} serves no model`,
      };
    }
    return { reachable: true, modelLoaded: true, model: wanted, detail: `vLLM-Omni serves ${wanted}` };
  }

  /** vLLM-Omni has no token-level sessions: whole turns go through `turn()`. */
  open(): Promise<RuntimeSession> {
    return Promise.reject(
      new RuntimeError('backend_unsupported', 'the vllm-omni backend has no token-level sessions (it serves whole turns through turn())'),
    );
  }

  /**
   * What Qwen3-Omni served by vLLM-Omni takes and gives. vLLM has no endpoint that reports it, so
   * these are the model's: audio, images and speech, with the released checkpoint's speakers
   * (Ethan first, its default). Unknown voices are refused by the server (voice_unknown).
   */
  capabilities(): Promise<RuntimeCapabilities> {
    return Promise.resolve({ audioIn: true, imageIn: true, videoIn: false, speechOut: true, voices: QWEN3_OMNI_SPEAKERS, maxContext: 32_768 });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  /** The JSON body sent for a turn (exported for tests and logs). */
  requestBody(request: TurnRequest): Record<string, unknown> {
    if (!Number.isSafeInteger(request.maxTokens) || request.maxTokens < 1) {
      throw new RuntimeError('generation_invalid', `max tokens must be a positive integer, got ${request.maxTokens}`, 'max_tokens');
    }
    const body: Record<string, unknown> = {};
    if (this.model) body.model = this.model;
    body.messages = request.messages.map(toWireMessage);
    body.stream = true;
    body.stream_options = { include_usage: true };
    body.modalities = request.speech ? ['text', 'audio'] : ['text'];
    body.max_tokens = request.maxTokens;
    if (request.speech) {
      const voice = request.speech.voice;
      body.audio = voice ? { voice, format: 'wav' } : { format: 'wav' };
      if (voice) body.speaker = voice;
    }
    const s = request.sampling;
    if (s) {
      resolveSampling(s); // validates; only the fields the caller set are sent
      if (s.temperature !== undefined) body.temperature = s.temperature;
      if (s.topP !== undefined) body.top_p = s.topP;
      if (s.topK !== undefined) body.top_k = s.topK === 0 ? -1 : s.topK;
      if (s.seed !== undefined) body.seed = s.seed;
      if (s.repetitionPenalty !== undefined) body.repetition_penalty = s.repetitionPenalty;
    }
    if (request.tools && request.tools.length > 0) {
      body.tools = request.tools;
      body.tool_choice = 'auto';
    }
    return body;
  }

  /** Streams one turn from `/v1/chat/completions`; aborting `request.signal` closes the stream. */
  async *turn(request: TurnRequest): AsyncGenerator<TurnEvent> {
    const body = JSON.stringify(this.requestBody(request));
    const state = new TurnStream(this.maxAudioSamples);
    if (request.signal?.aborted) {
      yield { type: 'done', reason: 'cancelled', usage: state.usage() };
      return;
    }
    const ctl = new AbortController();
    let stalled = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        stalled = true;
        ctl.abort();
      }, this.idleTimeoutMs);
    };
    const disarm = (): void => clearTimeout(timer);
    const onAbort = (): void => ctl.abort();
    request.signal?.addEventListener('abort', onAbort, { once: true });
    const cancelled = (): boolean => request.signal?.aborted === true && !stalled;
    const url = `${this.base}/v1/chat/completions`;
    try {
      let res: Response;
      arm();
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...this.authHeaders() },
          body,
          signal: ctl.signal,
        });
      } catch (err) {
        if (cancelled()) {
          yield { type: 'done', reason: 'cancelled', usage: state.usage() };
          return;
        }
        throw this.transportError(err, stalled, 'before answering');
      }
      if (!res.ok || !res.body) {
        let text: string;
        try {
          text = await readText(res, 64 * 1024);
        } catch (err) {
          if (cancelled()) {
            yield { type: 'done', reason: 'cancelled', usage: state.usage() };
            return;
          }
          throw this.transportError(err, stalled, `while sending HTTP ${res.status}`);
        }
        throw httpError(res.status, text, request.speech?.voice);
      }
      const contentType = res.headers.get('content-type') ?? '';
      if (!contentType.includes('text/event-stream')) {
        throw new RuntimeError('backend_failed', `vLLM-Omni answered ${url} with ${contentType || 'no content type'}, not an event stream`);
      }
      const reader = res.body.getReader();
      const sse = new SseParser(this.maxEventChars);
      let sawDone = false;
      read: for (;;) {
        let chunk: ReadResult;
        arm();
        try {
          chunk = (await reader.read()) as ReadResult;
        } catch (err) {
          if (cancelled()) {
            yield { type: 'done', reason: 'cancelled', usage: state.usage() };
            return;
          }
          throw this.transportError(err, stalled, 'mid-reply');
        }
        disarm();
        if (chunk.done || !chunk.value) break;
        for (const data of sse.push(chunk.value)) {
          if (data === '[DONE]') {
            sawDone = true;
            break read;
          }
          for (const event of state.onData(data)) {
            yield event;
            if (cancelled()) {
              yield { type: 'done', reason: 'cancelled', usage: state.usage() };
              return;
            }
          }
        }
      }
      if (!sawDone) {
        throw new RuntimeError('backend_failed', 'vLLM-Omni closed the stream before `data: [DONE]` (the reply was cut off)');
      }
      for (const event of state.finish()) yield event;
    } finally {
      disarm();
      request.signal?.removeEventListener('abort', onAbort);
      ctl.abort(); // closes the HTTP stream when the consumer stopped early or the turn failed
    }
  }

  private authHeaders(): Record<string, string> {
    return this.apiKey ? { authorization: `Bearer ${this.apiKey}` } : {};
  }

  private transportError(err: unknown, stalled: boolean, when: string): RuntimeError {
    if (err instanceof RuntimeError) return err;
    if (stalled) {
      return new RuntimeError('backend_failed', `vLLM-Omni at ${this.base} sent nothing for ${this.idleTimeoutMs} ms ${when}`, undefined, { cause: err });
    }
    return new RuntimeError('backend_failed', `vLLM-Omni at ${this.base} failed ${when}: ${describeFetchError(err)}`, undefined, { cause: err });
  }
}

// ---- request ----

interface WireToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

function toWireMessage(m: TurnMessage, i: number): Record<string, unknown> {
  const out: Record<string, unknown> = { role: m.role };
  out.content = typeof m.content === 'string' ? m.content : m.content.map((p) => toWirePart(p, i));
  if (m.toolCalls && m.toolCalls.length > 0) {
    out.tool_calls = m.toolCalls.map((c): WireToolCall => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } }));
  }
  if (m.role === 'tool') {
    if (!m.toolCallId) throw new RuntimeError('generation_invalid', `message ${i} has role tool but no tool call id`, 'messages');
    out.tool_call_id = m.toolCallId;
  }
  return out;
}

function toWirePart(p: TurnPart, i: number): Record<string, unknown> {
  switch (p.type) {
    case 'text':
      return { type: 'text', text: p.text };
    case 'audio':
      if (p.wav.length < 12 || p.wav.toString('latin1', 0, 4) !== 'RIFF' || p.wav.toString('latin1', 8, 12) !== 'WAVE') {
        throw new RuntimeError('generation_invalid', `message ${i} has audio that is not a WAV file`, 'messages');
      }
      return { type: 'audio_url', audio_url: { url: `data:audio/wav;base64,${p.wav.toString('base64')}` } };
    case 'image':
      return { type: 'image_url', image_url: { url: `data:${p.mime};base64,${p.bytes.toString('base64')}` } };
  }
}

// ---- errors ----

function httpError(status: number, text: string, voice: string | undefined): RuntimeError {
  const detail = errorMessage(text);
  const message = `vLLM-Omni answered HTTP ${status}${detail ? `: ${detail}` : ''}`;
  let code: RuntimeErrorCode = 'backend_failed';
  let param: string | undefined;
  if (status === 400 || status === 422) {
    code = 'generation_invalid';
    if (voice && /speaker|voice/i.test(detail)) {
      code = 'voice_unknown';
      param = 'voice';
    }
  } else if (status === 429 || status === 503) {
    code = 'server_busy';
  }
  return new RuntimeError(code, message, param);
}

/** The message of vLLM's `{"error": {"message"}}`, FastAPI's `{"detail"}`, or the text itself. */
function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: unknown }; detail?: unknown; message?: unknown };
    const m = j.error?.message ?? j.message ?? j.detail;
    if (typeof m === 'string') return clip(m);
    if (m !== undefined) return clip(JSON.stringify(m));
  } catch {
    // not JSON
  }
  return clip(text.trim());
}

function clip(s: string): string {
  return s.length > 500 ? `${s.slice(0, 500)}...` : s;
}

async function readText(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const parts: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = (await reader.read()) as ReadResult;
    if (done || !value) break;
    parts.push(value);
    n += value.length;
    if (n >= maxBytes) {
      await reader.cancel();
      break;
    }
  }
  return Buffer.concat(parts).subarray(0, maxBytes).toString('utf8');
}

function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

// ---- SSE ----

/** `data:` payloads of a text/event-stream, one per event; lines and events are bounded. */
class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private pending = '';
  private scanned = 0;
  private data: string[] = [];
  private dataChars = 0;

  constructor(private readonly maxChars: number) {}

  push(bytes: Uint8Array): string[] {
    this.pending += this.decoder.decode(bytes, { stream: true });
    const out: string[] = [];
    let start = 0;
    for (;;) {
      const nl = this.pending.indexOf('\n', Math.max(start, this.scanned));
      if (nl < 0) break;
      let line = this.pending.slice(start, nl);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      start = nl + 1;
      this.line(line, out);
    }
    this.pending = this.pending.slice(start);
    this.scanned = this.pending.length;
    if (this.pending.length > this.maxChars) {
      throw new RuntimeError('backend_failed', `vLLM-Omni sent an event stream line longer than ${this.maxChars} characters`);
    }
    return out;
  }

  private line(line: string, out: string[]): void {
    if (line === '') {
      if (this.data.length > 0) out.push(this.data.join('\n'));
      this.data = [];
      this.dataChars = 0;
      return;
    }
    if (line.startsWith(':')) return; // comment
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    if (field !== 'data') return; // event:, id:, retry: carry nothing vLLM uses
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    this.dataChars += value.length;
    if (this.dataChars > this.maxChars) {
      throw new RuntimeError('backend_failed', `vLLM-Omni sent an event longer than ${this.maxChars} characters`);
    }
    this.data.push(value);
  }
}

// ---- chunks ----

interface WireChunk {
  error?: { message?: unknown; type?: unknown; code?: unknown };
  object?: unknown;
  modality?: unknown;
  choices?: unknown;
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
}

interface WireChoice {
  index?: unknown;
  delta?: {
    content?: unknown;
    tool_calls?: unknown;
  } | null;
  finish_reason?: unknown;
}

interface WireDeltaToolCall {
  index?: unknown;
  id?: unknown;
  function?: { name?: unknown; arguments?: unknown } | null;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Folds vLLM-Omni's chunks into TurnEvents. */
class TurnStream {
  private promptTokens = 0;
  private outputTokens = 0;
  private finalUsage = false;
  private readonly finishReasons = new Set<string>();
  private readonly tools = new Map<number, { id?: string; name: string; args: string }>();
  private audioSamples = 0;

  constructor(private readonly maxAudioSamples: number) {}

  usage(): Usage {
    return { promptTokens: this.promptTokens, outputTokens: this.outputTokens };
  }

  onData(data: string): TurnEvent[] {
    let chunk: WireChunk;
    try {
      chunk = JSON.parse(data) as WireChunk;
    } catch {
      throw new RuntimeError('backend_failed', `vLLM-Omni sent an event that is not JSON: ${clip(JSON.stringify(data.slice(0, 200)))}`);
    }
    if (chunk === null || typeof chunk !== 'object' || Array.isArray(chunk)) {
      throw new RuntimeError('backend_failed', 'vLLM-Omni sent an event that is not a JSON object');
    }
    if (chunk.error !== undefined) {
      const e = chunk.error ?? {};
      const msg = typeof e.message === 'string' ? e.message : JSON.stringify(e);
      const code = typeof e.code === 'number' || typeof e.code === 'string' ? ` (${String(e.code)})` : '';
      throw new RuntimeError('backend_failed', `vLLM-Omni failed mid-reply${code}: ${clip(msg)}`);
    }
    if (!Array.isArray(chunk.choices)) {
      throw new RuntimeError('backend_failed', 'vLLM-Omni sent a chunk without `choices`');
    }
    const choices = chunk.choices as WireChoice[];
    this.onUsage(chunk.usage, choices.length === 0);
    const modality = chunk.modality ?? 'text';
    const events: TurnEvent[] = [];
    for (const choice of choices) {
      if (choice === null || typeof choice !== 'object') throw new RuntimeError('backend_failed', 'vLLM-Omni sent a choice that is not an object');
      if ((choice.index ?? 0) !== 0) continue; // n = 1
      if (typeof choice.finish_reason === 'string') this.finishReasons.add(choice.finish_reason);
      const delta = choice.delta ?? {};
      if (modality === 'audio') {
        if (typeof delta.content === 'string' && delta.content.length > 0) events.push(this.onAudio(delta.content));
      } else if (modality === 'text') {
        if (typeof delta.content === 'string' && delta.content.length > 0) events.push({ type: 'text', delta: delta.content });
        if (Array.isArray(delta.tool_calls)) for (const tc of delta.tool_calls as WireDeltaToolCall[]) this.onToolDelta(tc);
      }
      // other modalities (image) are not asked for; ignore them
    }
    return events;
  }

  /** After `[DONE]`: the tool calls, then done. */
  finish(): TurnEvent[] {
    if (this.finishReasons.has('abort') || this.finishReasons.has('error')) {
      throw new RuntimeError('backend_failed', `vLLM-Omni ended the reply with finish_reason ${this.finishReasons.has('abort') ? 'abort' : 'error'}`);
    }
    const events: TurnEvent[] = [];
    for (const [index, call] of [...this.tools.entries()].sort((a, b) => a[0] - b[0])) {
      if (!call.name) throw new RuntimeError('backend_failed', `vLLM-Omni streamed tool call ${index} without a function name`);
      events.push({ type: 'tool_call', name: call.name, arguments: call.args || '{}' });
    }
    // With audio asked for, the text chunk that says "tool_calls" has its finish_reason held back
    // and the audio stage's "stop" is sent instead: tool calls decide the reason.
    const reason = this.tools.size > 0 ? 'tool_calls' : this.finishReasons.has('length') ? 'length' : 'stop';
    events.push({ type: 'done', reason, usage: this.usage() });
    return events;
  }

  private onUsage(usage: WireChunk['usage'], final: boolean): void {
    if (!usage || typeof usage !== 'object') return;
    if (this.finalUsage && !final) return;
    // Audio chunks carry a running usage with completion_tokens 0; the last `choices: []` chunk has the totals.
    if (typeof usage.prompt_tokens === 'number') this.promptTokens = usage.prompt_tokens;
    if (typeof usage.completion_tokens === 'number' && (final || usage.completion_tokens > 0)) this.outputTokens = usage.completion_tokens;
    if (final) this.finalUsage = true;
  }

  private onToolDelta(tc: WireDeltaToolCall): void {
    if (tc === null || typeof tc !== 'object') throw new RuntimeError('backend_failed', 'vLLM-Omni sent a tool call delta that is not an object');
    const index = typeof tc.index === 'number' ? tc.index : 0;
    let call = this.tools.get(index);
    if (!call) {
      if (this.tools.size >= 128) throw new RuntimeError('backend_failed', 'vLLM-Omni streamed more than 128 tool calls');
      call = { name: '', args: '' };
      this.tools.set(index, call);
    }
    if (typeof tc.id === 'string' && !call.id) call.id = tc.id;
    const fn = tc.function ?? {};
    if (typeof fn.name === 'string' && fn.name) call.name = fn.name;
    if (typeof fn.arguments === 'string') call.args += fn.arguments;
  }

  private onAudio(b64: string): TurnEvent {
    if (!BASE64.test(b64)) throw new RuntimeError('backend_failed', 'vLLM-Omni sent an audio chunk that is not base64');
    const { samples, sampleRate } = decodeWav(Buffer.from(b64, 'base64'));
    if (sampleRate !== TURN_AUDIO_RATE) {
      throw new RuntimeError('backend_failed', `vLLM-Omni sent ${sampleRate} Hz speech; the vllm-omni backend takes ${TURN_AUDIO_RATE} Hz (Qwen3-Omni's rate)`);
    }
    const sampleOffset = this.audioSamples;
    this.audioSamples += samples.length;
    if (this.audioSamples > this.maxAudioSamples) {
      throw new RuntimeError('backend_failed', `vLLM-Omni sent more than ${this.maxAudioSamples / TURN_AUDIO_RATE} s of speech for one turn`);
    }
    return { type: 'audio', samples, sampleOffset };
  }
}

// ---- WAV ----

/** A RIFF/WAVE file (PCM 16/24/32-bit or float 32/64, any channel count, downmixed) to mono floats. */
export function decodeWav(buf: Buffer): { samples: Float32Array; sampleRate: number } {
  const bad = (why: string): RuntimeError => new RuntimeError('backend_failed', `vLLM-Omni sent an audio chunk that is not a usable WAV file: ${why}`);
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'RIFF' || buf.toString('latin1', 8, 12) !== 'WAVE') throw bad('no RIFF/WAVE header');
  let fmt: { tag: number; channels: number; rate: number; bits: number } | undefined;
  let data: Buffer | undefined;
  let at = 12;
  while (at + 8 <= buf.length) {
    const id = buf.toString('latin1', at, at + 4);
    const size = buf.readUInt32LE(at + 4);
    const body = at + 8;
    // Streaming writers may leave the size at 0 or 0xFFFFFFFF for the data chunk: take what is there.
    const end = Math.min(buf.length, body + size);
    if (id === 'fmt ') {
      if (end - body < 16) throw bad('short fmt chunk');
      let tag = buf.readUInt16LE(body);
      if (tag === 0xfffe && end - body >= 26) tag = buf.readUInt16LE(body + 24); // WAVE_FORMAT_EXTENSIBLE sub-format
      fmt = { tag, channels: buf.readUInt16LE(body + 2), rate: buf.readUInt32LE(body + 4), bits: buf.readUInt16LE(body + 14) };
    } else if (id === 'data') {
      data = buf.subarray(body, size === 0 || size === 0xffffffff ? buf.length : end);
      break;
    }
    at = body + size + (size & 1);
  }
  if (!fmt) throw bad('no fmt chunk');
  if (!data) throw bad('no data chunk');
  const { tag, channels, rate, bits } = fmt;
  const pcm = data;
  if (channels < 1 || channels > 8) throw bad(`${channels} channels`);
  if (rate < 1) throw bad(`sample rate ${rate}`);
  const width = bits / 8;
  let read: (off: number) => number;
  if (tag === 1 && bits === 16) read = (o) => pcm.readInt16LE(o) / 32768;
  else if (tag === 1 && bits === 24) read = (o) => pcm.readIntLE(o, 3) / 8388608;
  else if (tag === 1 && bits === 32) read = (o) => pcm.readInt32LE(o) / 2147483648;
  else if (tag === 3 && bits === 32) read = (o) => pcm.readFloatLE(o);
  else if (tag === 3 && bits === 64) read = (o) => pcm.readDoubleLE(o);
  else throw bad(`format ${tag} with ${bits} bits`);
  const frame = width * channels;
  const frames = Math.floor(pcm.length / frame);
  const samples = new Float32Array(frames);
  for (let f = 0; f < frames; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++) sum += read(f * frame + c * width);
    samples[f] = sum / channels;
  }
  return { samples, sampleRate: rate };
}
