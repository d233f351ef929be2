// Streaming decoder for realtime client audio: PCM16 LE at the client's rate or G.711 at 8 kHz,
// as bytes or base64 text, out as the 16 kHz mono float32 the model's feature extractor takes.
// Chunking is free: the output of any split of a stream equals the output of the whole stream
// (odd-byte carry here, a stateful resampler after it), so counts never drift.
import { CodecError } from '../errors.js';
import { base64DecodedLength, decodeBase64Strict } from './base64.js';
import { G711_SAMPLE_RATE, g711Decode } from './g711.js';
import type { G711Law } from './g711.js';
import { Pcm16StreamReader } from './pcm_stream.js';
import { createResamplerFor } from './resample.js';
import type { Resampler } from './resample.js';
import { int16ToFloat32 } from './sample_convert.js';

export type AudioInputFormat = 'pcm16' | 'g711_ulaw' | 'g711_alaw';

export const MODEL_INPUT_SAMPLE_RATE = 16000;

/** OpenAI's bound on one `input_audio_buffer.append`, decoded (realtime-protocol.md §2.5). */
export const DEFAULT_MAX_PUSH_BYTES = 15 * 1024 * 1024;

export interface AudioInputDecoderOptions {
  format: AudioInputFormat;
  /** Client sample rate in Hz. PCM16: default 24000 (OpenAI `pcm16`). G.711: only 8000. */
  sampleRate?: number;
  /** Largest single push, in decoded bytes (default 15 MiB). */
  maxPushBytes?: number;
  /**
   * `push` may return a view of a buffer the decoder overwrites on its next push (default false):
   * for a caller that copies every chunk's samples before pushing again (the realtime input
   * buffer does), so 20 ms chunks allocate nothing. `end()` always returns a fresh array.
   */
  reuseOutput?: boolean;
}

const EMPTY = new Float32Array(0);

export class AudioInputDecoder {
  readonly format: AudioInputFormat;
  readonly sampleRate: number;
  readonly maxPushBytes: number;
  private readonly pcm: Pcm16StreamReader | undefined;
  private readonly law: G711Law | undefined;
  private readonly resampler: Resampler | undefined;
  private input = 0;
  private output = 0;
  private ended = false;

  constructor(options: AudioInputDecoderOptions) {
    const { format } = options;
    if (format !== 'pcm16' && format !== 'g711_ulaw' && format !== 'g711_alaw') {
      throw new CodecError('audio_format_unsupported', `unsupported input audio format ${JSON.stringify(format)}`, 'format');
    }
    this.format = format;
    const maxPushBytes = options.maxPushBytes ?? DEFAULT_MAX_PUSH_BYTES;
    if (!Number.isSafeInteger(maxPushBytes) || maxPushBytes <= 0) {
      throw new CodecError('audio_option_invalid', `maxPushBytes must be a positive integer (got ${maxPushBytes})`, 'maxPushBytes');
    }
    this.maxPushBytes = maxPushBytes;
    const rate = options.sampleRate ?? (format === 'pcm16' ? 24000 : G711_SAMPLE_RATE);
    if (!Number.isSafeInteger(rate) || rate <= 0) {
      throw new CodecError('audio_sample_rate_unsupported', `sample rate must be a positive integer in Hz (got ${rate})`, 'sampleRate');
    }
    if (format !== 'pcm16' && rate !== G711_SAMPLE_RATE) {
      throw new CodecError('audio_sample_rate_unsupported', `${format} audio is 8000 Hz (got ${rate})`, 'sampleRate');
    }
    this.sampleRate = rate;
    if (rate !== MODEL_INPUT_SAMPLE_RATE) {
      this.resampler = createResamplerFor(rate, MODEL_INPUT_SAMPLE_RATE, 'sampleRate', { reuseOutput: options.reuseOutput ?? false });
    }
    // The resampler copies what it is given, so its input can live in one reused buffer; at
    // 16 kHz the decoded samples are the output and must be fresh.
    if (format === 'pcm16') this.pcm = new Pcm16StreamReader({ reuseOutput: this.resampler !== undefined });
    else this.law = format === 'g711_ulaw' ? 'mulaw' : 'alaw';
  }

  /** Client samples consumed so far (whole samples at `sampleRate`). */
  get inputSamples(): number {
    return this.input;
  }

  /** 16 kHz samples returned so far. */
  get outputSamples(): number {
    return this.output;
  }

  /**
   * Decode one chunk (bytes, or base64 text as in JSON events); returns the 16 kHz samples it
   * completes. A rejected chunk (too large, bad base64) leaves the stream as it was.
   */
  push(chunk: Uint8Array | string): Float32Array {
    if (this.ended) throw new Error('AudioInputDecoder: push() after end(); call reset() to start a new stream');
    const size = typeof chunk === 'string' ? base64DecodedLength(chunk) : chunk.length;
    if (size > this.maxPushBytes) {
      throw new CodecError(
        'audio_chunk_too_large',
        `audio chunk of ${size} bytes is over the limit of ${this.maxPushBytes} bytes per append`,
        'audio',
      );
    }
    const bytes = typeof chunk === 'string' ? decodeBase64Strict(chunk, 'audio') : chunk;
    let samples: Float32Array;
    if (this.pcm) samples = this.pcm.push(bytes);
    else samples = bytes.length === 0 ? EMPTY : int16ToFloat32(g711Decode(this.law!, bytes));
    this.input += samples.length;
    const out = this.resampler && samples.length > 0 ? this.resampler.push(samples) : samples;
    this.output += out.length;
    return out;
  }

  /**
   * End the stream: returns the resampler's tail. Throws `audio_odd_byte_count` when PCM16 ended
   * mid-sample. Afterwards only `reset()` is allowed; counters stay readable until then.
   */
  end(): Float32Array {
    if (this.ended) throw new Error('AudioInputDecoder: end() called twice; call reset() to start a new stream');
    this.ended = true;
    this.pcm?.end();
    const tail = this.resampler ? this.resampler.flush() : EMPTY;
    this.output += tail.length;
    return tail;
  }

  /** Forget everything, ready for a new stream (counters back to zero). */
  reset(): void {
    this.pcm?.reset();
    this.resampler?.reset();
    this.input = 0;
    this.output = 0;
    this.ended = false;
  }
}
