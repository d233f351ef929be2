import { describe, expect, it } from 'vitest';
import { float32ToPcm16le, pcm16leToFloat32 } from '../src/codecs/audio/pcm.js';
import { NATIVE_ADDON_PATH, nativeAddon, nativeStatus } from '../src/native/addon.js';

describe('PCM16 native kernels', () => {
  it('converts every PCM16 value to x / 32768 and back exactly', () => {
    const samples = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
    const bytes = Buffer.from(samples.buffer);
    const floats = pcm16leToFloat32(bytes);
    for (let i = 0; i < samples.length; i += 1) {
      if (floats[i] !== samples[i]! / 32768) throw new Error(`sample ${samples[i]}: got ${floats[i]}`);
    }
    expect(Buffer.compare(float32ToPcm16le(floats), bytes)).toBe(0);
  });

  it('reads little-endian bytes at any alignment', () => {
    const backing = Buffer.from([0xaa, 0x00, 0x40, 0xff, 0xbf, 0x01, 0x00]);
    const odd = backing.subarray(1, 7); // starts at an odd address
    expect(Array.from(pcm16leToFloat32(odd))).toEqual([0x4000 / 32768, -0x4001 / 32768, 1 / 32768]);
  });

  it('rounds half to even, clamps, and turns NaN into silence', () => {
    const input = Float32Array.of(0.5 / 32768, 1.5 / 32768, -2.5 / 32768, 1, 2, -1, -3, NaN, Infinity, -Infinity);
    const out = new Int16Array(new Uint8Array(float32ToPcm16le(input)).buffer);
    expect(Array.from(out)).toEqual([0, 2, -2, 32767, 32767, -32768, -32768, 0, 32767, -32768]);
  });

  it('rejects an odd byte count, naming it', () => {
    expect(() => pcm16leToFloat32(new Uint8Array(3))).toThrow('PCM16 data must have an even number of bytes, got 3');
  });

  it('loads through the one loader and reports its SIMD level', () => {
    expect(nativeStatus()).toEqual({ loaded: true, simdLevel: nativeAddon().simdLevel });
    expect(['avx2', 'sse2', 'neon', 'scalar']).toContain(nativeAddon().simdLevel);
    expect(NATIVE_ADDON_PATH).toMatch(/native\/build\/Release\/omni_native\.node$/);
  });
});
