// Server-sent events of a streamed completion (`chat.completion.chunk`): the role first, then
// `delta.content` / `delta.reasoning_content` / `delta.tool_calls` / `delta.audio`, a final chunk
// with `finish_reason`, with `stream_options.include_usage` a usage-only chunk (`choices: []`),
// then `data: [DONE]`. Speech streams as base64 PCM16 24 kHz in `delta.audio.data`, the first
// audio delta carrying the id. With speech, OpenAI puts the text in `delta.audio.transcript`;
// DashScope's Qwen3-Omni puts it in `delta.content` (spec §10.1, §10.2).
import { AudioOutputEncoder } from '../../codecs/audio/output_encoder.js';
import type { ChatErrorBody } from './errors.js';
import type { CompletionEvent, CompletionUsage, FinishReason } from './completion.js';
import type { ChatDialect } from './options.js';

export interface UsageBody {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  completion_tokens_details: { reasoning_tokens: number };
}

export function usageBody(u: CompletionUsage): UsageBody {
  return {
    prompt_tokens: u.promptTokens,
    completion_tokens: u.completionTokens,
    total_tokens: u.promptTokens + u.completionTokens,
    completion_tokens_details: { reasoning_tokens: u.reasoningTokens },
  };
}

export interface ChunkDelta {
  role?: 'assistant';
  content?: string;
  reasoning_content?: string;
  tool_calls?: { index: number; id: string; type: 'function'; function: { name: string; arguments: string } }[];
  audio?: { id?: string; expires_at?: number; data?: string; transcript?: string };
}

export interface CompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: { index: 0; delta: ChunkDelta; logprobs: null; finish_reason: FinishReason | null }[];
  usage?: UsageBody | null;
}

export const SSE_DONE = 'data: [DONE]\n\n';

export function sseEvent(data: CompletionChunk | ChatErrorBody): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

export interface ChunkStreamOptions {
  id: string;
  created: number;
  model: string;
  dialect: ChatDialect;
  includeUsage: boolean;
  /** Set when speech was asked for: the id of the reply's audio and its expiry. */
  audio?: { id: string; expiresAt: number };
}

/** Turns completion events into chunks, keeping the per-stream state (audio id sent, PCM tail). */
export class ChunkStream {
  private audioIdSent = false;
  private readonly encoder: AudioOutputEncoder | undefined;

  constructor(private readonly o: ChunkStreamOptions) {
    // Chunks of a multiple of 6 bytes: their base64 concatenates into valid base64.
    this.encoder = o.audio ? new AudioOutputEncoder({ format: 'pcm16', alignBase64: true }) : undefined;
  }

  private chunk(delta: ChunkDelta, finishReason: FinishReason | null = null): CompletionChunk {
    return {
      id: this.o.id,
      object: 'chat.completion.chunk',
      created: this.o.created,
      model: this.o.model,
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
      ...(this.o.includeUsage ? { usage: null } : {}),
    };
  }

  private audioDelta(fields: { data?: string; transcript?: string }): ChunkDelta {
    const audio = this.o.audio;
    if (!audio || this.audioIdSent) return { audio: fields };
    this.audioIdSent = true;
    return { audio: { id: audio.id, expires_at: audio.expiresAt, ...fields } };
  }

  first(): CompletionChunk {
    return this.chunk({ role: 'assistant', content: '' });
  }

  /** Chunks for one event (none for an empty audio step; final chunks for `done`). */
  next(e: CompletionEvent): CompletionChunk[] {
    switch (e.type) {
      case 'reasoning':
        return [this.chunk({ reasoning_content: e.delta })];
      case 'text':
        return [this.o.audio && this.o.dialect === 'openai' ? this.chunk(this.audioDelta({ transcript: e.delta })) : this.chunk({ content: e.delta })];
      case 'tool_call':
        return [this.chunk({ tool_calls: [{ index: e.index, id: e.id, type: 'function', function: { name: e.name, arguments: e.arguments } }] })];
      case 'audio': {
        const bytes = this.encoder?.push(e.samples);
        return bytes && bytes.length > 0 ? [this.chunk(this.audioDelta({ data: bytes.toString('base64') }))] : [];
      }
      case 'done': {
        const out: CompletionChunk[] = [];
        const tail = this.encoder?.end();
        if (tail && tail.length > 0) out.push(this.chunk(this.audioDelta({ data: tail.toString('base64') })));
        out.push(this.chunk({}, e.finishReason));
        if (this.o.includeUsage) {
          out.push({ id: this.o.id, object: 'chat.completion.chunk', created: this.o.created, model: this.o.model, choices: [], usage: usageBody(e.usage) });
        }
        return out;
      }
    }
  }
}
