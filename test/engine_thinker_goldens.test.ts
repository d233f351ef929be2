// The native thinker (MoE text decoder) against transformers: golden fixtures written by
// scripts/engine_fixtures.py (test/fixtures/engine/README.md). Logits of every position within
// 1e-4 relative to the largest logit, greedy continuations token for token, for the f32 and the
// bf16 checkpoint. Media cases feed the reference's inputs_embeds (after audio/image/video
// substitution) and its deepstack features, so they check the decoder alone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAddon, type NativeThinker, type NativeThinkerSession } from '../src/native/addon.js';
import { readThinkerCheckpoint } from '../src/runtime/checkpoint.js';

const ROOT = join(import.meta.dirname, 'fixtures', 'engine');
const GOLDENS = join(ROOT, 'goldens');
const REL_TOL = 1e-4;

interface TensorEntry {
  file: string;
  dtype: 'float32' | 'int32';
  shape: number[];
}
interface GreedyEntry {
  prompt_len: number;
  tokens: number[];
  decode_positions: number[];
  tensors: Record<string, TensorEntry>;
}
interface CaseEntry {
  seq_len: number;
  tensors: Record<string, TensorEntry>;
  greedy: Record<string, GreedyEntry> | string[];
}
interface Manifest {
  cases: Record<string, CaseEntry>;
  bf16: { tensors: Record<string, TensorEntry> };
}

const manifest = JSON.parse(readFileSync(join(GOLDENS, 'manifest.json'), 'utf8')) as Manifest;

function raw(file: string): Buffer {
  return readFileSync(join(GOLDENS, file));
}
function f32(file: string): Float32Array {
  const b = raw(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function i32(file: string): Int32Array {
  const b = raw(file);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function tensor(c: CaseEntry, name: string): TensorEntry {
  const t = c.tensors[name];
  if (!t) throw new Error(`golden tensor ${name} missing`);
  return t;
}

/** Largest |a - b| over max(1, max |b|): logits are compared relative to their scale. */
function relDiff(a: Float32Array, b: Float32Array, offset = 0): number {
  let worst = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[offset + i]!));
    scale = Math.max(scale, Math.abs(b[offset + i]!));
  }
  return worst / scale;
}

function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

const CASES = Object.keys(manifest.cases);

/** Prefill of a case through its inputs_embeds (every row a media row) + deepstack features. */
function embedsChunk(name: string, hidden: number) {
  const c = manifest.cases[name]!;
  const S = c.seq_len;
  const ids = new Int32Array(i32(tensor(c, 'input_ids').file));
  const positions = f32(tensor(c, 'position_ids').file);
  const embeds = f32(tensor(c, 'inputs_embeds').file);
  expect(embeds.length).toBe(S * hidden);
  const all = Int32Array.from({ length: S }, (_, i) => i);
  const chunk: Parameters<NativeThinkerSession['prefill']>[0] = { ids, positions, media: { indices: all, embeds } };
  const mask = c.tensors.visual_pos_mask;
  if (mask) {
    const m = i32(mask.file);
    const indices = Int32Array.from([...m.keys()].filter((i) => m[i] === 1));
    const kind = c.tensors.image_deepstack0 ? 'image' : 'video';
    const layers: Float32Array[] = [];
    for (let k = 0; c.tensors[`${kind}_deepstack${k}`]; k++) layers.push(f32(tensor(c, `${kind}_deepstack${k}`).file));
    chunk.deepstack = { indices, layers };
  }
  return chunk;
}

function greedyEntries(c: CaseEntry): [string, GreedyEntry][] {
  return Array.isArray(c.greedy) ? [] : Object.entries(c.greedy);
}

