// Video files to patches against the reference: golden fixtures from scripts/video_fixtures.py
// (transformers' Qwen3OmniMoeProcessor on the frames ffmpeg decodes, sampled by the official rule).
// Grids, token counts and seconds per grid exact; values within 2 / 127.5 with mean error < 1e-3.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PATCH_ROW_FLOATS } from '../src/codecs/image/smart_resize.js';
import { planVideo, videoPatchSteps, videoToPatches } from '../src/codecs/video/patches.js';

const dir = new URL('./fixtures/video/', import.meta.url);
const MAX_ABS = 2 / 127.5 + 1e-6;
const MEAN_ABS = 1e-3;

interface VideoCase {
  name: string;
  file: string;
  sampling: 'qwen-omni-utils' | 'explicit';
  source: { width: number; height: number; total_frames: number; video_fps: number };
  indices: number[];
  sample_fps: number;
  resized_height: number;
  resized_width: number;
  video_grid_thw: [number, number, number];
  num_rows: number;
  num_video_tokens: number;
  video_second_per_grid: number;
  video_second_per_grid_hf_default: number;
  rows_stored: number[];
}
const manifest = JSON.parse(readFileSync(new URL('manifest.json', dir), 'utf8')) as { cases: VideoCase[] };
const f32 = (name: string): Float32Array => {
  const b = readFileSync(new URL(name, dir));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const path = (file: string): string => new URL(file, dir).pathname;

describe('video patches parity with transformers (golden fixtures)', () => {
  it.each(manifest.cases.map((c) => [c.name, c] as const))('%s: plan, grid and pixel values', async (_n, c) => {
    const options = c.sampling === 'explicit' ? { frameIndices: c.indices } : {};
    const v = await videoToPatches(path(c.file), options);
    expect([v.probe.width, v.probe.height, v.probe.totalFrames]).toEqual([c.source.width, c.source.height, c.source.total_frames]);
    expect(v.probe.fps).toBeCloseTo(c.source.video_fps, 9);
    expect(v.indices).toEqual(c.indices);
    expect(v.sampleFps).toBeCloseTo(c.sample_fps, 9);
    expect([v.resizedHeight, v.resizedWidth]).toEqual([c.resized_height, c.resized_width]);
    expect(v.grid).toEqual(c.video_grid_thw);
    expect(v.tokens).toBe(c.num_video_tokens);
    expect(v.secondPerGrid).toBeCloseTo(c.video_second_per_grid, 12);
    expect(v.pixelValues.length).toBe(c.num_rows * PATCH_ROW_FLOATS);

    const rows = f32(`${c.name}.rows.f32`);
    const means = f32(`${c.name}.row_means.f32`);
    let worst = 0;
    let sum = 0;
    c.rows_stored.forEach((r, j) => {
      for (let k = 0; k < PATCH_ROW_FLOATS; k++) {
        const d = Math.abs(v.pixelValues[r * PATCH_ROW_FLOATS + k]! - rows[j * PATCH_ROW_FLOATS + k]!);
        worst = Math.max(worst, d);
        sum += d;
      }
    });
    let worstMean = 0;
    for (let r = 0; r < c.num_rows; r++) {
      let s = 0;
      for (let k = 0; k < PATCH_ROW_FLOATS; k++) s += v.pixelValues[r * PATCH_ROW_FLOATS + k]!;
      worstMean = Math.max(worstMean, Math.abs(s / PATCH_ROW_FLOATS - means[r]!));
    }
    expect(worst).toBeLessThanOrEqual(MAX_ABS);
    expect(sum / (c.rows_stored.length * PATCH_ROW_FLOATS)).toBeLessThan(MEAN_ABS);
    expect(worstMean).toBeLessThan(MEAN_ABS);
  });

  it("secondPerGridFps 1 reproduces transformers' default of 2 s per grid", async () => {
    const c = manifest.cases[0]!;
    const plan = await planVideo(path(c.file), { secondPerGridFps: 1 });
    expect(plan.secondPerGrid).toBe(c.video_second_per_grid_hf_default);
  });

  it('streams one temporal step at a time, in order, with the frame pairs of the plan', async () => {
    const c = manifest.cases[0]!;
    const plan = await planVideo(path(c.file));
    const seen: [number, number][] = [];
    for await (const s of videoPatchSteps(plan)) {
      expect(s.t).toBe(seen.length);
      expect(s.pixelValues.length).toBe(plan.rowsPerStep * PATCH_ROW_FLOATS);
      seen.push(s.frames);
    }
    expect(seen.flat()).toEqual(c.indices);
  });

  it('bfloat16 output is the float32 output rounded to nearest even', async () => {
    const c = manifest.cases[3]!;
    const [a, b] = await Promise.all([videoToPatches(path(c.file)), videoToPatches(path(c.file), { dtype: 'bfloat16' })]);
    expect(b.pixelValues).toBeInstanceOf(Uint16Array);
    const bits = new Uint32Array(new Float32Array(a.pixelValues).buffer);
    for (let i = 0; i < bits.length; i += 97) {
      const x = bits[i]!;
      const rounded = ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
      expect(b.pixelValues[i]).toBe(rounded);
    }
  });
});
