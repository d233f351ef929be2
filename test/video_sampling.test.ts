// The official frame sampling rule and the video size range, against the indices torch computed
// (test/fixtures/video/manifest.json, scripts/video_fixtures.py).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../src/codecs/errors.js';
import { sampleFrameIndices, secondPerGrid, videoFrameSize } from '../src/codecs/video/sampling.js';

interface SamplingCase {
  total_frames: number;
  video_fps: number;
  nframes: number | null;
  indices: number[] | null;
  sample_fps: number | null;
}
const manifest = JSON.parse(readFileSync(new URL('./fixtures/video/manifest.json', import.meta.url), 'utf8')) as {
  sampling_cases: SamplingCase[];
};

describe('video frame sampling (qwen-omni-utils rule, torch float32 linspace)', () => {
  for (const c of manifest.sampling_cases) {
    it(`${c.total_frames} frames at ${c.video_fps} fps`, () => {
      if (c.indices === null) {
        expect(() => sampleFrameIndices(c.total_frames, c.video_fps)).toThrow(CodecError);
        return;
      }
      const r = sampleFrameIndices(c.total_frames, c.video_fps);
      expect(r.indices.length).toBe(c.nframes);
      expect(r.indices).toEqual(c.indices);
      expect(r.sampleFps).toBeCloseTo(c.sample_fps!, 12);
    });
  }

  it('spec example: 100 frames at 25 fps', () => {
    expect(sampleFrameIndices(100, 25).indices).toEqual([0, 14, 28, 42, 57, 71, 85, 99]);
  });

  it('caps at 768 frames and keeps counts even', () => {
    const r = sampleFrameIndices(30 * 600, 30);
    expect(r.indices.length).toBe(768);
    expect(sampleFrameIndices(3, 30).indices).toEqual([0, 2]);
  });

  it('a one-frame video is too short; bad parameters name themselves', () => {
    expect(() => sampleFrameIndices(1, 30)).toThrow(expect.objectContaining({ code: 'video_too_short' }));
    expect(() => sampleFrameIndices(10, 0)).toThrow(expect.objectContaining({ code: 'video_option_invalid', param: 'sourceFps' }));
    expect(() => sampleFrameIndices(10, 30, { fps: -1 })).toThrow(expect.objectContaining({ param: 'fps' }));
    expect(() => sampleFrameIndices(10.5, 30)).toThrow(expect.objectContaining({ param: 'totalFrames' }));
  });
});

describe('video frame size (processor range 131072..786432)', () => {
  it('matches the spec examples', () => {
    expect(videoFrameSize(240, 320, 8)).toEqual([320, 448]);
    expect(videoFrameSize(480, 640, 8)).toEqual([480, 640]);
    expect(videoFrameSize(360, 640, 8)).toEqual([352, 640]);
    expect(videoFrameSize(720, 1280, 8)).toEqual([640, 1152]);
    expect(videoFrameSize(1080, 1920, 8)).toEqual([640, 1152]);
  });

  it('cap_pixels_per_frame shares the budget across many frames', () => {
    const [h, w] = videoFrameSize(1080, 1920, 600, { capPixelsPerFrame: true });
    expect(h * w).toBeLessThanOrEqual((Math.trunc(128_000 * 1024 * 0.9) * 2) / 600);
    expect(videoFrameSize(1080, 1920, 8, { capPixelsPerFrame: true })).toEqual([640, 1152]);
  });

  it('an extreme aspect ratio is a video error', () => {
    expect(() => videoFrameSize(2, 500, 4)).toThrow(expect.objectContaining({ code: 'video_aspect_ratio_invalid' }));
  });

  it('seconds per grid is two frames at the given rate', () => {
    expect(secondPerGrid(2)).toBe(1);
    expect(secondPerGrid(1)).toBe(2);
  });
});
