// Next-token choice from logits, in the order Hugging Face `generate` applies its processors:
// repetition penalty, temperature, top-k, top-p, then a draw. Temperature 0 (or `greedy`) is
// argmax, which is what golden tests and reproducible runs use. Draws come from a seeded PRNG,
// so a (seed, logits sequence) pair always gives the same tokens.
import { RuntimeError } from './errors.js';

export interface SamplingParams {
  /** 0 = greedy (default 0.7 when sampling). */
  temperature?: number;
  /** Nucleus mass kept, in (0, 1] (default 1 = off). */
  topP?: number;
  /** Most likely tokens kept; 0 = off (default 0). */
  topK?: number;
  /** > 1 discourages tokens already in the context (HF semantics: logit / p if positive, * p if not). */
  repetitionPenalty?: number;
  /** PRNG seed; default a random one. */
  seed?: number;
  /** Ids that may never be produced (e.g. media placeholders). */
  suppressIds?: readonly number[];
}

export interface ResolvedSampling {
  greedy: boolean;
  temperature: number;
  topP: number;
  topK: number;
  repetitionPenalty: number;
  seed: number;
  suppressIds: readonly number[];
}

function invalid(param: string, message: string): never {
  throw new RuntimeError('sampling_invalid', message, param);
}

/** Validates and fills defaults; throws RuntimeError sampling_invalid naming the parameter. */
export function resolveSampling(p: SamplingParams = {}): ResolvedSampling {
  const temperature = p.temperature ?? 0;
  if (!(temperature >= 0 && temperature <= 100)) invalid('temperature', `temperature must be between 0 and 100, got ${temperature}`);
  const topP = p.topP ?? 1;
  if (!(topP > 0 && topP <= 1)) invalid('top_p', `top_p must be in (0, 1], got ${topP}`);
  const topK = p.topK ?? 0;
  if (!Number.isSafeInteger(topK) || topK < 0) invalid('top_k', `top_k must be a non-negative integer, got ${topK}`);
  const repetitionPenalty = p.repetitionPenalty ?? 1;
  if (!(repetitionPenalty > 0 && repetitionPenalty <= 100)) invalid('repetition_penalty', `repetition_penalty must be in (0, 100], got ${repetitionPenalty}`);
  const seed = p.seed ?? Math.floor(Math.random() * 2 ** 32);
  if (!Number.isSafeInteger(seed) || seed < 0) invalid('seed', `seed must be a non-negative integer, got ${seed}`);
  return { greedy: temperature === 0, temperature, topP, topK, repetitionPenalty, seed, suppressIds: p.suppressIds ?? [] };
}

/** splitmix32: small, fast, well distributed; one instance per response. */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    z ^= z >>> 15;
    return (z >>> 0) / 4294967296;
  }
}

/**
 * Picks tokens for one response. `pick(logits, context)` may modify `logits` in place (it is the
 * engine's fresh buffer for this step).
 */
export class Sampler {
  private readonly rng: Prng;
  constructor(readonly params: ResolvedSampling) {
    this.rng = new Prng(params.seed);
  }

  pick(logits: Float32Array, context: Iterable<number>): number {
    const p = this.params;
    for (const id of p.suppressIds) if (id >= 0 && id < logits.length) logits[id] = -Infinity;
    if (p.repetitionPenalty !== 1) {
      const seen = new Set<number>();
      for (const id of context) {
        if (id < 0 || id >= logits.length || seen.has(id)) continue;
        seen.add(id);
        const v = logits[id]!;
        logits[id] = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty;
      }
    }
    if (p.greedy) return argmax(logits);
    const inv = 1 / p.temperature;
    // Candidates: the top-k when set; otherwise the tokens within 30 nats (after temperature) of
    // the best -- the rest carry under 152k * e^-30 ~ 1e-8 of the mass together.
    const ids = p.topK > 0 ? topIds(logits, Math.min(p.topK, logits.length)) : nearTop(logits, 30 * p.temperature);
    let max = -Infinity;
    for (const id of ids) max = Math.max(max, logits[id]!);
    const probs = new Float64Array(ids.length);
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const e = Math.exp((logits[ids[i]!]! - max) * inv);
      probs[i] = e;
      total += e;
    }
    // top-p: the smallest set of most likely tokens whose mass reaches topP. A typed-array sort
    // (native, no comparator) finds the probability threshold; the draw then walks the candidates
    // in their own order, so nothing sorts ids with a JavaScript comparator.
    let threshold = 0;
    if (p.topP < 1) {
      const sorted = Float64Array.from(probs).sort();
      let mass = 0;
      for (let j = sorted.length - 1; j >= 0; j--) {
        mass += sorted[j]!;
        if (mass >= p.topP * total) {
          threshold = sorted[j]!;
          break;
        }
      }
    }
    let kept = 0;
    for (let i = 0; i < probs.length; i++) if (probs[i]! >= threshold) kept += probs[i]!;
    let r = this.rng.next() * kept;
    let last = ids[0]!;
    for (let i = 0; i < probs.length; i++) {
      if (probs[i]! < threshold) continue;
      last = ids[i]!;
      r -= probs[i]!;
      if (r < 0) return last;
    }
    return last;
  }
}

/** Ids whose value is within `margin` of the largest, in id order. */
function nearTop(v: Float32Array, margin: number): Int32Array {
  let max = -Infinity;
  for (let i = 0; i < v.length; i++) if (v[i]! > max) max = v[i]!;
  const floor = max - margin;
  let n = 0;
  for (let i = 0; i < v.length; i++) if (v[i]! >= floor) n++;
  const picked = new Int32Array(n);
  for (let i = 0, k = 0; i < v.length; i++) if (v[i]! >= floor) picked[k++] = i;
  return picked;
}

/** Index of the largest value; the lowest index on ties (as torch.argmax). */
export function argmax(v: Float32Array): number {
  let best = 0;
  let bv = -Infinity;
  for (let i = 0; i < v.length; i++) {
    if (v[i]! > bv) {
      bv = v[i]!;
      best = i;
    }
  }
  return best;
}

/** Ids of the k largest values (largest first when k is below the vocabulary size). */
function topIds(v: Float32Array, k: number): Int32Array {
  if (k >= v.length) return Int32Array.from({ length: v.length }, (_, i) => i); // order is not needed
  // Keep a sorted buffer of the best k seen so far: O(n log k) for the small k sampling uses.
  const ids = new Int32Array(k).fill(-1);
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (n === k && x <= v[ids[k - 1]!]!) continue;
    let j = n < k ? n++ : k - 1;
    while (j > 0 && v[ids[j - 1]!]! < x) {
      ids[j] = ids[j - 1]!;
      j--;
    }
    ids[j] = i;
  }
  return ids.subarray(0, n);
}
