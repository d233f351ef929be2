// Which frames of a video the model sees, and at what size: the official Qwen3-Omni sampling rule
// (qwen-omni-utils: 2 fps, an even count between 4 and 768, evenly spread indices) and the video
// processor's pixel range (spec §6.1-6.2). Pure arithmetic, shared by files and live frames.
import { CodecError } from '../errors.js';
import { QWEN3_OMNI_IMAGE, smartResize } from '../image/smart_resize.js';

export const QWEN3_OMNI_VIDEO = {
  /** Frames per second sampled from a file (qwen-omni-utils FPS). */
  fps: 2,
  /** Frame counts are multiples of this (the temporal patch size). */
  frameFactor: 2,
  minFrames: 4,
  maxFrames: 768,
  /** The processor's call-time size range, which overrides its image range for videos. */
  minPixels: 128 * 32 * 32,
  maxPixels: 768 * 32 * 32,
  /** Total pixel budget behind cap_pixels_per_frame (transformers >= 5.17, off by default until 5.22). */
  capTotalPixels: Math.trunc(128_000 * 32 * 32 * 0.9),
} as const;

/** Python's round() on a float: nearest, ties to even (what torch.round does too). */
function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d !== 0.5) return d > 0.5 ? f + 1 : f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * torch.linspace(start, end, steps) in float32 as its CPU kernel computes it: step = (end - start)
 * / (steps - 1) in float32; elements before steps/2 are start + step * i, the rest end - step *
 * (steps - 1 - i), each a fused multiply-add (one rounding, as the compiler contracts it). On long
 * videos this picks different frames than a float64 linspace would (one in ~700 at 23 040 frames).
 */
export function linspaceFloat32(start: number, end: number, steps: number): number[] {
  const f = Math.fround;
  const out = new Array<number>(steps);
  const s0 = f(start);
  const e0 = f(end);
  if (steps === 1) {
    out[0] = s0;
    return out;
  }
  const step = f(f(e0 - s0) / (steps - 1));
  const half = Math.floor(steps / 2);
  // float32 * integer < 2^24 is exact in float64, so one fround is the fused operation's rounding.
  for (let i = 0; i < steps; i++) out[i] = i < half ? f(s0 + step * i) : f(e0 - step * (steps - i - 1));
  return out;
}

export interface FrameSamplingOptions {
  /** Sampling rate in frames per second (default 2). */
  fps?: number;
  minFrames?: number;
  maxFrames?: number;
}

export interface FrameSampling {
  /** Source frame indices to keep, ascending; an even count. */
  indices: number[];
  /** The rate those frames represent: count / total * source fps. */
  sampleFps: number;
}

/**
 * qwen-omni-utils' smart_nframes + linspace: n = total / sourceFps * fps, clamped to
 * [ceil2(minFrames), floor2(min(maxFrames, total))] and to total, floored to a multiple of 2;
 * indices = round(linspace(0, total - 1, n)). A video with fewer than 2 frames is video_too_short.
 */
export function sampleFrameIndices(totalFrames: number, sourceFps: number, options: FrameSamplingOptions = {}): FrameSampling {
  const factor = QWEN3_OMNI_VIDEO.frameFactor;
  const fps = options.fps ?? QWEN3_OMNI_VIDEO.fps;
  const minOpt = options.minFrames ?? QWEN3_OMNI_VIDEO.minFrames;
  const maxOpt = options.maxFrames ?? QWEN3_OMNI_VIDEO.maxFrames;
  if (!Number.isSafeInteger(totalFrames) || totalFrames < 0) {
    throw new CodecError('video_option_invalid', `frame count must be a non-negative integer, got ${totalFrames}`, 'totalFrames');
  }
  if (!(sourceFps > 0) || !Number.isFinite(sourceFps)) {
    throw new CodecError('video_option_invalid', `source frame rate must be positive, got ${sourceFps}`, 'sourceFps');
  }
  if (!(fps > 0) || !Number.isFinite(fps)) throw new CodecError('video_option_invalid', `fps must be positive, got ${fps}`, 'fps');
  for (const [name, v] of [['minFrames', minOpt], ['maxFrames', maxOpt]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new CodecError('video_option_invalid', `${name} must be a positive integer, got ${v}`, name);
  }
  const minFrames = Math.ceil(minOpt / factor) * factor;
  const maxFrames = Math.floor(Math.min(maxOpt, totalFrames) / factor) * factor;
  let n = (totalFrames / sourceFps) * fps;
  n = Math.min(Math.min(Math.max(n, minFrames), maxFrames), totalFrames);
  n = Math.floor(n / factor) * factor;
  if (n < factor) {
    throw new CodecError('video_too_short', `the video has ${totalFrames} frame(s); at least ${factor} are needed`, 'video');
  }
  const indices = linspaceFloat32(0, totalFrames - 1, n).map(roundHalfEven);
  return { indices, sampleFps: (n / totalFrames) * sourceFps };
}

export interface VideoSizeOptions {
  minPixels?: number;
  maxPixels?: number;
  /**
   * Share a total pixel budget across frames as transformers' cap_pixels_per_frame does
   * (per-frame max = max(min(maxPixels, budget * 2 / frames), 1.05 * minPixels)). Default false,
   * transformers 5.17's behaviour; it becomes true there in 5.22.
   */
  capPixelsPerFrame?: boolean;
}

/** [height, width] every frame of a `frames`-frame video of this size is resized to. */
export function videoFrameSize(height: number, width: number, frames: number, options: VideoSizeOptions = {}): [number, number] {
  const minPixels = options.minPixels ?? QWEN3_OMNI_VIDEO.minPixels;
  let maxPixels: number = options.maxPixels ?? QWEN3_OMNI_VIDEO.maxPixels;
  if (options.capPixelsPerFrame) {
    maxPixels = Math.max(Math.min(maxPixels, (QWEN3_OMNI_VIDEO.capTotalPixels * 2) / Math.max(frames, 1)), Math.trunc(1.05 * minPixels));
  }
  try {
    return smartResize(height, width, { factor: QWEN3_OMNI_IMAGE.factor, minPixels, maxPixels });
  } catch (err) {
    if (err instanceof CodecError && err.code === 'image_aspect_ratio_invalid') {
      throw new CodecError('video_aspect_ratio_invalid', err.message.replace(/^image/, 'video'), 'video', { cause: err });
    }
    if (err instanceof CodecError) throw new CodecError('video_option_invalid', err.message, err.param, { cause: err });
    throw err;
  }
}

/** `video_second_per_grid`: seconds one temporal patch (2 frames) spans at `fps`. */
export function secondPerGrid(fps: number): number {
  return QWEN3_OMNI_IMAGE.temporalPatchSize / fps;
}
