// Media of content parts to model input: inline bytes (a `data:` URI, or raw base64 where OpenAI
// sends it) decoded strictly, then audio to log-mel features and images to patches on the native
// codecs (off the event loop). The gateway never fetches URLs: a remote http(s) URL is a 400
// naming the field, so a request can never make the server reach into the network.
import { decodeBase64Strict } from '../../codecs/audio/base64.js';
import { decodeAudioFile } from '../../codecs/audio/file_decoder.js';
import { logMelFeatures } from '../../codecs/audio/mel.js';
import { encodeWav } from '../../codecs/audio/wav.js';
import { decodeImage } from '../../codecs/image/decode.js';
import { imageToPatches } from '../../codecs/image/patches.js';
import type { InputMedia } from '../../fusion/model_input.js';
import type { TurnPart } from '../../runtime/contract.js';
import sharp from 'sharp';
import { invalidRequest, toChatError } from './errors.js';

export interface MediaSourceOptions {
  /** OpenAI's `input_audio.data` is bare base64; everywhere else a data: URI is expected. */
  allowBareBase64: boolean;
}

const DATA_URI = /^data:([^,]*?)(;base64)?,/i;

/** The bytes of an inline media source; `param` names the field in errors. */
export function mediaBytes(source: string, param: string, options: MediaSourceOptions): Buffer {
  if (/^https?:\/\//i.test(source)) {
    throw invalidRequest(
      'invalid_value',
      `'${param}' is a remote URL; this gateway does not fetch media. Send the bytes inline as a data: URI (data:<mime>;base64,...).`,
      param,
    );
  }
  const m = DATA_URI.exec(source);
  if (m) {
    if (!m[2]) throw invalidRequest('invalid_value', `'${param}' must be a base64 data: URI (data:<mime>;base64,...).`, param);
    return decodeBase64Strict(source.slice(m[0].length), param);
  }
  if (options.allowBareBase64) return decodeBase64Strict(source, param);
  throw invalidRequest('invalid_value', `'${param}' must be a base64 data: URI (data:<mime>;base64,...); other URL schemes are not accepted.`, param);
}

/** Decodes an audio file (WAV, MP3, ...) to the model's features. */
export async function audioMedia(bytes: Uint8Array, param: string, signal?: AbortSignal): Promise<InputMedia> {
  try {
    const decoded = await decodeAudioFile(bytes, signal ? { signal } : {});
    const mel = await logMelFeatures(decoded.samples);
    return { type: 'audio', features: mel.data, frames: mel.frames, key: {} };
  } catch (err) {
    throw toChatError(err, param);
  }
}

/** Decodes an image to the model's patches. */
export async function imageMedia(bytes: Uint8Array, param: string): Promise<InputMedia> {
  try {
    const patches = await imageToPatches(bytes);
    return { type: 'image', pixelValues: patches.pixelValues, grid: patches.grid, key: {} };
  } catch (err) {
    throw toChatError(err, param);
  }
}

/** Decodes an audio file to 16 kHz mono and writes it as a PCM16 WAV (for whole-turn engines). */
export async function audioTurnPart(bytes: Uint8Array, param: string, signal?: AbortSignal): Promise<TurnPart> {
  try {
    const decoded = await decodeAudioFile(bytes, signal ? { signal } : {});
    return { type: 'audio', wav: encodeWav(decoded.samples, decoded.sampleRate) };
  } catch (err) {
    throw toChatError(err, param);
  }
}

/**
 * An image for a whole-turn engine: decoded in full first (the same checks and errors as the
 * token path: corrupt, unsupported, too many pixels); JPEG and PNG go as sent, other formats as
 * a PNG of the decoded pixels (lossless).
 */
export async function imageTurnPart(bytes: Uint8Array, param: string): Promise<TurnPart> {
  try {
    const image = await decodeImage(bytes);
    const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (image.format === 'jpeg') return { type: 'image', bytes: buf, mime: 'image/jpeg' };
    if (image.format === 'png') return { type: 'image', bytes: buf, mime: 'image/png' };
    const png = await sharp(image.rgb, { raw: { width: image.width, height: image.height, channels: 3 } }).png().toBuffer();
    return { type: 'image', bytes: png, mime: 'image/png' };
  } catch (err) {
    throw toChatError(err, param);
  }
}
