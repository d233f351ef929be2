// Compute budget: whether a response thinks, and for how many tokens. A request may say so itself
// (`thinking: { enabled, budgetTokens }`, or OpenAI's `reasoning.effort`); otherwise the policy
// decides per task: voice turns answer at once (latency), text turns may think.
//
// Enforcement belongs to the runtime: it counts the tokens generated after `<think>` and, when
// the budget is spent, feeds the stop-thinking instruction of the Qwen3 technical report (§4.3)
// so the model closes its reasoning and answers from what it has. `ThinkingBudget` is that
// counter, shared by every backend that generates token by token.
import { SPECIAL_IDS } from '../codecs/text/special_tokens.js';
import { FusionError } from './errors.js';

export type ReasoningEffort = 'minimal' | 'low' | 'medium' | 'high';
export type TaskKind = 'voice' | 'text';

export interface ThinkingSettings {
  enabled: boolean;
  /** Tokens the reasoning may take before it is closed; null = no limit beyond max tokens. */
  budgetTokens: number | null;
}

export interface ComputeBudgetPolicy {
  /** What a request that says nothing gets, per task kind. */
  defaults: Record<TaskKind, ThinkingSettings>;
  /** `reasoning.effort` to settings; `minimal` answers without thinking. */
  effort: Record<ReasoningEffort, ThinkingSettings>;
  /** No request may ask for a larger budget. */
  maxBudgetTokens: number;
}

/** Qwen Chat's largest thinking budget is 38 x 1024 tokens; the defaults stay well inside it. */
export const DEFAULT_COMPUTE_BUDGET_POLICY: ComputeBudgetPolicy = {
  defaults: {
    voice: { enabled: false, budgetTokens: null },
    text: { enabled: true, budgetTokens: 4096 },
  },
  effort: {
    minimal: { enabled: false, budgetTokens: null },
    low: { enabled: true, budgetTokens: 1024 },
    medium: { enabled: true, budgetTokens: 4096 },
    high: { enabled: true, budgetTokens: 16_384 },
  },
  maxBudgetTokens: 38_912,
};

export interface ThinkingRequest {
  task: TaskKind;
  reasoningEffort?: ReasoningEffort;
  thinking?: { enabled?: boolean; budgetTokens?: number | null };
}

/** The settings a response runs with: explicit request > reasoning effort > the task's default. */
export function resolveThinking(
  request: ThinkingRequest,
  policy: ComputeBudgetPolicy = DEFAULT_COMPUTE_BUDGET_POLICY,
): ThinkingSettings {
  const t = request.thinking;
  if (t?.enabled === false) return { enabled: false, budgetTokens: null };
  if (t?.budgetTokens !== undefined && t.budgetTokens !== null) {
    const b = t.budgetTokens;
    if (!Number.isInteger(b) || b < 1 || b > policy.maxBudgetTokens) {
      throw new FusionError(
        'thinking_budget_invalid',
        `thinking budget must be an integer from 1 to ${policy.maxBudgetTokens} tokens, got ${String(b)}`,
        'thinking.budget_tokens',
      );
    }
    return { enabled: true, budgetTokens: b };
  }
  const base = request.reasoningEffort ? policy.effort[request.reasoningEffort] : policy.defaults[request.task];
  if (!base) {
    throw new FusionError(
      'thinking_budget_invalid',
      `reasoning effort must be one of ${Object.keys(policy.effort).join(', ')}, got ${String(request.reasoningEffort)}`,
      'reasoning.effort',
    );
  }
  // `enabled: true` with no budget keeps the effort's or default's budget (or none).
  return t?.enabled === true && !base.enabled ? { enabled: true, budgetTokens: null } : { ...base };
}

/** The stop-thinking instruction of the Qwen3 technical report (§4.3), `</think>` included. */
export const THINKING_STOP_TEXT =
  'Considering the limited time by the user, I have to give the solution based on the thinking directly now.\n</think>.\n\n';

/**
 * Counts reasoning tokens of one response as they are generated. `next(id)` returns the ids to
 * force into the sequence when the budget has just run out (the tokenized THINKING_STOP_TEXT),
 * otherwise null. Reasoning is everything after `<think>` until `</think>`.
 */
export class ThinkingBudget {
  private inside = false;
  private spent = 0;
  private closed = false;

  private readonly thinkId: number;
  private readonly thinkEndId: number;

  constructor(
    private readonly settings: ThinkingSettings,
    /** THINKING_STOP_TEXT tokenized; must end the reasoning with the `</think>` id. */
    private readonly stopIds: readonly number[],
    /** The checkpoint's `<think>` / `</think>` ids (default: Qwen3-Omni's). */
    ids: { think: number; thinkEnd: number } = { think: SPECIAL_IDS.think, thinkEnd: SPECIAL_IDS.thinkEnd },
  ) {
    this.thinkId = ids.think;
    this.thinkEndId = ids.thinkEnd;
    if (!stopIds.includes(ids.thinkEnd)) {
      throw new FusionError('thinking_budget_invalid', 'the stop-thinking ids must contain </think>', 'stopIds');
    }
  }

  /** Reasoning tokens generated so far. */
  get used(): number {
    return this.spent;
  }

  next(id: number): readonly number[] | null {
    if (this.closed) return null;
    if (id === this.thinkId) {
      this.inside = true;
      return null;
    }
    if (!this.inside) return null;
    if (id === this.thinkEndId) {
      this.inside = false;
      this.closed = true;
      return null;
    }
    this.spent++;
    const budget = this.settings.budgetTokens;
    if (budget !== null && this.spent >= budget) {
      this.inside = false;
      this.closed = true;
      return this.stopIds;
    }
    return null;
  }
}
