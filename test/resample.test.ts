import { describe, expect, it } from 'vitest';
import { createResampler, resample, type Resampler } from '../src/codecs/audio/resample.js';
import { CodecError } from '../src/codecs/errors.js';
import { nativeAddon } from '../src/native/addon.js';
import { concatFloat as concat, rng } from './helpers/audio_codec.js';

const STANDARD_RATES = [8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000];


/** Pushes x split at the given sizes (as views into x, so at varying alignments), then flushes. */
function feed(r: Resampler, x: Float32Array, nextSize: () => number): Float32Array {
  const parts: Float32Array[] = [];
  for (let at = 0; at < x.length; ) {
    const n = Math.min(nextSize(), x.length - at);
    parts.push(r.push(x.subarray(at, at + n)));
    at += n;
  }
  parts.push(r.flush());
  return concat(parts);
}

function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function ceilDiv(a: bigint, b: bigint): bigint {
  return a <= 0n ? 0n : (a + b - 1n) / b;
}

/** Noise plus tones: content everywhere in the band, so any state mix-up shows. */
function testSignal(n: number, rate: number, seed: number): Float32Array {
  const rand = rng(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    x[i] = 0.3 * Math.sin((2 * Math.PI * 440 * i) / rate) + 0.2 * Math.sin((2 * Math.PI * 3111 * i) / rate) + 0.3 * (rand() - 0.5);
  }
  return x;
}

interface Tone {
  freq: number;
  amp: number;
  phase: number;
}

function tones(n: number, rate: number, list: Tone[]): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let v = 0;
    for (const t of list) v += t.amp * Math.sin((2 * Math.PI * t.freq * i) / rate + t.phase);
    x[i] = v;
  }
  return x;
}

/** SNR in dB of y[from, to) against the analytic signal sampled at the output rate. */
function snrDb(y: Float32Array, rate: number, list: Tone[], from: number, to: number): number {
  const ref = tones(to, rate, list);
  let signal = 0;
  let noise = 0;
  for (let k = from; k < to; k++) {
    signal += ref[k]! ** 2;
    noise += (y[k]! - ref[k]!) ** 2;
  }
  return 10 * Math.log10(signal / noise);
}

/** Least-squares amplitude and phase of a tone at `freq` in y[from, to). */
function fitTone(y: Float32Array, rate: number, freq: number, from: number, to: number) {
  let ss = 0, cc = 0, sc = 0, ys = 0, yc = 0, yy = 0;
  for (let k = from; k < to; k++) {
    const w = (2 * Math.PI * freq * k) / rate;
    const s = Math.sin(w), c = Math.cos(w), v = y[k]!;
    ss += s * s; cc += c * c; sc += s * c; ys += v * s; yc += v * c; yy += v * v;
  }
  const det = ss * cc - sc * sc;
  const a = (ys * cc - yc * sc) / det; // sin coefficient
  const b = (yc * ss - ys * sc) / det; // cos coefficient
  const residual = (yy - (a * ys + b * yc)) / (to - from);
  return { amplitude: Math.hypot(a, b), phase: Math.atan2(b, a), residualPower: residual };
}

function rmsDb(a: Float32Array, from: number, to: number): number {
  let s = 0;
  for (let k = from; k < to; k++) s += a[k]! ** 2;
  return 10 * Math.log10(s / (to - from));
}

