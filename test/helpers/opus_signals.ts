// Signals and measurements for the Opus tests: deterministic test audio, concatenation, and
// delay-tolerant quality figures (a decoded stream lags its input by the codec look-ahead).

/** Deterministic uniform [0, 1) generator (LCG), so failures reproduce. */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
}

export function sine(freq: number, rate: number, samples: number, amplitude = 0.5): Float32Array {
  const out = new Float32Array(samples);
  for (let i = 0; i < samples; i++) out[i] = amplitude * Math.sin((2 * Math.PI * freq * i) / rate);
  return out;
}

/**
 * Voiced speech stand-in: a glottal-like harmonic series (f0 gliding 100-200 Hz) shaped by three
 * formants, switched on and off at a syllable rate of about 6 per second, over a little noise.
 */
export function speechLike(rate: number, seconds: number, seed = 7): Float32Array {
  const n = Math.round(rate * seconds);
  const out = new Float32Array(n);
  const rnd = seededRandom(seed);
  const formants = [
    [700, 1.0],
    [1200, 0.5],
    [2600, 0.25],
  ] as const;
  let phase = 0;
  for (let i = 0; i < n; i++) {
    const t = i / rate;
    const f0 = 140 + 40 * Math.sin(2 * Math.PI * 0.7 * t) + 20 * Math.sin(2 * Math.PI * 2.3 * t);
    phase += (2 * Math.PI * f0) / rate;
    const envelope = Math.sqrt(Math.max(0, Math.sin(2 * Math.PI * 3 * t)));
    let v = 0;
    for (let h = 1; h * f0 < 0.45 * rate && h < 40; h++) {
      let gain = 0;
      for (const [fc, a] of formants) gain += a / (1 + ((h * f0 - fc) / 120) ** 2);
      v += (gain * Math.sin(h * phase)) / Math.sqrt(h);
    }
    out[i] = 0.12 * envelope * v + 0.005 * (rnd() - 0.5);
  }
  return out;
}

export { concatFloat32 as concatFloat } from '../../src/codecs/audio/sample_convert.js';

export function rms(x: Float32Array, from = 0, to = x.length): number {
  let acc = 0;
  for (let i = from; i < to; i++) acc += x[i]! * x[i]!;
  return Math.sqrt(acc / Math.max(1, to - from));
}

/** Least-squares fit of a sinusoid of `freq` over [from, to): its amplitude and the SNR in dB. */
export function sineFit(x: Float32Array, freq: number, rate: number, from: number, to: number): { amplitude: number; snrDb: number } {
  let ss = 0;
  let cc = 0;
  let sc = 0;
  let xs = 0;
  let xc = 0;
  for (let i = from; i < to; i++) {
    const s = Math.sin((2 * Math.PI * freq * i) / rate);
    const c = Math.cos((2 * Math.PI * freq * i) / rate);
    ss += s * s;
    cc += c * c;
    sc += s * c;
    xs += x[i]! * s;
    xc += x[i]! * c;
  }
  const det = ss * cc - sc * sc;
  const a = (xs * cc - xc * sc) / det;
  const b = (xc * ss - xs * sc) / det;
  let signal = 0;
  let residual = 0;
  for (let i = from; i < to; i++) {
    const m = a * Math.sin((2 * Math.PI * freq * i) / rate) + b * Math.cos((2 * Math.PI * freq * i) / rate);
    signal += m * m;
    residual += (x[i]! - m) ** 2;
  }
  return { amplitude: Math.hypot(a, b), snrDb: 10 * Math.log10(signal / residual) };
}

/** Frequency of the strongest DFT component between lo and hi Hz (0.5 Hz grid) over [from, to). */
export function peakFrequency(x: Float32Array, rate: number, lo: number, hi: number, from: number, to: number): number {
  let best = lo;
  let bestPower = -1;
  for (let f = lo; f <= hi; f += 0.5) {
    let re = 0;
    let im = 0;
    for (let i = from; i < to; i++) {
      const w = (2 * Math.PI * f * i) / rate;
      re += x[i]! * Math.cos(w);
      im += x[i]! * Math.sin(w);
    }
    const power = re * re + im * im;
    if (power > bestPower) {
      bestPower = power;
      best = f;
    }
  }
  return best;
}

/** Best SNR (dB) of `x` against `ref` over lags 0..maxLag of `x`, and that lag. */
export function alignedSnr(ref: Float32Array, x: Float32Array, maxLag: number, margin: number): { snrDb: number; lag: number } {
  let best = { snrDb: -Infinity, lag: 0 };
  for (let lag = 0; lag <= maxLag; lag++) {
    let signal = 0;
    let error = 0;
    for (let i = margin; i < ref.length - margin; i++) {
      const r = ref[i]!;
      const d = (x[i + lag] ?? 0) - r;
      signal += r * r;
      error += d * d;
    }
    const snrDb = 10 * Math.log10(signal / error);
    if (snrDb > best.snrDb) best = { snrDb, lag };
  }
  return best;
}
