// Qwen3-Omni video input from a file: probe -> plan (sampled frames, size, grid, seconds per grid)
// -> stream of temporal patch steps (two frames each, resized, normalised, patchified natively).
// The plan is known before any frame is decoded, so a consumer can lay out the sequence (or write a
// file header) first and then take the steps one at a time in bounded memory.
import { nativeAddon } from '../../native/addon.js';
import { locateFfmpeg, type FfmpegBinary } from '../audio/ffmpeg.js';
import { CODEC_ERROR_CODES, CodecError, type CodecErrorCode } from '../errors.js';
import { PATCH_ROW_FLOATS, QWEN3_OMNI_IMAGE, visionTokenCount } from '../image/smart_resize.js';
import { recycleOutput } from '../recycle.js';
import { decodeVideoFrames, DEFAULT_VIDEO_DECODE_TIMEOUT_MS, startVideoDecoder, type EarlyVideoDecoder } from './decode.js';
import { probeVideo, type VideoProbe } from './probe.js';
import {
  QWEN3_OMNI_VIDEO,
  sampleFrameIndices,
  secondPerGrid,
  videoFrameSize,
  type FrameSamplingOptions,
  type VideoSizeOptions,
} from './sampling.js';

export type PatchDtype = 'float32' | 'bfloat16';
export type PatchValues = Float32Array | Uint16Array;

export interface VideoOptions extends FrameSamplingOptions, VideoSizeOptions {
  /** ffmpeg to use (else FFMPEG_PATH, PATH, @ffmpeg-installer/ffmpeg). */
  ffmpegPath?: string;
  /**
   * The frame rate `video_second_per_grid` is computed from (2 / rate). Default: the real sampling
   * rate of the frames taken. transformers' processor uses its `fps` argument, 1.0 when not given
   * (2 s per grid whatever the sampling); pass 1 to reproduce that bit for bit.
   */
  secondPerGridFps?: number;
  /**
   * Take exactly these source frames (ascending) instead of sampling; an odd count repeats the last
   * frame. The seconds per grid then default to the mean spacing of the frames.
   */
  frameIndices?: readonly number[];
  /** Longest video accepted, in seconds (default 600). */
  maxDurationSeconds?: number;
  /** Largest source frame, in pixels (default 40 000 000). */
  maxFramePixels?: number;
  /** Output dtype of the patch rows (default float32; bfloat16 halves the bytes for the wire). */
  dtype?: PatchDtype;
  /** Threads per frame resize (default 1). */
  threads?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * planVideo starts the ffmpeg decoder while ffprobe runs, so their start-ups overlap (default
   * true). It waits for videoPatchSteps on the returned plan for PLAN_DECODER_WAIT_MS, then stops;
   * a later videoPatchSteps starts its own. Pass false when the steps will be taken much later.
   */
  startDecoderEarly?: boolean;
}

export interface VideoPlan {
  path: string;
  probe: VideoProbe;
  /** Source frame numbers sampled; an even count. */
  indices: number[];
  sampleFps: number;
  resizedHeight: number;
  resizedWidth: number;
  /** video_grid_thw: [frames / 2, resizedHeight / 16, resizedWidth / 16]. */
  grid: [number, number, number];
  /** LLM placeholder tokens: grid product / 4. */
  tokens: number;
  /** video_second_per_grid. */
  secondPerGrid: number;
  /** Patch rows (of 1536 values) per temporal step. */
  rowsPerStep: number;
}

export interface VideoPatchStep {
  /** Temporal index of this step (0 .. grid[0] - 1). */
  t: number;
  /** rowsPerStep rows of 1536 values. */
  pixelValues: PatchValues;
  /** Source frame numbers in temporal slots 0 and 1. */
  frames: [number, number];
}

export const DEFAULT_MAX_VIDEO_SECONDS = 600;
/** How long the decoder planVideo starts early waits for videoPatchSteps on its plan. */
export const PLAN_DECODER_WAIT_MS = 500;
/** Decoders started by planVideo, by plan, until videoPatchSteps takes them. */
const earlyDecoders = new WeakMap<VideoPlan, EarlyVideoDecoder>();

function rethrowNative(err: unknown, param: string): never {
  const e = err as Error & { code?: string };
  if (e && !(e instanceof CodecError) && typeof e.code === 'string' && (CODEC_ERROR_CODES as readonly string[]).includes(e.code)) {
    throw new CodecError(e.code as CodecErrorCode, e.message, param, { cause: err });
  }
  throw err;
}

