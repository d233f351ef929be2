// Image decoding: every accepted container, orientation, alpha onto white, grey expansion, and the
// coded errors (pixel cap from the header before decoding, garbage, truncation, refused formats).
import { readFileSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import sharp, { type Sharp } from 'sharp';
import { describe, expect, it } from 'vitest';
import { decodeImage } from '../src/codecs/image/decode.js';
import { CodecError } from '../src/codecs/errors.js';

const FIXTURES = new URL('./fixtures/image/', import.meta.url);
const fixture = (f: string) => readFileSync(new URL(f, FIXTURES));

const codeOf = (code: string) => (e: unknown) => e instanceof CodecError && e.code === code && e.param === 'image';

/** A 64x48 image, left half red, right half blue, so orientation and channel order are visible. */
function halves(): Sharp {
  const raw = Buffer.alloc(64 * 48 * 3);
  for (let y = 0; y < 48; y++)
    for (let x = 0; x < 64; x++) raw.set(x < 32 ? [255, 0, 0] : [0, 0, 255], (y * 64 + x) * 3);
  return sharp(raw, { raw: { width: 64, height: 48, channels: 3 } });
}

function px(d: { rgb: Uint8Array; width: number }, x: number, y: number): number[] {
  const i = (y * d.width + x) * 3;
  return [d.rgb[i]!, d.rgb[i + 1]!, d.rgb[i + 2]!];
}

const near = (a: number[], b: number[], tol: number) => a.every((v, i) => Math.abs(v - b[i]!) <= tol);

describe('decodeImage', () => {
  it.each(['jpeg', 'png', 'webp', 'avif', 'gif', 'tiff'] as const)('decodes %s to 8-bit RGB', async (fmt) => {
    const img = halves();
    const bytes = await (fmt === 'jpeg' ? img.jpeg({ quality: 95 }) : fmt === 'webp' ? img.webp({ lossless: true }) : fmt === 'avif' ? img.avif({ lossless: true }) : img[fmt]()).toBuffer();
    const d = await decodeImage(bytes);
    expect(d.format).toBe(fmt);
    expect([d.width, d.height, d.rgb.length]).toEqual([64, 48, 64 * 48 * 3]);
    expect(near(px(d, 5, 5), [255, 0, 0], 12)).toBe(true);
    expect(near(px(d, 60, 40), [0, 0, 255], 12)).toBe(true);
  });

  it('decodes progressive and CMYK JPEG', async () => {
    const prog = await decodeImage(await halves().jpeg({ progressive: true, quality: 95 }).toBuffer());
    expect(near(px(prog, 5, 5), [255, 0, 0], 12)).toBe(true);
    const cmykBytes = await halves().toColourspace('cmyk').jpeg({ quality: 95 }).toBuffer();
    expect((await sharp(cmykBytes).metadata()).space).toBe('cmyk');
    const cmyk = await decodeImage(cmykBytes);
    expect(cmyk.rgb.length).toBe(64 * 48 * 3);
    expect(px(cmyk, 5, 5)[0]!).toBeGreaterThan(200);
    const [r, , b] = px(cmyk, 60, 40);
    expect(b!).toBeGreaterThan(r! + 80);
  });

  it('reduces 16-bit PNG to 8 bits', async () => {
    const raw = new Uint16Array(8 * 8 * 3).fill(0x8080);
    const bytes = await sharp(Buffer.from(raw.buffer), { raw: { width: 8, height: 8, channels: 3 } })
      .toColourspace('rgb16').png().toBuffer();
    expect((await sharp(bytes).metadata()).depth).toBe('ushort');
    const d = await decodeImage(bytes);
    expect(near(px(d, 3, 3), [128, 128, 128], 1)).toBe(true);
  });

  it('decodes only the first frame of an animated GIF', async () => {
    const frames = await sharp({ create: { width: 16, height: 32, channels: 3, background: '#00ff00' } }).raw().toBuffer();
    frames.fill(0, 0, 16 * 16 * 3); // second frame (bottom half) stays green, first frame black
    for (let i = 16 * 16 * 3; i < frames.length; i += 3) frames.set([0, 255, 0], i);
    const anim = await sharp(frames, { raw: { width: 16, height: 32, channels: 3, pageHeight: 16 } })
      .gif({ loop: 0 }).toBuffer();
    expect((await sharp(anim).metadata()).pages).toBe(2);
    const d = await decodeImage(anim);
    expect([d.width, d.height]).toEqual([16, 16]);
    expect(px(d, 8, 8)).toEqual([0, 0, 0]);
  });

  it('applies EXIF orientation 6 (rotate 90 degrees clockwise)', async () => {
    const d = await decodeImage(fixture('exif6_240x320.jpg'));
    expect([d.width, d.height]).toEqual([240, 320]);
    const bytes = await halves().jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer();
    const r = await decodeImage(bytes);
    expect([r.width, r.height]).toEqual([48, 64]);
    // red (left) ends up on top after a clockwise quarter turn
    expect(near(px(r, 24, 5), [255, 0, 0], 12)).toBe(true);
    expect(near(px(r, 24, 60), [0, 0, 255], 12)).toBe(true);
  });

  it('composites alpha onto white and expands grey and palette images to RGB', async () => {
    const rgba = await decodeImage(fixture('rgba_200x300.png'));
    expect(rgba.hadAlpha).toBe(true);
    expect(px(rgba, 100, 10)).toEqual([255, 255, 255]); // fully transparent band
    const half = await decodeImage(
      await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0.5 } } }).png().toBuffer(),
    );
    expect(near(px(half, 1, 1), [128, 128, 128], 1)).toBe(true);
    // grey + alpha: value 0 at alpha 51 over white is 255 * 204 / 255 = 204
    const la = Buffer.alloc(4 * 4 * 2);
    for (let i = 0; i < 16; i++) la.set([0, 51], i * 2);
    const laPng = await sharp(la, { raw: { width: 4, height: 4, channels: 2 } }).toColourspace('b-w').png().toBuffer();
    expect((await sharp(laPng).metadata()).channels).toBe(2);
    expect(px(await decodeImage(laPng), 2, 2)).toEqual([204, 204, 204]);
    const grey = await decodeImage(fixture('grey_256x256.png'));
    const [r, g, b] = px(grey, 17, 33);
    expect(r).toBe(g);
    expect(g).toBe(b);
    const pal = await decodeImage(fixture('palette_150x200.png'));
    expect([pal.width, pal.height, pal.rgb.length]).toEqual([200, 150, 200 * 150 * 3]);
  });

  it('rejects images over the pixel cap from the header, before decoding', async () => {
    // A PNG whose header claims 20000 x 20000 (1.2 GB decoded) around a tiny payload.
    const bomb = Buffer.from(await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).png().toBuffer());
    bomb.writeUInt32BE(20000, 16);
    bomb.writeUInt32BE(20000, 20);
    bomb.writeUInt32BE(crc32(bomb.subarray(12, 29)), 29);
    await expect(decodeImage(bomb)).rejects.toSatisfy(codeOf('image_too_large'));
    await expect(decodeImage(fixture('rgb_427x640.png'), { maxInputPixels: 640 * 427 - 1 })).rejects.toSatisfy(codeOf('image_too_large'));
    await expect(decodeImage(fixture('rgb_427x640.png'), { maxInputPixels: 640 * 427 })).resolves.toBeDefined();
  });

  it('gives coded errors for empty, garbage, truncated and refused inputs', async () => {
    await expect(decodeImage(new Uint8Array(0))).rejects.toSatisfy(codeOf('image_empty'));
    await expect(decodeImage(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).rejects.toSatisfy(codeOf('image_format_unsupported'));
    const jpeg = fixture('photo_1080x1920.jpg');
    await expect(decodeImage(jpeg.subarray(0, 4000))).rejects.toSatisfy(codeOf('image_decode_failed'));
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>');
    await expect(decodeImage(svg)).rejects.toSatisfy(codeOf('image_format_unsupported'));
    await expect(decodeImage(jpeg, { maxInputPixels: 0 })).rejects.toSatisfy(
      (e: unknown) => e instanceof CodecError && e.code === 'image_option_invalid',
    );
  });
});
