// Patch layout, kernel properties, smart_resize arithmetic and error mapping, independent of the
// golden fixtures (test/image_parity.test.ts compares against transformers itself).
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../src/codecs/errors.js';
import { imageToPatches, rgbToPatches } from '../src/codecs/image/patches.js';
import { PATCH_ROW_FLOATS, imageGridThw, roundHalfEven, smartResize, visionTokenCount } from '../src/codecs/image/smart_resize.js';
import { nativeAddon } from '../src/native/addon.js';
import { countAsyncWork } from './helpers/async-work.js';

const norm = (v: number) => Math.fround((v - 127.5) / 127.5);

function synth(width: number, height: number, f: (x: number, y: number, c: number) => number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) rgb[(y * width + x) * 3 + c] = f(x, y, c) & 255;
  return rgb;
}

describe('pixel_values layout', () => {
  it('orders rows by 2x2 merge block, then patch, and each row as (channel, frame, y, x)', async () => {
    // 64 x 96 is already a valid target size, so the resize is the identity and every value is known.
    const [w, h] = [96, 64];
    const f = (x: number, y: number, c: number) => [x * 7 + y * 3, x + 2 * y, y * 5 + x * 11][c]!;
    const p = await rgbToPatches(synth(w, h, f), w, h);
    expect(p.grid).toEqual([1, 4, 6]);
    expect(p.tokens).toBe(6);
    const blocksW = 6 / 2;
    let mismatches = 0;
    for (let r = 0; r < 24; r++) {
      const block = Math.floor(r / 4);
      const [bh, bw] = [Math.floor(block / blocksW), block % blocksW];
      const [ih, iw] = [Math.floor((r % 4) / 2), r % 2];
      for (let c = 0; c < 3; c++)
        for (let t = 0; t < 2; t++)
          for (let py = 0; py < 16; py++)
            for (let px = 0; px < 16; px++) {
              const y = (2 * bh + ih) * 16 + py;
              const x = (2 * bw + iw) * 16 + px;
              const got = p.pixelValues[r * PATCH_ROW_FLOATS + ((c * 2 + t) * 16 + py) * 16 + px]!;
              if (got !== norm(f(x, y, c) & 255)) mismatches++;
            }
    }
    expect(mismatches).toBe(0);
  });

  it('keeps a flat colour flat at any scale (weights sum to one after quantisation)', async () => {
    for (const [w, h] of [[1000, 37], [13, 700], [1500, 900], [5, 5]] as const) {
      const p = await rgbToPatches(synth(w, h, (_x, _y, c) => [200, 10, 91][c]!), w, h);
      const want = [norm(200), norm(10), norm(91)];
      let bad = 0;
      for (let i = 0; i < p.pixelValues.length; i++) {
        const c = Math.floor((i % PATCH_ROW_FLOATS) / 512);
        if (p.pixelValues[i] !== want[c]) bad++;
      }
      expect(bad, `${w}x${h}`).toBe(0);
    }
  });

  it('holds exactly the resized pixels, normalised, at their layout positions', async () => {
    const rgb = synth(50, 30, (x, y, c) => (x * 5 + y * 9 + c * 70) % 256);
    const p = await rgbToPatches(rgb, 50, 30);
    expect([p.resizedHeight, p.resizedWidth]).toEqual([64, 96]);
    const resized = nativeAddon().imageResizeSync(rgb, 50, 30, 64, 96);
    let bad = 0;
    for (let y = 0; y < 64; y++)
      for (let x = 0; x < 96; x++) {
        const [gh, gw] = [y >> 4, x >> 4];
        const row = ((gh >> 1) * 3 + (gw >> 1)) * 4 + (gh & 1) * 2 + (gw & 1);
        for (let c = 0; c < 3; c++) {
          const base = row * PATCH_ROW_FLOATS + (y & 15) * 16 + (x & 15);
          const want = norm(resized[(y * 96 + x) * 3 + c]!);
          if (p.pixelValues[base + c * 512]! !== want || p.pixelValues[base + c * 512 + 256]! !== want) bad++;
        }
      }
    expect(bad).toBe(0);
    expect(() => nativeAddon().imageResizeSync(rgb, 50, 30, 60, 96)).toThrow(/multiples of 32/);
  });

  it('resizes exactly as a plain transcription of the int16 resampler, in every kernel branch', () => {
    // torch's uint8 antialiased bicubic (see native/src/image_resize.h), written out naively: the
    // native passes (vector tap pairs for small supports, the general loop for strong reductions,
    // odd tap counts, the portable tail past the last 16 values) must agree with it bit for bit.
    const cubic = (x: number) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a;
      return 0;
    };
    const taps = (inSize: number, outSize: number) => {
      const scale = inSize / outSize;
      const support = scale >= 1 ? 2 * scale : 2;
      const inv = scale >= 1 ? 1 / scale : 1;
      const n = Math.ceil(support) * 2 + 1;
      const rows: { start: number; w: number[] }[] = [];
      let max = 0;
      for (let i = 0; i < outSize; i++) {
        const center = scale * (i + 0.5);
        const start = Math.max(Math.trunc(center - support + 0.5), 0);
        const size = Math.min(Math.max(Math.min(Math.trunc(center + support + 0.5), inSize) - start, 0), n);
        const w = Array.from({ length: size }, (_, j) => cubic((j + start - center + 0.5) * inv));
        const total = w.reduce((p, v) => p + v, 0);
        if (total !== 0) for (let j = 0; j < size; j++) max = Math.max(max, (w[j]! /= total));
        rows.push({ start, w });
      }
      let precision = 0;
      while (precision < 22 && Math.trunc(0.5 + max * 2 ** (precision + 1)) < 2 ** 15) precision++;
      const q = rows.map((r) => ({ start: r.start, w: r.w.map((v) => Math.trunc(v * 2 ** precision + (v < 0 ? -0.5 : 0.5))) }));
      return { q, precision };
    };
    // One pass: out(line, i) = sum_j src(line, start_i + j) * w_ij, at `at(line, position)` * 3 + channel.
    const pass = (src: Uint8Array, lines: number, inSize: number, outSize: number, at: (line: number, pos: number, size: number) => number) => {
      const { q, precision } = taps(inSize, outSize);
      const out = new Uint8Array(lines * outSize * 3);
      for (let line = 0; line < lines; line++)
        for (let i = 0; i < outSize; i++)
          for (let c = 0; c < 3; c++) {
            let sum = precision > 0 ? 1 << (precision - 1) : 0;
            q[i]!.w.forEach((w, j) => (sum += src[at(line, q[i]!.start + j, inSize) * 3 + c]! * w));
            out[at(line, i, outSize) * 3 + c] = Math.min(255, Math.max(0, sum >> precision));
          }
      return out;
    };
    const reference = (rgb: Uint8Array, w: number, h: number, oh: number, ow: number) => {
      // Along x first (rows are lines), then along y (columns are lines), as the native code does.
      const horiz = ow === w ? rgb : pass(rgb, h, w, ow, (y, x, width) => y * width + x);
      return oh === h ? horiz : pass(horiz, ow, h, oh, (x, y) => y * ow + x);
    };
    const cases: [number, number, number, number][] = [
      [1001, 77, 64, 1024], // enlarge in height, reduce in width; 1024 * 3 values end on a 16-value boundary
      [333, 517, 256, 160], // odd sizes both ways, portable tail
      [50, 900, 96, 32], // strong reduction in height: 28 taps (the general loop)
      [2000, 40, 32, 96], // strong reduction in width
      [97, 97, 96, 96], // near identity
    ];
    for (const [w, h, oh, ow] of cases) {
      const rgb = synth(w, h, (x, y, c) => (x * 37 + y * 91 + c * 53 + ((x * y) >> 3)) % 256);
      const got = nativeAddon().imageResizeSync(rgb, w, h, oh, ow);
      const want = reference(rgb, w, h, oh, ow);
      expect(Buffer.from(got).equals(Buffer.from(want)), `${w}x${h} -> ${ow}x${oh}`).toBe(true);
    }
  });

  it('gives identical output split over threads', async () => {
    const [w, h] = [2500, 1400]; // both passes run, and both are split (over 256 rows per thread)
    const rgb = synth(w, h, (x, y, c) => (x * 13 + y * 7 + ((x * y) >> 5) + c * 50) % 256);
    const one = await rgbToPatches(rgb, w, h, { maxPixels: 2_000_000 });
    const four = await rgbToPatches(rgb, w, h, { maxPixels: 2_000_000, threads: 4 });
    expect(one.resizedHeight).toBeGreaterThan(1000);
    expect(Buffer.from(four.pixelValues.buffer, four.pixelValues.byteOffset, four.pixelValues.byteLength).equals(
      Buffer.from(one.pixelValues.buffer, one.pixelValues.byteOffset, one.pixelValues.byteLength))).toBe(true);
  });

  it('bfloat16 output is the float32 output rounded to nearest even, for an image and for two frames', async () => {
    const rne = (f: Float32Array) => {
      const bits = new Uint32Array(f.buffer, f.byteOffset, f.length);
      return Uint16Array.from(bits, (x) => (x + 0x7fff + ((x >>> 16) & 1)) >>> 16);
    };
    const [w, h, oh, ow] = [333, 250, 256, 320];
    const a = synth(w, h, (x, y, c) => (x * 7 + y * 3 + c * 90) % 256);
    const b = synth(w, h, (x, y, c) => (x * y + c * 31) % 256);
    const addon = nativeAddon();
    for (const second of [null, b]) {
      const f32 = await addon.temporalPatches(a, second, w, h, oh, ow, 1, false);
      const bf16 = await addon.temporalPatches(a, second, w, h, oh, ow, 1, true);
      expect(bf16.pixelValues).toBeInstanceOf(Uint16Array);
      expect(Buffer.from(bf16.pixelValues.buffer, bf16.pixelValues.byteOffset, bf16.pixelValues.byteLength).equals(
        Buffer.from(rne(f32.pixelValues as Float32Array).buffer))).toBe(true);
    }
  });

  it('resizes and patchifies on the libuv pool, not on the event loop', async () => {
    const jpeg = await sharp({ create: { width: 1920, height: 1080, channels: 3, background: '#3366aa' } })
      .composite([{ input: Buffer.from(synth(256, 256, (x, y, c) => x ^ (y + c * 40))), raw: { width: 256, height: 256, channels: 3 }, tile: true }])
      .jpeg().toBuffer();
    const { result: p, queued } = await countAsyncWork('omni.imageToPatches', () => imageToPatches(jpeg));
    expect(p.grid).toEqual([1, 68, 120]);
    expect(queued).toBe(1);
  });
});

