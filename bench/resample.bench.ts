// Sample-rate conversion: our native polyphase resampler ("native") against two JavaScript
// baselines on the same audio: the same Kaiser-windowed sinc filter (same length, same phases)
// written as a plain streaming JS polyphase loop, and wavefile's `toSampleRate` (the npm package
// already in the tree; 12-tap Gaussian-windowed sinc plus an IIR low-pass, one-shot only, so its
// 20 ms case converts each chunk on its own, without state, and its quality is far lower).
// Run: npx vitest bench --run bench/resample.bench.ts
import { bench, describe } from 'vitest';
import wavefile from 'wavefile';
import { createResampler, resample } from '../src/codecs/audio/resample.js';
import { nativeAddon } from '../src/native/addon.js';

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function besselI0(x: number): number {
  const q = 0.25 * x * x;
  let term = 1;
  let sum = 1;
  for (let k = 1; k < 500 && term > sum * 1e-17; k++) {
    term *= q / (k * k);
    sum += term;
  }
  return sum;
}

/** The native design in plain JavaScript: L rows of K taps, integer phase, zero-phase window. */
class JsPolyphase {
  private readonly L: number;
  private readonly M: number;
  private readonly K: number;
  private readonly half: number;
  private readonly taps: Float32Array;
  private buf: Float32Array;
  private base: number;
  private size: number;
  private i = 0;
  private phi = 0;

  constructor(inRate: number, outRate: number, K: number) {
    const g = gcd(inRate, outRate);
    this.L = outRate / g;
    this.M = inRate / g;
    this.K = K;
    this.half = K / 2;
    const rho = Math.min(1, this.L / this.M);
    const twoFc = 0.95 * rho;
    const beta = 0.1102 * (100 - 8.7);
    const i0b = besselI0(beta);
    this.taps = new Float32Array(this.L * K);
    for (let r = 0; r < this.L; r++) {
      let sum = 0;
      const row = new Float64Array(K);
      for (let j = 0; j < K; j++) {
        const t = r / this.L + (this.half - 1 - j);
        const u = t / this.half;
        const w = Math.abs(u) >= 1 ? 1 / i0b : besselI0(beta * Math.sqrt(1 - u * u)) / i0b;
        const a = Math.PI * twoFc * t;
        row[j] = twoFc * (t === 0 ? 1 : Math.sin(a) / a) * w;
        sum += row[j]!;
      }
      for (let j = 0; j < K; j++) this.taps[r * K + j] = row[j]! / sum;
    }
    this.buf = new Float32Array(4 * K);
    this.base = 1 - this.half;
    this.size = this.half - 1;
  }

  push(x: Float32Array): Float32Array {
    if (this.size + x.length > this.buf.length) {
      const grown = new Float32Array(2 * (this.size + x.length));
      grown.set(this.buf.subarray(0, this.size));
      this.buf = grown;
    }
    this.buf.set(x, this.size);
    this.size += x.length;
    const last = this.base + this.size - 1 - this.half;
    const count = last < this.i ? 0 : Math.ceil(((last - this.i + 1) * this.L - this.phi) / this.M);
    const out = new Float32Array(count);
    const { K, L, taps, buf } = this;
    const stepI = Math.floor(this.M / L);
    const stepPhi = this.M % L;
    for (let n = 0; n < count; n++) {
      const x0 = this.i - this.half + 1 - this.base;
      const h0 = this.phi * K;
      let acc = 0;
      for (let j = 0; j < K; j++) acc += taps[h0 + j]! * buf[x0 + j]!;
      out[n] = acc;
      this.i += stepI;
      this.phi += stepPhi;
      if (this.phi >= L) {
        this.phi -= L;
        this.i += 1;
      }
    }
    const drop = Math.min(this.i - this.half + 1 - this.base, this.size);
    if (drop > 0) {
      this.buf.copyWithin(0, drop, this.size);
      this.size -= drop;
      this.base += drop;
    }
    return out;
  }
}

function speechLike(n: number, rate: number): Float32Array {
  const out = new Float32Array(n);
  let seed = 12345;
  for (let i = 0; i < n; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    out[i] = 0.25 * Math.sin((2 * Math.PI * 180 * i) / rate) + 0.1 * Math.sin((2 * Math.PI * 2300 * i) / rate) + 0.05 * (seed / 0xffffffff - 0.5);
  }
  return out;
}

function wavefileResample(x: Float32Array, inRate: number, outRate: number): Float64Array {
  const wav = new wavefile.WaveFile();
  wav.fromScratch(1, inRate, '32f', x);
  wav.toSampleRate(outRate, { method: 'sinc' });
  return wav.getSamples(false, Float64Array);
}

const pairs: Array<[number, number]> = [
  [48000, 16000],
  [24000, 16000],
  [16000, 24000],
];

for (const [inRate, outRate] of pairs) {
  const label = `${inRate / 1000}k -> ${outRate / 1000}k`;
  const K = new (nativeAddon().Resampler)(inRate, outRate).filterLength;

  describe(`resample ${label}, 20 ms chunks (streaming, ${K} taps)`, () => {
    const chunk = speechLike(inRate / 50, inRate);
    const native = createResampler(inRate, outRate);
    const js = new JsPolyphase(inRate, outRate, K);
    bench('native', () => void native.push(chunk));
    bench(`JS polyphase, same ${K}-tap filter`, () => void js.push(chunk));
    bench('wavefile toSampleRate sinc (JS, per chunk, stateless)', () => void wavefileResample(chunk, inRate, outRate));
  });

  describe(`resample ${label}, 60 s clip (${K} taps)`, () => {
    const clip = speechLike(inRate * 60, inRate);
    bench('native', () => void resample(clip, inRate, outRate));
    bench(`JS polyphase, same ${K}-tap filter`, () => void new JsPolyphase(inRate, outRate, K).push(clip));
    bench('wavefile toSampleRate sinc (JS)', () => void wavefileResample(clip, inRate, outRate), {
      iterations: 2,
      time: 0,
      warmupIterations: 0,
      warmupTime: 0,
    });
  });
}
