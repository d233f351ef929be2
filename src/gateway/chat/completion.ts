// One chat completion on the runtime: the conversation becomes model input, a runtime session is
// opened for exactly this request and prefilled, then the reply streams as protocol-neutral events
// (reasoning, answer text with stop sequences applied, tool calls with ids, speech samples) and
// ends with a finish reason and usage. The session is cancelled and closed however the consumer
// stops (end, error, client gone): `events()`'s finally runs in every case.
import { randomBytes } from 'node:crypto';
import type { QwenTokenizer } from '../../codecs/text/tokenizer.js';
import { buildModelInput, recycleMedia, type InputMessage, type ModelInputPlan } from '../../fusion/model_input.js';
import type { RuntimeBackend, RuntimeCapabilities, RuntimeSession } from '../../runtime/contract.js';
import { EngineContext } from '../engine_context.js';
import { streamReply } from '../reply.js';
import { invalidRequest, toChatError } from './errors.js';
import type { ChatOptions } from './options.js';
import { StopMatcher } from './stop.js';

/** Completion budget when the request sets none (further capped by the context left). */
export const DEFAULT_MAX_TOKENS = 4096;
/** Positions beyond prompt + max tokens a session may need (the forced stop-thinking text). */
const SESSION_SLACK = 64;

export type FinishReason = 'stop' | 'length' | 'tool_calls';

export interface CompletionUsage {
  promptTokens: number;
  completionTokens: number;
  reasoningTokens: number;
}

export type CompletionEvent =
  | { type: 'reasoning'; delta: string }
  | { type: 'text'; delta: string }
  | { type: 'tool_call'; index: number; id: string; name: string; arguments: string }
  /** Speech, mono 24 kHz float samples, in order. */
  | { type: 'audio'; samples: Float32Array }
  | { type: 'done'; finishReason: FinishReason; usage: CompletionUsage };

export interface CompletionDeps {
  runtime: RuntimeBackend;
  tokenizer: QwenTokenizer;
}

