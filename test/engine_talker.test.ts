// The native talker (MoE decoder with a shared expert -> codebook-0 logits) and code predictor
// (dense decoder -> codebooks 1..15) against transformers: goldens written by
// scripts/speech_fixtures.py (test/fixtures/speech/README.md). Logits within 1e-4 of their scale,
// codes exact; the talker loop is also run end to end natively (step embeddings built from the
// engine's own codes and embedding tables).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeAddon, type NativeCodePredictor, type NativeTalker } from '../src/native/addon.js';
import { CheckpointError } from '../src/runtime/checkpoint.js';
import { readCodePredictorCheckpoint, readTalkerCheckpoint } from '../src/runtime/talker.js';

const ROOT = join(import.meta.dirname, 'fixtures', 'speech');
const GOLDENS = join(ROOT, 'goldens');
const TINY = join(ROOT, 'tiny');
const REL_TOL = 1e-4;

interface TensorEntry {
  file: string;
  shape: number[];
}
interface TalkerCase {
  tensors: Record<string, TensorEntry>;
  user_positions: number[];
  decode_positions: number[];
  codes0: number[];
  n_frames: number;
  codes_frames_x16: number[][];
}
const manifest = JSON.parse(readFileSync(join(GOLDENS, 'manifest.json'), 'utf8')) as {
  codec: { codebook_size: number; codec_eos_token_id: number; talker_suppressed_range: [number, number] };
  code_predictor: { frames: number; tensors: Record<string, TensorEntry> };
  talker_text: TalkerCase;
  talker_image: TalkerCase;
};

