// Qwen3-Omni audio features: 128-bin log-mel frames exactly as transformers' WhisperFeatureExtractor
// computes them for the model (see native/src/mel.h for the algorithm), plus the frame and audio
// token arithmetic the prompt builder needs. Computation runs in native code off the event loop.
import { nativeAddon, type NativeMelStream } from '../../native/addon.js';
import { CODEC_ERROR_CODES, CodecError, type CodecErrorCode } from '../errors.js';

export const MEL_SAMPLE_RATE = 16_000;
export const MEL_BINS = 128;
export const MEL_HOP = 160;
export const MEL_N_FFT = 400;
/** The STFT's reflect padding needs more than n_fft / 2 samples. */
export const MEL_MIN_SAMPLES = MEL_N_FFT / 2 + 1;

export interface MelFeatures {
  /** 128 x frames, mel-major: row m holds mel bin m for every frame (the reference's layout). */
  data: Float32Array;
  frames: number;
  /** Largest raw log10-mel value of the clip; every value was floored at clipMax - 8. */
  clipMax: number;
}

/** Valid mel frames of one clip: floor(samples / 160) (the STFT's last frame is dropped). */
export function melFrameCount(samples: number): number {
  return Math.floor(samples / MEL_HOP);
}

/**
 * Audio tokens the encoder produces for `frames` mel frames: 13 per full second (100 frames) plus
 * ceil(rest / 8), the closed form of `_get_feat_extract_output_lengths` with n_window 50.
 */
export function audioTokenCount(frames: number): number {
  return 13 * Math.floor(frames / 100) + Math.ceil((frames % 100) / 8);
}

function toCodecError(err: unknown): unknown {
  const e = err as Error & { code?: string };
  if (e && typeof e.code === 'string' && (CODEC_ERROR_CODES as readonly string[]).includes(e.code)) {
    return new CodecError(e.code as CodecErrorCode, e.message, 'audio', { cause: err });
  }
  return err;
}

function checkInput(samples: Float32Array): void {
  if (!(samples instanceof Float32Array)) {
    throw new CodecError('audio_invalid_samples', 'audio must be a Float32Array of 16 kHz samples', 'audio');
  }
  if (samples.length === 0) throw new CodecError('audio_empty', 'audio is empty', 'audio');
}

export interface LogMelOptions {
  /** Threads for one long clip (split by frames, capped at the core count); clips under ~20 s always use one. Default 1. */
  threads?: number;
}

/** Exact features of a whole 16 kHz clip, computed on the libuv pool (the samples are copied first). */
export async function logMelFeatures(samples: Float32Array, options: LogMelOptions = {}): Promise<MelFeatures> {
  checkInput(samples);
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw new CodecError('audio_option_invalid', `threads must be a positive integer, got ${threads}`, 'threads');
  }
  try {
    const r = await nativeAddon().logMel(samples, threads);
    return { data: r.features, frames: r.frames, clipMax: r.clipMax };
  } catch (err) {
    throw toCodecError(err);
  }
}

export interface MelStreamOptions {
  /** Longest utterance accepted, in seconds (default 600); pushing past it throws audio_too_long. */
  maxSeconds?: number;
}

/**
 * Streaming features for an utterance that is still arriving: each push computes every frame
 * whose window is complete, so a turn end leaves only the last frame or two and the clip-level
 * floor. `finish()` returns exactly what `logMelFeatures` returns for the same samples.
 * Pushes cost microseconds per 20 ms chunk and run on the calling thread.
 */
export class MelStream {
  private readonly native: NativeMelStream;

  constructor(options: MelStreamOptions = {}) {
    const seconds = options.maxSeconds ?? 600;
    if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) {
      throw new CodecError('audio_option_invalid', `maxSeconds must be a number of seconds from 0 to 86400, got ${seconds}`, 'maxSeconds');
    }
    this.native = new (nativeAddon().MelStream)(Math.max(MEL_MIN_SAMPLES, Math.floor(seconds * MEL_SAMPLE_RATE)));
  }

  /** Append 16 kHz samples; returns the number of frames computed so far. */
  push(samples: Float32Array): number {
    if (!(samples instanceof Float32Array)) {
      throw new CodecError('audio_invalid_samples', 'audio must be a Float32Array of 16 kHz samples', 'audio');
    }
    try {
      return this.native.push(samples);
    } catch (err) {
      throw toCodecError(err);
    }
  }

  /** Features of the whole utterance so far (the stream keeps its state until `reset`). */
  finish(): MelFeatures {
    if (this.native.samples === 0) throw new CodecError('audio_empty', 'audio is empty', 'audio');
    try {
      const r = this.native.finish();
      return { data: r.features, frames: r.frames, clipMax: r.clipMax };
    } catch (err) {
      throw toCodecError(err);
    }
  }

  reset(): void {
    this.native.reset();
  }

  get samples(): number {
    return this.native.samples;
  }

  get frames(): number {
    return this.native.frames;
  }
}

/** The float32 mel filter bank (201 frequency bins x 128 mels, bin-major), for inspection and tests. */
export function melFilterBank(): Float32Array {
  return nativeAddon().melFilterBank();
}
