// Bad video input gets a specific error and leaves nothing running: empty, not a video, audio
// only, truncated, too long, too large, early stop and abort.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { planVideo, videoPatchSteps, videoToPatches } from '../src/codecs/video/patches.js';

const dir = mkdtempSync(join(tmpdir(), 'omni-video-'));
const FIX = join(import.meta.dirname, 'fixtures', 'video');
const good = join(FIX, 'testsrc2_320x240.mp4');
const file = (name: string, bytes: Uint8Array | string): string => {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
};
const ffmpegChildren = (): number => {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), 'ffmpeg']).toString().trim().split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};

describe('video input errors', () => {
  it('an empty file is not a recognised video', async () => {
    await expect(planVideo(file('empty.mp4', ''))).rejects.toMatchObject({ code: 'video_format_unsupported', param: 'video' });
  });

  it('text is not a video', async () => {
    await expect(planVideo(file('notes.mp4', 'hello, not a video'))).rejects.toMatchObject({ code: 'video_format_unsupported' });
  });

  it('an audio-only file has no video stream', async () => {
    const wav = join(import.meta.dirname, 'fixtures', 'audio', 'speech_en.wav');
    await expect(planVideo(wav)).rejects.toMatchObject({ code: 'video_format_unsupported' });
    await expect(planVideo(wav)).rejects.toThrow(/no video stream/);
  });

  it('a missing file names the problem', async () => {
    await expect(planVideo(join(dir, 'nope.mp4'))).rejects.toMatchObject({ code: 'video_decode_failed' });
    await expect(planVideo(join(dir, 'nope.mp4'))).rejects.toThrow(/No such file/);
  });

  it('a truncated file whose index promises more frames fails with the frame it stopped at', async () => {
    // faststart: the index (moov) comes first and survives the cut; half the media data does not.
    const fastPath = join(dir, 'fast.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', good, '-c', 'copy', '-movflags', '+faststart', fastPath]);
    const fast = readFileSync(fastPath);
    const cut = file('half.mp4', fast.subarray(0, Math.floor(fast.length / 2)));
    const plan = await planVideo(cut);
    expect(plan.probe.totalFrames).toBe(80);
    const err = await videoToPatches(cut).catch((e: unknown) => e as Error & { code?: string });
    expect(err).toMatchObject({ code: 'video_decode_failed' });
    expect((err as Error).message).toMatch(/ended after \d of the 6 sampled frames|could not decode/);
  });

  it('limits: duration and frame size are checked from the probe, before decoding', async () => {
    await expect(planVideo(good, { maxDurationSeconds: 1 })).rejects.toMatchObject({ code: 'video_too_long' });
    await expect(planVideo(good, { maxFramePixels: 320 * 200 })).rejects.toMatchObject({ code: 'video_too_large' });
    await expect(planVideo(good, { secondPerGridFps: 0 })).rejects.toMatchObject({ code: 'video_option_invalid', param: 'secondPerGridFps' });
    await expect(planVideo(good, { frameIndices: [3, 2] })).rejects.toMatchObject({ param: 'frameIndices' });
  });

  it('stopping early and aborting leave no ffmpeg behind', async () => {
    const plan = await planVideo(good);
    for await (const step of videoPatchSteps(plan)) {
      expect(step.t).toBe(0);
      break;
    }
    const controller = new AbortController();
    const steps = videoPatchSteps(plan, { signal: controller.signal });
    await steps.next();
    controller.abort(new Error('client went away'));
    await expect(steps.next()).rejects.toThrow('client went away');
    await new Promise((r) => setTimeout(r, 100));
    expect(ffmpegChildren()).toBe(0);
  });
});

describe('long videos', () => {
  it('selects all 768 sampled frames of a long video (the select expression stays shallow)', async () => {
    const path = join(dir, 'long.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=64x64:rate=10', '-t', '400', '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '250', path]);
    const plan = await planVideo(path);
    expect(plan.indices).toHaveLength(768);
    let steps = 0;
    for await (const s of videoPatchSteps(plan)) {
      expect(s.frames).toEqual([plan.indices[2 * s.t], plan.indices[2 * s.t + 1]]);
      steps++;
    }
    expect(steps).toBe(384);
  });
});

describe('index counts that overstate the decodable frames', () => {
  it('a trimmed MP4 (edit list) decodes, its missing last sampled frame standing in from the last decoded one', async () => {
    const trimmed = join(dir, 'trimmed.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-ss', '0.1', '-i', good, '-c', 'copy', trimmed]);
    const plan = await planVideo(trimmed);
    const v = await videoToPatches(trimmed);
    expect(v.grid[0]).toBe(plan.indices.length / 2);
  });
});
