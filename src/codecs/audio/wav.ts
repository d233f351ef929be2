// WAV (RIFF WAVE) in and out. `wavefile` parses the RIFF structure and the fmt chunk; samples are
// converted here to float32 with libsndfile's scaling (what librosa.load reads through soundfile):
// integers divided by 2^(bits-1), unsigned 8-bit centred on 128, G.711 through the 16-bit ITU
// tables. 16-bit, float and G.711 data go through native kernels or typed-array copies; 8/24/32-bit
// integers take a JS loop, run in slices that yield to the event loop.
import wavefile from 'wavefile';
import { CodecError } from '../errors.js';
import { downmixInterleaved } from './downmix.js';
import { g711Decode } from './g711.js';
import { pcm16leToFloat32 } from './pcm.js';
import { LITTLE_ENDIAN, float32ToInt16, int16ToFloat32 } from './sample_convert.js';

const { WaveFile } = wavefile;

/** The fmt-chunk fields read here (wavefile types them as `object`). */
interface FmtChunk {
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
  bitsPerSample: number;
  subformat: number[];
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_ALAW = 6;
const WAVE_FORMAT_MULAW = 7;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

/** Sample codings handled here; anything else (ADPCM, MP3-in-WAV, ...) is left to ffmpeg. */
export type WavCoding = 'pcm_u8' | 'pcm_s16le' | 'pcm_s24le' | 'pcm_s32le' | 'pcm_f32le' | 'pcm_f64le' | 'pcm_alaw' | 'pcm_mulaw';

export interface WavData {
  coding: WavCoding;
  sampleRate: number;
  channels: number;
  frames: number;
  /** Raw sample bytes, whole frames only (a truncated last frame is dropped, as libsndfile does). */
  data: Uint8Array;
}

const BYTES_PER_SAMPLE: Record<WavCoding, number> = {
  pcm_u8: 1, pcm_s16le: 2, pcm_s24le: 3, pcm_s32le: 4, pcm_f32le: 4, pcm_f64le: 8, pcm_alaw: 1, pcm_mulaw: 1,
};
/** Most channels a WAV may declare (WAVE_FORMAT_EXTENSIBLE names 18 speaker positions). */
export const MAX_WAV_CHANNELS = 64;
/** Samples (not frames: a frame of many channels is many samples) converted per event-loop turn. */
const SLICE_SAMPLES = 1 << 18;

/**
 * Parse a RIFF WAVE file. Throws `audio_decode_failed` when the bytes are not a readable WAV and
 * `audio_format_unsupported` for a sample coding this module does not convert (callers may hand
 * those to ffmpeg).
 */
export function parseWav(bytes: Uint8Array): WavData {
  const wav = new WaveFile();
  try {
    wav.fromBuffer(bytes);
  } catch (cause) {
    throw new CodecError('audio_decode_failed', `not a readable WAV file: ${(cause as Error).message}`, 'audio', { cause });
  }
  if (wav.container !== 'RIFF' && wav.container !== 'RF64') {
    throw new CodecError('audio_format_unsupported', `${wav.container} (big-endian) WAV is not converted here`, 'audio');
  }
  const fmt = wav.fmt as FmtChunk;
  const code = fmt.audioFormat === WAVE_FORMAT_EXTENSIBLE ? (fmt.subformat[0] ?? 0) & 0xffff : fmt.audioFormat;
  const coding = codingOf(code, fmt.bitsPerSample);
  if (coding === undefined) {
    throw new CodecError(
      'audio_format_unsupported',
      `WAV sample format 0x${code.toString(16)} at ${fmt.bitsPerSample} bits is not converted here`,
      'audio',
    );
  }
  const channels = fmt.numChannels;
  if (!Number.isSafeInteger(channels) || channels < 1) {
    throw new CodecError('audio_channels_unsupported', `WAV declares ${channels} channels`, 'audio');
  }
  if (channels > MAX_WAV_CHANNELS) {
    throw new CodecError('audio_channels_unsupported', `WAV declares ${channels} channels (at most ${MAX_WAV_CHANNELS} are taken)`, 'audio');
  }
  if (!Number.isSafeInteger(fmt.sampleRate) || fmt.sampleRate < 1) {
    throw new CodecError('audio_sample_rate_unsupported', `WAV declares a sample rate of ${fmt.sampleRate} Hz`, 'audio');
  }
  const frameBytes = BYTES_PER_SAMPLE[coding] * channels;
  const raw = (wav.data as { samples: Uint8Array }).samples;
  const frames = Math.floor(raw.length / frameBytes);
  return { coding, sampleRate: fmt.sampleRate, channels, frames, data: raw.subarray(0, frames * frameBytes) };
}

function codingOf(code: number, bits: number): WavCoding | undefined {
  if (code === WAVE_FORMAT_PCM) {
    return bits === 8 ? 'pcm_u8' : bits === 16 ? 'pcm_s16le' : bits === 24 ? 'pcm_s24le' : bits === 32 ? 'pcm_s32le' : undefined;
  }
  if (code === WAVE_FORMAT_IEEE_FLOAT) return bits === 32 ? 'pcm_f32le' : bits === 64 ? 'pcm_f64le' : undefined;
  if (code === WAVE_FORMAT_ALAW && bits === 8) return 'pcm_alaw';
  if (code === WAVE_FORMAT_MULAW && bits === 8) return 'pcm_mulaw';
  return undefined;
}

/** Mono float32 samples of a parsed WAV at its own rate (channels averaged). */
export async function wavToMonoFloat32(wav: WavData): Promise<Float32Array> {
  const frameBytes = BYTES_PER_SAMPLE[wav.coding] * wav.channels;
  const sliceFrames = Math.max(1, Math.floor(SLICE_SAMPLES / wav.channels));
  if (wav.frames <= sliceFrames) return downmixInterleaved(toFloat32(wav.coding, wav.data), wav.channels);
  const mono = new Float32Array(wav.frames);
  for (let first = 0; first < wav.frames; first += sliceFrames) {
    const last = Math.min(first + sliceFrames, wav.frames);
    const slice = wav.data.subarray(first * frameBytes, last * frameBytes);
    mono.set(downmixInterleaved(toFloat32(wav.coding, slice), wav.channels), first);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return mono;
}

/** Interleaved float32 samples of raw WAV data (little-endian host: see `sample_convert.ts`). */
function toFloat32(coding: WavCoding, data: Uint8Array): Float32Array {
  switch (coding) {
    case 'pcm_s16le':
      return pcm16leToFloat32(data);
    case 'pcm_alaw':
      return int16ToFloat32(g711Decode('alaw', data));
    case 'pcm_mulaw':
      return int16ToFloat32(g711Decode('mulaw', data));
    case 'pcm_f32le': {
      const a = aligned(data, 4);
      return new Float32Array(a.buffer, a.byteOffset, a.length / 4);
    }
    case 'pcm_f64le': {
      const a = aligned(data, 8);
      // The typed-array constructor converts in native code, rounding to nearest like numpy's cast.
      return new Float32Array(new Float64Array(a.buffer, a.byteOffset, a.length / 8));
    }
    case 'pcm_u8': {
      const out = new Float32Array(data.length);
      for (let i = 0; i < data.length; i++) out[i] = (data[i]! - 128) / 128;
      return out;
    }
    case 'pcm_s24le': {
      const out = new Float32Array(data.length / 3);
      for (let i = 0, j = 0; i < out.length; i++, j += 3) {
        // Sign-extend the 24-bit value through the top of a 32-bit int.
        out[i] = (((data[j]! | (data[j + 1]! << 8) | (data[j + 2]! << 16)) << 8) >> 8) / 8388608;
      }
      return out;
    }
    case 'pcm_s32le': {
      const a = aligned(data, 4);
      const ints = new Int32Array(a.buffer, a.byteOffset, a.length / 4);
      const out = new Float32Array(ints.length);
      // x / 2^31 is exact in double; one rounding to float32, the same as libsndfile's
      // (float)x * 2^-31.
      for (let i = 0; i < ints.length; i++) out[i] = ints[i]! / 2147483648;
      return out;
    }
  }
}

/** `data` itself when its offset suits a typed-array view of `size`-byte elements, else a copy. */
function aligned(data: Uint8Array, size: number): Uint8Array {
  if (!LITTLE_ENDIAN) throw new CodecError('audio_format_unsupported', 'this WAV coding needs a little-endian host', 'audio');
  return data.byteOffset % size === 0 ? data : new Uint8Array(data);
}

/** A 16-bit PCM mono WAV of `samples` (floats in [-1, 1), rounded half to even and clamped). */
export function encodeWav(samples: Float32Array, sampleRate: number): Buffer {
  if (!Number.isSafeInteger(sampleRate) || sampleRate <= 0) {
    throw new CodecError('audio_sample_rate_unsupported', `sample rate must be a positive integer in Hz (got ${sampleRate})`, 'sampleRate');
  }
  const wav = new WaveFile();
  wav.fromScratch(1, sampleRate, '16', float32ToInt16(samples));
  const bytes = wav.toBuffer();
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
