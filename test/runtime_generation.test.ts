// The shared decode loop: stop ids, token limit, thinking budget (forced close), thinking off,
// cancel, and sampling parameters. The engine side is a small deterministic next-token table
// (the loop's only boundary is DecodeTarget.step); the native engine's own tests cover real models.
import { describe, expect, it } from 'vitest';
import { generateTokens, type DecodeTarget, type GenerationEvent, type GenerationOptions, type Position3 } from '../src/runtime/generation.js';
import { argmax, resolveSampling, Sampler } from '../src/runtime/sampling.js';

const V = 32;
const IDS = { stop: [2], think: 3, thinkEnd: 4 };
const STOP_THINKING = [10, 11, 4, 12];

/** Logits that make `next(token)` the argmax; records what was fed. */
class TableModel implements DecodeTarget {
  readonly fed: [number, Position3][] = [];
  constructor(private readonly next: (token: number, step: number) => number) {}
  logitsFor(id: number): Float32Array {
    const l = new Float32Array(V).fill(-5);
    l[id] = 5;
    return l;
  }
  step(token: number, position: Position3): Promise<Float32Array> {
    this.fed.push([token, position]);
    return Promise.resolve(this.logitsFor(this.next(token, this.fed.length)));
  }
}

async function run(model: TableModel, first: number, options: Partial<GenerationOptions> = {}): Promise<GenerationEvent[]> {
  const events: GenerationEvent[] = [];
  const gen = generateTokens(
    model,
    { logits: model.logitsFor(first), nextPosition: 100, context: [1, 1, 1], promptTokens: 3 },
    { maxTokens: 50, sampling: resolveSampling({ temperature: 0 }), thinking: { enabled: true, budgetTokens: null }, stopThinkingIds: STOP_THINKING, ids: IDS, ...options },
  );
  for await (const e of gen) events.push(e);
  return events;
}
const tokens = (events: GenerationEvent[]): number[] => events.flatMap((e) => (e.type === 'token' ? [e.id] : []));
const done = (events: GenerationEvent[]) => events[events.length - 1] as Extract<GenerationEvent, { type: 'done' }>;

describe('decode loop', () => {
  it('stops at a stop id, feeding every reply token at consecutive positions', async () => {
    const model = new TableModel((t) => (t < 8 ? t + 1 : 2));
    const events = await run(model, 5);
    expect(tokens(events)).toEqual([5, 6, 7, 8]);
    expect(done(events)).toMatchObject({ reason: 'stop', stopId: 2, usage: { promptTokens: 3, outputTokens: 4, thinkingTokens: 0 } });
    expect(model.fed).toEqual([
      [5, [100, 100, 100]],
      [6, [101, 101, 101]],
      [7, [102, 102, 102]],
      [8, [103, 103, 103]],
    ]);
  });

  it('stops at max tokens with reason length', async () => {
    const events = await run(new TableModel(() => 7), 7, { maxTokens: 5 });
    expect(tokens(events)).toHaveLength(5);
    expect(done(events).reason).toBe('length');
  });

  it('closes reasoning when the thinking budget is spent, then answers', async () => {
    // <think> then endless reasoning token 20; after the forced close, answer 21 and stop.
    const model = new TableModel((t) => (t === 12 ? 21 : t === 21 ? 2 : 20));
    const events = await run(model, 3, { thinking: { enabled: true, budgetTokens: 4 } });
    const toks = events.filter((e): e is Extract<GenerationEvent, { type: 'token' }> => e.type === 'token');
    expect(toks.map((e) => [e.id, e.thinking, e.forced])).toEqual([
      [3, true, false],
      [20, true, false],
      [20, true, false],
      [20, true, false],
      [20, true, false],
      [10, true, true],
      [11, true, true],
      [4, true, true],
      [12, false, true],
      [21, false, false],
    ]);
    expect(done(events).usage).toMatchObject({ outputTokens: 10, thinkingTokens: 8 });
    expect(model.fed.map(([t]) => t)).toEqual([3, 20, 20, 20, 20, 10, 11, 4, 12, 21]);
  });

  it('thinking off: the model cannot open a think block', async () => {
    const model = new TableModel(() => 2);
    const logits = model.logitsFor(3);
    logits[9] = 4; // second best
    const events: GenerationEvent[] = [];
    for await (const e of generateTokens(
      model,
      { logits, nextPosition: 0, context: [], promptTokens: 0 },
      { maxTokens: 5, sampling: resolveSampling(), thinking: { enabled: false, budgetTokens: null }, stopThinkingIds: STOP_THINKING, ids: IDS },
    )) events.push(e);
    expect(tokens(events)).toEqual([9]);
  });

  it('cancel: the streamed token is still fed, then no further engine step', async () => {
    const controller = new AbortController();
    const model = new TableModel(() => 7);
    const events: GenerationEvent[] = [];
    for await (const e of generateTokens(
      model,
      { logits: model.logitsFor(7), nextPosition: 0, context: [], promptTokens: 0 },
      { maxTokens: 100, sampling: resolveSampling(), thinking: { enabled: true, budgetTokens: null }, stopThinkingIds: STOP_THINKING, ids: IDS, signal: controller.signal },
    )) {
      events.push(e);
      if (events.length === 3) controller.abort();
    }
    expect(done(events).reason).toBe('cancelled');
    expect(tokens(events)).toHaveLength(3);
    expect(model.fed).toHaveLength(3);
  });

  it('rejects bad options with the parameter named', async () => {
    await expect(run(new TableModel(() => 2), 2, { maxTokens: 0 })).rejects.toMatchObject({ code: 'generation_invalid', param: 'max_tokens' });
    await expect(run(new TableModel(() => 2), 2, { stopThinkingIds: [10] })).rejects.toMatchObject({ param: 'stopThinkingIds' });
  });
});

