// The JPEG fast lane (libjpeg-turbo inside the patch job, native/src/jpeg_decode.cc): for every plain
// JPEG it must give the very bytes the general path gives (sharp decode + rgbToPatches), and hand
// every file it does not fully understand back to the general path, which keeps its errors.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type JpegOptions, type Sharp } from 'sharp';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../src/codecs/errors.js';
import { decodeImage } from '../src/codecs/image/decode.js';
import { readJpegHeader } from '../src/codecs/image/jpeg_header.js';
import { imageToPatches, rgbToPatches } from '../src/codecs/image/patches.js';
import { smartResize } from '../src/codecs/image/smart_resize.js';
import { nativeAddon } from '../src/native/addon.js';

const fixtures = join(import.meta.dirname, 'fixtures', 'image');
const bytesOf = (a: Float32Array | Uint16Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
const MAX_INPUT = 40_000_000;

/** The fast lane called directly (null: it declined), with the plan imageToPatches would make. */
async function fastLane(jpeg: Uint8Array, threads = 1) {
  const h = readJpegHeader(jpeg)!;
  const swap = h.orientation >= 5;
  const [width, height] = swap ? [h.height, h.width] : [h.width, h.height];
  const [outH, outW] = smartResize(height, width);
  return nativeAddon().jpegToPatches(jpeg, h.orientation, width, height, outH, outW, MAX_INPUT, threads);
}

async function generalPath(jpeg: Uint8Array) {
  const d = await decodeImage(jpeg);
  return rgbToPatches(d.rgb, d.width, d.height);
}

// Photo-like content: noise over a gradient, so every DCT coefficient and chroma sample matters.
async function photo(width: number, height: number, jpeg: JpegOptions, edit?: (s: Sharp) => Sharp) {
  const raw = Buffer.alloc(width * height * 3);
  let seed = width * 7919 + height;
  for (let i = 0; i < raw.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    raw[i] = (((i / 3) % width) * 255) / width / 2 + ((seed >>> 16) & 127);
  }
  const s = sharp(raw, { raw: { width, height, channels: 3 } });
  return (edit ? edit(s) : s).jpeg(jpeg).toBuffer();
}

describe('JPEG fast lane', () => {
  it('gives the general path\'s exact bytes on every JPEG fixture it takes (orientations, progressive, 1080p, 24 MP)', async () => {
    const files = readdirSync(fixtures).filter((f) => f.endsWith('.jpg'));
    const taken: string[] = [];
    for (const file of files) {
      const jpeg = readFileSync(join(fixtures, file));
      const fast = await fastLane(jpeg);
      if (file.startsWith('cmyk')) {
        expect(fast, file).toBeNull();
        continue;
      }
      expect(fast, file).not.toBeNull();
      const general = await generalPath(jpeg);
      expect([fast!.gridT, fast!.gridH, fast!.gridW], file).toEqual(general.grid);
      expect(bytesOf(fast!.pixelValues).equals(bytesOf(general.pixelValues)), file).toBe(true);
      taken.push(file);
    }
    expect(taken.length).toBeGreaterThanOrEqual(11); // 7 EXIF orientations, progressive, 1080p, 24 MP, downscale
  });

  it('matches on subsampling variants, greyscale, odd sizes and widths that are resized (streamed horizontal pass)', async () => {
    const cases: [string, Buffer][] = [
      ['4:4:4 q95 333x517', await photo(333, 517, { quality: 95, chromaSubsampling: '4:4:4' })],
      ['4:2:0 q75 1001x77', await photo(1001, 77, { quality: 75 })],
      ['progressive 4:2:0 640x481', await photo(640, 481, { quality: 85, progressive: true })],
      ['greyscale 257x190', await photo(257, 190, { quality: 90 }, (s) => s.toColourspace('b-w'))],
      ['optimised Huffman, no trellis 96x64', await photo(96, 64, { quality: 100, optimiseCoding: true })],
      ['EXIF 6 on an odd size 301x211', await photo(301, 211, { quality: 90 }, (s) => s.withMetadata({ orientation: 6 }))],
    ];
    for (const [name, jpeg] of cases) {
      const fast = await fastLane(jpeg);
      expect(fast, name).not.toBeNull();
      const general = await generalPath(jpeg);
      expect(bytesOf(fast!.pixelValues).equals(bytesOf(general.pixelValues)), name).toBe(true);
      const whole = await fastLane(jpeg, 4); // more threads: the image is decoded whole first
      expect(bytesOf(whole!.pixelValues).equals(bytesOf(general.pixelValues)), `${name}, 4 threads`).toBe(true);
    }
    const grey = readJpegHeader(cases[3]![1])!;
    expect(grey.components).toBe(1);
  });

  it('declines truncated and corrupt files, and the general path keeps its coded error', async () => {
    const jpeg = await photo(320, 240, { quality: 90 });
    const truncated = jpeg.subarray(0, Math.floor(jpeg.length * 0.6));
    expect(await fastLane(truncated)).toBeNull();
    await expect(imageToPatches(truncated)).rejects.toSatisfy((e) => e instanceof CodecError && e.code === 'image_decode_failed');

    const corrupt = Buffer.from(jpeg);
    const sos = corrupt.indexOf(Buffer.from([0xff, 0xda]));
    for (let i = sos + 200; i < sos + 260; i++) corrupt[i] = 0xff; // markers in the middle of the entropy data
    expect(await fastLane(corrupt)).toBeNull();
    const general = await generalPath(corrupt).then(
      (p) => ({ ok: true as const, p }),
      (e: unknown) => ({ ok: false as const, code: (e as CodecError).code }),
    );
    const viaLane = await imageToPatches(corrupt).then(
      (p) => ({ ok: true as const, p }),
      (e: unknown) => ({ ok: false as const, code: (e as CodecError).code }),
    );
    expect(viaLane.ok).toBe(general.ok);
    if (viaLane.ok && general.ok) expect(bytesOf(viaLane.p.pixelValues).equals(bytesOf(general.p.pixelValues))).toBe(true);
    if (!viaLane.ok && !general.ok) expect(viaLane.code).toBe(general.code);
  });

  it('leaves CMYK, ICC-tagged and over-limit files to the general path', async () => {
    const tagged = await photo(200, 120, { quality: 90 }, (s) => s.withIccProfile('p3'));
    const header = readJpegHeader(tagged)!;
    expect(header.hasIcc).toBe(true);
    const p = await imageToPatches(tagged);
    const general = await generalPath(tagged);
    expect(bytesOf(p.pixelValues).equals(bytesOf(general.pixelValues))).toBe(true);

    const cmyk = readFileSync(join(fixtures, 'cmyk_200x240.jpg'));
    expect(readJpegHeader(cmyk)!.components).toBe(4);

    const big = await photo(300, 200, { quality: 80 });
    await expect(imageToPatches(big, { maxInputPixels: 300 * 200 - 1 })).rejects.toSatisfy(
      (e) => e instanceof CodecError && e.code === 'image_too_large',
    );
    // The native side checks the frame against the limit too, whatever the caller planned.
    expect(await nativeAddon().jpegToPatches(big, 1, 300, 200, 192, 288, 1000, 1)).toBeNull();
  });

  it('declines a file whose size is not the one planned, and refuses bad arguments', async () => {
    const jpeg = await photo(64, 48, { quality: 90 });
    expect(await nativeAddon().jpegToPatches(jpeg, 1, 48, 64, 64, 64, MAX_INPUT, 1)).toBeNull(); // width and height swapped
    expect(await nativeAddon().jpegToPatches(jpeg, 6, 64, 48, 64, 64, MAX_INPUT, 1)).toBeNull(); // orientation 6 turns it
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as { code?: string }).code;
      }
      return undefined;
    };
    expect(code(() => nativeAddon().jpegToPatches(jpeg, 9, 64, 48, 64, 64, MAX_INPUT))).toBe('image_option_invalid');
    expect(code(() => nativeAddon().jpegToPatches(jpeg, 1, 64, 48, 60, 64, MAX_INPUT))).toBe('image_option_invalid');
    expect(code(() => nativeAddon().jpegToPatches(jpeg, 1, 0, 48, 64, 64, MAX_INPUT))).toBe('image_option_invalid');
  });
});

