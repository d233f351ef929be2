// Real speech for the VAD tests, synthesised at test time: espeak-ng writes a WAV (22.05 kHz),
// sox resamples it to 16 kHz raw PCM16, which becomes floats. Truth about where speech is comes
// from where the test places the utterance plus an energy check inside it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const RATE = 16_000;
const cache = new Map<string, Float32Array>();

/** `text` spoken by espeak-ng at 16 kHz. Needs the Debian packages espeak-ng and sox. */
export function speech(text: string, voice = 'en-us'): Float32Array {
  const key = `${voice}\u0000${text}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const dir = mkdtempSync(join(tmpdir(), 'vad-speech-'));
  try {
    const wav = join(dir, 'speech.wav');
    try {
      execFileSync('espeak-ng', ['-v', voice, '-s', '160', '-w', wav, text]);
    } catch (err) {
      throw new Error('espeak-ng is needed to synthesise test speech (Debian: apt-get install espeak-ng sox)', { cause: err });
    }
    let raw: Buffer;
    try {
      raw = execFileSync('sox', [wav, '-t', 'raw', '-r', String(RATE), '-e', 'signed-integer', '-b', '16', '-c', '1', '-']);
    } catch (err) {
      throw new Error('sox is needed to resample test speech (Debian: apt-get install sox)', { cause: err });
    }
    const pcm = new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength >> 1);
    const out = new Float32Array(pcm.length);
    for (let i = 0; i < pcm.length; i++) out[i] = pcm[i]! / 32768;
    cache.set(key, out);
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * First and last sample of the voiced part of a clip: 10 ms windows whose RMS is above 2 % of
 * the loudest window (espeak pads its output with near-silence).
 */
export function activeSpan(samples: Float32Array): { start: number; end: number } {
  const win = RATE / 100;
  const rms: number[] = [];
  for (let i = 0; i + win <= samples.length; i += win) {
    let s = 0;
    for (let j = i; j < i + win; j++) s += samples[j]! * samples[j]!;
    rms.push(Math.sqrt(s / win));
  }
  const limit = 0.02 * Math.max(...rms);
  const first = rms.findIndex((r) => r > limit);
  let last = rms.length - 1;
  while (last >= 0 && rms[last]! <= limit) last--;
  if (first < 0) throw new Error('clip has no energy');
  return { start: first * win, end: (last + 1) * win };
}

export type Part = { silenceMs: number; noise?: number } | { speech: Float32Array };

export interface BuiltStream {
  samples: Float32Array;
  /** Voiced spans in stream samples, one per speech part, in order. */
  truth: { start: number; end: number }[];
}

/** Concatenates silences (optionally with seeded white noise of the given amplitude) and speech. */
export function buildStream(parts: Part[], seed = 1): BuiltStream {
  const chunks: Float32Array[] = [];
  const truth: { start: number; end: number }[] = [];
  let at = 0;
  for (const p of parts) {
    if ('speech' in p) {
      const span = activeSpan(p.speech);
      truth.push({ start: at + span.start, end: at + span.end });
      chunks.push(p.speech);
      at += p.speech.length;
    } else {
      const n = Math.round((p.silenceMs * RATE) / 1000);
      chunks.push(p.noise ? noise(n, p.noise, seed++) : new Float32Array(n));
      at += n;
    }
  }
  const samples = new Float32Array(at);
  let o = 0;
  for (const c of chunks) {
    samples.set(c, o);
    o += c.length;
  }
  return { samples, truth };
}

/** Uniform white noise in [-amplitude, amplitude), reproducible from the seed. */
export function noise(n: number, amplitude: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = (x / 2 ** 32 - 0.5) * 2 * amplitude;
  }
  return out;
}

/** Splits a stream into chunks of the given sizes, repeating the last size until the end. */
export function chunked(samples: Float32Array, sizes: number[]): Float32Array[] {
  const out: Float32Array[] = [];
  let i = 0;
  let k = 0;
  while (i < samples.length) {
    const n = Math.max(1, sizes[Math.min(k++, sizes.length - 1)]!);
    out.push(samples.subarray(i, Math.min(samples.length, i + n)));
    i += n;
  }
  return out;
}
