// warmTextRuns: the next turn's text runs are tokenized ahead of time, so the turn's end takes no
// hop to the tokenizer's threads when the user's turn carries no new text (a spoken turn).
import { describe, expect, it } from 'vitest';
import { buildModelInput, sharedTokenizer, warmTextRuns, type InputMessage } from '../src/fusion/model_input.js';

function audio(frames: number) {
  return { type: 'audio' as const, features: new Float32Array(128 * frames), frames, key: {} };
}

/** Counts the calls that reach the native tokenizer (each one a hop to its threads). */
function countNativeCalls(): { calls: string[][]; restore: () => void } {
  const inner = (sharedTokenizer() as unknown as { tok: { encodeBatch: (texts: string[], ...rest: unknown[]) => unknown } }).tok;
  const original = inner.encodeBatch;
  const calls: string[][] = [];
  inner.encodeBatch = function (this: unknown, texts: string[], ...rest: unknown[]) {
    calls.push(texts);
    return original.call(this, texts, ...rest);
  };
  return { calls, restore: () => (inner.encodeBatch = original) };
}

describe('warmTextRuns', () => {
  it('leaves nothing to tokenize for the next spoken turn, and does not change its ids', async () => {
    const unique = `${process.pid}-${Date.now()}`;
    const history: InputMessage[] = [
      { role: 'system', content: `You are a voice assistant (${unique}).` },
      { role: 'user', content: [audio(120)] },
      { role: 'assistant', content: `Sure, here is a reply no earlier test has tokenized: ${unique}.` },
    ];
    const next: InputMessage[] = [...history, { role: 'user', content: [audio(80)] }];
    const spy = countNativeCalls();
    try {
      await warmTextRuns(history, { enableThinking: false });
      expect(spy.calls.length).toBe(1); // the warm-up itself: one hop for the runs not cached yet
      spy.calls.length = 0;
      const warm = await buildModelInput(next, { enableThinking: false });
      expect(spy.calls).toEqual([]); // the turn's end: no hop at all
      expect(warm.media.map((m) => m.media.type)).toEqual(['audio', 'audio']);
      // Ids as a cold tokenizer gives them: empty the run cache and build again.
      const cache = sharedTokenizer() as unknown as { idsOfText: Map<string, number[]>; cachedIds: number };
      cache.idsOfText.clear();
      cache.cachedIds = 0;
      const cold = await buildModelInput(next, { enableThinking: false });
      expect(spy.calls.length).toBe(1);
      expect([...warm.ids]).toEqual([...cold.ids]);
      expect([...warm.positions]).toEqual([...cold.positions]);
    } finally {
      spy.restore();
    }
  });
});
