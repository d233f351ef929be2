import { describe, expect, it } from 'vitest';
import { SPECIAL_IDS } from '../src/codecs/text/special_tokens.js';
import { QwenTokenizer } from '../src/codecs/text/tokenizer.js';
import {
  DEFAULT_COMPUTE_BUDGET_POLICY,
  THINKING_STOP_TEXT,
  ThinkingBudget,
  resolveThinking,
} from '../src/fusion/budget.js';
import { FusionError } from '../src/fusion/errors.js';

describe('compute budget policy', () => {
  it('answers voice turns without thinking and lets text turns think within a budget by default', () => {
    expect(resolveThinking({ task: 'voice' })).toEqual({ enabled: false, budgetTokens: null });
    expect(resolveThinking({ task: 'text' })).toEqual({ enabled: true, budgetTokens: 4096 });
  });

  it('maps reasoning effort to budgets, minimal meaning no thinking', () => {
    expect(resolveThinking({ task: 'voice', reasoningEffort: 'high' })).toEqual({ enabled: true, budgetTokens: 16_384 });
    expect(resolveThinking({ task: 'text', reasoningEffort: 'low' })).toEqual({ enabled: true, budgetTokens: 1024 });
    expect(resolveThinking({ task: 'text', reasoningEffort: 'minimal' })).toEqual({ enabled: false, budgetTokens: null });
  });

  it('lets an explicit request override effort and task', () => {
    expect(resolveThinking({ task: 'text', reasoningEffort: 'high', thinking: { enabled: false } })).toEqual({
      enabled: false,
      budgetTokens: null,
    });
    expect(resolveThinking({ task: 'voice', thinking: { budgetTokens: 256 } })).toEqual({ enabled: true, budgetTokens: 256 });
    expect(resolveThinking({ task: 'voice', thinking: { enabled: true } })).toEqual({ enabled: true, budgetTokens: null });
    expect(resolveThinking({ task: 'text', thinking: { enabled: true } })).toEqual({ enabled: true, budgetTokens: 4096 });
  });

  it.each([0, -5, 1.5, DEFAULT_COMPUTE_BUDGET_POLICY.maxBudgetTokens + 1])('rejects a budget of %s naming the field', (b) => {
    try {
      resolveThinking({ task: 'text', thinking: { budgetTokens: b } });
      throw new Error('expected a FusionError');
    } catch (err) {
      expect(err).toBeInstanceOf(FusionError);
      expect(err).toMatchObject({ code: 'thinking_budget_invalid', param: 'thinking.budget_tokens' });
    }
  });
});

describe('thinking budget enforcement', () => {
  const tokenizer = QwenTokenizer.load();

  it('tokenizes the stop instruction with </think> as its special id', async () => {
    const ids = await tokenizer.encode(THINKING_STOP_TEXT);
    expect(ids).toContain(SPECIAL_IDS.thinkEnd);
    expect(await tokenizer.decode(ids)).toBe(THINKING_STOP_TEXT);
  });

  it('injects the stop instruction once the reasoning has used its budget, and only once', async () => {
    const stop = await tokenizer.encode(THINKING_STOP_TEXT);
    const budget = new ThinkingBudget({ enabled: true, budgetTokens: 3 }, stop);
    expect(budget.next(SPECIAL_IDS.think)).toBeNull();
    expect(budget.next(100)).toBeNull();
    expect(budget.next(101)).toBeNull();
    expect(budget.next(102)).toEqual(stop);
    expect(budget.used).toBe(3);
    expect(budget.next(103)).toBeNull(); // the answer is not reasoning
  });

  it('leaves reasoning that ends by itself alone, and text outside <think> uncounted', async () => {
    const stop = await tokenizer.encode(THINKING_STOP_TEXT);
    const budget = new ThinkingBudget({ enabled: true, budgetTokens: 3 }, stop);
    expect(budget.next(100)).toBeNull();
    expect(budget.next(SPECIAL_IDS.think)).toBeNull();
    expect(budget.next(101)).toBeNull();
    expect(budget.next(SPECIAL_IDS.thinkEnd)).toBeNull();
    for (let i = 0; i < 10; i++) expect(budget.next(200 + i)).toBeNull();
    expect(budget.used).toBe(1);
  });

  it('never cuts reasoning without a budget', () => {
    const budget = new ThinkingBudget({ enabled: true, budgetTokens: null }, [SPECIAL_IDS.thinkEnd]);
    budget.next(SPECIAL_IDS.think);
    for (let i = 0; i < 100_000; i++) expect(budget.next(5)).toBeNull();
  });
});
