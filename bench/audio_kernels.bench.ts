// Native codec kernels against the JavaScript baselines a Node developer would otherwise use:
// `alawmulaw` (the npm G.711 codec) and a typed-array loop for PCM16 <-> float.
// Run: npm run bench
import { alaw, mulaw } from 'alawmulaw';
import { bench, describe } from 'vitest';
import { g711Decode, g711Encode } from '../src/codecs/audio/g711.js';
import { float32ToPcm16le, pcm16leToFloat32 } from '../src/codecs/audio/pcm.js';

function speechLike(n: number): Int16Array {
  const out = new Int16Array(n);
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    const noise = (seed / 0xffffffff - 0.5) * 2000;
    out[i] = Math.max(-32768, Math.min(32767, Math.round(8000 * Math.sin(i / 7) + noise)));
  }
  return out;
}

function jsPcm16ToFloat(bytes: Uint8Array): Float32Array {
  const s = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  const out = new Float32Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s[i]! / 32768;
  return out;
}

function jsFloatToPcm16(f: Float32Array): Buffer {
  const out = new Int16Array(f.length);
  for (let i = 0; i < f.length; i++) {
    const v = Math.round(f[i]! * 32768);
    out[i] = v > 32767 ? 32767 : v < -32768 ? -32768 : v;
  }
  return Buffer.from(out.buffer);
}

const sizes = [
  ['20 ms', 0.02],
  ['60 s', 60],
] as const;

for (const [label, seconds] of sizes) {
  const pcm8k = speechLike(Math.round(8000 * seconds));
  const ulawBytes = g711Encode('mulaw', pcm8k);
  const alawBytes = g711Encode('alaw', pcm8k);
  const pcm24k = Buffer.from(speechLike(Math.round(24000 * seconds)).buffer);
  const float24k = pcm16leToFloat32(pcm24k);

  describe(`mu-law decode ${label} @ 8 kHz`, () => {
    bench('native', () => void g711Decode('mulaw', ulawBytes));
    bench('alawmulaw (JS)', () => void mulaw.decode(ulawBytes));
  });
  describe(`mu-law encode ${label} @ 8 kHz`, () => {
    bench('native', () => void g711Encode('mulaw', pcm8k));
    bench('alawmulaw (JS)', () => void mulaw.encode(pcm8k));
  });
  describe(`A-law encode ${label} @ 8 kHz`, () => {
    bench('native', () => void g711Encode('alaw', pcm8k));
    bench('alawmulaw (JS)', () => void alaw.encode(pcm8k));
  });
  describe(`A-law decode ${label} @ 8 kHz`, () => {
    bench('native', () => void g711Decode('alaw', alawBytes));
    bench('alawmulaw (JS)', () => void alaw.decode(alawBytes));
  });
  describe(`PCM16 -> float ${label} @ 24 kHz`, () => {
    bench('native', () => void pcm16leToFloat32(pcm24k));
    bench('typed-array loop (JS)', () => void jsPcm16ToFloat(pcm24k));
  });
  describe(`float -> PCM16 ${label} @ 24 kHz`, () => {
    bench('native', () => void float32ToPcm16le(float24k));
    bench('typed-array loop (JS)', () => void jsFloatToPcm16(float24k));
  });
}
