// Base64 media carried in client events: input audio chunks and image frames. Sizes are checked
// on the base64 length before anything is decoded, base64 is validated strictly (Node's decoder
// silently drops garbage), and container bytes that do not belong in a raw stream (a WAV header,
// MP3 frames, a non-image) are caught by their magic bytes (realtime-protocol.md §2.5, §6.2, §11.35-37).
import { base64DecodedLength, decodeBase64Strict } from '../../../codecs/audio/base64.js';
import { CodecError } from '../../../codecs/errors.js';
import type { AudioFormat } from '../model.js';
import { errors } from './common.js';

/** OpenAI's bound per `input_audio_buffer.append` (SDK doc comment): 15 MiB decoded. */
export const MAX_AUDIO_APPEND_BYTES = 15 * 1024 * 1024;
/** DashScope's documented frame bound ("<500 KB before base64"); the stricter reading. */
export const MAX_IMAGE_BYTES = 500 * 1024;

/** Strict base64 decode with a decoded-size cap; errors name `param`. */
export function decodeBase64Field(text: string, param: string, maxBytes: number): Buffer {
  const decodedLength = base64DecodedLength(text);
  if (decodedLength > maxBytes) throw errors.tooLong(param, maxBytes, decodedLength);
  try {
    return decodeBase64Strict(text, param);
  } catch (error) {
    if (error instanceof CodecError) throw errors.invalidValue(param, error.message);
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------
// Audio

export type WavHeaderPolicy = 'reject' | 'strip';

function ascii(bytes: Buffer, start: number, length: number): string {
  return bytes.length >= start + length ? bytes.toString('latin1', start, start + length) : '';
}

function isRiffWave(bytes: Buffer): boolean {
  return ascii(bytes, 0, 4) === 'RIFF' && ascii(bytes, 8, 4) === 'WAVE';
}

/**
 * The PCM payload of a RIFF/WAVE chunk list (usually after a 44-byte header, but `LIST`/`fact`
 * chunks may precede `data`). The `fmt ` chunk must say PCM16 mono at `format.rate`.
 */
function stripWavHeader(bytes: Buffer, format: AudioFormat, param: string): Buffer {
  const bad = (why: string): Error => errors.invalidValue(param, `Invalid WAV audio in append: ${why}`);
  let offset = 12;
  let sawFormat = false;
  while (offset + 8 <= bytes.length) {
    const id = ascii(bytes, offset, 4);
    const size = bytes.readUInt32LE(offset + 4);
    const body = offset + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > bytes.length) throw bad('truncated fmt chunk');
      const tag = bytes.readUInt16LE(body);
      const channels = bytes.readUInt16LE(body + 2);
      const rate = bytes.readUInt32LE(body + 4);
      const bits = bytes.readUInt16LE(body + 14);
      if ((tag !== 1 && tag !== 0xfffe) || bits !== 16 || channels !== 1 || rate !== format.rate) {
        throw bad(`expected PCM16 mono at ${format.rate} Hz, got ${bits}-bit, ${channels} channel(s) at ${rate} Hz`);
      }
      sawFormat = true;
    } else if (id === 'data') {
      if (!sawFormat) throw bad('data chunk before fmt chunk');
      // Streaming writers put 0 or 0xFFFFFFFF in the data size; take what is there.
      const end = size === 0 || size === 0xffffffff ? bytes.length : Math.min(bytes.length, body + size);
      return bytes.subarray(body, end);
    }
    offset = body + size + (size % 2); // chunks are word-aligned
  }
  throw bad('no data chunk');
}

