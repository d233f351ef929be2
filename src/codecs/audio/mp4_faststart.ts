// MP4/M4A/MOV files written by recorders often put the index (`moov`) after the media data
// (`mdat`). ffmpeg reading such a file from a pipe cannot seek back to the samples: beyond its
// probe buffer it stops with "partial file" and exits 0 having decoded nothing. Moving `moov` in
// front of `mdat` in memory (what `-movflags +faststart` and qt-faststart do) makes the file
// streamable, with no temporary file. Only box headers and chunk-offset tables are touched.

interface Box {
  type: string;
  start: number;
  size: number;
}

/** Top-level boxes of `bytes`, or undefined when the structure does not add up (truncated, not MP4). */
function topLevelBoxes(bytes: Uint8Array): Box[] | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const boxes: Box[] = [];
  for (let at = 0; at < bytes.length; ) {
    if (at + 8 > bytes.length) return undefined;
    let size = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!);
    if (size === 1) {
      if (at + 16 > bytes.length) return undefined;
      size = Number(view.getBigUint64(at + 8));
    } else if (size === 0) {
      size = bytes.length - at; // extends to the end of the file
    }
    if (size < 8 || at + size > bytes.length) return undefined;
    boxes.push({ type, start: at, size });
    at += size;
  }
  return boxes;
}

const CONTAINERS = new Set(['moov', 'trak', 'mdia', 'minf', 'stbl']);

/**
 * Add `shift(offset)` to every `stco`/`co64` chunk offset inside `moov` (a private copy).
 * Returns false when a shifted 32-bit offset would overflow.
 */
function patchChunkOffsets(moov: Uint8Array, shift: (offset: number) => number): boolean {
  const view = new DataView(moov.buffer, moov.byteOffset, moov.byteLength);
  const walk = (from: number, to: number): boolean => {
    for (let at = from; at + 8 <= to; ) {
      const size = view.getUint32(at);
      const type = String.fromCharCode(moov[at + 4]!, moov[at + 5]!, moov[at + 6]!, moov[at + 7]!);
      if (size < 8 || at + size > to) return true; // malformed: leave the rest for ffmpeg to judge
      if (CONTAINERS.has(type)) {
        if (!walk(at + 8, at + size)) return false;
      } else if (type === 'stco' || type === 'co64') {
        const wide = type === 'co64';
        const count = view.getUint32(at + 12);
        const width = wide ? 8 : 4;
        if (at + 16 + count * width > at + size) return true;
        for (let i = 0, p = at + 16; i < count; i++, p += width) {
          if (wide) {
            const offset = Number(view.getBigUint64(p));
            view.setBigUint64(p, BigInt(shift(offset)));
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
  return walk(8, moov.length);
}

/**
 * `bytes` with `moov` moved in front of the first `mdat`, or `bytes` itself when it already is
 * (or is not a well-formed MP4, or cannot be rewritten: then ffmpeg reports on the original).
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
  if (!patchChunkOffsets(moovCopy, shift)) return bytes;
  const out = new Uint8Array(bytes.length);
  out.set(bytes.subarray(0, mdat.start), 0);
  out.set(moovCopy, mdat.start);
  out.set(bytes.subarray(mdat.start, moov.start), mdat.start + moov.size);
  out.set(bytes.subarray(moov.start + moov.size), moov.start + moov.size);
  return out;
}