/** `prefix_` + 24 random base62-ish characters (ids of completions, tool calls, audio). */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(18).toString('base64url').replace(/[-_]/g, 'x')}`;
}

/** A completion being served: its events, and how to stop it. */
export interface ChatRun {
  events(): AsyncGenerator<CompletionEvent>;
  /** Stops the generation (the event stream then ends). */
  cancel(): void;
  /** Releases the engine without generating (when the request fails before streaming). */
  close(): void;
}

type AnswerPart =
  | { type: 'reasoning'; delta: string }
  | { type: 'text'; delta: string }
  | { type: 'tool_call'; name: string; arguments: string }
  | { type: 'audio'; samples: Float32Array };

/**
 * The reply as the client gets it, whatever engine wrote it: stop sequences cut the text (and
 * `onStop` stops the engine; what it still sends is past the stop and dropped), tool calls get ids
 * when the request had tools (without tools a call is just text the model wrote).
 */
export class AnswerShaper {
  private readonly stop: StopMatcher;
  private stopped = false;
  private toolCalls = 0;

  constructor(
    private readonly options: Pick<ChatOptions, 'stop' | 'tools'>,
    private readonly onStop: () => void,
  ) {
    this.stop = new StopMatcher(options.stop);
  }

  *shape(e: AnswerPart): Generator<CompletionEvent> {
    if (this.stopped) return;
    if (e.type === 'reasoning' || e.type === 'audio') {
      yield e;
    } else if (e.type === 'tool_call') {
      if (this.options.tools) yield { type: 'tool_call', index: this.toolCalls++, id: newId('call'), name: e.name, arguments: e.arguments };
      else yield { type: 'text', delta: `<tool_call>${JSON.stringify({ name: e.name, arguments: e.arguments })}</tool_call>` };
    } else {
      const out = this.stop.push(e.delta);
      if (out.text) yield { type: 'text', delta: out.text };
      if (out.stopped) {
        this.stopped = true;
        this.onStop();
      }
    }
  }

  /** The held-back text (when no stop sequence matched) and the closing event. */
  *finish(cutByLength: boolean, usage: CompletionUsage): Generator<CompletionEvent> {
    const rest = this.stopped ? '' : this.stop.flush();
    if (rest) yield { type: 'text', delta: rest };
    const finishReason: FinishReason = cutByLength ? 'length' : this.toolCalls > 0 ? 'tool_calls' : 'stop';
    yield { type: 'done', finishReason, usage };
  }
}

export class CompletionRun implements ChatRun {
  private done = false;

  private constructor(
    private readonly session: RuntimeSession,
    private readonly ctx: EngineContext,
    private readonly deps: CompletionDeps,
    private readonly options: ChatOptions,
    readonly promptTokens: number,
    readonly maxTokens: number,
  ) {}

  /** Builds the model input, opens a session and prefills it. Rejects with a ChatError. */
  static async start(deps: CompletionDeps, messages: readonly InputMessage[], options: ChatOptions, caps: RuntimeCapabilities, signal?: AbortSignal): Promise<CompletionRun> {
    let plan: ModelInputPlan;
    try {
      plan = await buildModelInput(messages, {
        ...(options.tools ? { tools: options.tools } : {}),
        enableThinking: options.thinking.enabled,
        addGenerationPrompt: true,
      });
    } catch (err) {
      throw toChatError(err);
    }
    const room = caps.maxContext - plan.length;
    if (room < 1 || (options.maxTokens !== undefined && options.maxTokens > room)) {
      const asked = options.maxTokens !== undefined ? `, and ${options.maxTokens} completion tokens were requested` : '';
      throw invalidRequest(
        'context_length_exceeded',
        `This model's maximum context length is ${caps.maxContext} tokens. The messages take ${plan.length} tokens${asked}.`,
        room < 1 ? 'messages' : 'max_tokens',
      );
    }
    const maxTokens = options.maxTokens ?? Math.min(DEFAULT_MAX_TOKENS, room);
    const session = await deps.runtime.open({ maxLength: Math.min(caps.maxContext, plan.length + maxTokens + SESSION_SLACK) }).catch((err: unknown) => {
      throw toChatError(err);
    });
    try {
      const ctx = new EngineContext(session);
      await ctx.sync(plan);
      // The engine holds the prompt (its append settled, so no job or upload still reads the
      // media) and this request never feeds it again. Failed starts leave the media to the GC:
      // a failed remote append may still have bytes queued on its socket.
      recycleMedia(plan);
      if (signal?.aborted) throw signal.reason;
      return new CompletionRun(session, ctx, deps, options, plan.length, maxTokens);
    } catch (err) {
      session.close();
      throw toChatError(err);
    }
  }

  /** Stops the generation (the event stream then ends). */
  cancel(): void {
    if (!this.done) this.session.cancel();
  }

  /** Closes the session without generating (when the request fails before streaming). */
  close(): void {
    this.done = true;
    this.session.close();
  }

  async *events(): AsyncGenerator<CompletionEvent> {
    const shaper = new AnswerShaper(this.options, () => this.session.cancel());
    try {
      const reply = streamReply(this.ctx, this.deps.tokenizer, {
        maxTokens: this.maxTokens,
        sampling: this.options.sampling,
        thinking: this.options.thinking,
        ...(this.options.speech ? { speech: this.options.speech.voice ? { voice: this.options.speech.voice } : {} } : {}),
      });
      for await (const e of reply) {
        if (e.type === 'done') {
          this.done = true;
          yield* shaper.finish(e.reason === 'length', { promptTokens: this.promptTokens, completionTokens: e.usage.outputTokens, reasoningTokens: e.usage.thinkingTokens });
          return;
        }
        yield* shaper.shape(e.type === 'audio' ? { type: 'audio', samples: e.samples } : e);
      }
    } finally {
      // Reached on completion, on an error, and when the consumer stops early (client gone).
      if (!this.done) this.session.cancel();
      this.done = true;
      this.session.close();
    }
  }
}
