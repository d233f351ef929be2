// SequenceBuilder against a line-by-line port of transformers' get_rope_index (the Python loop with
// its `input_tokens.index(...)` scans and `llm_pos_ids_list[-1].max() + 1` starts), over random
// segment sequences including audio in video. Independent of src/fusion/rope.ts on purpose.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { audioTokenCount } from '../src/codecs/audio/mel.js';
import { buildSequence, type Segment } from '../src/fusion/sequence.js';
import type { Grid } from '../src/fusion/placeholders.js';

const f32 = Math.fround;
const IMAGE = 151655;
const VIDEO = 151656;
const AUDIO = 151675;
const VSTART = 151652;
const ASTART = 151669;
const P = 13;

type Chunk = number[][]; // [t[], h[], w[]]
const arangeChunk = (n: number, st: number): Chunk => [0, 1, 2].map(() => Array.from({ length: n }, (_, k) => f32(k + st)));
const chunkMax = (c: Chunk): number => Math.max(...c.flat());

function visionPos(st: number, grid: Grid, tIndex: number[]): Chunk {
  const gh = grid[1] / 2;
  const gw = grid[2] / 2;
  const c: Chunk = [[], [], []];
  for (const tv of tIndex) {
    for (let h = 0; h < gh; h++) {
      for (let w = 0; w < gw; w++) {
        c[0]!.push(f32(tv + st));
        c[1]!.push(f32(h + st));
        c[2]!.push(f32(w + st));
      }
    }
  }
  return c;
}

function getRopeIndex(
  tokens: number[],
  imageGrids: Grid[],
  videoGrids: Grid[],
  audioFrames: number[],
  spgs: number[],
  useAiv: boolean,
): { pos: Chunk; delta: number } {
  const vsIdx = tokens.flatMap((t, i) => (t === VSTART ? [i] : []));
  const visionTokens = vsIdx.map((i) => tokens[i + 1]);
  const audioNums = tokens.filter((t) => t === ASTART).length;
  const imageNums = visionTokens.filter((t) => t === IMAGE).length;
  const videoNums = visionTokens.filter((t) => t === (useAiv ? ASTART : VIDEO)).length;
  const list: Chunk[] = [];
  let st = 0;
  let [ri, rv, ra] = [imageNums, videoNums, audioNums];
  let [ii, vi, ai] = [0, 0, 0];
  const total = useAiv ? imageNums + audioNums : imageNums + videoNums + audioNums;
  const lastMax = (): number => (list.length > 0 ? f32(chunkMax(list[list.length - 1]!) + 1) : 0);
  for (let m = 0; m < total; m++) {
    let stIdx = lastMax();
    const edV = (tokens.includes(IMAGE) || tokens.includes(VIDEO)) && (rv > 0 || ri > 0) ? tokens.indexOf(VSTART, st) : tokens.length + 1;
    const edA = tokens.includes(AUDIO) && ra > 0 ? tokens.indexOf(ASTART, st) : tokens.length + 1;
    const minEd = Math.min(edV, edA);
    const textLen = minEd - st;
    if (textLen !== 0) {
      list.push(arangeChunk(textLen, stIdx));
      stIdx = f32(stIdx + textLen);
    }
    const aiv = minEd === edV && edV + 1 === edA;
    const bl = aiv ? 2 : 1;
    list.push(arangeChunk(bl, stIdx));
    stIdx = f32(stIdx + bl);
    if (minEd === edA) {
      const n = audioTokenCount(audioFrames[ai]!);
      list.push(arangeChunk(n, stIdx));
      st += textLen + bl + n + bl;
      ai++;
      ra--;
    } else if (tokens[edV + 1] === IMAGE) {
      const g = imageGrids[ii]!;
      list.push(visionPos(stIdx, g, Array.from({ length: g[0] }, (_, t) => t * P)));
      st += textLen + bl + (g[0] * g[1] * g[2]) / 4 + bl;
      ii++;
      ri--;
    } else if (tokens[edV + 1] === VIDEO) {
      const g = videoGrids[vi]!;
      const s = f32(spgs[vi]!);
      list.push(visionPos(stIdx, g, Array.from({ length: g[0] }, (_, t) => f32(f32(t * s) * P))));
      st += textLen + bl + (g[0] * g[1] * g[2]) / 4 + bl;
      vi++;
      rv--;
    } else {
      const n = audioTokenCount(audioFrames[ai]!);
      const a = arangeChunk(n, stIdx);
      const g = videoGrids[vi]!;
      const s = f32(spgs[vi]!);
      const v = visionPos(stIdx, g, Array.from({ length: g[0] }, (_, t) => f32(f32(t * s) * P)));
      let [j, k] = [0, 0];
      const col = (c: Chunk, from: number, to: number): Chunk => c.map((r) => r.slice(from, to));
      while (j < v[0]!.length && k < a[0]!.length) {
        if (v[0]![j]! <= a[0]![k]!) list.push(col(v, j, ++j));
        else list.push(col(a, k, ++k));
      }
      if (j < v[0]!.length) list.push(col(v, j, v[0]!.length));
      if (k < a[0]!.length) list.push(col(a, k, a[0]!.length));
      st += textLen + bl + n + (g[0] * g[1] * g[2]) / 4 + bl;
      ai++;
      vi++;
      rv--;
      ra--;
    }
    stIdx = lastMax();
    list.push(arangeChunk(bl, stIdx));
  }
  if (st < tokens.length) list.push(arangeChunk(tokens.length - st, lastMax()));
  const pos: Chunk = [0, 1, 2].map((r) => list.flatMap((c) => c[r]!));
  return { pos, delta: f32(f32(chunkMax(pos) + 1) - tokens.length) };
}