describe('thinker text decoder vs transformers goldens (f32 checkpoint)', () => {
  let thinker: NativeThinker;
  beforeAll(async () => {
    thinker = await nativeAddon().loadThinker(await readThinkerCheckpoint(join(ROOT, 'tiny')));
  });
  afterAll(() => thinker?.close());

  it('reports the checkpoint sizes', () => {
    expect([thinker.vocabSize, thinker.hiddenSize, thinker.numLayers]).toEqual([1024, 64, 2]);
  });

  it('embed() returns the token embedding rows of the text case', () => {
    const c = manifest.cases.text!;
    const ids = i32(tensor(c, 'input_ids').file);
    expect(relDiff(thinker.embed(ids), f32(tensor(c, 'inputs_embeds').file))).toBe(0);
  });

  it.each(CASES)('%s: logits of every position from inputs_embeds (+ deepstack) within 1e-4', async (name) => {
    const c = manifest.cases[name]!;
    const S = c.seq_len;
    const golden = f32(tensor(c, 'logits').file);
    const chunk = embedsChunk(name, thinker.hiddenSize);
    // Prefill growing prefixes: the last row's logits of prefix n+1 are the golden row n (causal).
    const session = thinker.newSession(S);
    const last = await session.prefill(chunk);
    expect(relDiff(last, golden, (S - 1) * 1024)).toBeLessThan(REL_TOL);
    const rows = [1, Math.floor(S / 2), S - 2];
    for (const n of rows) {
      const s = thinker.newSession(S);
      const sub: Parameters<NativeThinkerSession['prefill']>[0] = {
        ids: chunk.ids.subarray(0, n),
        positions: Float32Array.from([0, 1, 2].flatMap((r) => [...chunk.positions.subarray(r * S, r * S + n)])),
        media: { indices: chunk.media!.indices.subarray(0, n), embeds: chunk.media!.embeds.subarray(0, n * thinker.hiddenSize) },
      };
      if (chunk.deepstack) {
        const keep = [...chunk.deepstack.indices].map((r, j) => [r, j] as const).filter(([r]) => r < n);
        const H = thinker.hiddenSize;
        sub.deepstack = {
          indices: Int32Array.from(keep.map(([r]) => r)),
          layers: chunk.deepstack.layers.map((l) => Float32Array.from(keep.flatMap(([, j]) => [...l.subarray(j * H, (j + 1) * H)]))),
        };
      }
      const logits = await s.prefill(sub);
      expect(relDiff(logits, golden, (n - 1) * 1024), `row ${n - 1}`).toBeLessThan(REL_TOL);
      s.release();
    }
    session.release();
  });

  it('text: logits from token ids alone (no media) within 1e-4', async () => {
    const c = manifest.cases.text!;
    const session = thinker.newSession(64);
    const logits = await session.prefill({ ids: i32(tensor(c, 'input_ids').file), positions: f32(tensor(c, 'position_ids').file) });
    expect(relDiff(logits, f32(tensor(c, 'logits').file), (c.seq_len - 1) * 1024)).toBeLessThan(REL_TOL);
    expect(session.length).toBe(c.seq_len);
  });

  const greedyCases = CASES.flatMap((name) => greedyEntries(manifest.cases[name]!).map(([v, g]) => [name, v, g] as const));
  it.each(greedyCases)('%s (%s): greedy continuation token for token, step logits within 1e-4', async (name, variant, g) => {
    const c = manifest.cases[name]!;
    const full = embedsChunk(name, thinker.hiddenSize);
    const S = g.prompt_len;
    let chunk = full;
    if (S !== c.seq_len) {
      // A shortened prompt (text only): its own position ids.
      const posFile = g.tensors.position_ids!.file;
      chunk = { ids: full.ids.subarray(0, S), positions: f32(posFile) };
    }
    const stepLogits = f32(g.tensors.step_logits!.file);
    const session = thinker.newSession(S + g.tokens.length);
    let logits = await session.prefill(chunk);
    const tokens: number[] = [];
    for (let i = 0; i < g.tokens.length; i++) {
      expect(relDiff(logits, stepLogits, i * 1024), `step ${i}`).toBeLessThan(REL_TOL);
      tokens.push(argmax(logits));
      if (i + 1 < g.tokens.length) {
        const p = g.decode_positions[i]!;
        logits = await session.decode(tokens[i]!, [p, p, p]);
      }
    }
    expect(tokens).toEqual(g.tokens);
    session.release();
  });
});

describe('thinker text decoder vs transformers goldens (bf16 checkpoint, f32 compute)', () => {
  let thinker: NativeThinker;
  beforeAll(async () => {
    const spec = await readThinkerCheckpoint(join(ROOT, 'tiny-bf16'));
    expect(new Set(spec.tensors.map((t) => t.dtype))).toEqual(new Set(['BF16']));
    thinker = await nativeAddon().loadThinker(spec);
  });
  afterAll(() => thinker?.close());

  it('text: logits of the last prompt position and the greedy continuation', async () => {
    const c = manifest.cases.text!;
    const t = manifest.bf16.tensors;
    const golden = f32(t.logits!.file);
    const tokensGolden = [...i32(t.greedy_tokens!.file)];
    const steps = f32(t.greedy_step_logits!.file);
    const session = thinker.newSession(64);
    let logits = await session.prefill({ ids: i32(tensor(c, 'input_ids').file), positions: f32(tensor(c, 'position_ids').file) });
    expect(relDiff(logits, golden, (c.seq_len - 1) * 1024)).toBeLessThan(REL_TOL);
    const tokens: number[] = [];
    for (let i = 0; i < tokensGolden.length; i++) {
      expect(relDiff(logits, steps, i * 1024), `step ${i}`).toBeLessThan(REL_TOL);
      tokens.push(argmax(logits));
      const p = c.seq_len + i;
      if (i + 1 < tokensGolden.length) logits = await session.decode(tokens[i]!, [p, p, p]);
    }
    expect(tokens).toEqual(tokensGolden);
  });
});
