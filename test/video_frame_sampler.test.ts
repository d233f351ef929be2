// Live frames into temporal patch steps: rate limiting to 2 fps, pairing, drop-oldest when behind,
// segments on a size change, I420 conversion, and bad frames that leave the sampler running.
import { execFileSync } from 'node:child_process';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { CodecError } from '../src/codecs/errors.js';
import { FrameSampler, type LiveVideoStep } from '../src/codecs/video/frame_sampler.js';
import { temporalStep } from '../src/codecs/video/patches.js';
import { nativeAddon } from '../src/native/addon.js';

/** One testsrc2 frame as ffmpeg makes it: I420 bytes and ffmpeg's own RGB conversion of them. */
function ffmpegFrame(width: number, height: number, second = 0): { i420: Uint8Array; rgb: Uint8Array } {
  const src = ['-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${width}x${height}:rate=1`, '-ss', String(second), '-frames:v', '1'];
  const i420 = execFileSync('ffmpeg', [...src, '-pix_fmt', 'yuv420p', '-f', 'rawvideo', 'pipe:1']);
  const rgb = execFileSync('ffmpeg', ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${width}x${height}`, '-i', 'pipe:0', '-pix_fmt', 'rgb24', '-f', 'rawvideo', 'pipe:1'], { input: i420 });
  return { i420: new Uint8Array(i420), rgb: new Uint8Array(rgb) };
}

function i420Frame(width: number, height: number, fill: number, timestampMs: number) {
  const data = new Uint8Array(width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2)).fill(128);
  data.fill(fill, 0, width * height);
  return { kind: 'i420' as const, data, width, height, timestampMs };
}

function collect(options: Partial<ConstructorParameters<typeof FrameSampler>[0]> = {}) {
  const steps: LiveVideoStep[] = [];
  const errors: CodecError[] = [];
  const sampler = new FrameSampler({ onStep: (s) => steps.push(s), onError: (e) => errors.push(e), ...options });
  return { sampler, steps, errors };
}

describe('I420 to RGB', () => {
  it('agrees with ffmpeg (BT.601 limited range) within 3 levels, mean under 1', async () => {
    const { i420, rgb } = ffmpegFrame(320, 240);
    const ours = await nativeAddon().i420ToRgb(i420, 320, 240);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < rgb.length; i++) {
      const d = Math.abs(rgb[i]! - ours[i]!);
      max = Math.max(max, d);
      sum += d;
    }
    expect(max).toBeLessThanOrEqual(3);
    expect(sum / rgb.length).toBeLessThan(1);
  });

  it('odd sizes round the chroma planes up; a wrong length is frame_invalid', async () => {
    const ours = await nativeAddon().i420ToRgb(i420Frame(5, 3, 235, 0).data, 5, 3);
    expect(Array.from(ours.subarray(0, 3))).toEqual([255, 255, 255]);
    await expect(async () => nativeAddon().i420ToRgb(new Uint8Array(10), 5, 3)).rejects.toMatchObject({ code: 'frame_invalid' });
  });
});

describe('frame sampler', () => {
  it('keeps 2 frames a second from a 30 fps camera and pairs them into temporal steps', async () => {
    const { sampler, steps } = collect();
    const frames = [0, 1, 2, 3].map((s) => ffmpegFrame(320, 240, s));
    for (let i = 0; i < 58; i++) {
      const f = frames[Math.floor(i / 15)]!;
      sampler.push({ kind: 'i420', data: f.i420, width: 320, height: 240, timestampMs: (i * 1000) / 30 });
    }
    await sampler.flush();
    expect(sampler.stats).toMatchObject({ received: 58, skipped: 54, dropped: 0, failed: 0, steps: 2 });
    expect(steps.map((s) => s.timestampsMs)).toEqual([
      [0, 500],
      [1000, 1500],
    ]);
    expect(steps[0]!.grid).toEqual([1, 20, 28]); // 240x320 -> 320x448 in the video range
    expect(steps[0]!.tokens).toBe(140);
    // The same values as the file path's kernel on the same RGB frames.
    const [a, b] = await Promise.all([0, 1].map((k) => nativeAddon().i420ToRgb(frames[k]!.i420, 320, 240)));
    const expected = await temporalStep(a!, b!, 320, 240, 320, 448);
    expect(steps[0]!.pixelValues).toEqual(expected);
  });

  it('drops the oldest waiting frame when conversion falls behind, and counts it', async () => {
    const { sampler, steps } = collect({ maxPending: 2 });
    for (let i = 0; i < 8; i++) sampler.push(i420Frame(64, 64, 16 + i * 20, i * 500));
    await sampler.flush();
    expect(sampler.stats.dropped).toBeGreaterThan(0);
    expect(sampler.stats.received).toBe(8);
    const used = steps.flatMap((s) => s.timestampsMs);
    expect(used[used.length - 1]).toBe(3500); // the newest frame always survives
    expect(new Set(used).size + sampler.stats.dropped).toBe(8);
  });

  it('a size change ends the segment (odd frame repeated) and starts a new one', async () => {
    const { sampler, steps } = collect();
    sampler.push(i420Frame(64, 64, 50, 0));
    sampler.push(i420Frame(64, 64, 60, 500));
    sampler.push(i420Frame(64, 64, 70, 1000));
    sampler.push(i420Frame(96, 64, 80, 1500));
    sampler.push(i420Frame(96, 64, 90, 2000));
    await sampler.flush();
    expect(steps.map((s) => [s.segment, s.t, s.timestampsMs])).toEqual([
      [0, 0, [0, 500]],
      [0, 1, [1000, 1000]],
      [1, 0, [1500, 2000]],
    ]);
  });

  it('takes JPEG frames, and a corrupt one is reported while the sampler carries on', async () => {
    const { sampler, steps, errors } = collect();
    const jpeg = await sharp({ create: { width: 160, height: 120, channels: 3, background: '#4080c0' } }).jpeg().toBuffer();
    sampler.push({ kind: 'image', bytes: jpeg, timestampMs: 0 });
    sampler.push({ kind: 'image', bytes: jpeg.subarray(0, 100), timestampMs: 500 });
    sampler.push({ kind: 'image', bytes: jpeg, timestampMs: 1000 });
    await sampler.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0]!.code).toBe('image_decode_failed');
    expect(steps).toHaveLength(1);
    expect(steps[0]!.timestampsMs).toEqual([0, 1000]);
  });

  it('malformed frames throw frame_invalid at push; closed samplers refuse frames', () => {
    const { sampler } = collect();
    expect(() => sampler.push({ kind: 'i420', data: new Uint8Array(3), width: 4, height: 4, timestampMs: 0 })).toThrow(
      expect.objectContaining({ code: 'frame_invalid', param: 'data' }),
    );
    expect(() => sampler.push({ kind: 'png' as 'image', bytes: new Uint8Array(1), timestampMs: 0 })).toThrow(expect.objectContaining({ param: 'kind' }));
    sampler.push(i420Frame(8, 8, 0, 100));
    expect(() => sampler.push(i420Frame(8, 8, 0, 50))).toThrow(expect.objectContaining({ param: 'timestampMs' }));
    sampler.close();
    expect(() => sampler.push(i420Frame(8, 8, 0, 1000))).toThrow(expect.objectContaining({ code: 'frame_sampler_closed' }));
    expect(() => new FrameSampler({ fps: 0, onStep: () => undefined })).toThrow(expect.objectContaining({ param: 'fps' }));
  });

  it('a late frame does not let the next camera frame through right behind it', async () => {
    const { sampler, steps } = collect();
    for (const t of [0, 1000, 1033, 1500]) sampler.push(i420Frame(64, 64, 40, t));
    await sampler.flush();
    expect(sampler.stats.skipped).toBe(1);
    expect(steps.map((s) => s.timestampsMs)).toEqual([
      [0, 1000],
      [1500, 1500],
    ]);
  });

  it('flush then frames of a new size: steps leave in order with the right labels', async () => {
    const { sampler, steps } = collect();
    sampler.push(i420Frame(64, 64, 40, 0));
    const flushed = sampler.flush();
    sampler.push(i420Frame(96, 64, 50, 500));
    sampler.push(i420Frame(96, 64, 60, 1000));
    await flushed;
    await sampler.flush();
    expect(steps.map((s) => [s.segment, s.t, s.sourceWidth, s.timestampsMs])).toEqual([
      [0, 0, 64, [0, 0]],
      [1, 0, 96, [500, 1000]],
    ]);
  });
});
