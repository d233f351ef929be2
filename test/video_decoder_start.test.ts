// planVideo starts the ffmpeg decoder while ffprobe runs (their start-ups overlap); the steps of
// that plan use it. Whatever the caller does with the plan, no ffmpeg is left behind, and the
// output is the same as with a decoder started afterwards. Matroska/WebM are probed in one run.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { locateFfmpeg } from '../src/codecs/audio/ffmpeg.js';
import { PLAN_DECODER_WAIT_MS, planVideo, videoPatchSteps, videoToPatches, type VideoPlan } from '../src/codecs/video/patches.js';

const dir = mkdtempSync(join(tmpdir(), 'omni-video-start-'));
const good = join(import.meta.dirname, 'fixtures', 'video', 'testsrc2_320x240.mp4');
const ffmpegChildren = (): number => {
  try {
    return execFileSync('pgrep', ['-P', String(process.pid), 'ffmpeg']).toString().trim().split('\n').filter(Boolean).length;
  } catch {
    return 0;
  }
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const bytesOf = async (plan: VideoPlan, early = true): Promise<Buffer> => {
  const parts: Buffer[] = [];
  for await (const s of videoPatchSteps(plan, { startDecoderEarly: early })) parts.push(Buffer.from(s.pixelValues.buffer, s.pixelValues.byteOffset, s.pixelValues.byteLength));
  return Buffer.concat(parts);
};

describe('decoder started while probing', () => {
  // Builds that cannot take the filter late (Windows, ffmpeg 7+, unversioned snapshots) start none.
  let waiting = 0;
  beforeAll(async () => {
    const plan = await planVideo(good);
    waiting = ffmpegChildren();
    for await (const _ of videoPatchSteps(plan)) break;
  });

  it('the plan holds one waiting ffmpeg, which its steps use; none is left afterwards', async () => {
    const major = Number(/ffmpeg version n?(\d+)\./.exec((await locateFfmpeg()).version)?.[1] ?? NaN);
    expect(waiting).toBe(process.platform !== 'win32' && major >= 4 && major <= 6 ? 1 : 0);
    const plan = await planVideo(good);
    expect(ffmpegChildren()).toBe(waiting);
    let steps = 0;
    for await (const _ of videoPatchSteps(plan)) {
      expect(ffmpegChildren()).toBeLessThanOrEqual(1);
      steps++;
    }
    expect(steps).toBe(plan.grid[0]);
    await sleep(50);
    expect(ffmpegChildren()).toBe(0);
  });

  it('gives the same patches as a decoder started for the steps, and a plan streams again', async () => {
    const plan = await planVideo(good);
    const early = await bytesOf(plan);
    const late = await bytesOf(await planVideo(good, { startDecoderEarly: false }));
    const again = await bytesOf(plan); // the early decoder is spent: a new one is started
    expect(early.equals(late)).toBe(true);
    expect(again.equals(late)).toBe(true);
  });

  it('a plan that is never streamed stops its decoder after the wait', async () => {
    await planVideo(good);
    expect(ffmpegChildren()).toBe(waiting);
    await sleep(PLAN_DECODER_WAIT_MS + 200);
    expect(ffmpegChildren()).toBe(0);
  });

  it('a plan refused after probing stops its decoder at once', async () => {
    await expect(planVideo(good, { maxDurationSeconds: 1 })).rejects.toMatchObject({ code: 'video_too_long' });
    await expect(planVideo(good, { frameIndices: [0, 500] })).rejects.toMatchObject({ param: 'frameIndices' });
    await sleep(50);
    expect(ffmpegChildren()).toBe(0);
  });

  it('startDecoderEarly false starts nothing before the steps', async () => {
    await planVideo(good, { startDecoderEarly: false });
    expect(ffmpegChildren()).toBe(0);
  });

  it('breaking out of the first step stops the early decoder', async () => {
    const plan = await planVideo(good);
    for await (const s of videoPatchSteps(plan)) {
      expect(s.t).toBe(0);
      break;
    }
    await sleep(50);
    expect(ffmpegChildren()).toBe(0);
  });
});

describe('Matroska and WebM (no frame count in the container)', () => {
  it('counts the frames in the same probe and decodes as the MP4 of the same stream does', async () => {
    const mkv = join(dir, 'same.mkv');
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', good, '-c', 'copy', mkv]);
    const [a, b] = await Promise.all([videoToPatches(good), videoToPatches(mkv)]);
    expect(b.probe.container).toMatch(/matroska/);
    expect(b.probe.totalFrames).toBe(a.probe.totalFrames);
    expect(b.indices).toEqual(a.indices);
    expect(b.grid).toEqual(a.grid);
    expect(Buffer.from(b.pixelValues.buffer).equals(Buffer.from(a.pixelValues.buffer))).toBe(true);
  });

  it('counts only the video stream when the soundtrack comes first', async () => {
    const webm = join(dir, 'audio_first.webm');
    execFileSync('ffmpeg', [
      '-v', 'error', '-y',
      '-f', 'lavfi', '-i', 'testsrc2=size=160x120:rate=25',
      '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
      '-t', '2', '-map', '1:a', '-map', '0:v', '-c:v', 'libvpx', '-deadline', 'realtime', '-c:a', 'libopus', webm,
    ]);
    const plan = await planVideo(webm, { startDecoderEarly: false });
    expect(plan.probe.totalFrames).toBe(50);
    expect(plan.probe.hasAudio).toBe(true);
  });
});