const evenDim = fc.integer({ min: 1, max: 10 }).map((v) => v * 2);
const grid = (maxT: number): fc.Arbitrary<Grid> =>
  fc.tuple(fc.integer({ min: 1, max: maxT }), evenDim, evenDim).map(([t, h, w]) => [t, h, w] as const);
const frames = fc.integer({ min: 1, max: 500 });
const spg = fc.constantFrom(2, 1, 0.5, 2 / 3, 0.4, 1.5, 0.8);

function segments(aiv: boolean): fc.Arbitrary<Segment[]> {
  const video = aiv
    ? fc.tuple(grid(5), spg, frames).map(([g, s, f]) => ({ type: 'video', grid: g, secondPerGrid: s, audioFrames: f }) as const)
    : fc.tuple(grid(5), spg).map(([g, s]) => ({ type: 'video', grid: g, secondPerGrid: s }) as const);
  const seg: fc.Arbitrary<Segment> = fc.oneof(
    fc.array(fc.integer({ min: 0, max: 151_000 }), { minLength: 1, maxLength: 5 }).map((ids) => ({ type: 'tokens', ids }) as const),
    frames.map((f) => ({ type: 'audio', frames: f }) as const),
    grid(1).map((g) => ({ type: 'image', grid: g }) as const),
    video,
  );
  return fc.array(seg, { minLength: 1, maxLength: 8 });
}

describe('SequenceBuilder vs a port of get_rope_index', () => {
  it.each([false, true])('same positions and delta (use_audio_in_video=%s)', (aiv) => {
    fc.assert(
      fc.property(segments(aiv), (segs) => {
        const built = buildSequence(segs);
        const ids = Array.from(built.inputIds);
        const ref = getRopeIndex(
          ids,
          segs.flatMap((s) => (s.type === 'image' ? [s.grid] : [])),
          segs.flatMap((s) => (s.type === 'video' ? [s.grid] : [])),
          segs.flatMap((s) => (s.type === 'audio' ? [s.frames] : s.type === 'video' && s.audioFrames !== undefined ? [s.audioFrames] : [])),
          segs.flatMap((s) => (s.type === 'video' ? [s.secondPerGrid] : [])),
          aiv,
        );
        const n = built.length;
        for (let r = 0; r < 3; r++) expect(Array.from(built.positionIds.subarray(r * n, (r + 1) * n))).toEqual(ref.pos[r]);
        // the reference's text-only branch (no image/video) is cumsum - 1 with delta 0 -- same numbers
        expect(built.ropeDelta).toBe(ref.delta);
      }),
      { numRuns: 300 },
    );
  });
});
