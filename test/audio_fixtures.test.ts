// Integrity of the golden log-mel fixtures: regenerated inputs match the manifest hashes, frame and
// token counts follow the formula, and the stored files agree with the manifest.
import { existsSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  FIXTURE_DIR,
  HOP,
  MEL_BINS,
  audioTokensClosedForm,
  audioTokensStepwise,
  clipInt16,
  loadFixtureClip,
  loadHannWindow,
  loadManifest,
  loadMelFilters,
  roundHalfEven,
  sha256Int16,
} from './helpers/audio-clips.js';
import { maxAbsDiff, referenceFilterBank, referenceLogMel } from './helpers/mel-reference.js';

const manifest = loadManifest();
const clipNames = manifest.clips.map((c) => c.name);

describe('audio fixture inputs', () => {
  it('rounds half to even like numpy.rint', () => {
    // + 0 turns -0 into 0 (numpy gives -0.0 for -0.5; the int16 value is the same)
    expect([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4999, -2.5001, 32767.5].map((v) => roundHalfEven(v) + 0)).toEqual([
      -2, -2, 0, 0, 2, 2, 2, -3, 32768,
    ]);
  });

  it.each(clipNames)('%s: regenerated int16 samples match the manifest sha256', (name) => {
    const entry = manifest.clips.find((c) => c.name === name)!;
    const s = clipInt16(entry);
    expect(s.length).toBe(entry.num_samples);
    expect(sha256Int16(s)).toBe(entry.sha256_int16_le);
  });

  it('error cases regenerate exactly and record the exception transformers raised', () => {
    expect(manifest.error_cases.length).toBeGreaterThan(0);
    for (const e of manifest.error_cases) {
      const s = clipInt16(e);
      expect(s.length).toBe(e.num_samples);
      expect(sha256Int16(s)).toBe(e.sha256_int16_le);
      expect(e.num_samples).toBeLessThanOrEqual(200);
      expect(e.raises?.message).toMatch(/padding/i);
    }
  });
});

describe('audio fixture frames and tokens', () => {
  it('token formula agrees with the spec examples', () => {
    const examples: [number, number][] = [
      [0, 0], [1, 1], [8, 1], [9, 2], [17, 3], [50, 7], [99, 13], [100, 13], [101, 14], [250, 33],
      [337, 44], [400, 52], [1000, 130], [3000, 390],
    ];
    for (const [f, t] of examples) {
      expect(audioTokensClosedForm(f)).toBe(t);
      expect(audioTokensStepwise(f)).toBe(t);
    }
  });

  it.each(clipNames)('%s: F = floor(n/160), tokens follow the formula, files match the manifest', (name) => {
    const clip = loadFixtureClip(name);
    const e = clip.entry;
    expect(e.num_frames).toBe(Math.floor(e.num_samples / HOP));
    expect(e.attention_mask_sum).toBe(e.num_frames);
    expect(e.num_audio_tokens).toBe(audioTokensClosedForm(e.num_frames));
    expect(e.num_audio_tokens).toBe(audioTokensStepwise(e.num_frames));

    const idx = clip.frameIndices;
    expect(idx.length).toBe(e.num_stored_frames);
    expect(clip.frames.length).toBe(idx.length * MEL_BINS);
    expect(statSync(FIXTURE_DIR + e.frames_file).size).toBe(idx.length * MEL_BINS * 4);
    for (let j = 0; j < idx.length; j++) {
      expect(idx[j]).toBeGreaterThanOrEqual(j === 0 ? 0 : idx[j - 1]! + 1);
      expect(idx[j]).toBeLessThan(e.num_frames);
    }
    if (e.frames_stored !== 'all') {
      expect(idx.slice(0, 100)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      expect(idx.slice(-100)).toEqual(Array.from({ length: 100 }, (_, i) => e.num_frames - 100 + i));
    }

    let min = Infinity;
    let max = -Infinity;
    let sum = 0;
    for (const v of clip.frames) {
      min = Math.min(min, v);
      max = Math.max(max, v);
      sum += v;
    }
    const s = e.stats;
    expect(min).toBeGreaterThanOrEqual(s.min);
    expect(max).toBeLessThanOrEqual(s.max);
    expect(s.min).toBeGreaterThanOrEqual(s.floor_value);
    expect(s.max).toBeCloseTo((s.clip_max_log10 + 4) / 4, 6);
    if (e.frames_stored === 'all') {
      expect(min).toBe(s.min);
      expect(max).toBe(s.max);
      expect(Math.abs(sum / clip.frames.length - s.mean)).toBeLessThan(1e-6);
    }
    if (clip.frameMeans) {
      expect(clip.frameMeans.length).toBe(e.num_frames);
      for (let j = 0; j < idx.length; j++) {
        let m = 0;
        for (let b = 0; b < MEL_BINS; b++) m += clip.frames[j * MEL_BINS + b]!;
        expect(Math.abs(m / MEL_BINS - clip.frameMeans[idx[j]!]!)).toBeLessThan(1e-6);
      }
      let total = 0;
      for (const v of clip.frameMeans) total += v;
      expect(Math.abs(total / e.num_frames - s.mean)).toBeLessThan(1e-5);
    }
  });

  it('silence is -1.5 everywhere and the quiet-then-loud clip hits the whole-clip floor', () => {
    const silence = loadFixtureClip('silence_1s');
    expect(silence.frames.every((v) => v === -1.5)).toBe(true);
    const ql = loadFixtureClip('quiet_then_loud');
    expect(ql.entry.stats.min).toBe(ql.entry.stats.floor_value);
    expect(ql.entry.stats.floored_fraction).toBeGreaterThan(0.1);
  });

  it('speech WAV exists and every fixture file named in the manifest exists', () => {
    for (const e of manifest.clips) {
      for (const f of [e.frames_file, e.frame_means_file, e.wav]) if (f) expect(existsSync(FIXTURE_DIR + f)).toBe(true);
    }
  });
});

describe('audio fixture stages', () => {
  it.each(['short_201', 'short_250', 'short_399', 'short_400', 'tone_440_1s', 'clip_1s', 'silence_1s'])(
    '%s: stored frames agree with the independent float64 JS reference within 1e-4',
    (name) => {
      const clip = loadFixtureClip(name);
      const F = clip.entry.num_frames;
      const ref = referenceLogMel(clip.samples); // mel-major (128 x F)
      let d = 0;
      clip.frameIndices.forEach((t, j) => {
        for (let m = 0; m < MEL_BINS; m++) d = Math.max(d, Math.abs(clip.frames[j * MEL_BINS + m]! - ref[m * F + t]!));
      });
      expect(d).toBeLessThan(1e-4);
    },
  );

  it('mel filter bank is 201 x 128 and equals the independent Slaney formula', () => {
    const fb = loadMelFilters();
    expect(fb.length).toBe(201 * 128);
    expect(maxAbsDiff(fb, referenceFilterBank())).toBeLessThan(1e-7);
  });

  it('Hann window is the periodic 400-point window (torch evaluates it in float32: a few ulps off)', () => {
    const w = loadHannWindow();
    expect(w.length).toBe(400);
    const ref = Array.from({ length: 400 }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / 400));
    expect(maxAbsDiff(w, ref)).toBeLessThan(5e-7);
  });
});