describe('streaming resampler: chunking', () => {
  const pairs: Array<[number, number]> = [
    [48000, 16000],
    [24000, 16000],
    [16000, 24000],
    [8000, 16000],
    [16000, 48000],
    [44100, 48000],
    [22050, 16000],
    [11025, 16000],
    [44101, 16000], // gcd 1: the interpolated phase grid
    [16000, 44101],
  ];

  it.each(pairs)('gives bit-identical output for %i -> %i Hz in one piece, 20 ms, random and 1-sample chunks', (inRate, outRate) => {
    const x = testSignal(Math.round(inRate * 0.37) + 3, inRate, inRate ^ outRate);
    const whole = feed(createResampler(inRate, outRate), x, () => x.length);
    const r = createResampler(inRate, outRate);
    const twentyMs = feed(r, x, () => inRate / 50);
    const rand = rng(7);
    // Reuses r: flush() must have restarted the stream cleanly.
    const random = feed(r, x, () => Math.floor(rand() ** 3 * 3000));
    const single = feed(createResampler(inRate, outRate), x, () => 1);
    expect(whole.length).toBe(Math.ceil((x.length * outRate) / inRate));
    expect(bytesOf(twentyMs).equals(bytesOf(whole))).toBe(true);
    expect(bytesOf(random).equals(bytesOf(whole))).toBe(true);
    expect(bytesOf(single).equals(bytesOf(whole))).toBe(true);
    expect(bytesOf(resample(x, inRate, outRate)).equals(bytesOf(whole))).toBe(true);
  });

  it.each(pairs)('reuseOutput: %i -> %i Hz chunks copied as they come equal the one-piece output, bit for bit', (inRate, outRate) => {
    const x = testSignal(Math.round(inRate * 0.37) + 3, inRate, inRate ^ outRate);
    const whole = resample(x, inRate, outRate);
    const r = createResampler(inRate, outRate, { reuseOutput: true });
    const rand = rng(11);
    const parts: Float32Array[] = [];
    let previous: Float32Array | undefined;
    let shared = false;
    for (let at = 0; at < x.length; ) {
      const n = Math.min(Math.floor(rand() ** 3 * 3000), x.length - at);
      const out = r.push(x.subarray(at, at + n));
      if (previous && out.length > 0 && previous.length > 0) shared ||= out.buffer === previous.buffer;
      if (out.length > 0) previous = out;
      parts.push(out.slice());
      at += n;
    }
    parts.push(r.flush());
    expect(bytesOf(concat(parts)).equals(bytesOf(whole))).toBe(true);
    expect(shared).toBe(true); // the point of the option: one buffer, not one per chunk
  });

  it('processInto refuses an output array too short for the chunk, and consumes nothing', () => {
    const x = testSignal(4800, 24000, 5);
    const native = new (nativeAddon().Resampler)(24000, 16000);
    let err: (Error & { code?: string }) | undefined;
    try {
      native.processInto(x, new Float32Array(10));
    } catch (e) {
      err = e as Error & { code?: string };
    }
    expect(err).toBeInstanceOf(RangeError);
    expect(err?.code).toBe('resample_output_too_small');
    const out = new Float32Array(4000);
    const n = native.processInto(x, out);
    const flushed = native.flush();
    const got = concat([out.subarray(0, n), flushed]);
    expect(bytesOf(got).equals(bytesOf(resample(x, 24000, 16000)))).toBe(true);
  });

  it('reset() drops buffered input and restarts at time 0', () => {
    const x = testSignal(4800, 48000, 3);
    const r = createResampler(48000, 16000);
    r.push(testSignal(1234, 48000, 9));
    r.reset();
    expect(bytesOf(feed(r, x, () => 480)).equals(bytesOf(resample(x, 48000, 16000)))).toBe(true);
  });
});