function raw(file: string): Buffer {
  return readFileSync(join(GOLDENS, file));
}
const f32 = (e: TensorEntry) => {
  const b = raw(e.file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const i32 = (e: TensorEntry) => {
  const b = raw(e.file);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

/** Largest |a - b| over max(1, max |b|). */
function relDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  let scale = 1;
  for (let i = 0; i < a.length; i++) {
    worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return worst / scale;
}

/** Greedy layer-0 code: argmax over the allowed ids (suppressed: [128, 1152) except codec_eos). */
function talkerArgmax(logits: Float32Array): number {
  const [lo, hi] = manifest.codec.talker_suppressed_range;
  const eos = manifest.codec.codec_eos_token_id;
  let best = -1;
  for (let i = 0; i < logits.length; i++) {
    if (i >= lo && i < hi && i !== eos) continue;
    if (best < 0 || logits[i]! > logits[best]!) best = i;
  }
  return best;
}

async function failure(p: Promise<unknown> | (() => unknown)): Promise<{ code?: string; message: string }> {
  try {
    if (typeof p === 'function') p();
    else await p;
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error('expected a failure');
}

let talker: NativeTalker;
let predictor: NativeCodePredictor;

beforeAll(async () => {
  talker = await nativeAddon().loadTalker(await readTalkerCheckpoint(TINY, { threads: 2 }));
  predictor = await nativeAddon().loadCodePredictor(await readCodePredictorCheckpoint(TINY, { threads: 2 }));
});
afterAll(() => {
  talker?.close();
  predictor?.close();
});

describe('checkpoint specs', () => {
  it('reads every size and id from talker_config', async () => {
    const t = await readTalkerCheckpoint(TINY);
    expect(t).toMatchObject({
      vocabSize: 1152,
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      numExperts: 4,
      numExpertsPerTok: 2,
      moeIntermediateSize: 32,
      sharedExpertIntermediateSize: 64,
      sparseLayers: [true, true],
      mropeSection: [4, 2, 2],
      numCodeGroups: 16,
      thinkerHiddenSize: 64,
      acceptHiddenLayer: 1,
      embedTensors: ['model.codec_embedding.weight'],
      headTensors: ['codec_head.weight'],
    });
    expect(t.codecIds).toMatchObject({ codecEosTokenId: 230, codecPadId: 228, codecBosId: 229, codecNothinkId: 235 });
    expect(t.speakerIds).toEqual({ chelsie: 381, ethan: 382, aiden: 383 });
    expect(t.tensors.every((x) => x.name.startsWith('talker.') && !x.name.startsWith('talker.code_predictor.'))).toBe(true);
    const p = await readCodePredictorCheckpoint(TINY);
    expect(p).toMatchObject({ vocabSize: 128, hiddenSize: 64, numLayers: 1, numExperts: 0, sparseLayers: [false], mropeSection: [8, 0, 0], numCodeGroups: 16 });
    expect(p.headTensors).toHaveLength(15);
    expect(p.embedTensors[14]).toBe('model.codec_embedding.14.weight');
    expect(predictor.numHeads).toBe(15);
  });

  it('rejects a checkpoint without a talker', async () => {
    const err = await failure(readTalkerCheckpoint(join(import.meta.dirname, 'fixtures', 'engine', 'tiny')));
    expect(err).toBeInstanceOf(CheckpointError);
    expect(err.code).toBe('checkpoint_config_invalid');
    const err2 = await failure(readCodePredictorCheckpoint(join(import.meta.dirname, 'fixtures', 'engine', 'tiny')));
    expect(err2.code).toBe('checkpoint_config_invalid');
    expect(err.message).toContain('enable_audio_output');
  });
});

describe('code predictor (goldens cp.*)', () => {
  const t = manifest.code_predictor.tensors;
  const prefill = f32(t.prefill_embeds!);
  const decodeEmbeds = f32(t.decode_embeds!);
  const logits = f32(t.logits!);
  const codes = i32(t.codes!);
  const H = 64;
  const V = 128;

  it('generate(): codes 1..15 exact, logits within 1e-4', async () => {
    for (let f = 0; f < manifest.code_predictor.frames; f++) {
      const out = await predictor.generate(prefill.slice(f * 2 * H, (f + 1) * 2 * H));
      expect([...out.codes]).toEqual([...codes.subarray(f * 15, (f + 1) * 15)]);
      expect(relDiff(out.logits, logits.subarray(f * 15 * V, (f + 1) * 15 * V))).toBeLessThan(REL_TOL);
    }
  });

  it('sessions with the golden step embeddings, and embed() equals them', async () => {
    for (let f = 0; f < manifest.code_predictor.frames; f++) {
      const s = predictor.newSession(16);
      const first = await s.prefill({ embeds: prefill.slice(f * 2 * H, (f + 1) * 2 * H), positions: Float32Array.from([0, 1, 0, 1, 0, 1]) });
      expect(relDiff(first, logits.subarray(f * 15 * V, f * 15 * V + V))).toBeLessThan(REL_TOL);
      for (let k = 1; k <= 14; k++) {
        const e = decodeEmbeds.slice((f * 14 + k - 1) * H, (f * 14 + k) * H);
        expect([...predictor.embed(Int32Array.of(codes[f * 15 + k - 1]!), k - 1)]).toEqual([...e]);
        const out = await s.decode(e, [k + 1, k + 1, k + 1], k);
        expect(relDiff(out, logits.subarray((f * 15 + k) * V, (f * 15 + k + 1) * V))).toBeLessThan(REL_TOL);
      }
      expect(s.length).toBe(16);
      s.release();
    }
  });
});

for (const name of ['talker_text', 'talker_image'] as const) {
  describe(`talker (goldens ${name}.*)`, () => {
    const c = manifest[name];
    const t = c.tensors;
    const H = 64;
    const V = 1152;
    const embeds = f32(t.inputs_embeds!);
    const L = t.inputs_embeds!.shape[0]!;
    const positions = new Float32Array(i32(t.talker_position_ids!));
    const goldLogits = f32(t.talker_logits!);
    const goldHidden = f32(t.talker_hidden!);
    const stepEmbeds = f32(t.step_embeds!);
    const steps = c.codes0.length;

    it('prefill + greedy steps with the golden step embeddings: codes0 exact, logits within 1e-4', async () => {
      const s = talker.newSession(64);
      let out = await s.prefill({ embeds, positions });
      const got: number[] = [];
      for (let step = 0; step < steps; step++) {
        expect(relDiff(out.logits, goldLogits.subarray(step * V, (step + 1) * V))).toBeLessThan(REL_TOL);
        expect(relDiff(out.hidden, goldHidden.subarray(step * H, (step + 1) * H))).toBeLessThan(REL_TOL);
        got.push(talkerArgmax(out.logits));
        if (step + 1 < steps) {
          const p = c.decode_positions[step]!;
          out = await s.decode(stepEmbeds.slice(step * H, (step + 1) * H), [p, p, p]);
        }
      }
      expect(got).toEqual(c.codes0);
      expect(s.length).toBe(L + steps - 1);
      s.release();
    });

    it('the whole loop natively: talker + code predictor + step embeddings built from the engine', async () => {
      const trailing = f32(t.trailing_text_hidden!);
      const ttsPad = f32(t.tts_special_embeds!).slice(2 * H, 3 * H);
      const cpLogits = f32(t.cp_logits!);
      const s = talker.newSession(64);
      let out = await s.prefill({ embeds, positions });
      const frames: number[][] = [];
      for (let step = 0; step < c.n_frames; step++) {
        const code0 = talkerArgmax(out.logits);
        const cpPrefill = new Float32Array(2 * H);
        cpPrefill.set(out.hidden, 0);
        cpPrefill.set(talker.embed(Int32Array.of(code0)), H);
        const cp = await predictor.generate(cpPrefill);
        expect(relDiff(cp.logits, cpLogits.subarray(step * 15 * 128, (step + 1) * 15 * 128))).toBeLessThan(REL_TOL);
        frames.push([code0, ...cp.codes]);
        const next = talker.embed(Int32Array.of(code0));
        for (let k = 0; k < 15; k++) {
          const e = predictor.embed(Int32Array.of(cp.codes[k]!), k);
          for (let h = 0; h < H; h++) next[h]! += e[h]!;
        }
        const text = step < trailing.length / H ? trailing.subarray(step * H, (step + 1) * H) : ttsPad;
        for (let h = 0; h < H; h++) next[h]! += text[h]!;
        expect(relDiff(next, stepEmbeds.subarray(step * H, (step + 1) * H))).toBeLessThan(1e-5);
        const p = c.decode_positions[step]!;
        out = await s.decode(next, [p, p, p]);
        expect(relDiff(out.logits, goldLogits.subarray((step + 1) * V, (step + 2) * V))).toBeLessThan(REL_TOL);
      }
      expect(talkerArgmax(out.logits)).toBe(c.codes0[c.n_frames]);
      expect(frames).toEqual(c.codes_frames_x16);
      s.release();
    });
  });
}

describe('talker projections (text_projection, hidden_projection)', () => {
  it('project() gives the user part of the golden talker prompts within 1e-4', async () => {
    const H = 64;
    const imageId = 7;
    for (const name of ['talker_text', 'talker_image'] as const) {
      const c = manifest[name];
      const ids = i32(c.tensors.input_ids!);
      const embeds = f32(c.tensors.thinker_embeds!);
      const accept = f32(c.tensors.thinker_accept_hidden!);
      const gold = f32(c.tensors.user_embeds!);
      for (const [k, i] of c.user_positions.entries()) {
        const media = ids[i] === imageId;
        const row = await talker.project((media ? accept : embeds).slice(i * H, (i + 1) * H), media ? 1 : 0);
        expect(relDiff(row, gold.subarray(k * H, (k + 1) * H))).toBeLessThan(REL_TOL);
      }
      // Many rows at once equal row by row.
      const text = c.user_positions.filter((i) => ids[i] !== imageId);
      const rows = new Float32Array(text.length * H);
      text.forEach((i, k) => rows.set(embeds.subarray(i * H, (i + 1) * H), k * H));
      const all = await talker.project(rows, 0);
      const one = await talker.project(rows.slice(0, H), 0);
      expect([...all.subarray(0, H)]).toEqual([...one]);
    }
  });

  it('rejects a bad projection index or row size', async () => {
    expect((await failure(talker.project(new Float32Array(64), 2))).code).toBe('thinker_input_invalid');
    expect((await failure(talker.project(new Float32Array(63), 0))).code).toBe('thinker_input_invalid');
    expect((await failure((predictor as unknown as NativeTalker).project(new Float32Array(64), 0))).code).toBe('thinker_input_invalid');
  });
});

describe('bad input', () => {
  it('rejects malformed embeddings, positions, heads and tables with thinker_input_invalid', async () => {
    const s = talker.newSession(8);
    const bad = [
      s.prefill({ embeds: new Float32Array(63), positions: new Float32Array(3) }),
      s.prefill({ embeds: new Float32Array(64), positions: new Float32Array(6) }),
      s.prefill({ embeds: Float32Array.of(NaN, ...new Float32Array(63)), positions: new Float32Array(3) }),
      s.prefill({ embeds: new Float32Array(64), positions: new Float32Array(3), head: 1 }),
      s.decode(new Float32Array(65), [0, 0, 0]),
      predictor.generate(new Float32Array(65)),
      predictor.generate(new Float32Array(0)),
    ];
    for (const p of bad) expect((await failure(p)).code).toBe('thinker_input_invalid');
    expect(s.length).toBe(0);
    expect((await failure(s.prefill({ embeds: new Float32Array(9 * 64), positions: new Float32Array(27) }))).code).toBe('thinker_context_full');
    const ps = predictor.newSession(4);
    expect((await failure(ps.decode(new Float32Array(64), [0, 0, 0], 15))).code).toBe('thinker_input_invalid');
    expect((await failure(() => predictor.embed(Int32Array.of(0), 15))).code).toBe('thinker_input_invalid');
    expect((await failure(() => predictor.embed(Int32Array.of(128), 0))).code).toBe('token_id_invalid');
    expect((await failure(() => talker.embed(Int32Array.of(1152)))).code).toBe('token_id_invalid');
    s.release();
    ps.release();
    expect((await failure(s.decode(new Float32Array(64), [0, 0, 0]))).code).toBe('session_released');
  });

  it('rejects a busy session and work on a closed model', async () => {
    const s = talker.newSession(8);
    const first = s.prefill({ embeds: new Float32Array(64), positions: new Float32Array(3) });
    expect((await failure(s.decode(new Float32Array(64), [1, 1, 1]))).code).toBe('session_busy');
    await first;
    const extra = await nativeAddon().loadCodePredictor(await readCodePredictorCheckpoint(TINY, { threads: 1 }));
    extra.close();
    expect((await failure(extra.generate(new Float32Array(128)))).code).toBe('thinker_closed');
    s.release();
  });

  it('runs off the event loop: calls return pending promises', async () => {
    const pending = Symbol('pending');
    const g = predictor.generate(new Float32Array(128));
    expect(await Promise.race([g.then(() => 'done'), Promise.resolve(pending)])).toBe(pending);
    await g;
    const s = talker.newSession(8);
    const p = s.prefill({ embeds: new Float32Array(128), positions: new Float32Array(6) });
    expect(await Promise.race([p.then(() => 'done'), Promise.resolve(pending)])).toBe(pending);
    await p;
    s.release();
  });
});
