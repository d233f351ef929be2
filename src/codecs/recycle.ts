// Codec outputs (log-mel features, image and video patches) live in native memory that comes back
// when V8 collects their ArrayBuffer, and V8 runs a full collection for about every 64 MB of such
// memory handed out: a 1080p image alone is 50 MB of patches, so one collection per image or two,
// competing with the next decode for the CPU. An owner that knows when it is done with an output
// hands it back here instead: no collection is needed for it, and the next output reuses its memory.
import { nativeAddon } from '../native/addon.js';

/**
 * Returns a codec output's memory for reuse now. The array, and every other view of its buffer,
 * becomes empty (length 0), so a stray later read finds nothing rather than another request's
 * data. True when `output` was a codec output not yet recycled; false, and nothing changes, for
 * any other array (one the caller allocated, a copy, an output already recycled).
 */
export function recycleOutput(output: ArrayBufferView): boolean {
  return nativeAddon().recycle(output);
}