describe('streaming resampler: sample counts', () => {
  const oddRates = [1000, 7919, 12345, 44101, 96000, 192000, 384000];
  const pairs: Array<[number, number]> = [];
  for (const a of STANDARD_RATES) for (const b of STANDARD_RATES) if (a !== b) pairs.push([a, b]);
  for (const a of oddRates) {
    pairs.push([a, 16000], [16000, a], [a, 44100]);
  }
  pairs.push([1000, 384000], [384000, 1000], [7919, 12345]);
  const lengths = [0, 1, 2, 3, 5, 159, 160, 161, 441, 882, 1000, 4799, 4800, 4801, 12345];

  it('emits exactly ceil(N * out / in) samples in total for every rate pair and length', () => {
    const rand = rng(11);
    for (const [inRate, outRate] of pairs) {
      const r = createResampler(inRate, outRate);
      for (const n of lengths) {
        const x = new Float32Array(n);
        const y = feed(r, x, () => 1 + Math.floor(rand() * 700));
        const expected = Number(ceilDiv(BigInt(n) * BigInt(outRate), BigInt(inRate)));
        if (y.length !== expected) throw new Error(`${inRate} -> ${outRate}, N=${n}: got ${y.length}, expected ${expected}`);
      }
    }
  });

  it('emits each output as soon as its look-ahead has arrived: ceil((n - delay) * out / in) after n samples', () => {
    const rand = rng(5);
    for (const [inRate, outRate] of pairs) {
      const r = createResampler(inRate, outRate);
      const delay = BigInt(r.delaySamples);
      let pushed = 0;
      let emitted = 0;
      for (let step = 0; step < 40; step++) {
        const n = Math.floor(rand() * 2 * Number(delay) + 1);
        emitted += r.push(new Float32Array(n)).length;
        pushed += n;
        const expected = Number(ceilDiv((BigInt(pushed) - delay) * BigInt(outRate), BigInt(inRate)));
        if (emitted !== expected) throw new Error(`${inRate} -> ${outRate} after ${pushed}: got ${emitted}, expected ${expected}`);
      }
    }
  });

  it('keeps counts and phase exact over an hour of 8 kHz -> 16 kHz in 20 ms chunks', () => {
    // 997 Hz: the waveform only repeats every 8000 input samples, so any drift would show.
    const r = createResampler(8000, 16000);
    const chunk = new Float32Array(160);
    const chunks = 3600 * 50;
    const lastSecond: Float32Array[] = [];
    let total = 0;
    for (let c = 0; c < chunks; c++) {
      for (let i = 0; i < 160; i++) chunk[i] = 0.5 * Math.sin((2 * Math.PI * ((997 * (c * 160 + i)) % 8000)) / 8000);
      const y = r.push(chunk);
      // Steady state: exactly twice the input per chunk once the look-ahead has filled.
      if (c > 0 && y.length !== 320) throw new Error(`chunk ${c}: ${y.length} samples`);
      total += y.length;
      if (c >= chunks - 50) lastSecond.push(y);
    }
    const tail = r.flush();
    total += tail.length;
    expect(total).toBe(3600 * 16000);
    const y = concat(lastSecond);
    const first = total - tail.length - y.length; // output index of y[0]
    let signal = 0;
    let noise = 0;
    for (let k = 0; k < y.length; k++) {
      const ref = 0.5 * Math.sin((2 * Math.PI * ((997 * (first + k)) % 16000)) / 16000);
      signal += ref * ref;
      noise += (y[k]! - ref) ** 2;
    }
    expect(10 * Math.log10(signal / noise)).toBeGreaterThan(90);
  });
});

describe('streaming resampler: filter', () => {
  function besselI0(x: number): number {
    let term = 1;
    let sum = 1;
    for (let k = 1; term > sum * 1e-17; k++) {
      term *= (x * x) / (4 * k * k);
      sum += term;
    }
    return sum;
  }

  /**
   * The documented design evaluated directly in float64 at each output time t = k * in / out:
   * y[k] = sum_n x[n] h(t - n) / sum_n h(t - n), with h the Kaiser-windowed sinc (cutoff 0.95 of
   * the lower Nyquist frequency, beta 10.06, K taps) and zeros outside the input.
   */
  function direct(x: Float32Array, inRate: number, outRate: number, K: number, count: number): Float64Array {
    const rho = Math.min(1, outRate / inRate);
    const twoFc = 0.95 * rho;
    const beta = 0.1102 * (100 - 8.7);
    const i0b = besselI0(beta);
    const half = K / 2;
    const y = new Float64Array(count);
    for (let k = 0; k < count; k++) {
      const i = Math.floor((k * inRate) / outRate);
      const frac = ((k * inRate) % outRate) / outRate;
      let sum = 0;
      let norm = 0;
      for (let n = i - half + 1; n <= i + half; n++) {
        const t = i - n + frac;
        const u = t / half;
        const a = Math.PI * twoFc * t;
        const h = (t === 0 ? 1 : Math.sin(a) / a) * besselI0(beta * Math.sqrt(Math.max(0, 1 - u * u))) / i0b;
        norm += h;
        if (n >= 0 && n < x.length) sum += h * x[n]!;
      }
      y[k] = sum / norm;
    }
    return y;
  }

  it.each([
    [48000, 16000],
    [24000, 16000],
    [16000, 24000],
    [44100, 48000],
    [8000, 11025],
    [44101, 16000], // interpolated phase grid
  ])('matches a direct float64 evaluation of the windowed sinc at every output time, %i -> %i Hz', (inRate, outRate) => {
    const rho = Math.min(1, outRate / inRate);
    const K = new (nativeAddon().Resampler)(inRate, outRate).filterLength;
    // Kaiser's length for a 100 dB, 0.05 * rho wide transition, in whole 8-float vectors.
    expect(K).toBe(Math.ceil((Math.ceil((100 - 7.95) / (14.36 * 0.05 * rho)) + 1) / 8) * 8);
    const x = testSignal(Math.round(inRate * 0.05), inRate, 17);
    const y = resample(x, inRate, outRate);
    const ref = direct(x, inRate, outRate, K, y.length);
    let worst = 0;
    for (let k = 0; k < y.length; k++) worst = Math.max(worst, Math.abs(y[k]! - ref[k]!));
    // A few float32 ulps: float taps and float accumulation, nothing more.
    expect(worst).toBeLessThan(5e-7);
  });
});

