// PCM16 little-endian bytes arriving in arbitrary chunks (the realtime protocols let a client cut
// an append anywhere, including between the two bytes of a sample). A dangling odd byte is held
// back and joined to the next chunk; only a stream that ends on one is malformed.
//
// The conversion (x / 32768, exact in float32, so the same bits as `pcm16leToFloat32`) runs in
// JavaScript: for a 20 ms chunk the loop costs a fraction of a native call and its freshly
// allocated result. With `reuseOutput` the floats land in one buffer the reader keeps, valid
// until the next push: for a caller that hands them straight to something that copies them (the
// resampler), so a stream of chunks allocates nothing here.
import { CodecError } from '../errors.js';

const EMPTY = new Float32Array(0);

export interface Pcm16StreamReaderOptions {
  /** Return a view of a buffer reused by the next push instead of a new array (default false). */
  reuseOutput?: boolean;
}

export class Pcm16StreamReader {
  private carry = -1;
  private readonly reuseOutput: boolean;
  private scratch = EMPTY;

  constructor(options: Pcm16StreamReaderOptions = {}) {
    this.reuseOutput = options.reuseOutput ?? false;
  }

  /** Whether a byte is waiting for its partner. */
  get pendingByte(): boolean {
    return this.carry >= 0;
  }

  /** Floats for every whole sample now available (x / 32768). */
  push(bytes: Uint8Array): Float32Array {
    if (bytes.length === 0) return EMPTY;
    // With a byte carried over, sample k is (carry, bytes[0]) for k = 0, then bytes[2k-1..2k].
    const carry = this.carry;
    const skew = carry >= 0 ? 1 : 0;
    const total = bytes.length + skew;
    const n = total >> 1;
    this.carry = (total & 1) === 1 ? bytes[bytes.length - 1]! : -1;
    if (n === 0) return EMPTY;
    let out: Float32Array;
    if (this.reuseOutput) {
      if (this.scratch.length < n) this.scratch = new Float32Array(Math.max(n, 2 * this.scratch.length));
      out = this.scratch.subarray(0, n);
    } else {
      out = new Float32Array(n);
    }
    let k = 0;
    let j = 0;
    if (skew === 1) {
      const v = carry | (bytes[0]! << 8);
      out[k++] = (v >= 32768 ? v - 65536 : v) / 32768;
      j = 1;
    }
    for (; k < n; k++, j += 2) {
      const v = bytes[j]! | (bytes[j + 1]! << 8);
      out[k] = (v >= 32768 ? v - 65536 : v) / 32768;
    }
    return out;
  }

  /** Checks the stream ended on a sample boundary; throws `audio_odd_byte_count` otherwise. */
  end(): void {
    if (this.carry >= 0) {
      this.carry = -1;
      throw new CodecError(
        'audio_odd_byte_count',
        'PCM16 audio ended with an odd number of bytes: the last sample is missing its second byte',
        'audio',
      );
    }
  }

  reset(): void {
    this.carry = -1;
  }
}
