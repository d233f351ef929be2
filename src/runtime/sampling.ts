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
    // Candidates: top-k (or all), sorted by logit, as (id, logit) pairs.
    const k = p.topK > 0 ? Math.min(p.topK, logits.length) : logits.length;
    const ids = topIds(logits, k);
    const inv = 1 / p.temperature;
    const max = logits[ids[0]!]!;
    const probs = new Float64Array(ids.length);
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const e = Math.exp((logits[ids[i]!]! - max) * inv);
      probs[i] = e;
      total += e;
    }
    // top-p: keep the smallest prefix whose mass reaches topP (at least one token).
    let keep = ids.length;
    if (p.topP < 1) {
      let mass = 0;
      for (let i = 0; i < ids.length; i++) {
        mass += probs[i]! / total;
        if (mass >= p.topP) {
          keep = i + 1;
          break;
        }
      }
    }
    let kept = 0;
    for (let i = 0; i < keep; i++) kept += probs[i]!;
    let r = this.rng.next() * kept;
    for (let i = 0; i < keep; i++) {
      r -= probs[i]!;
      if (r < 0) return ids[i]!;
    }
    return ids[keep - 1]!;
  }
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

/** Ids of the k largest finite-or-not values, largest first. */
function topIds(v: Float32Array, k: number): Int32Array {
  if (k >= v.length) {
    const all = Int32Array.from({ length: v.length }, (_, i) => i);
    return all.sort((a, b) => v[b]! - v[a]! || a - b);
  }
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
