// Parity with the reference: golden fixtures written by scripts/image_fixtures.py from transformers'
// Qwen2VLImageProcessor (torchvision backend) configured as Qwen3-Omni uses it
// (test/fixtures/image/manifest.json). Grids and token counts must be exact; values within 2 LSB of
// the 8-bit resize (2 / 127.5) with a mean error under 1e-3.
import { describe, expect, it } from 'vitest';
import { CodecError } from '../src/codecs/errors.js';
import { imageToPatches } from '../src/codecs/image/patches.js';
import { smartResize } from '../src/codecs/image/smart_resize.js';
import {
  ROW_FLOATS,
  fixtureBytes,
  loadImageFixture,
  loadImageManifest,
  type ImageFixtureEntry,
  type ImageManifest,
} from './helpers/image-fixtures.js';

const MAX_ABS = 2 / 127.5 + 1e-6;
const MEAN_ABS = 1e-3;

/** A case where the gateway is known to differ from the reference beyond the tolerance (manifest
 * `known_differences`): the same fields as an image entry, plus why and the error recorded then. */
interface KnownDifference extends ImageFixtureEntry {
  reason: string;
  measured: { max_abs: number; mean_abs: number; worst_row_mean: number };
}
const manifest = loadImageManifest() as ImageManifest & { known_differences?: KnownDifference[] };

/** Runs the gateway on a fixture: checks sizes, grid and tokens exactly, returns the errors. */
async function measure(entry: ImageFixtureEntry): Promise<{ worst: number; meanAbs: number; worstMean: number }> {
  const fx = loadImageFixture(entry);
  const p = await imageToPatches(fixtureBytes(entry.file), { maxPixels: entry.max_pixels });
  expect([p.width, p.height]).toEqual([entry.input_width, entry.input_height]);
  expect([p.resizedHeight, p.resizedWidth]).toEqual([entry.resized_height, entry.resized_width]);
  expect(p.grid).toEqual(entry.grid_thw);
  expect(p.tokens).toBe(entry.num_image_tokens);
  expect(p.pixelValues.length).toBe(entry.num_rows * ROW_FLOATS);

  let worst = 0;
  let sum = 0;
  fx.rowIndices.forEach((r, j) => {
    for (let k = 0; k < ROW_FLOATS; k++) {
      const d = Math.abs(p.pixelValues[r * ROW_FLOATS + k]! - fx.rows[j * ROW_FLOATS + k]!);
      worst = Math.max(worst, d);
      sum += d;
    }
  });
  const meanAbs = sum / (fx.rowIndices.length * ROW_FLOATS);
  // Every row's mean checks the rows not stored whole (and the row order: a misplaced patch
  // changes its row's mean far more than resize rounding can).
  let worstMean = 0;
  for (let r = 0; r < entry.num_rows; r++) {
    let s = 0;
    for (let k = 0; k < ROW_FLOATS; k++) s += p.pixelValues[r * ROW_FLOATS + k]!;
    worstMean = Math.max(worstMean, Math.abs(s / ROW_FLOATS - fx.rowMeans[r]!));
  }
  console.log(`${entry.name}: max abs ${worst.toExponential(3)}, mean abs ${meanAbs.toExponential(3)}, worst row-mean ${worstMean.toExponential(3)}`);
  return { worst, meanAbs, worstMean };
}

describe('image patches parity with transformers (golden fixtures)', () => {
  it.each(manifest.images.map((e) => [e.name, e] as const))('%s: grid, tokens and pixel values', async (_name, entry) => {
    const { worst, meanAbs, worstMean } = await measure(entry);
    expect(worst).toBeLessThanOrEqual(MAX_ABS);
    expect(meanAbs).toBeLessThan(MEAN_ABS);
    expect(worstMean).toBeLessThan(MEAN_ABS);
  });

  // Known differences (e.g. CMYK JPEG: libvips' ICC conversion vs PIL's naive formula): grid and
  // tokens still exact, and the error may shrink but not grow past what was recorded.
  it.each((manifest.known_differences ?? []).map((e) => [e.name, e] as const))('%s (known difference): grid exact, error not above the recorded one', async (_name, entry) => {
    expect(entry.reason.length).toBeGreaterThan(0);
    const { worst, meanAbs, worstMean } = await measure(entry);
    expect(worst).toBeLessThanOrEqual(entry.measured.max_abs + MAX_ABS);
    expect(meanAbs).toBeLessThan(entry.measured.mean_abs + MEAN_ABS);
    expect(worstMean).toBeLessThan(entry.measured.worst_row_mean + MEAN_ABS);
  });

  it.each(manifest.error_cases.map((c) => [c.name, c] as const))('rejects %s like the reference does', async (_name, c) => {
    expect(c.reference.ok).toBe(false);
    expect(c.reference.error).toMatch(/aspect ratio/);
    await expect(imageToPatches(fixtureBytes(c.file))).rejects.toSatisfy(
      (e: unknown) => e instanceof CodecError && e.code === 'image_aspect_ratio_invalid' && e.param === 'image',
    );
  });

  it('smart_resize matches the reference on every recorded size', () => {
    expect(manifest.smart_resize_cases.length).toBeGreaterThan(400);
    for (const [h, w, expected] of manifest.smart_resize_cases) {
      if (expected === null) {
        expect(() => smartResize(h, w), `${h}x${w}`).toThrow(CodecError);
      } else {
        expect(smartResize(h, w), `${h}x${w}`).toEqual(expected);
      }
    }
  });
});