/**
 * One temporal patch step from two RGB frames of the same size (`second` null repeats `first`):
 * rows of 1536 values in the reference layout, float32 or bfloat16 bits.
 */
export async function temporalStep(
  first: Uint8Array,
  second: Uint8Array | null,
  width: number,
  height: number,
  resizedHeight: number,
  resizedWidth: number,
  options: { dtype?: PatchDtype; threads?: number } = {},
): Promise<PatchValues> {
  try {
    const r = await nativeAddon().temporalPatches(first, second, width, height, resizedHeight, resizedWidth, options.threads ?? 1, options.dtype === 'bfloat16');
    return r.pixelValues;
  } catch (err) {
    rethrowNative(err, 'video');
  }
}

function checkOptions(options: VideoOptions): void {
  const spg = options.secondPerGridFps;
  if (spg !== undefined && !(spg > 0 && Number.isFinite(spg))) {
    throw new CodecError('video_option_invalid', `secondPerGridFps must be a positive number, got ${spg}`, 'secondPerGridFps');
  }
  const max = options.maxDurationSeconds;
  if (max !== undefined && !(max > 0)) {
    throw new CodecError('video_option_invalid', `maxDurationSeconds must be positive, got ${max}`, 'maxDurationSeconds');
  }
  if (options.dtype !== undefined && options.dtype !== 'float32' && options.dtype !== 'bfloat16') {
    throw new CodecError('video_option_invalid', `dtype must be float32 or bfloat16, got ${String(options.dtype)}`, 'dtype');
  }
}

function explicitFrames(frames: readonly number[], probe: VideoProbe): { indices: number[]; sampleFps: number } {
  const indices = [...frames];
  if (indices.length === 0) throw new CodecError('video_option_invalid', 'frameIndices is empty', 'frameIndices');
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i]!;
    if (!Number.isSafeInteger(v) || v < 0 || v >= probe.totalFrames || (i > 0 && v <= indices[i - 1]!)) {
      throw new CodecError('video_option_invalid', `frameIndices must be ascending frame numbers below ${probe.totalFrames}; item ${i} is ${v}`, 'frameIndices');
    }
  }
  const span = indices[indices.length - 1]! - indices[0]!;
  return { indices, sampleFps: span > 0 ? (probe.fps * (indices.length - 1)) / span : probe.fps };
}

/** The plan for a probed video: which frames, what size, what grid. Pure; throws CodecError. */
export function planFromProbe(path: string, probe: VideoProbe, options: VideoOptions = {}): VideoPlan {
  checkOptions(options);
  const maxSeconds = options.maxDurationSeconds ?? DEFAULT_MAX_VIDEO_SECONDS;
  if (probe.durationSeconds > maxSeconds) {
    throw new CodecError('video_too_long', `the video lasts ${probe.durationSeconds.toFixed(1)} s; the limit is ${maxSeconds} s`, 'video');
  }
  const maxFramePixels = options.maxFramePixels ?? 40_000_000;
  if (probe.width * probe.height > maxFramePixels) {
    throw new CodecError('video_too_large', `video frames are ${probe.width}x${probe.height}; the limit is ${maxFramePixels} pixels`, 'video');
  }
  const { indices, sampleFps } = options.frameIndices
    ? explicitFrames(options.frameIndices, probe)
    : sampleFrameIndices(probe.totalFrames, probe.fps, options);
  const [resizedHeight, resizedWidth] = videoFrameSize(probe.height, probe.width, indices.length, options);
  const p = QWEN3_OMNI_IMAGE.patchSize;
  const grid: [number, number, number] = [Math.ceil(indices.length / QWEN3_OMNI_IMAGE.temporalPatchSize), resizedHeight / p, resizedWidth / p];
  return {
    path,
    probe,
    indices,
    sampleFps,
    resizedHeight,
    resizedWidth,
    grid,
    tokens: visionTokenCount(grid),
    secondPerGrid: secondPerGrid(options.secondPerGridFps ?? sampleFps),
    rowsPerStep: grid[1] * grid[2],
  };
}

/** Probes `path` and plans its sampling. Rejects with CodecError (see probeVideo, planFromProbe). */
export async function planVideo(path: string, options: VideoOptions = {}): Promise<VideoPlan> {
  checkOptions(options);
  const binary = await locateFfmpeg(options.ffmpegPath);
  // ffmpeg loads, opens the file and reads its headers while ffprobe runs; it learns which frames
  // to keep when videoPatchSteps takes it.
  const early = options.startDecoderEarly === false ? undefined : startVideoDecoder(path, binary);
  let plan: VideoPlan;
  try {
    const probe = await probeVideo(path, binary, { signal: options.signal });
    plan = planFromProbe(path, probe, options);
  } catch (err) {
    early?.cancel();
    throw err;
  }
  if (early) {
    early.expireIn(PLAN_DECODER_WAIT_MS);
    earlyDecoders.set(plan, early);
  }
  return plan;
}

