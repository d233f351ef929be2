// An independent float64 reference of the Whisper/Qwen3-Omni log-mel (direct DFT, its own Slaney
// filter bank), slow but obviously correct, for short clips in tests.

function hzToMel(f: number): number {
  return f >= 1000 ? 15 + Math.log(f / 1000) * (27 / Math.log(6.4)) : (3 * f) / 200;
}
function melToHz(m: number): number {
  return m >= 15 ? 1000 * Math.exp((Math.log(6.4) / 27) * (m - 15)) : (200 * m) / 3;
}

/** 201 x 128 Slaney filter bank, bin-major, float64. */
export function referenceFilterBank(): Float64Array {
  const nMels = 128;
  const nBins = 201;
  const melMax = hzToMel(8000);
  const hz = Array.from({ length: nMels + 2 }, (_, i) => melToHz((melMax * i) / (nMels + 1)));
  const fb = new Float64Array(nBins * nMels);
  for (let k = 0; k < nBins; k++) {
    const f = k * 40;
    for (let m = 0; m < nMels; m++) {
      const down = (f - hz[m]!) / (hz[m + 1]! - hz[m]!);
      const up = (hz[m + 2]! - f) / (hz[m + 2]! - hz[m + 1]!);
      fb[k * nMels + m] = Math.max(0, Math.min(down, up)) * (2 / (hz[m + 2]! - hz[m]!));
    }
  }
  return fb;
}

/** (128 x frames) mel-major log-mel features of a clip, float64. */
export function referenceLogMel(x: ArrayLike<number>): Float64Array {
  const L = x.length;
  const F = Math.floor(L / 160);
  const N = 400;
  const fb = referenceFilterBank();
  const cos = new Float64Array(N);
  const sin = new Float64Array(N);
  for (let n = 0; n < N; n++) {
    cos[n] = Math.cos((2 * Math.PI * n) / N);
    sin[n] = Math.sin((2 * Math.PI * n) / N);
  }
  const raw = new Float64Array(F * 128);
  const frame = new Float64Array(N);
  const power = new Float64Array(201);
  for (let t = 0; t < F; t++) {
    for (let i = 0; i < N; i++) {
      let a = t * 160 - 200 + i;
      if (a < 0) a = -a;
      if (a >= L) a = 2 * (L - 1) - a;
      frame[i] = x[a]! * (0.5 - 0.5 * cos[i]!);
    }
    for (let k = 0; k < 201; k++) {
      let re = 0;
      let im = 0;
      for (let n = 0; n < N; n++) {
        const idx = (k * n) % N;
        re += frame[n]! * cos[idx]!;
        im -= frame[n]! * sin[idx]!;
      }
      power[k] = re * re + im * im;
    }
    for (let m = 0; m < 128; m++) {
      let s = 0;
      for (let k = 0; k < 201; k++) s += fb[k * 128 + m]! * power[k]!;
      raw[t * 128 + m] = Math.log10(Math.max(s, 1e-10));
    }
  }
  let max = -Infinity;
  for (const v of raw) max = Math.max(max, v);
  const out = new Float64Array(128 * F);
  for (let t = 0; t < F; t++) {
    for (let m = 0; m < 128; m++) out[m * F + t] = (Math.max(raw[t * 128 + m]!, max - 8) + 4) / 4;
  }
  return out;
}

/** Deterministic test signal: a rising tone plus LCG noise, loud part late in the clip. */
export function testSignal(n: number, seed = 1): Float32Array {
  const x = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = 0.3 * Math.sin(i * 0.05 + (i * i) / 4e6) * (i / n) + 0.05 * (s / 2 ** 32 - 0.5);
  }
  return x;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}