describe('streaming resampler: time alignment', () => {
  it.each([
    [16000, 48000, 1000, 3000],
    [48000, 16000, 3000, 1000],
    [24000, 16000, 1500, 1000],
    [44100, 48000, 4410, 4800],
    [8000, 11025, 320, 441],
  ])('puts an impulse at input %i -> %i sample %i on output sample %i, symmetrically', (inRate, outRate, at, expected) => {
    const x = new Float32Array(inRate / 2);
    x[at] = 1;
    const y = resample(x, inRate, outRate);
    let peak = 0;
    for (let k = 1; k < y.length; k++) if (y[k]! > y[peak]!) peak = k;
    expect(peak).toBe(expected);
    // Zero-phase filter: the response is even about the impulse.
    for (let d = 1; d < 40; d++) expect(Math.abs(y[peak + d]! - y[peak - d]!)).toBeLessThan(1e-4 * y[peak]!);
  });

  it('lands a tone at fractional output times with its analytic phase', () => {
    // 44100 -> 48000: output k sits 147/160 of an input sample apart, so most outputs fall
    // between input samples; a delay of even 0.001 sample would shift the phase by ~1e-4 rad.
    const y = resample(tones(44100, 44100, [{ freq: 3000, amp: 0.5, phase: 0.7 }]), 44100, 48000);
    const fit = fitTone(y, 48000, 3000, 2400, y.length - 2400);
    expect(Math.abs(fit.phase - 0.7)).toBeLessThan(1e-5);
  });
});

describe('streaming resampler: passband', () => {
  it('passes a 1 kHz tone from 48 kHz to 16 kHz within 0.01 dB and over 90 dB SNR', () => {
    const tone = [{ freq: 1000, amp: 0.8, phase: 0.25 }];
    const y = resample(tones(48000, 48000, tone), 48000, 16000);
    const fit = fitTone(y, 16000, 1000, 800, 15200);
    expect(Math.abs(20 * Math.log10(fit.amplitude / 0.8))).toBeLessThan(0.01);
    expect(snrDb(y, 16000, tone, 800, 15200)).toBeGreaterThan(90);
  });

  it.each([
    [48000, 16000],
    [24000, 16000],
    [16000, 24000],
    [8000, 16000],
    [16000, 48000],
    [44100, 16000],
    [11025, 16000],
    [16000, 22050],
    [44101, 16000],
    [16000, 44101],
  ])('matches analytic tones up to 0.9 of the lower Nyquist frequency, %i -> %i Hz, above 90 dB SNR', (inRate, outRate) => {
    const nyquist = Math.min(inRate, outRate) / 2;
    const list = [0.03, 0.21, 0.47, 0.66, 0.82, 0.9].map((f, i) => ({ freq: f * nyquist, amp: 0.15, phase: i * 1.1 }));
    const y = resample(tones(inRate, inRate, list), inRate, outRate);
    const edge = Math.round(outRate * 0.05);
    expect(snrDb(y, outRate, list, edge, outRate - edge)).toBeGreaterThan(90);
  });

  it.each([
    [48000, 16000],
    [16000, 24000],
    [24000, 16000],
  ])('is flat within 0.1 dB from 0 to 0.9 of the lower Nyquist frequency, %i -> %i Hz', (inRate, outRate) => {
    const nyquist = Math.min(inRate, outRate) / 2;
    const edge = Math.round(outRate * 0.05);
    for (let q = 0.02; q <= 0.9001; q += 0.0445) {
      const freq = q * nyquist;
      const y = resample(tones(inRate / 2, inRate, [{ freq, amp: 0.5, phase: 0 }]), inRate, outRate);
      const fit = fitTone(y, outRate, freq, edge, y.length - edge);
      const db = 20 * Math.log10(fit.amplitude / 0.5);
      if (!(Math.abs(db) < 0.1)) throw new Error(`${freq} Hz: gain ${db} dB`);
    }
  });
});

