// Client PCM16 is converted in JavaScript (and, ahead of the resampler, into a reused buffer):
// the floats must be bit for bit the native conversion's, however the bytes are split.
import { describe, expect, it } from 'vitest';
import { AudioInputDecoder } from '../src/codecs/audio/input_decoder.js';
import { pcm16leToFloat32 } from '../src/codecs/audio/pcm.js';
import { Pcm16StreamReader } from '../src/codecs/audio/pcm_stream.js';

function randomBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  // The extremes, explicitly: -32768, 32767, -1, 0.
  b.set([0x00, 0x80, 0xff, 0x7f, 0xff, 0xff, 0x00, 0x00], 0);
  return b;
}

function bits(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

describe('pcm16 stream reader', () => {
  const bytes = randomBytes(9600, 7);
  const expected = pcm16leToFloat32(bytes);

  for (const reuseOutput of [false, true]) {
    it(`equals the native conversion for odd and even splits (reuseOutput ${reuseOutput})`, () => {
      const reader = new Pcm16StreamReader({ reuseOutput });
      const parts: Buffer[] = [];
      let at = 0;
      for (const size of [1, 960, 3, 2, 481, 0, 7, 1]) {
        parts.push(bytes.subarray(at, at + size));
        at += size;
      }
      parts.push(bytes.subarray(at));
      const got: number[] = [];
      for (const p of parts) got.push(...reader.push(p));
      reader.end();
      expect(bits(Float32Array.from(got)).equals(bits(expected))).toBe(true);
    });
  }

  it('a reused output is overwritten by the next push, a fresh one is not', () => {
    const reuse = new Pcm16StreamReader({ reuseOutput: true });
    const first = reuse.push(bytes.subarray(0, 8));
    const copy = first.slice();
    reuse.push(bytes.subarray(8, 16));
    expect(bits(first).equals(bits(copy))).toBe(false);
    const fresh = new Pcm16StreamReader();
    const a = fresh.push(bytes.subarray(0, 8));
    fresh.push(bytes.subarray(8, 16));
    expect(bits(a).equals(bits(copy))).toBe(true);
  });

  it('at 16 kHz the decoder hands out fresh arrays (they are kept by the input buffer)', () => {
    const d = new AudioInputDecoder({ format: 'pcm16', sampleRate: 16_000 });
    const a = d.push(bytes.subarray(0, 640));
    const keep = a.slice();
    d.push(bytes.subarray(640, 1280));
    expect(bits(a).equals(bits(keep))).toBe(true);
  });
});
