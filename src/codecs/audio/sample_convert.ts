// Int16 <-> float32 sample arrays through the native PCM16 kernels, by viewing the Int16Array's
// memory as PCM16 LE bytes (the host is little-endian on every platform Node ships prebuilt for;
// big-endian hosts take a plain loop instead).
import { float32ToPcm16le, pcm16leToFloat32 } from './pcm.js';

/** True on a little-endian host (every platform Node ships prebuilt for). */
export const LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

/** x / 32768 for each sample. */
export function int16ToFloat32(samples: Int16Array): Float32Array {
  if (!LITTLE_ENDIAN) return Float32Array.from(samples, (x) => x / 32768);
  return pcm16leToFloat32(new Uint8Array(samples.buffer, samples.byteOffset, samples.byteLength));
}

/** Round half to even of x * 32768, clamped; NaN is silence (see `float32ToPcm16le`). */
export function float32ToInt16(samples: Float32Array): Int16Array {
  const bytes = float32ToPcm16le(samples);
  if (!LITTLE_ENDIAN) {
    return Int16Array.from({ length: bytes.length >> 1 }, (_, i) => bytes.readInt16LE(i * 2));
  }
  // A view needs 2-byte alignment; a buffer from the addon is its own allocation, but a pooled
  // Buffer could start at an odd offset.
  if (bytes.byteOffset % 2 === 0) return new Int16Array(bytes.buffer, bytes.byteOffset, bytes.length >> 1);
  return new Int16Array(new Uint8Array(bytes).buffer);
}

/** The parts end to end in one array (a single part is returned as is, not copied). */
export function concatFloat32(parts: readonly Float32Array[]): Float32Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
