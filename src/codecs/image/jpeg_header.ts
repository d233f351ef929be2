// What the image path needs to know about a JPEG before decoding it, from its marker segments
// alone (everything before the first scan): the frame size and layout, the EXIF orientation and
// whether an ICC profile is embedded. Pure byte reading, no allocation beyond the result.

export interface JpegHeader {
  /** Stored size (before EXIF orientation). */
  width: number;
  height: number;
  /** Components of the frame: 1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK. */
  components: number;
  /** Bits per sample (8 for nearly every JPEG; 12 exists). */
  precision: number;
  /** EXIF orientation 1-8 (1 when there is no EXIF block or no orientation tag). */
  orientation: number;
  /** An APP2 ICC_PROFILE segment is present. */
  hasIcc: boolean;
  /** More than one EXIF block, or one whose orientation cannot be read unambiguously. */
  exifAmbiguous: boolean;
}

/** True when the bytes start like a JPEG (SOI followed by a marker), as libvips recognises it. */
export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

const ascii = (bytes: Uint8Array, at: number, text: string): boolean => {
  if (at + text.length > bytes.length) return false;
  for (let i = 0; i < text.length; i++) if (bytes[at + i] !== text.charCodeAt(i)) return false;
  return true;
};

/**
 * Orientation tag (0x0112) of IFD0 in an EXIF block starting at `at` (the TIFF header) and ending
 * before `end`; 1 when absent, undefined when the block is malformed or the value is out of 1-8.
 */
function exifOrientation(bytes: Uint8Array, at: number, end: number): number | undefined {
  if (at + 8 > end) return undefined;
  const little = bytes[at] === 0x49 && bytes[at + 1] === 0x49; // "II"
  if (!little && !(bytes[at] === 0x4d && bytes[at + 1] === 0x4d)) return undefined; // "MM"
  const u16 = (o: number) => (little ? bytes[o]! | (bytes[o + 1]! << 8) : (bytes[o]! << 8) | bytes[o + 1]!);
  const u32 = (o: number) => (little ? u16(o) + u16(o + 2) * 65536 : u16(o) * 65536 + u16(o + 2));
  if (u16(at + 2) !== 42) return undefined;
  const ifd = at + u32(at + 4);
  if (ifd + 2 > end) return undefined;
  const entries = u16(ifd);
  if (ifd + 2 + entries * 12 > end) return undefined;
  for (let i = 0; i < entries; i++) {
    const e = ifd + 2 + i * 12;
    if (u16(e) !== 0x0112) continue;
    if (u16(e + 2) !== 3 || u32(e + 4) !== 1) return undefined; // SHORT, count 1
    const v = u16(e + 8);
    return v >= 1 && v <= 8 ? v : undefined;
  }
  return 1;
}

/** The header of a JPEG, or undefined when the marker segments do not lead to a frame header. */
export function readJpegHeader(bytes: Uint8Array): JpegHeader | undefined {
  if (!isJpeg(bytes)) return undefined;
  let orientation = 1;
  let exifBlocks = 0;
  let exifAmbiguous = false;
  let hasIcc = false;
  let frame: Pick<JpegHeader, 'width' | 'height' | 'components' | 'precision'> | undefined;
  let at = 2;
  while (at + 4 <= bytes.length) {
    if (bytes[at] !== 0xff) return undefined;
    const marker = bytes[at + 1]!;
    if (marker === 0xff) {
      at++; // fill byte
      continue;
    }
    const length = (bytes[at + 2]! << 8) | bytes[at + 3]!;
    if (length < 2) return undefined;
    const body = at + 4;
    const end = Math.min(bytes.length, at + 2 + length);
    if (marker === 0xda) break; // start of scan: every header segment has been seen
    if (marker === 0xe1 && ascii(bytes, body, 'Exif\0\0')) {
      exifBlocks++;
      const o = exifOrientation(bytes, body + 6, end);
      if (o === undefined) exifAmbiguous = true;
      else if (exifBlocks === 1) orientation = o;
    } else if (marker === 0xe2 && ascii(bytes, body, 'ICC_PROFILE\0')) {
      hasIcc = true;
    } else if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
      if (body + 6 > bytes.length || frame) return undefined;
      frame = {
        precision: bytes[body]!,
        height: (bytes[body + 1]! << 8) | bytes[body + 2]!,
        width: (bytes[body + 3]! << 8) | bytes[body + 4]!,
        components: bytes[body + 5]!,
      };
    }
    at += 2 + length;
  }
  if (!frame) return undefined;
  return { ...frame, orientation, hasIcc, exifAmbiguous: exifAmbiguous || exifBlocks > 1 };
}
