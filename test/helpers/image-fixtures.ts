// Golden image fixtures (test/fixtures/image/, written by scripts/image_fixtures.py with the real
// transformers Qwen2VLImageProcessor configured as Qwen3-Omni uses it): manifest types and loaders.
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';

export const IMAGE_FIXTURE_DIR = fileURLToPath(new URL('../fixtures/image/', import.meta.url));
export const ROW_FLOATS = 1536;

export interface ImageFixtureEntry {
  name: string;
  file: string;
  description: string;
  /** The processor's longest_edge for this image (the checkpoint's 12845056 unless noted). */
  max_pixels: number;
  input_width: number;
  input_height: number;
  resized_height: number;
  resized_width: number;
  grid_thw: [number, number, number];
  num_rows: number;
  num_image_tokens: number;
  /** "all" = rows 0..N-1, otherwise the stored row indices in file order. */
  rows_stored: 'all' | number[];
  stats: { min: number; max: number; mean: number };
}

export interface ImageErrorCase {
  name: string;
  file: string;
  height: number;
  width: number;
  reference: { ok: boolean; error?: string };
}

export interface ImageManifest {
  versions: Record<string, string>;
  settings: Record<string, unknown>;
  images: ImageFixtureEntry[];
  error_cases: ImageErrorCase[];
  /** [height, width, [resizedHeight, resizedWidth] or null when the reference raises]. */
  smart_resize_cases: [number, number, [number, number] | null][];
}

export function loadImageManifest(): ImageManifest {
  return JSON.parse(readFileSync(IMAGE_FIXTURE_DIR + 'manifest.json', 'utf8')) as ImageManifest;
}

export function fixtureBytes(file: string): Buffer {
  return readFileSync(IMAGE_FIXTURE_DIR + file);
}

function f32(file: string): Float32Array {
  if (endianness() !== 'LE') throw new Error('fixtures are little-endian');
  const b = readFileSync(IMAGE_FIXTURE_DIR + file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

export interface LoadedImageFixture {
  entry: ImageFixtureEntry;
  /** Indices of the stored rows, in file order. */
  rowIndices: number[];
  /** rowIndices.length rows of 1536 floats. */
  rows: Float32Array;
  /** Mean of every row 0..N-1. */
  rowMeans: Float32Array;
}

export function loadImageFixture(entry: ImageFixtureEntry): LoadedImageFixture {
  const rowIndices = entry.rows_stored === 'all' ? Array.from({ length: entry.num_rows }, (_, i) => i) : entry.rows_stored;
  const rows = f32(`${entry.name}.rows.f32`);
  const rowMeans = f32(`${entry.name}.row_means.f32`);
  if (rows.length !== rowIndices.length * ROW_FLOATS || rowMeans.length !== entry.num_rows) {
    throw new Error(`fixture ${entry.name} has the wrong size`);
  }
  return { entry, rowIndices, rows, rowMeans };
}
