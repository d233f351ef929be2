// Whole audio files (uploads, `input_audio` content parts, chat-completions audio) to the model's
// input: 16 kHz mono float32, as qwen-omni-utils' `librosa.load(path, sr=16000)` produces it.
// WAV is read natively (wavefile) and resampled by the native resampler; every other container
// goes through ffmpeg (soxr). The container is sniffed from magic bytes first, so a PNG or a JSON
// body sent as audio gets a precise error without starting a process.
import { CodecError } from '../errors.js';
import { decodeWithFfmpeg, locateFfmpeg, MODEL_SAMPLE_RATE } from './ffmpeg.js';
import { moveMoovToFront } from './mp4_faststart.js';
import { createResamplerFor } from './resample.js';
import { concatFloat32 } from './sample_convert.js';
import { sniffContainer } from './sniff.js';
import { parseWav, wavToMonoFloat32 } from './wav.js';
import type { WavData } from './wav.js';

export const DEFAULT_MAX_DURATION_MS = 10 * 60 * 1000;
export const DEFAULT_FFMPEG_TIMEOUT_MS = 30_000;

export interface DecodeAudioFileOptions {
  /** Longest accepted audio, in ms (default 10 min); longer is `audio_too_long`. */
  maxDurationMs?: number;
  /** Wall-clock bound on an ffmpeg run, in ms (default 30 s); then `ffmpeg_timeout`. */
  timeoutMs?: number;
  /** ffmpeg binary to use instead of $FFMPEG_PATH / PATH / @ffmpeg-installer. */
  ffmpegPath?: string;
  /** Cancels the decode (kills ffmpeg); the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

export interface DecodedAudioFile {
  /** Mono float32 at 16 kHz. */
  samples: Float32Array;
  sampleRate: 16000;
  durationMs: number;
  /** Container: an `AudioContainer` sniffed here, or ffmpeg's demuxer name for others. */
  sourceFormat: string;
  /** Sample coding, e.g. `pcm_s16le`, `mp3`, `aac`, `opus`. */
  sourceCodec: string;
  sourceSampleRate: number;
  sourceChannels: number;
  decoder: 'wav' | 'ffmpeg';
  /** What ffmpeg complained about while still producing audio (damaged input decodes in part). */
  warnings: string[];
}

const SLICE_SAMPLES = 1 << 18;

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new CodecError('audio_option_invalid', `${name} must be a positive number (got ${value})`, name);
  }
  return value;
}

/**
 * Decode an audio file of any common container to 16 kHz mono float32. Rejects with CodecError:
 * `audio_empty`, `audio_too_long`, `audio_format_unsupported` (not audio, no audio stream, codec
 * unknown), `audio_decode_failed` (damaged), `ffmpeg_unavailable`, `ffmpeg_timeout`,
 * `ffmpeg_failed`, `audio_sample_rate_unsupported`, `audio_option_invalid`.
 */
export async function decodeAudioFile(bytes: Uint8Array, options: DecodeAudioFileOptions = {}): Promise<DecodedAudioFile> {
  const maxDurationMs = positive(options.maxDurationMs ?? DEFAULT_MAX_DURATION_MS, 'maxDurationMs');
  const timeoutMs = positive(options.timeoutMs ?? DEFAULT_FFMPEG_TIMEOUT_MS, 'timeoutMs');
  const maxSamples = Math.floor((maxDurationMs * MODEL_SAMPLE_RATE) / 1000);
  if (bytes.length === 0) throw new CodecError('audio_empty', 'audio file is empty (0 bytes)', 'audio');
  const sniffed = sniffContainer(bytes);
  if (sniffed.audio === false) {
    throw new CodecError('audio_format_unsupported', `expected an audio file, got ${sniffed.label}`, 'audio');
  }

  let wavFallback: CodecError | undefined;
  if (sniffed.format === 'wav') {
    let wav: WavData | undefined;
    try {
      wav = parseWav(bytes);
    } catch (err) {
      // Codings wavefile does not convert (ADPCM, MP3-in-WAV, big-endian RIFX) and headers it
      // rejects go to ffmpeg, which reads more of the WAV zoo.
      if (!(err instanceof CodecError) || (err.code !== 'audio_format_unsupported' && err.code !== 'audio_decode_failed')) throw err;
      wavFallback = err;
    }
    if (wav) return decodeWavData(wav, maxDurationMs, maxSamples);
  }

  let binary;
  try {
    binary = await locateFfmpeg(options.ffmpegPath);
  } catch (err) {
    if (wavFallback && err instanceof CodecError) {
      throw new CodecError('ffmpeg_unavailable', `${wavFallback.message}; decoding it needs ffmpeg: ${err.message}`, 'audio', { cause: err });
    }
    throw err;
  }
  const input = sniffed.format === 'mp4' ? moveMoovToFront(bytes) : bytes;
  const decoded = await decodeWithFfmpeg(input, {
    binary,
    maxSamples,
    timeoutMs,
    signal: options.signal,
    knownContainer: sniffed.audio === true,
    label: sniffed.audio ? sniffed.label : 'input',
  });
  return {
    samples: decoded.samples,
    sampleRate: MODEL_SAMPLE_RATE,
    durationMs: (decoded.samples.length * 1000) / MODEL_SAMPLE_RATE,
    sourceFormat: sniffed.audio ? sniffed.format : decoded.demuxer || 'unknown',
    sourceCodec: decoded.codec,
    sourceSampleRate: decoded.sourceSampleRate,
    sourceChannels: decoded.sourceChannels,
    decoder: 'ffmpeg',
    warnings: decoded.warnings,
  };
}

async function decodeWavData(wav: WavData, maxDurationMs: number, maxSamples: number): Promise<DecodedAudioFile> {
  if (wav.frames === 0) throw new CodecError('audio_empty', 'WAV file holds no audio samples', 'audio');
  // Checked on the source length, before any conversion work.
  const sourceMs = (wav.frames * 1000) / wav.sampleRate;
  if (sourceMs > maxDurationMs) {
    throw new CodecError('audio_too_long', `WAV audio is ${(sourceMs / 1000).toFixed(3)} s, over the limit of ${(maxDurationMs / 1000).toFixed(3)} s`, 'audio');
  }
  const mono = await wavToMonoFloat32(wav);
  const samples = await resampleTo16k(mono, wav.sampleRate);
  if (samples.length > maxSamples) {
    throw new CodecError('audio_too_long', `WAV audio is over the limit of ${(maxDurationMs / 1000).toFixed(3)} s`, 'audio');
  }
  return {
    samples,
    sampleRate: MODEL_SAMPLE_RATE,
    durationMs: (samples.length * 1000) / MODEL_SAMPLE_RATE,
    sourceFormat: 'wav',
    sourceCodec: wav.coding,
    sourceSampleRate: wav.sampleRate,
    sourceChannels: wav.channels,
    decoder: 'wav',
    warnings: [],
  };
}

/** The streaming resampler fed in slices, yielding between them so a long file does not stall the event loop. */
async function resampleTo16k(samples: Float32Array, rate: number): Promise<Float32Array> {
  if (rate === MODEL_SAMPLE_RATE) return samples;
  const resampler = createResamplerFor(rate, MODEL_SAMPLE_RATE, 'audio');
  const parts: Float32Array[] = [];
  for (let at = 0; at < samples.length; at += SLICE_SAMPLES) {
    parts.push(resampler.push(samples.subarray(at, at + SLICE_SAMPLES)));
    if (at + SLICE_SAMPLES < samples.length) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  parts.push(resampler.flush());
  return concatFloat32(parts);
}