describe('smartResize and grid arithmetic', () => {
  it('rounds half to even like Python', () => {
    expect([0.5, 1.5, 2.5, 3.5, -0.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, 4, 0, 2, 3]);
  });

  it('gives the spec examples', () => {
    const cases: [number, number, [number, number]][] = [
      [427, 640, [416, 640]], [240, 320, [256, 320]], [1080, 1920, [1088, 1920]], [720, 1280, [704, 1280]],
      [4000, 6000, [2912, 4384]], [20, 20, [64, 64]], [10, 1000, [32, 576]], [80, 80, [64, 64]], [112, 112, [128, 128]],
    ];
    for (const [h, w, want] of cases) expect(smartResize(h, w), `${h}x${w}`).toEqual(want);
    expect(smartResize(900, 1200, { maxPixels: 160_000 })).toEqual([320, 448]);
  });

  it('refuses aspect ratios above 200 and bad arguments with coded errors', () => {
    expect(smartResize(1, 200)).toEqual([32, 800]);
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as CodecError).code;
      }
      return undefined;
    };
    expect(code(() => smartResize(1, 201))).toBe('image_aspect_ratio_invalid');
    expect(code(() => smartResize(0, 10))).toBe('image_option_invalid');
    expect(code(() => smartResize(10.5, 10))).toBe('image_option_invalid');
    expect(code(() => smartResize(10, 10, { minPixels: 100, maxPixels: 50 }))).toBe('image_option_invalid');
  });

  it('counts grid and tokens', () => {
    expect(imageGridThw(1088, 1920)).toEqual([1, 68, 120]);
    expect(visionTokenCount([1, 68, 120])).toBe(2040);
    expect(PATCH_ROW_FLOATS).toBe(1536);
  });

  it('maps native argument errors to CodecError', async () => {
    await expect(rgbToPatches(new Uint8Array(10), 10, 10)).rejects.toSatisfy(
      (e: unknown) => e instanceof CodecError && e.code === 'image_option_invalid' && e.param === 'image',
    );
  });
});
