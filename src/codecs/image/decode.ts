// Image decoding for the vision path: compressed bytes -> 8-bit sRGB pixels, interleaved RGB.
// sharp (libvips) does the work on libuv threads, so the event loop only awaits. The pixel cap is
// enforced from the header before any pixel is decoded (sharp's limitInputPixels, and our own check
// after metadata()), so a small file that claims a huge canvas (a decompression bomb) costs a header
// parse, not gigabytes.
import sharp, { type Metadata, type OutputInfo, type SharpOptions } from 'sharp';
import { nativeAddon, nativeStatus } from '../../native/addon.js';
import { CodecError } from '../errors.js';
import { isJpeg, readJpegHeader } from './jpeg_header.js';

/** Default cap on decoded pixels (width x height of the stored image): 8K UHD and a little more. */
export const DEFAULT_MAX_INPUT_PIXELS = 40_000_000;

export type ImageFormat = 'jpeg' | 'png' | 'webp' | 'avif' | 'gif' | 'tiff';

export interface DecodedImage {
  /** width * height * 3 bytes, row-major, R G B interleaved, sRGB, EXIF orientation applied. */
  rgb: Uint8Array;
  width: number;
  height: number;
  format: ImageFormat;
  /** The stored image had an alpha channel; it was composited onto white. */
  hadAlpha: boolean;
}

export interface DecodeImageOptions {
  /** Refuse images whose stored width x height exceeds this (default 40 000 000). */
  maxInputPixels?: number;
}

// sharp reports AVIF as 'heif'; HEIC (HEVC) shares that label and is told apart by compression.
function acceptedFormat(meta: Metadata): ImageFormat | undefined {
  switch (meta.format) {
    case 'jpeg':
    case 'png':
    case 'webp':
    case 'gif':
    case 'tiff':
      return meta.format;
    case 'heif':
      return meta.compression === 'av1' ? 'avif' : undefined;
    default:
      return undefined;
  }
}

// Loading the addon tunes glibc to reuse the multi-MB blocks libvips frees after each decode instead
// of faulting fresh pages in every time (native/src/buffer_pool.cc: about two thirds of a 1080p
// JPEG decode on a VM). Best effort: decoding itself works without the addon.
let addonLoaded = false;
function loadAddonOnce(): void {
  if (addonLoaded) return;
  addonLoaded = true;
  nativeStatus();
}

// JPEG: libvips recognises it by the same bytes as isJpeg, it has no alpha, and sharp's
// limitInputPixels refuses an oversized header before decoding, so the separate metadata() pass
// (a second libvips pipeline) is skipped for it.

function decodeFailed(err: unknown): CodecError {
  const message = err instanceof Error ? err.message : String(err);
  if (/pixel limit/i.test(message)) {
    return new CodecError('image_too_large', `image exceeds the decoded pixel limit: ${message}`, 'image', { cause: err });
  }
  return new CodecError('image_decode_failed', `image could not be decoded: ${message}`, 'image', { cause: err });
}

/**
 * Decodes JPEG (baseline, progressive, CMYK), PNG (8/16-bit, palette, grey, alpha), WebP, AVIF,
 * GIF (first frame) and TIFF (first page) into 8-bit RGB. Orientation from EXIF is applied, alpha
 * is composited onto white (what qwen-omni-utils does before the processor), greyscale is
 * replicated into three channels, CMYK becomes RGB with Pillow's formula (what the reference's
 * convert("RGB") gives; no ICC) and ICC-tagged RGB images are converted to sRGB.
 */
export async function decodeImage(bytes: Uint8Array, options: DecodeImageOptions = {}): Promise<DecodedImage> {
  if (!(bytes instanceof Uint8Array)) {
    throw new CodecError('image_decode_failed', 'image must be a Uint8Array of encoded bytes', 'image');
  }
  if (bytes.length === 0) throw new CodecError('image_empty', 'image is empty', 'image');
  const maxPixels = options.maxInputPixels ?? DEFAULT_MAX_INPUT_PIXELS;
  if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
    throw new CodecError('image_option_invalid', `maxInputPixels must be a positive integer, got ${maxPixels}`, 'maxInputPixels');
  }
  // sharp would copy a non-Buffer view; wrapping shares the memory.
  const input = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sharpOptions: SharpOptions = { limitInputPixels: maxPixels, pages: 1, page: 0, failOn: 'error' };

  loadAddonOnce();
  let format: ImageFormat = 'jpeg';
  let hadAlpha = false;
  let cmyk = false;
  if (isJpeg(bytes)) {
    cmyk = readJpegHeader(bytes)?.components === 4;
  } else {
    let meta: Metadata;
    try {
      meta = await sharp(input, sharpOptions).metadata();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (/unsupported image format/i.test(message)) {
        throw new CodecError('image_format_unsupported', 'image format not recognised (accepted: JPEG, PNG, WebP, AVIF, GIF, TIFF)', 'image', { cause: err });
      }
      throw decodeFailed(err);
    }
    const accepted = acceptedFormat(meta);
    if (!accepted) {
      const what = meta.format === 'heif' ? `heif (${meta.compression ?? 'unknown'} compression)` : meta.format;
      throw new CodecError('image_format_unsupported', `image format ${what} is not accepted (accepted: JPEG, PNG, WebP, AVIF, GIF, TIFF)`, 'image');
    }
    format = accepted;
    const { width, height } = meta;
    if (!width || !height) throw new CodecError('image_decode_failed', 'image header has no dimensions', 'image');
    if (width * height > maxPixels) {
      throw new CodecError('image_too_large', `image is ${width}x${height} = ${width * height} pixels; the limit is ${maxPixels}`, 'image');
    }
    hadAlpha = meta.hasAlpha === true;
    cmyk = meta.space === 'cmyk';
  }

  // Alpha is composited natively rather than with sharp's flatten, whose rounding differs from
  // Pillow's paste (what the reference pipeline uses) on about a third of semi-transparent pixels.
  // CMYK is kept as decoded and converted natively with Pillow's formula (the reference's
  // convert("RGB")), not through an ICC profile as libvips would.
  const channels = hadAlpha || cmyk ? 4 : 3;
  let data: Buffer;
  let info: OutputInfo;
  try {
    if (cmyk) {
      ({ data, info } = await sharp(input, sharpOptions)
        .rotate()
        .pipelineColourspace('cmyk')
        .toColourspace('cmyk')
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true }));
      hadAlpha = false;
    } else {
      const pipeline = sharp(input, sharpOptions).rotate().toColourspace('srgb');
      ({ data, info } = await (hadAlpha ? pipeline.ensureAlpha() : pipeline.removeAlpha())
        .raw({ depth: 'uchar' })
        .toBuffer({ resolveWithObject: true }));
    }
  } catch (err) {
    throw decodeFailed(err);
  }
  if (info.channels !== channels || data.length !== info.width * info.height * channels) {
    throw new CodecError('image_decode_failed', `unexpected decoder output: ${info.width}x${info.height}x${info.channels}`, 'image');
  }
  const pixels = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return {
    rgb: cmyk ? await nativeAddon().cmykToRgb(pixels) : hadAlpha ? await nativeAddon().compositeOnWhite(pixels) : pixels,
    width: info.width,
    height: info.height,
    format,
    hadAlpha,
  };
}
