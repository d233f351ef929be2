// The decode loop every token-by-token backend shares: sample, feed back, stream events, stop on
// end-of-turn ids or the token limit, close reasoning when the thinking budget runs out (forcing
// the stop-thinking ids through the engine), and stop promptly on cancel. The engine is reached
// only through `DecodeTarget.step`, so the loop runs the same over an in-process engine, a
// runtime node or a batched scheduler.
import { ThinkingBudget, type ThinkingSettings } from '../fusion/budget.js';
import { RuntimeError } from './errors.js';
import { Sampler, type ResolvedSampling } from './sampling.js';

export type Position3 = [number, number, number];

export interface DecodeTarget {
  /** Feeds `token` at `position` into the context and resolves with the logits for the next one. */
  step(token: number, position: Position3): Promise<Float32Array>;
}

export interface GenerationIds {
  /** Ids that end the reply (the checkpoint's eos ids, `<|im_end|>`). */
  stop: readonly number[];
  think: number;
  thinkEnd: number;
}

export interface GenerationOptions {
  maxTokens: number;
  sampling: ResolvedSampling;
  thinking: ThinkingSettings;
  /** THINKING_STOP_TEXT tokenized (contains `</think>`); forced when the budget runs out. */
  stopThinkingIds: readonly number[];
  ids: GenerationIds;
  signal?: AbortSignal;
}

export interface PromptState {
  /** Logits after the last prompt token. */
  logits: Float32Array;
  /** Position (all three rows) of the first generated token: max prompt position + 1. */
  nextPosition: number;
  /** Ids already in the context, for the repetition penalty. */
  context: readonly number[];
  promptTokens: number;
}

export interface Usage {
  promptTokens: number;
  outputTokens: number;
  thinkingTokens: number;
}

export type GenerationEvent =
  /** A reply token; `thinking` inside `<think>...</think>` (markers included), `forced` by the budget. */
  | { type: 'token'; id: number; thinking: boolean; forced: boolean }
  | { type: 'done'; reason: 'stop' | 'length' | 'cancelled'; stopId?: number; usage: Usage };

export function checkGenerationOptions(o: GenerationOptions): void {
  if (!Number.isSafeInteger(o.maxTokens) || o.maxTokens < 1) {
    throw new RuntimeError('generation_invalid', `max tokens must be a positive integer, got ${o.maxTokens}`, 'max_tokens');
  }
  if (!o.stopThinkingIds.includes(o.ids.thinkEnd)) {
    throw new RuntimeError('generation_invalid', 'the stop-thinking ids must contain the </think> id', 'stopThinkingIds');
  }
}

/**
 * Generates one reply. The generated ids (forced ones included) are fed to the engine in order,
 * so the context afterwards holds prompt + reply (without the stop id, which is not fed).
 */
export async function* generateTokens(target: DecodeTarget, prompt: PromptState, options: GenerationOptions): AsyncGenerator<GenerationEvent> {
  checkGenerationOptions(options);
  const { ids, signal } = options;
  const stop = new Set(options.ids.stop);
  const sampling = options.thinking.enabled
    ? options.sampling
    : { ...options.sampling, suppressIds: [...options.sampling.suppressIds, ids.think] };
  const sampler = new Sampler(sampling);
  const budget = new ThinkingBudget(options.thinking, options.stopThinkingIds, { think: ids.think, thinkEnd: ids.thinkEnd });
  const context = [...prompt.context];
  let logits = prompt.logits;
  let position = prompt.nextPosition;
  let inThink = false;
  const usage: Usage = { promptTokens: prompt.promptTokens, outputTokens: 0, thinkingTokens: 0 };

  const feed = async (id: number): Promise<void> => {
    logits = await target.step(id, [position, position, position]);
    position++;
    context.push(id);
  };
  const account = (id: number): boolean => {
    const thinking = inThink || id === ids.think;
    if (id === ids.think) inThink = true;
    if (id === ids.thinkEnd) inThink = false;
    usage.outputTokens++;
    if (thinking || id === ids.thinkEnd) usage.thinkingTokens++;
    return thinking || id === ids.thinkEnd;
  };

  /** Feeds a token; false when the engine went away because the response was cancelled. */
  const feedOrCancelled = async (id: number): Promise<boolean> => {
    try {
      await feed(id);
      return true;
    } catch (err) {
      if (signal?.aborted) return false;
      throw err;
    }
  };

  while (true) {
    if (signal?.aborted) {
      yield { type: 'done', reason: 'cancelled', usage };
      return;
    }
    if (usage.outputTokens >= options.maxTokens) {
      yield { type: 'done', reason: 'length', usage };
      return;
    }
    const id = sampler.pick(logits, context);
    if (stop.has(id)) {
      yield { type: 'done', reason: 'stop', stopId: id, usage };
      return;
    }
    const thinking = account(id);
    yield { type: 'token', id, thinking, forced: false };
    const forced = budget.next(id);
    // A token the client has seen is always fed, so the context holds exactly what was streamed
    // (a later truncate to what was heard counts on it); a cancel takes effect at the next step.
    if (!(await feedOrCancelled(id))) continue; // the loop's top reports the cancel
    if (!forced) continue;
    // Budget spent: push the closing instruction through the engine, then answer.
    for (const f of forced) {
      if (signal?.aborted || usage.outputTokens >= options.maxTokens) break;
      const t = account(f);
      yield { type: 'token', id: f, thinking: t, forced: true };
      if (!(await feedOrCancelled(f))) break;
    }
  }
}
