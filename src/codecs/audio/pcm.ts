// Linear PCM conversions between the wire format (PCM16 little-endian bytes) and the float
// samples the feature extractor and resampler work on. Kernels run in native code.
import { nativeAddon } from '../../native/addon.js';

/** PCM16 LE bytes (any alignment) to floats in [-1, 1). Throws RangeError on an odd byte count. */
export function pcm16leToFloat32(bytes: Uint8Array): Float32Array {
  return nativeAddon().pcm16leToFloat32(bytes);
}

/**
 * Floats to PCM16 LE bytes: round half to even of x * 32768, clamped to [-32768, 32767]; NaN is
 * silence. Exact inverse of `pcm16leToFloat32`.
 */
export function float32ToPcm16le(samples: Float32Array): Buffer {
  return nativeAddon().float32ToPcm16le(samples);
}
