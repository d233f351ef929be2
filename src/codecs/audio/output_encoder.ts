// Streaming encoder for model speech: float samples at the talker's 24 kHz in, the client's wire
// format out (PCM16 LE at its rate, or G.711 at 8 kHz). Optionally keeps every emitted chunk a
// multiple of 3 bytes, so standalone base64 deltas concatenate into valid base64 (clients that join
// the strings before decoding, realtime-protocol.md §2.5); for PCM16 that is 6 bytes, 3 samples.
import { CodecError } from '../errors.js';
import { G711_SAMPLE_RATE, g711Encode } from './g711.js';
import type { G711Law } from './g711.js';
import { float32ToPcm16le } from './pcm.js';
import { createResamplerFor } from './resample.js';
import type { Resampler } from './resample.js';
import { float32ToInt16 } from './sample_convert.js';

export type AudioOutputFormat = 'pcm16' | 'g711_ulaw' | 'g711_alaw';

/** The Qwen3-Omni talker's output rate. */
export const MODEL_OUTPUT_SAMPLE_RATE = 24000;

export interface AudioOutputEncoderOptions {
  format: AudioOutputFormat;
  /** Client sample rate in Hz. PCM16: default 24000. G.711: only 8000. */
  sampleRate?: number;
  /** Rate of the samples pushed in (default 24000, the talker's). */
  inputSampleRate?: number;
  /** Emit only multiples of 3 bytes (6 for PCM16) until `end()`; default false. */
  alignBase64?: boolean;
}

const EMPTY = Buffer.alloc(0);

export class AudioOutputEncoder {
  readonly format: AudioOutputFormat;
  readonly sampleRate: number;
  readonly inputSampleRate: number;
  /** Bytes per encoded sample: 2 for PCM16, 1 for G.711. */
  readonly bytesPerSample: number;
  /** Every chunk before `end()` is a multiple of this many bytes. */
  readonly chunkMultiple: number;
  private readonly law: G711Law | undefined;
  private readonly resampler: Resampler | undefined;
  private pending: Buffer = EMPTY;
  private input = 0;
  private emitted = 0;
  private ended = false;

  constructor(options: AudioOutputEncoderOptions) {
    const { format } = options;
    if (format !== 'pcm16' && format !== 'g711_ulaw' && format !== 'g711_alaw') {
      throw new CodecError('audio_format_unsupported', `unsupported output audio format ${JSON.stringify(format)}`, 'format');
    }
    this.format = format;
    const rate = options.sampleRate ?? (format === 'pcm16' ? MODEL_OUTPUT_SAMPLE_RATE : G711_SAMPLE_RATE);
    const inputRate = options.inputSampleRate ?? MODEL_OUTPUT_SAMPLE_RATE;
    for (const [name, value] of [['sampleRate', rate], ['inputSampleRate', inputRate]] as const) {
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new CodecError('audio_sample_rate_unsupported', `${name} must be a positive integer in Hz (got ${value})`, name);
      }
    }
    if (format !== 'pcm16' && rate !== G711_SAMPLE_RATE) {
      throw new CodecError('audio_sample_rate_unsupported', `${format} audio is 8000 Hz (got ${rate})`, 'sampleRate');
    }
    this.sampleRate = rate;
    this.inputSampleRate = inputRate;
    this.bytesPerSample = format === 'pcm16' ? 2 : 1;
    this.chunkMultiple = options.alignBase64 ? this.bytesPerSample * 3 : this.bytesPerSample;
    if (format !== 'pcm16') this.law = format === 'g711_ulaw' ? 'mulaw' : 'alaw';
    if (rate !== inputRate) {
      this.resampler = createResamplerFor(inputRate, rate, 'sampleRate');
    }
  }

  /** Samples pushed so far (at `inputSampleRate`). */
  get inputSamples(): number {
    return this.input;
  }

  /** Samples returned so far, at `sampleRate` (held-back alignment bytes not included). */
  get outputSamples(): number {
    return this.emitted / this.bytesPerSample;
  }

  /** Encoded bytes held back to keep chunks aligned (fewer than `chunkMultiple`). */
  get pendingBytes(): number {
    return this.pending.length;
  }

  /** Encode `samples`; returns the bytes ready to send (possibly none). */
  push(samples: Float32Array): Buffer {
    if (this.ended) throw new Error('AudioOutputEncoder: push() after end(); call reset() to start a new stream');
    this.input += samples.length;
    const resampled = this.resampler && samples.length > 0 ? this.resampler.push(samples) : samples;
    return this.emit(this.encode(resampled), false);
  }

  /** End the stream: the resampler's tail and any held-back bytes. Then only `reset()` is allowed. */
  end(): Buffer {
    if (this.ended) throw new Error('AudioOutputEncoder: end() called twice; call reset() to start a new stream');
    this.ended = true;
    const tail = this.resampler ? this.resampler.flush() : new Float32Array(0);
    return this.emit(this.encode(tail), true);
  }

  /** Drop everything (e.g. on barge-in), ready for a new stream; counters back to zero. */
  reset(): void {
    this.resampler?.reset();
    this.pending = EMPTY;
    this.input = 0;
    this.emitted = 0;
    this.ended = false;
  }

  private encode(samples: Float32Array): Buffer {
    if (samples.length === 0) return EMPTY;
    if (this.law === undefined) return float32ToPcm16le(samples);
    return g711Encode(this.law, float32ToInt16(samples));
  }

  private emit(bytes: Buffer, all: boolean): Buffer {
    const joined = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
    const ready = all ? joined.length : joined.length - (joined.length % this.chunkMultiple);
    // Copy the few held-back bytes so they do not pin the whole chunk's memory.
    this.pending = ready === joined.length ? EMPTY : Buffer.from(joined.subarray(ready));
    this.emitted += ready;
    return ready === joined.length ? joined : joined.subarray(0, ready);
  }
}

/** One-shot form of `AudioOutputEncoder` (talker rate in, everything out). */
export function encodeAudioOutput(
  samples: Float32Array,
  format: AudioOutputFormat,
  sampleRate?: number,
  inputSampleRate: number = MODEL_OUTPUT_SAMPLE_RATE,
): Buffer {
  const encoder = new AudioOutputEncoder({ format, sampleRate, inputSampleRate });
  const head = encoder.push(samples);
  const tail = encoder.end();
  return tail.length === 0 ? head : Buffer.concat([head, tail]);
}