/** MPEG audio frame length in bytes for the header at `i`, or 0 if it is not a frame header. */
function mpegFrameLength(b: Buffer, i: number): number {
  if (b.length < i + 4 || b[i] !== 0xff || (b[i + 1]! & 0xe0) !== 0xe0) return 0;
  const version = (b[i + 1]! >> 3) & 3; // 0: 2.5, 2: 2, 3: 1
  const layer = (b[i + 1]! >> 1) & 3; // 1: III, 2: II, 3: I
  const bitrateIndex = b[i + 2]! >> 4;
  const rateIndex = (b[i + 2]! >> 2) & 3;
  const padding = (b[i + 2]! >> 1) & 1;
  if (version === 1 || layer === 0 || bitrateIndex === 0 || bitrateIndex === 15 || rateIndex === 3) return 0;
  const v1 = version === 3;
  const bitrates: Record<string, readonly number[]> = {
    '1-3': [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
    '1-2': [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
    '1-1': [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    '2-3': [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256],
    '2-x': [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
  };
  const table = v1 ? bitrates[`1-${layer}`]! : layer === 3 ? bitrates['2-3']! : bitrates['2-x']!;
  const bitrate = table[bitrateIndex]! * 1000;
  const sampleRate = [44100, 48000, 32000][rateIndex]! / (v1 ? 1 : version === 2 ? 2 : 4);
  if (layer === 3) return Math.floor((12 * bitrate) / sampleRate + padding) * 4;
  const samplesPerFrame = layer === 1 && !v1 ? 576 : 1152;
  return Math.floor((samplesPerFrame / 8) * bitrate / sampleRate) + padding;
}

/**
 * MP3 by its magic: an ID3v2 tag, or two consecutive MPEG frame headers. A single sync word is
 * not enough: PCM16 noise starts with 0xFFEx often enough to make that a false positive.
 */
export function looksLikeMp3(bytes: Buffer): boolean {
  if (ascii(bytes, 0, 3) === 'ID3' && bytes.length >= 10 && bytes[3]! < 0xff) return true;
  const first = mpegFrameLength(bytes, 0);
  return first > 0 && mpegFrameLength(bytes, first) > 0;
}

/**
 * Validate one `input_audio_buffer.append` payload for the session's input format and return the
 * raw samples. `wav`: GA/beta reject a RIFF header, DashScope strips it.
 */
export function decodeAudioAppend(text: string, format: AudioFormat, wav: WavHeaderPolicy, param = 'audio'): Buffer {
  let bytes = decodeBase64Field(text, param, MAX_AUDIO_APPEND_BYTES);
  if (isRiffWave(bytes)) {
    if (wav === 'reject') {
      throw errors.invalidValue(
        param,
        'Invalid audio: a RIFF/WAV header was sent; append raw audio samples in the session input format without a container.',
      );
    }
    bytes = stripWavHeader(bytes, format, param);
  }
  if (format.encoding === 'pcm16') {
    if (looksLikeMp3(bytes)) {
      throw errors.invalidValue(param, 'Invalid audio: MP3 data was sent; the session input format is raw PCM16 (pcm16).');
    }
    if (bytes.length % 2 !== 0) {
      throw errors.invalidValue(param, `Invalid audio: PCM16 needs an even number of bytes, got ${bytes.length}.`);
    }
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Images

export type ImageMime = 'image/jpeg' | 'image/png';

export function imageMime(bytes: Buffer): ImageMime | null {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'image/jpeg';
  if (bytes.length >= 8 && bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return 'image/png';
  }
  return null;
}

/** An image frame (`input_image_buffer.append {image}`): base64 JPEG or PNG, capped. */
export function decodeImageFrame(text: string, param = 'image'): { image: Buffer; mime: ImageMime } {
  const image = decodeBase64Field(text, param, MAX_IMAGE_BYTES);
  const mime = imageMime(image);
  if (!mime) throw errors.invalidValue(param, 'Invalid image: expected JPEG or PNG data.');
  return { image, mime };
}

const DATA_URI = /^data:([^;,]*)((?:;[^;,]*)*),/;

/** An `input_image` part's `image_url`: a base64 data URI of a JPEG or PNG (no remote URLs). */
export function decodeImageDataUri(url: string, param: string): { image: Buffer; mime: ImageMime } {
  const match = DATA_URI.exec(url);
  if (!match) {
    throw errors.invalidValue(param, 'Invalid image_url: expected a data URI (data:image/png;base64,... or data:image/jpeg;base64,...); remote URLs are not fetched.');
  }
  const declared = match[1]!.toLowerCase();
  if (!['image/png', 'image/jpeg', 'image/jpg'].includes(declared) || !match[2]!.split(';').includes('base64')) {
    throw errors.invalidValue(param, `Invalid image_url: expected a base64 PNG or JPEG data URI, got '${declared || 'no media type'}'.`);
  }
  return decodeImageFrame(url.slice(match[0].length), param);
}
