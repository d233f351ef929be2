// Sample-rate conversion for the audio paths: client audio (8/16/24/48 kHz) to the model's 16 kHz,
// and model speech (24 kHz) to the client's rate. Polyphase Kaiser-windowed sinc in native code
// (native/src/resample.h): passband flat to 0.9 of the lower Nyquist frequency within 1e-4 dB,
// 100 dB design stopband from that Nyquist frequency, exact rational ratio for any integer rates.
//
// Timing rules every caller can rely on:
// - Output sample k is aligned with input time k * inputRate / outputRate (the filter delay is
//   compensated: the resampler holds back `delaySamples` input samples of look-ahead instead).
// - After N input samples and flush(), exactly ceil(N * outputRate / inputRate) samples have come
//   out in total, over any length of stream (integer phase arithmetic, no drift).
// - Output is bit-identical however the input is split into chunks.
import { NativeAddonError, nativeAddon, type NativeResampler } from '../../native/addon.js';
import { CodecError } from '../errors.js';
import { concatFloat32 } from './sample_convert.js';

export const RESAMPLE_MIN_RATE = 1_000;
export const RESAMPLE_MAX_RATE = 384_000;

export interface Resampler {
  readonly inputRate: number;
  readonly outputRate: number;
  /** Input samples of look-ahead held back while streaming (0 for equal rates). */
  readonly delaySamples: number;
  /** Resamples the next chunk; returns every output whose look-ahead has now arrived. */
  push(samples: Float32Array): Float32Array;
  /**
   * Ends the stream: returns the remaining outputs, computed with zeros after the last sample, and
   * restarts at time 0 so the resampler can take a new stream.
   */
  flush(): Float32Array;
  /** Drops buffered input without emitting it and restarts at time 0. */
  reset(): void;
}

function checkRate(rate: number, param: 'inputRate' | 'outputRate'): void {
  if (typeof rate !== 'number' || !Number.isInteger(rate) || rate < RESAMPLE_MIN_RATE || rate > RESAMPLE_MAX_RATE) {
    throw new CodecError(
      'resample_rate_invalid',
      `${param} must be an integer from ${RESAMPLE_MIN_RATE} to ${RESAMPLE_MAX_RATE} Hz, got ${String(rate)}`,
      param,
    );
  }
}

function checkSamples(samples: Float32Array): void {
  if (!(samples instanceof Float32Array)) {
    throw new CodecError('audio_invalid_samples', 'samples to resample must be a Float32Array', 'audio');
  }
}

class PassThrough implements Resampler {
  readonly delaySamples = 0;
  constructor(
    readonly inputRate: number,
    readonly outputRate: number,
  ) {}
  push(samples: Float32Array): Float32Array {
    checkSamples(samples);
    return samples.slice();
  }
  flush(): Float32Array {
    return new Float32Array(0);
  }
  reset(): void {}
}

export interface ResamplerOptions {
  /**
   * `push` returns a view of a buffer the resampler keeps and overwrites on the next push, instead
   * of a new array (default false): for a caller that copies each chunk's output before pushing
   * again, so a stream of 20 ms chunks allocates nothing here.
   */
  reuseOutput?: boolean;
}

class NativeBacked implements Resampler {
  readonly delaySamples: number;
  private scratch: Float32Array | undefined;
  constructor(
    readonly inputRate: number,
    readonly outputRate: number,
    private readonly native: NativeResampler,
    reuseOutput: boolean,
  ) {
    this.delaySamples = native.delaySamples;
    if (reuseOutput) this.scratch = new Float32Array(0);
  }
  push(samples: Float32Array): Float32Array {
    checkSamples(samples);
    if (this.scratch === undefined) return this.native.process(samples);
    // n more inputs complete at most floor(n * out / in) + 1 outputs.
    const bound = Math.floor((samples.length * this.outputRate) / this.inputRate) + 1;
    if (this.scratch.length < bound) this.scratch = new Float32Array(Math.max(bound, 2 * this.scratch.length));
    return this.scratch.subarray(0, this.native.processInto(samples, this.scratch));
  }
  flush(): Float32Array {
    return this.native.flush();
  }
  reset(): void {
    this.native.reset();
  }
}

/** A streaming resampler; validates both rates (CodecError `resample_rate_invalid`). */
export function createResampler(inputRate: number, outputRate: number, options: ResamplerOptions = {}): Resampler {
  checkRate(inputRate, 'inputRate');
  checkRate(outputRate, 'outputRate');
  if (inputRate === outputRate) return new PassThrough(inputRate, outputRate);
  const addon = nativeAddon();
  // An addon built before the resampler existed loads fine but lacks the class.
  if (typeof addon.Resampler !== 'function') {
    throw new NativeAddonError('the native addon has no Resampler: rebuild it with `npm run build:native`');
  }
  return new NativeBacked(inputRate, outputRate, new addon.Resampler(inputRate, outputRate), options.reuseOutput ?? false);
}

/**
 * `createResampler` for a codec whose caller chose `inputRate` and `outputRate`: a rate the
 * resampler refuses is reported as CodecError `audio_sample_rate_unsupported` on `param`, the
 * caller's own parameter, rather than as the resampler's `resample_rate_invalid`.
 */
export function createResamplerFor(inputRate: number, outputRate: number, param: string, options: ResamplerOptions = {}): Resampler {
  try {
    return createResampler(inputRate, outputRate, options);
  } catch (cause) {
    if (cause instanceof CodecError) {
      throw new CodecError('audio_sample_rate_unsupported', `cannot resample ${inputRate} Hz to ${outputRate} Hz: ${cause.message}`, param, { cause });
    }
    throw cause;
  }
}

/** A whole clip at another rate: exactly ceil(samples.length * outputRate / inputRate) samples. */
export function resample(samples: Float32Array, inputRate: number, outputRate: number): Float32Array {
  const r = createResampler(inputRate, outputRate);
  const head = r.push(samples);
  const tail = r.flush();
  return tail.length === 0 ? head : concatFloat32([head, tail]);
}