describe('streaming resampler: stopband', () => {
  it('attenuates a 10 kHz tone going from 48 kHz to 16 kHz by at least 90 dB', () => {
    const x = tones(48000, 48000, [{ freq: 10000, amp: 0.8, phase: 0 }]);
    const y = resample(x, 48000, 16000);
    expect(rmsDb(y, 800, 15200) - rmsDb(x, 2400, 45600)).toBeLessThan(-90);
  });

  it.each([
    [48000, 16000],
    [24000, 16000],
    [44100, 16000],
    [44101, 16000],
  ])('keeps every tone above the output Nyquist frequency 90 dB down, %i -> %i Hz', (inRate, outRate) => {
    const edge = Math.round(outRate * 0.05);
    for (let freq = outRate / 2; freq < inRate / 2; freq += 731) {
      const x = tones(inRate / 4, inRate, [{ freq, amp: 0.8, phase: 0.3 }]);
      const y = resample(x, inRate, outRate);
      const db = rmsDb(y, edge, y.length - edge) - rmsDb(x, 0, x.length);
      if (!(db < -90)) throw new Error(`${freq} Hz: ${db} dB`);
    }
  });

  it('keeps the images of upsampled audio 90 dB down', () => {
    // A 7 kHz tone at 16 kHz images to 9, 23, 25 kHz... at 48 kHz unless the filter removes them.
    const y = resample(tones(16000, 16000, [{ freq: 7000, amp: 0.8, phase: 0 }]), 16000, 48000);
    const fit = fitTone(y, 48000, 7000, 2400, y.length - 2400);
    expect(10 * Math.log10(fit.residualPower / (0.8 ** 2 / 2))).toBeLessThan(-90);
  });
});

describe('streaming resampler: rates', () => {
  it.each([0, 999, 384001, 16000.5, NaN, Infinity, -16000])('rejects input rate %s with resample_rate_invalid', (rate) => {
    const err = (() => {
      try {
        createResampler(rate, 16000);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(CodecError);
    expect(err).toMatchObject({ code: 'resample_rate_invalid', param: 'inputRate' });
    expect(() => resample(new Float32Array(10), rate, 16000)).toThrow(CodecError);
  });

  it('rejects an output rate out of range, naming outputRate', () => {
    expect(() => createResampler(16000, 400000)).toThrow(
      expect.objectContaining({ code: 'resample_rate_invalid', param: 'outputRate' }) as Error,
    );
    expect(() => createResampler(16000, '24000' as unknown as number)).toThrow(
      expect.objectContaining({ code: 'resample_rate_invalid', param: 'outputRate' }) as Error,
    );
  });

  it('rejects bad rates in the native class itself with a coded RangeError', () => {
    const { Resampler } = nativeAddon();
    expect(() => new Resampler(16000, 12.5)).toThrow(RangeError);
    expect(() => new Resampler(500, 16000)).toThrow(expect.objectContaining({ code: 'resample_rate_invalid' }) as Error);
  });

  it('rejects samples that are not a Float32Array', () => {
    const r = createResampler(48000, 16000);
    expect(() => r.push(new Float64Array(10) as unknown as Float32Array)).toThrow(
      expect.objectContaining({ code: 'audio_invalid_samples' }) as Error,
    );
  });

  it('passes equal rates through as a copy', () => {
    const x = testSignal(480, 24000, 1);
    const r = createResampler(24000, 24000);
    const y = r.push(x);
    expect(y).not.toBe(x);
    expect(bytesOf(y).equals(bytesOf(x))).toBe(true);
    expect(r.flush().length).toBe(0);
    expect(r.delaySamples).toBe(0);
  });

  it('accepts every integer rate at the ends of the range', () => {
    expect(resample(new Float32Array(384000), 384000, 1000).length).toBe(1000);
    expect(resample(new Float32Array(1000), 1000, 384000).length).toBe(384000);
  });
});