describe('readJpegHeader', () => {
  it('reads size, components and the EXIF orientation of each fixture', () => {
    for (let o = 2; o <= 8; o++) {
      const h = readJpegHeader(readFileSync(join(fixtures, `exif${o}_240x320.jpg`)))!;
      expect(h).toMatchObject({ width: 320, height: 240, components: 3, precision: 8, orientation: o, hasIcc: false, exifAmbiguous: false });
    }
    expect(readJpegHeader(readFileSync(join(fixtures, 'photo_1080x1920.jpg')))).toMatchObject({ width: 1920, height: 1080, orientation: 1 });
  });

  it('marks two EXIF blocks or an unreadable orientation as ambiguous, and rejects what is not a JPEG', () => {
    const jpeg = readFileSync(join(fixtures, 'exif6_240x320.jpg'));
    const app1 = jpeg.indexOf(Buffer.from('Exif\0\0')) - 4;
    const length = jpeg.readUInt16BE(app1 + 2);
    const segment = jpeg.subarray(app1, app1 + 2 + length);
    const twice = Buffer.concat([jpeg.subarray(0, app1), segment, segment, jpeg.subarray(app1 + 2 + length)]);
    expect(readJpegHeader(twice)!.exifAmbiguous).toBe(true);
    const bad = Buffer.from(jpeg);
    bad[app1 + 10] = 0x00; // byte order mark no longer "II" / "MM"
    expect(readJpegHeader(bad)!.exifAmbiguous).toBe(true);
    expect(readJpegHeader(Buffer.from('not a jpeg'))).toBeUndefined();
    expect(readJpegHeader(jpeg.subarray(0, 40))).toBeUndefined();
  });
});
