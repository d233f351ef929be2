// MP4/M4A/MOV files written by recorders often put the index (`moov`) after the media data
// (`mdat`). ffmpeg reading such a file from a pipe cannot seek back to the samples: beyond its
// probe buffer it stops with "partial file" and exits 0 having decoded nothing. Moving `moov` in
// front of `mdat` in memory (what `-movflags +faststart` and qt-faststart do) makes the file
// streamable, with no temporary file. Only box headers and chunk-offset tables are touched.
import { CodecError } from '../errors.js';

/** Deepest nesting of container boxes inside `moov` that is walked (real files use 5 levels). */
export const MP4_MAX_BOX_DEPTH = 16;

interface Box {
  type: string;
  start: number;
  size: number;
  /** 8, or 16 with a 64-bit size. */
  header: number;
}

/**
 * The box starting at `at` and ending by `end`, or undefined when its header does not fit or its
 * size does not add up. A size of 0 extends to `end`; a size of 1 is followed by a 64-bit size.
 */
function readBox(view: DataView, at: number, end: number): Box | undefined {
  if (at + 8 > end) return undefined;
  let size = view.getUint32(at);
  let header = 8;
  const type = String.fromCharCode(view.getUint8(at + 4), view.getUint8(at + 5), view.getUint8(at + 6), view.getUint8(at + 7));
  if (size === 1) {
    if (at + 16 > end) return undefined;
    size = Number(view.getBigUint64(at + 8));
    header = 16;
  } else if (size === 0) {
    size = end - at;
  }
  if (size < header || at + size > end) return undefined;
  return { type, start: at, size, header };
}

/** Top-level boxes of `bytes`, or undefined when the structure does not add up (truncated, not MP4). */
function topLevelBoxes(bytes: Uint8Array): Box[] | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const boxes: Box[] = [];
  for (let at = 0; at < bytes.length; ) {
    const box = readBox(view, at, bytes.length);
    if (!box) return undefined;
    boxes.push(box);
    at += box.size;
  }
  return boxes;
}

const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl']);

/**
 * Add `shift(offset)` to every `stco`/`co64` chunk offset inside `moov` (a private copy).
 * Returns false when a shifted 32-bit offset would overflow.
 */
function patchChunkOffsets(moov: Uint8Array, moovHeader: number, shift: (offset: number) => number): boolean {
  const view = new DataView(moov.buffer, moov.byteOffset, moov.byteLength);
  const walk = (from: number, to: number, depth: number): boolean => {
    // Nesting is bounded so that a crafted file cannot overflow the stack.
    if (depth > MP4_MAX_BOX_DEPTH) {
      throw new CodecError('audio_decode_failed', `MP4 boxes inside moov nest deeper than ${MP4_MAX_BOX_DEPTH} levels`, 'audio');
    }
    for (let at = from; at + 8 <= to; ) {
      const box = readBox(view, at, to);
      if (!box) return true; // malformed: leave the rest for ffmpeg to judge
      const { type, size, header } = box;
      if (CONTAINERS.has(type)) {
        if (!walk(at + header, at + size, depth + 1)) return false;
      } else if (type === 'stco' || type === 'co64') {
        // Full box: version and flags (4 bytes), entry count (4 bytes), then the entries.
        const table = at + header + 8;
        if (table > at + size) return true;
        const wide = type === 'co64';
        const count = view.getUint32(table - 4);
        const width = wide ? 8 : 4;
        if (table + count * width > at + size) return true;
        for (let i = 0, p = table; i < count; i++, p += width) {
          if (wide) {
            const offset = Number(view.getBigUint64(p));
            const shifted = shift(offset);
            // Rewrite only what moves: an offset past 2^53 would not survive the round trip.
            if (shifted !== offset) view.setBigUint64(p, BigInt(shifted));
          } else {
            const offset = shift(view.getUint32(p));
            if (offset > 0xffffffff) return false;
            view.setUint32(p, offset);
          }
        }
      }
      at += size;
    }
    return true;
  };
  return walk(moovHeader, moov.length, 1);
}

/**
 * `bytes` with `moov` moved in front of the first `mdat`, or `bytes` itself when it already is
 * (or is not a well-formed MP4, or cannot be rewritten: then ffmpeg reports on the original).
 * Throws CodecError `audio_decode_failed` when boxes inside `moov` nest deeper than
 * MP4_MAX_BOX_DEPTH.
 */
export function moveMoovToFront(bytes: Uint8Array): Uint8Array {
  const boxes = topLevelBoxes(bytes);
  if (!boxes) return bytes;
  const mdatIndex = boxes.findIndex((b) => b.type === 'mdat');
  const moovIndex = boxes.findIndex((b) => b.type === 'moov');
  if (mdatIndex < 0 || moovIndex < 0 || moovIndex < mdatIndex) return bytes;
  const mdat = boxes[mdatIndex]!;
  const moov = boxes[moovIndex]!;
  // A copy: `slice` on a Buffer would be a view, and patching it would change the caller's bytes.
  const moovCopy = new Uint8Array(bytes.subarray(moov.start, moov.start + moov.size));
  const moovView = new DataView(moovCopy.buffer);
  // A size of 0 means "to the end of the file", which stops being true once moov moves.
  if (moovView.getUint32(0) === 0) {
    if (moov.size > 0xffffffff) return bytes;
    moovView.setUint32(0, moov.size);
  }
  // Media between the first mdat and the old moov moves forward by the moov's size; anything
  // after the old moov keeps its offset.
  const shift = (offset: number): number => (offset >= mdat.start && offset < moov.start ? offset + moov.size : offset);
  if (!patchChunkOffsets(moovCopy, moov.header, shift)) return bytes;
  const out = new Uint8Array(bytes.length);
  out.set(bytes.subarray(0, mdat.start), 0);
  out.set(moovCopy, mdat.start);
  out.set(bytes.subarray(mdat.start, moov.start), mdat.start + moov.size);
  out.set(bytes.subarray(moov.start + moov.size), moov.start + moov.size);
  return out;
}
