// Qwen3-Omni image input: encoded bytes -> `pixel_values` rows and `image_grid_thw`, what
// transformers' Qwen2VLImageProcessor (torchvision backend, Qwen3-Omni settings) gives the model.
// decode (sharp, libuv threads) -> smart_resize -> native resize + normalise + patchify (libuv pool);
// the event loop does no per-pixel work. Plain JPEGs (YCbCr or grey, 8-bit, no ICC profile: most
// photos and camera frames) take a fast lane: libjpeg-turbo decodes them inside the same native job,
// with the same decoder settings as sharp's, into memory that job reuses.
import { nativeAddon } from '../../native/addon.js';
import { CODEC_ERROR_CODES, CodecError, type CodecErrorCode } from '../errors.js';
import { DEFAULT_MAX_INPUT_PIXELS, decodeImage, type DecodeImageOptions, type ImageFormat } from './decode.js';
import { readJpegHeader } from './jpeg_header.js';
import { QWEN3_OMNI_IMAGE, smartResize, visionTokenCount } from './smart_resize.js';

export interface ImagePatchOptions extends DecodeImageOptions {
  /** Smallest resized area (default 3136, the checkpoint's min_pixels). */
  minPixels?: number;
  /** Largest resized area (default 12 845 056, the checkpoint's max_pixels). */
  maxPixels?: number;
  /** Threads for one large image, split by rows (default 1; under ~512 rows always 1). */
  threads?: number;
}

export interface ImagePatches {
  /** grid[0] * grid[1] * grid[2] rows of 1536 float32 (3 channels x 2 frames x 16 x 16). */
  pixelValues: Float32Array;
  /** image_grid_thw: [1, resizedHeight / 16, resizedWidth / 16]. */
  grid: [number, number, number];
  /** LLM placeholder tokens: grid product / 4. */
  tokens: number;
  /** Decoded size after EXIF orientation. */
  width: number;
  height: number;
  resizedWidth: number;
  resizedHeight: number;
  format: ImageFormat;
}

function toCodecError(err: unknown): unknown {
  const e = err as Error & { code?: string };
  if (e && !(e instanceof CodecError) && typeof e.code === 'string' && (CODEC_ERROR_CODES as readonly string[]).includes(e.code)) {
    return new CodecError(e.code as CodecErrorCode, e.message, 'image', { cause: err });
  }
  return err;
}

/** smart_resize with the checkpoint's factor and the caller's (or the checkpoint's) pixel bounds. */
function resizedSize(height: number, width: number, options: Pick<ImagePatchOptions, 'minPixels' | 'maxPixels'>): [number, number] {
  return smartResize(height, width, {
    factor: QWEN3_OMNI_IMAGE.factor,
    minPixels: options.minPixels ?? QWEN3_OMNI_IMAGE.minPixels,
    maxPixels: options.maxPixels ?? QWEN3_OMNI_IMAGE.maxPixels,
  });
}

/** Patches of already decoded 8-bit RGB (width * height * 3 bytes, row-major). */
export async function rgbToPatches(
  rgb: Uint8Array,
  width: number,
  height: number,
  options: Pick<ImagePatchOptions, 'minPixels' | 'maxPixels' | 'threads'> = {},
): Promise<Omit<ImagePatches, 'format'>> {
  const [resizedHeight, resizedWidth] = resizedSize(height, width, options);
  let r;
  try {
    r = await nativeAddon().imageToPatches(rgb, width, height, resizedHeight, resizedWidth, options.threads ?? 1);
  } catch (err) {
    throw toCodecError(err);
  }
  const grid: [number, number, number] = [r.gridT, r.gridH, r.gridW];
  return { pixelValues: r.pixelValues, grid, tokens: visionTokenCount(grid), width, height, resizedWidth, resizedHeight };
}

/**
 * Decodes an image (JPEG, PNG, WebP, AVIF, GIF, TIFF) and turns it into Qwen3-Omni vision input.
 * Rejects with CodecError: image_empty, image_format_unsupported, image_decode_failed,
 * image_too_large (pixel cap, checked from the header before decoding), image_aspect_ratio_invalid
 * (more elongated than 200:1, which the reference refuses too), image_option_invalid.
 */
export async function imageToPatches(bytes: Uint8Array, options: ImagePatchOptions = {}): Promise<ImagePatches> {
  const fast = await jpegFastLane(bytes, options);
  if (fast) return fast;
  const decoded = await decodeImage(bytes, options);
  const p = await rgbToPatches(decoded.rgb, decoded.width, decoded.height, options);
  return { ...p, format: decoded.format };
}

/**
 * The JPEG fast lane: undefined when the file is not a plain JPEG or the native decoder declines
 * it (damaged data, anything libjpeg warns about), and the general path then decides. Headers that
 * break a limit also go to the general path, which owns those errors.
 */
async function jpegFastLane(bytes: Uint8Array, options: ImagePatchOptions): Promise<ImagePatches | undefined> {
  if (!(bytes instanceof Uint8Array)) return undefined;
  const maxInputPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  const header = readJpegHeader(bytes);
  if (
    !header ||
    header.precision !== 8 ||
    (header.components !== 3 && header.components !== 1) ||
    header.hasIcc ||
    header.exifAmbiguous ||
    !Number.isSafeInteger(maxInputPixels) ||
    header.width * header.height > maxInputPixels ||
    header.width * header.height === 0
  ) {
    return undefined;
  }
  const swap = header.orientation >= 5;
  const width = swap ? header.height : header.width;
  const height = swap ? header.width : header.height;
  let resizedHeight: number, resizedWidth: number;
  try {
    [resizedHeight, resizedWidth] = resizedSize(height, width, options);
  } catch {
    return undefined;
  }
  let r;
  try {
    r = await nativeAddon().jpegToPatches(bytes, header.orientation, width, height, resizedHeight, resizedWidth, maxInputPixels, options.threads ?? 1);
  } catch (err) {
    throw toCodecError(err);
  }
  if (!r) return undefined;
  const grid: [number, number, number] = [r.gridT, r.gridH, r.gridW];
  return { pixelValues: r.pixelValues, grid, tokens: visionTokenCount(grid), width, height, resizedWidth, resizedHeight, format: 'jpeg' };
}
