// Target size and patch grid of an image, exactly as transformers' Qwen2-VL `smart_resize` (used by
// Qwen3-Omni's image and video processors) computes them; see specs/qwen3-omni-io.md section 5.
import { CodecError } from '../errors.js';

/** Qwen3-Omni preprocessor_config.json values [ckpt]. */
export const QWEN3_OMNI_IMAGE = {
  patchSize: 16,
  temporalPatchSize: 2,
  mergeSize: 2,
  /** patch * merge: both output sides are multiples of this. */
  factor: 32,
  minPixels: 3136,
  maxPixels: 12_845_056,
  /** mean = std = 0.5 for every channel: v = x / 127.5 - 1. */
  mean: 0.5,
  std: 0.5,
} as const;

/** Floats per patch row of pixel_values: 3 channels x temporal 2 x 16 x 16. */
export const PATCH_ROW_FLOATS = 3 * QWEN3_OMNI_IMAGE.temporalPatchSize * QWEN3_OMNI_IMAGE.patchSize ** 2;

/** The reference rejects anything more elongated than this. */
export const MAX_ASPECT_RATIO = 200;

export interface SmartResizeOptions {
  factor?: number;
  minPixels?: number;
  maxPixels?: number;
}

/** Python's round(): nearest integer, ties to even (JS Math.round sends ties up). */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * [height, width] the image is resized to: multiples of `factor`, area within [minPixels,
 * maxPixels], aspect ratio kept as closely as possible. Same float operations in the same order as
 * the reference, so results match it bit for bit. Throws image_aspect_ratio_invalid above 200:1.
 */
export function smartResize(height: number, width: number, options: SmartResizeOptions = {}): [number, number] {
  const factor = options.factor ?? QWEN3_OMNI_IMAGE.factor;
  const minPixels = options.minPixels ?? QWEN3_OMNI_IMAGE.minPixels;
  const maxPixels = options.maxPixels ?? QWEN3_OMNI_IMAGE.maxPixels;
  for (const [name, v] of [['height', height], ['width', width], ['factor', factor]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) {
      throw new CodecError('image_option_invalid', `${name} must be a positive integer, got ${v}`, name);
    }
  }
  if (!(minPixels > 0) || !(maxPixels >= minPixels)) {
    throw new CodecError('image_option_invalid', `need 0 < minPixels <= maxPixels, got ${minPixels} and ${maxPixels}`, 'maxPixels');
  }
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > MAX_ASPECT_RATIO) {
    throw new CodecError(
      'image_aspect_ratio_invalid',
      `image is ${width}x${height}: aspect ratio ${ratio} exceeds the model's limit of ${MAX_ASPECT_RATIO}`,
      'image',
    );
  }
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}

/** `image_grid_thw` of an image resized to (height, width): [1, height / 16, width / 16]. */
export function imageGridThw(resizedHeight: number, resizedWidth: number, patchSize: number = QWEN3_OMNI_IMAGE.patchSize): [number, number, number] {
  return [1, resizedHeight / patchSize, resizedWidth / patchSize];
}

/** LLM tokens of a grid: t * h * w / merge^2 (the vision merger folds 2x2 patches into one). */
export function visionTokenCount(grid: readonly [number, number, number], mergeSize: number = QWEN3_OMNI_IMAGE.mergeSize): number {
  return (grid[0] * grid[1] * grid[2]) / (mergeSize * mergeSize);
}
