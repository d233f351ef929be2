// The engine contract the gateway talks to, whatever runs the model: readiness, sessions that take
// append-only model input and stream replies (text token ids, thinking tokens, speech), cancel and
// truncate. Backends: the in-process native engine (`native.ts`), runtime nodes, vLLM-Omni.
import type { ThinkingSettings } from '../fusion/budget.js';
import type { Usage } from './generation.js';
import type { SamplingParams } from './sampling.js';

export type RuntimeKind = 'native' | 'vllm-omni' | 'node' | 'pool';

export interface RuntimeHealth {
  /** The backend answered (in-process: the engine is loaded into this process). */
  reachable: boolean;
  /** A model is loaded and can take requests. */
  modelLoaded: boolean;
  /** Model identifier when known (checkpoint path or served model name). */
  model?: string;
  /** One human sentence on the state, e.g. why it is not ready. */
  detail: string;
}

/** What the loaded model can take and give; the gateway validates requests against it. */
export interface RuntimeCapabilities {
  audioIn: boolean;
  imageIn: boolean;
  videoIn: boolean;
  /** A talker and code-to-wave stage: replies can be spoken. */
  speechOut: boolean;
  /** Voice names (the checkpoint's speaker ids); the first is the default. Empty without speech. */
  voices: readonly string[];
  /** Positions one session can hold. */
  maxContext: number;
}

/** Grid of a vision item: temporal, height and width in patches. */
export type MediaGrid = readonly [number, number, number];

/** Media of a chunk, in the order their placeholder runs occur in `ids` (per kind). */
export type ChunkMedia =
  /** Log-mel features, numMelBins x frames, mel-major (the processor's input_features[i] cut to its valid frames). */
  | { kind: 'audio'; features: Float32Array; frames: number }
  | { kind: 'image'; pixelValues: Float32Array; grid: MediaGrid }
  | { kind: 'video'; pixelValues: Float32Array; grid: MediaGrid };

/** A piece of model input as fusion built it: ids, TMRoPE positions and the media of its placeholders. */
export interface ModelChunk {
  ids: Int32Array;
  /** 3 x n, row-major (t row, h row, w row), float as fusion computes them. */
  positions: Float32Array;
  media?: readonly ChunkMedia[];
}

export interface SpeechRequest {
  /** A voice of `RuntimeCapabilities.voices`; default the first. Unknown names are an error listing the valid ones. */
  voice?: string;
}

export interface GenerateRequest {
  maxTokens: number;
  sampling?: SamplingParams;
  thinking?: ThinkingSettings;
  /** THINKING_STOP_TEXT tokenized; needed when a thinking budget is set. */
  stopThinkingIds?: readonly number[];
  /** Speak the reply too: audio events stream alongside the tokens. */
  speech?: SpeechRequest;
}

export type RuntimeEvent =
  /** A reply token; `thinking` inside `<think>...</think>` (markers included), `forced` by the budget. */
  | { type: 'token'; id: number; thinking: boolean; forced: boolean }
  /**
   * Speech of the reply: mono 24 kHz samples in [-1, 1], `sampleOffset` from the reply's first
   * sample, and the reply tokens (indices into the reply's token events, end exclusive) the chunk
   * speaks, so a client can cut the text at what was heard.
   */
  | { type: 'audio'; samples: Float32Array; sampleOffset: number; tokenStart: number; tokenEnd: number }
  | { type: 'done'; reason: 'stop' | 'length' | 'cancelled'; stopId?: number; usage: Usage };

export interface RuntimeSession {
  /** Positions held (prompt and generated tokens). */
  readonly length: number;
  /** Appends model input and prefills it. */
  append(chunk: ModelChunk): Promise<void>;
  /** Streams one reply; generated tokens stay in the context. cancel() ends it with reason `cancelled`. */
  generate(request: GenerateRequest): AsyncGenerator<RuntimeEvent>;
  /** Stops a running generate (text and speech) before its next step; no audio event follows. */
  cancel(): void;
  /** Keeps the first `length` positions (drops unheard output after a barge-in). */
  truncate(length: number): Promise<void>;
  /**
   * A hint that `media` will be appended soon (an image that arrived mid-turn): a remote backend
   * uploads it now, so the append that follows sends a reference instead of its bytes. Backends
   * in this process have nothing to move and leave it out.
   */
  prepare?(media: ChunkMedia): void;
  close(): void;
}

/** Media of a whole-turn request, as the gateway's codecs normalised them (for engines that take messages). */
export type TurnPart =
  | { type: 'text'; text: string }
  /** 16 kHz mono PCM16 WAV. */
  | { type: 'audio'; wav: Buffer }
  | { type: 'image'; bytes: Buffer; mime: 'image/jpeg' | 'image/png' };

export interface TurnMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string | TurnPart[];
  /** Assistant tool calls (OpenAI function shape). */
  toolCalls?: { id: string; name: string; arguments: string }[];
  /** For role tool. */
  toolCallId?: string;
}

export interface TurnRequest {
  messages: TurnMessage[];
  /** OpenAI function tools: `{ type: 'function', function: { name, description, parameters } }`. */
  tools?: readonly Record<string, unknown>[];
  maxTokens: number;
  sampling?: SamplingParams;
  speech?: SpeechRequest;
  /** Aborting ends the turn (the HTTP stream is closed) with a `done` of reason `cancelled`. */
  signal?: AbortSignal;
}

/** What a whole-turn engine streams back: text (not ids), speech, tool calls, then done. */
export type TurnEvent =
  | { type: 'text'; delta: string }
  | { type: 'audio'; samples: Float32Array; sampleOffset: number }
  | { type: 'tool_call'; name: string; arguments: string }
  | { type: 'done'; reason: 'stop' | 'length' | 'cancelled' | 'tool_calls'; usage: { promptTokens: number; outputTokens: number } };

export interface RuntimeBackend {
  readonly kind: RuntimeKind;
  /** Probe readiness; must settle within `timeoutMs` and never throw. */
  health(timeoutMs: number): Promise<RuntimeHealth>;
  /** Waits for the model, then opens a session. Rejects with a coded RuntimeError when it cannot serve. */
  open(options?: { maxLength?: number }): Promise<RuntimeSession>;
  /** What the model takes and gives (waits for the model). */
  capabilities(): Promise<RuntimeCapabilities>;
  /**
   * Engines that take whole conversations rather than token-level sessions (vLLM-Omni's chat API)
   * implement this instead of `open`; the gateway then sends each turn's messages here.
   */
  turn?(request: TurnRequest): AsyncGenerator<TurnEvent>;
  close(): Promise<void>;
}
