// recycleOutput: an owner done with a codec output (patches, log-mel features) hands its memory
// back before V8 would collect it. Pins what makes that safe to call: the array and every view of
// it become empty (no stale read of the next request's data), only the addon's own outputs are
// touched, V8 stops counting the bytes at once, and outputs made from recycled memory are exact.
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { logMelFeatures } from '../src/codecs/audio/mel.js';
import { imageToPatches, rgbToPatches } from '../src/codecs/image/patches.js';
import { recycleOutput } from '../src/codecs/recycle.js';

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));
// Bitwise equality without a per-element matcher (these arrays hold millions of floats).
const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

async function photo(width: number, height: number, seed: number): Promise<Buffer> {
  const png = await sharp({ create: { width, height, channels: 3, background: { r: seed, g: 90, b: 200 - seed }, noise: { type: 'gaussian', mean: 128, sigma: 30 } } })
    .png()
    .toBuffer();
  return sharp(png).jpeg({ quality: 85 }).toBuffer();
}

describe('recycleOutput', () => {
  it('empties the patches and every view of their buffer, once', async () => {
    const p = await imageToPatches(await photo(320, 240, 10));
    const rows = p.pixelValues.subarray(1536, 2 * 1536);
    expect(p.pixelValues.length).toBe(p.grid[0] * p.grid[1] * p.grid[2] * 1536);
    expect(recycleOutput(p.pixelValues)).toBe(true);
    expect(p.pixelValues.length).toBe(0);
    expect(p.pixelValues.buffer.byteLength).toBe(0);
    expect(rows.length).toBe(0);
    expect(rows[0]).toBeUndefined();
    expect(recycleOutput(p.pixelValues)).toBe(false);
    expect(recycleOutput(rows)).toBe(false);
  });

  it('leaves arrays the addon did not make untouched', async () => {
    const mine = new Float32Array(4096).fill(0.5);
    expect(recycleOutput(mine)).toBe(false);
    expect(mine.length).toBe(4096);
    expect(mine[17]).toBe(0.5);
    const p = await imageToPatches(await photo(64, 64, 20));
    const copy = p.pixelValues.slice();
    expect(recycleOutput(copy)).toBe(false);
    expect(copy.length).toBe(p.pixelValues.length);
    expect(() => recycleOutput('x' as unknown as Float32Array)).toThrow(TypeError);
  });

  it('takes the bytes off the external-memory count at once', async () => {
    const p = await imageToPatches(await photo(1280, 720, 30));
    const bytes = p.pixelValues.byteLength;
    expect(bytes).toBeGreaterThan(10e6);
    const before = process.memoryUsage().external;
    recycleOutput(p.pixelValues);
    const after = process.memoryUsage().external;
    expect(before - after).toBeGreaterThan(bytes * 0.99); // other external memory moves by a few bytes
  });

  it('gives exact outputs from recycled memory (images of several sizes, features)', async () => {
    const images = await Promise.all([photo(640, 480, 40), photo(640, 480, 80), photo(480, 640, 120)]);
    const expected: Float32Array[] = [];
    for (const jpeg of images) expected.push((await imageToPatches(jpeg)).pixelValues.slice());
    // Round after round, each output lands in memory the one before it gave back.
    for (let round = 0; round < 3; round++) {
      for (const [i, jpeg] of images.entries()) {
        const p = await imageToPatches(jpeg);
        expect(sameBits(p.pixelValues, expected[i]!)).toBe(true);
        recycleOutput(p.pixelValues);
        await tick();
      }
    }
    const rgb = new Uint8Array(96 * 64 * 3).map((_, i) => (i * 37) % 251);
    const first = (await rgbToPatches(rgb, 96, 64)).pixelValues.slice();
    const samples = Float32Array.from({ length: 16_000 }, (_, i) => Math.sin(i / 7) * 0.3);
    const mel = await logMelFeatures(samples);
    const melCopy = mel.data.slice();
    expect(recycleOutput(mel.data)).toBe(true);
    await tick();
    const again = await rgbToPatches(rgb, 96, 64);
    expect(sameBits(again.pixelValues, first)).toBe(true);
    expect(sameBits((await logMelFeatures(samples)).data, melCopy)).toBe(true);
  });
});
