// `omni-gateway preprocess` with video and audio-in-video against the reference processor
// (scripts/video_fixtures.py: Qwen3OmniMoeProcessor + get_rope_index on the same decoded frames).
// The goldens keep pixel_values_videos out of the safetensors (size); its rows, row means and sums
// are in the json.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/codecs/safetensors.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'omni-gateway.js');
const FIX = join(import.meta.dirname, 'fixtures', 'video');

interface PixelStats {
  shape: [number, number];
  sum: number;
  rows: Record<string, number[]>;
  row_means: number[];
}

function run(conversation: string, extra: string[]): Record<string, { dtype: string; shape: readonly number[]; data: Uint8Array }> {
  const out = join(mkdtempSync(join(tmpdir(), 'omni-ppv-')), 'model-input.safetensors');
  const r = spawnSync(process.execPath, [BIN, 'preprocess', '--input', join(FIX, conversation), '--out', out, ...extra], { encoding: 'utf8' });
  expect(r.stderr).toMatch(/temporal steps/);
  expect(r.status, r.stderr).toBe(0);
  return decodeSafetensors(readFileSync(out)).tensors;
}

const f32 = (data: Uint8Array): Float32Array => new Float32Array(new Uint8Array(data).buffer);

function expectMatches(golden: string, ours: ReturnType<typeof run>): void {
  const ref = decodeSafetensors(readFileSync(join(FIX, golden))).tensors;
  const stats = (JSON.parse(readFileSync(join(FIX, golden.replace('.safetensors', '.json')), 'utf8')) as {
    tensors: { pixel_values_videos: PixelStats };
  }).tensors.pixel_values_videos;
  expect(Object.keys(ours).sort()).toEqual([...Object.keys(ref), 'pixel_values_videos'].sort());
  for (const [name, t] of Object.entries(ref)) {
    const o = ours[name]!;
    expect({ name, dtype: o.dtype, shape: o.shape }).toEqual({ name, dtype: t.dtype, shape: t.shape });
    if (name === 'input_features') {
      const a = f32(o.data);
      const b = f32(t.data);
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      expect(worst, name).toBeLessThan(1e-4);
    } else {
      // ids, masks, grids, seconds per grid, positions and rope deltas: identical bytes
      expect(Buffer.compare(Buffer.from(o.data), Buffer.from(t.data)), name).toBe(0);
    }
  }
  const pv = ours.pixel_values_videos!;
  expect(pv.dtype).toBe('F32');
  expect(pv.shape).toEqual(stats.shape);
  const v = f32(pv.data);
  for (const [row, values] of Object.entries(stats.rows)) {
    const r = Number(row);
    let worst = 0;
    values.forEach((x, k) => (worst = Math.max(worst, Math.abs(v[r * 1536 + k]! - x))));
    expect(worst, `row ${r}`).toBeLessThanOrEqual(2 / 127.5);
  }
  let worstMean = 0;
  stats.row_means.forEach((m, r) => {
    let s = 0;
    for (let k = 0; k < 1536; k++) s += v[r * 1536 + k]!;
    worstMean = Math.max(worstMean, Math.abs(s / 1536 - m));
  });
  expect(worstMean).toBeLessThan(1e-3);
}

describe('preprocess with video (golden from the reference processor)', () => {
  it('video: ids, grids, seconds per grid and positions identical; patches within tolerance', () => {
    expectMatches('video_expected.safetensors', run('video_conversation.json', []));
  });

  it('audio in video: the soundtrack interleaved with the frames, as the reference does', () => {
    expectMatches('aiv_expected.safetensors', run('aiv_conversation.json', ['--use-audio-in-video']));
  });

  it('--video-grid-fps 1 gives transformers default of 2 s per grid', () => {
    const t = run('video_conversation.json', ['--video-grid-fps', '1']);
    expect(Array.from(f32(t.video_second_per_grid!.data))).toEqual([2]);
  });

  it('bad flags and a video without sound get one clear line and exit 2', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'omni-ppv-')), 'x.safetensors');
    const bad = spawnSync(process.execPath, [BIN, 'preprocess', '--input', join(FIX, 'video_conversation.json'), '--out', out, '--fps', 'fast'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--fps must be a number from 0.01 to 1000, got "fast"/);
    const silent = spawnSync(process.execPath, [BIN, 'preprocess', '--input', join(FIX, 'video_conversation.json'), '--out', out, '--use-audio-in-video'], { encoding: 'utf8' });
    expect(silent.status).toBe(2);
    expect(silent.stderr).toMatch(/messages\[1\]\.content\[1\].*no soundtrack/);
    expect(existsSync(out)).toBe(false); // nothing half-written under the requested name
  });
});