/**
 * The plan's temporal steps in order, decoding two frames at a time. An odd frame list (from a
 * caller-made plan) repeats its last frame, as the reference pads. Memory stays bounded by a few
 * frames whatever the video's length.
 */
export async function* videoPatchSteps(plan: VideoPlan, options: VideoOptions = {}): AsyncGenerator<VideoPatchStep> {
  const early = earlyDecoders.get(plan);
  earlyDecoders.delete(plan);
  let binary: FfmpegBinary;
  try {
    binary = await locateFfmpeg(options.ffmpegPath);
  } catch (err) {
    early?.cancel();
    throw err;
  }
  // Frames whose step is done go back to the decoder, which fills them again: the frames of a
  // video cycle through a handful of buffers instead of fresh memory each.
  const spareFrames: Uint8Array[] = [];
  const frames = decodeVideoFrames(plan.path, plan.indices, {
    binary,
    signal: options.signal,
    timeoutMs: options.timeoutMs ?? DEFAULT_VIDEO_DECODE_TIMEOUT_MS,
    maxFramePixels: options.maxFramePixels,
    early,
    spareFrames,
  });
  let held: { rgb: Uint8Array; index: number; width: number; height: number } | undefined;
  let t = 0;
  const step = async (first: NonNullable<typeof held>, second: NonNullable<typeof held> | undefined): Promise<VideoPatchStep> => {
    if (second && (second.width !== first.width || second.height !== first.height)) {
      throw new CodecError('video_decode_failed', `frame size changed mid-video (${first.width}x${first.height} -> ${second.width}x${second.height})`, 'video');
    }
    const pixelValues = await temporalStep(first.rgb, second?.rgb ?? null, first.width, first.height, plan.resizedHeight, plan.resizedWidth, options);
    // The native step has finished reading both frames.
    if (spareFrames.length < 4) spareFrames.push(first.rgb);
    if (second && second.rgb !== first.rgb && spareFrames.length < 4) spareFrames.push(second.rgb);
    return { t: t++, pixelValues, frames: [first.index, (second ?? first).index] };
  };
  for await (const f of frames) {
    const frame = { rgb: f.rgb, index: f.sourceIndex, width: f.width, height: f.height };
    if (!held) {
      held = frame;
      continue;
    }
    const first = held;
    held = undefined;
    yield await step(first, frame);
  }
  if (held) yield await step(held, undefined);
}

export interface VideoPatches extends VideoPlan {
  /** grid[0] * rowsPerStep rows of 1536 values. */
  pixelValues: PatchValues;
}

/** Largest pixel_values videoToPatches will gather in memory (default 512 MiB); stream beyond it. */
export const DEFAULT_MAX_VIDEO_PATCH_BYTES = 512 * 1024 * 1024;

/**
 * A whole video as one pixel_values array (short clips; use planVideo + videoPatchSteps to stream
 * long ones). Rejects with video_too_large when the result would exceed `maxPatchBytes`.
 */
export async function videoToPatches(path: string, options: VideoOptions & { maxPatchBytes?: number } = {}): Promise<VideoPatches> {
  const plan = await planVideo(path, options);
  const bytesPer = options.dtype === 'bfloat16' ? 2 : 4;
  const count = plan.grid[0] * plan.rowsPerStep * PATCH_ROW_FLOATS;
  const limit = options.maxPatchBytes ?? DEFAULT_MAX_VIDEO_PATCH_BYTES;
  if (count * bytesPer > limit) {
    throw new CodecError('video_too_large', `this video's patches would take ${count * bytesPer} bytes (limit ${limit}); stream it with videoPatchSteps`, 'video');
  }
  const pixelValues = options.dtype === 'bfloat16' ? new Uint16Array(count) : new Float32Array(count);
  const perStep = plan.rowsPerStep * PATCH_ROW_FLOATS;
  for await (const s of videoPatchSteps(plan, options)) {
    pixelValues.set(s.pixelValues, s.t * perStep);
    recycleOutput(s.pixelValues); // copied: the next step reuses its memory
  }
  return { ...plan, pixelValues };
}

export { QWEN3_OMNI_VIDEO };
