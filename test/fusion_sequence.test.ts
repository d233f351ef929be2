// SequenceBuilder: incremental appends equal the one-shot build (property test), and the pieces
// it is made of: placeholder counts, the audio-in-video interleave, decode positions, errors.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SPECIAL_IDS } from '../src/codecs/text/special_tokens.js';
import { FusionError } from '../src/fusion/errors.js';
import {
  audioPlaceholderCount,
  imagePlaceholderCount,
  interleaveAudioInVideo,
  videoPlaceholderCount,
  type Grid,
} from '../src/fusion/placeholders.js';
import { ropeIndex } from '../src/fusion/rope_index.js';
import { SequenceBuilder, buildSequence, type Segment } from '../src/fusion/sequence.js';

const evenDim = fc.integer({ min: 1, max: 8 }).map((v) => v * 2);
const grid = (maxT: number): fc.Arbitrary<Grid> =>
  fc.tuple(fc.integer({ min: 1, max: maxT }), evenDim, evenDim).map(([t, h, w]) => [t, h, w] as const);
const frames = fc.integer({ min: 1, max: 450 });
const textIds = fc.array(fc.integer({ min: 0, max: 151_000 }), { minLength: 1, maxLength: 6 });
const spg = fc.constantFrom(2, 1, 0.5, 2 / 3, 0.4, 1.5);

const segment: fc.Arbitrary<Segment> = fc.oneof(
  textIds.map((ids) => ({ type: 'tokens', ids }) as const),
  frames.map((f) => ({ type: 'audio', frames: f }) as const),
  grid(1).map((g) => ({ type: 'image', grid: g }) as const),
  fc.tuple(grid(4), spg).map(([g, s]) => ({ type: 'video', grid: g, secondPerGrid: s }) as const),
  fc.tuple(grid(4), spg, frames).map(([g, s, f]) => ({ type: 'video', grid: g, secondPerGrid: s, audioFrames: f }) as const),
);

describe('SequenceBuilder', () => {
  it('incremental appends with snapshots in between equal the one-shot build', () => {
    fc.assert(
      fc.property(fc.array(segment, { minLength: 1, maxLength: 10 }), fc.array(fc.nat(10)), (segs, cuts) => {
        const whole = buildSequence(segs);
        const b = new SequenceBuilder();
        const snapAt = new Set(cuts);
        segs.forEach((s, i) => {
          b.appendSegment(s);
          if (snapAt.has(i)) {
            // a snapshot is a prefix of the final result
            const part = b.build();
            expect(Array.from(part.inputIds)).toEqual(Array.from(whole.inputIds.subarray(0, part.length)));
            for (let r = 0; r < 3; r++) {
              expect(Array.from(part.positionIds.subarray(r * part.length, (r + 1) * part.length))).toEqual(
                Array.from(whole.positionIds.subarray(r * whole.length, r * whole.length + part.length)),
              );
            }
          }
        });
        const inc = b.build();
        expect(Array.from(inc.inputIds)).toEqual(Array.from(whole.inputIds));
        expect(Array.from(inc.positionIds)).toEqual(Array.from(whole.positionIds));
        expect(inc.ropeDelta).toBe(whole.ropeDelta);
      }),
      { numRuns: 300 },
    );
  });

  it('agrees with get_rope_index over its own ids when all videos carry (or all lack) audio', () => {
    const noAiv = segment.filter((s) => !(s.type === 'video' && s.audioFrames !== undefined));
    fc.assert(
      fc.property(fc.array(noAiv, { minLength: 1, maxLength: 8 }), (segs) => {
        const built = buildSequence(segs);
        const r = ropeIndex(built.inputIds, {
          audioFrames: segs.flatMap((s) => (s.type === 'audio' ? [s.frames] : [])),
          imageGrids: segs.flatMap((s) => (s.type === 'image' ? [s.grid] : [])),
          videoGrids: segs.flatMap((s) => (s.type === 'video' ? [s.grid] : [])),
          secondPerGrids: segs.flatMap((s) => (s.type === 'video' ? [s.secondPerGrid] : [])),
        });
        expect(Array.from(r.positionIds)).toEqual(Array.from(built.positionIds));
        expect(r.ropeDelta).toBe(built.ropeDelta);
      }),
      { numRuns: 200 },
    );
  });

  it('text-only positions are 0..n-1 on all rows with delta 0, and decoding continues at max + 1', () => {
    const b = new SequenceBuilder().appendTokens([1, 2, 3, 4]);
    const s = b.build();
    expect(Array.from(s.positionIds)).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3]);
    expect(s.ropeDelta).toBe(0);
    expect(b.generatedPosition(0)).toBe(4);
  });

  it('generated tokens continue at max + 1 after media, and appending them as text agrees', () => {
    const b = new SequenceBuilder().appendTokens([10, 11]).appendImage([1, 8, 12]).appendTokens([12]);
    const s = b.build();
    // image tokens: 4x6 grid from position 3 -> max w = 3 + 5 = 8; end marker 9; text 10
    expect(s.positionIds[s.length - 1]).toBe(10);
    expect(s.ropeDelta).toBe(11 - s.length);
    const next = [0, 1, 2].map((k) => b.generatedPosition(k));
    expect(next).toEqual([11, 12, 13]);
    b.appendTokens([5, 6, 7]);
    const after = b.build();
    expect(Array.from(after.positionIds.subarray(after.length - 3, after.length))).toEqual(next);
  });

  it('rejects media ids in text and leaves the sequence unchanged', () => {
    const b = new SequenceBuilder().appendTokens([1]);
    for (const id of [SPECIAL_IDS.audioPad, SPECIAL_IDS.imagePad, SPECIAL_IDS.videoPad, SPECIAL_IDS.visionStart, SPECIAL_IDS.audioStart]) {
      expect(() => b.appendTokens([2, id])).toThrow(FusionError);
    }
    expect(() => b.appendImage([1, 3, 4])).toThrow(FusionError);
    expect(() => b.appendAudio(0)).toThrow(FusionError);
    expect(() => b.appendVideo([2, 4, 4], 0)).toThrow(FusionError);
    expect(b.length).toBe(1);
  });
});

describe('placeholders', () => {
  it('counts tokens from codec outputs', () => {
    expect([1, 8, 9, 50, 100, 101, 337, 1000].map(audioPlaceholderCount)).toEqual([1, 1, 2, 7, 13, 14, 44, 130]);
    expect(imagePlaceholderCount([1, 26, 40])).toBe(260);
    expect(videoPlaceholderCount([4, 20, 28])).toBe(560);
  });

  it('interleaves a 4 s soundtrack with a 2 s-per-grid video as the spec example', () => {
    // spec §7: grid 4x20x28 (140 per step, keys 0, 26, 52, 78), 53 audio tokens
    const runs = interleaveAudioInVideo([4, 20, 28], 53, 2);
    expect(runs).toEqual([
      { kind: 'video', count: 140 },
      { kind: 'audio', count: 26 },
      { kind: 'video', count: 140 },
      { kind: 'audio', count: 26 },
      { kind: 'video', count: 140 },
      { kind: 'audio', count: 1 },
      { kind: 'video', count: 140 },
    ]);
  });

  it('puts video first on equal keys and appends leftover audio', () => {
    expect(interleaveAudioInVideo([2, 2, 2], 30, 1)).toEqual([
      { kind: 'video', count: 1 },
      { kind: 'audio', count: 13 },
      { kind: 'video', count: 1 },
      { kind: 'audio', count: 17 },
    ]);
  });
});
