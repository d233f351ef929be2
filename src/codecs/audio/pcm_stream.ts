// PCM16 little-endian bytes arriving in arbitrary chunks (the realtime protocols let a client cut
// an append anywhere, including between the two bytes of a sample). A dangling odd byte is held
// back and joined to the next chunk; only a stream that ends on one is malformed.
import { CodecError } from '../errors.js';
import { pcm16leToFloat32 } from './pcm.js';

const EMPTY = new Float32Array(0);

export class Pcm16StreamReader {
  private carry = -1;

  /** Whether a byte is waiting for its partner. */
  get pendingByte(): boolean {
    return this.carry >= 0;
  }

  /** Floats for every whole sample now available (x / 32768). */
  push(bytes: Uint8Array): Float32Array {
    if (bytes.length === 0) return EMPTY;
    let data = bytes;
    if (this.carry >= 0) {
      // One copy of this chunk, only when the previous chunk ended mid-sample.
      const joined = Buffer.allocUnsafe(bytes.length + 1);
      joined[0] = this.carry;
      joined.set(bytes, 1);
      data = joined;
      this.carry = -1;
    }
    const whole = data.length & ~1;
    if (whole !== data.length) this.carry = data[whole]!;
    return whole === 0 ? EMPTY : pcm16leToFloat32(data.subarray(0, whole));
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