describe('sampling', () => {
  const logits = (): Float32Array => Float32Array.from({ length: V }, (_, i) => Math.sin(i * 1.3) * 3);

  it('greedy is argmax (lowest index on ties)', () => {
    const l = logits();
    expect(new Sampler(resolveSampling({ temperature: 0 })).pick(l, [])).toBe(argmax(logits()));
    expect(argmax(Float32Array.of(1, 3, 3))).toBe(1);
  });

  it('the same seed gives the same draws; top-k 1 and a tiny top-p are greedy', () => {
    const draw = (seed: number): number[] => {
      const s = new Sampler(resolveSampling({ temperature: 1, seed }));
      return Array.from({ length: 20 }, () => s.pick(logits(), []));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
    expect(new Set(draw(7)).size).toBeGreaterThan(1);
    expect(new Sampler(resolveSampling({ temperature: 1, topK: 1, seed: 3 })).pick(logits(), [])).toBe(argmax(logits()));
    expect(new Sampler(resolveSampling({ temperature: 1, topP: 1e-6, seed: 3 })).pick(logits(), [])).toBe(argmax(logits()));
  });

  it('top-k keeps only the k best; draws follow the softmax', () => {
    const l = Float32Array.from({ length: V }, (_, i) => (i < 3 ? Math.log([0.5, 0.3, 0.2][i]!) : -50));
    const s = new Sampler(resolveSampling({ temperature: 1, topK: 2, seed: 1 }));
    const counts = [0, 0, 0];
    for (let i = 0; i < 4000; i++) counts[s.pick(Float32Array.from(l), [])]!++;
    expect(counts[2]).toBe(0);
    expect(counts[0]! / 4000).toBeCloseTo(0.625, 1);
  });

  it('repetition penalty lowers tokens already in the context (HF semantics)', () => {
    const l = Float32Array.of(2, 1.9, -1);
    new Sampler(resolveSampling({ repetitionPenalty: 2 })).pick(l, [0, 2, 0]);
    expect(Array.from(l)).toEqual([1, Math.fround(1.9), -2]);
  });

  it('invalid parameters name themselves', () => {
    expect(() => resolveSampling({ temperature: -1 })).toThrow(expect.objectContaining({ code: 'sampling_invalid', param: 'temperature' }));
    expect(() => resolveSampling({ topP: 0 })).toThrow(expect.objectContaining({ param: 'top_p' }));
    expect(() => resolveSampling({ topK: 1.5 })).toThrow(expect.objectContaining({ param: 'top_k' }));
    expect(() => resolveSampling({ repetitionPenalty: 0 })).toThrow(expect.objectContaining({ param: 'repetition_penalty' }));
    expect(() => resolveSampling({ seed: -3 })).toThrow(expect.objectContaining({ param: 'seed' }));
  });
});
