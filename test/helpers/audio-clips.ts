// Golden log-mel fixtures (test/fixtures/audio/, written by scripts/audio_fixtures.py with the real
// transformers WhisperFeatureExtractor as Qwen3-Omni configures it): manifest types, loaders, and a
// bit-exact JavaScript mirror of the Python clip generators so synthetic clips need no stored audio.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { fileURLToPath } from 'node:url';

export const FIXTURE_DIR = fileURLToPath(new URL('../fixtures/audio/', import.meta.url));
export const SAMPLE_RATE = 16_000;
export const MEL_BINS = 128;
export const HOP = 160;

export interface LcgComponent {
  type: 'lcg';
  seed: number;
  /** Integer knots [sampleIndex, amplitude]; first at 0, last at n; amplitude in int16 units. */
  envelope: [number, number][];
}
export interface SineComponent {
  type: 'sine';
  freq: number;
  amp: number;
}
export interface ChirpComponent {
  type: 'chirp';
  f0: number;
  f1: number;
  amp: number;
}
export type ClipComponent = LcgComponent | SineComponent | ChirpComponent;
export interface ClipSpec {
  n: number;
  components: ClipComponent[];
}

export interface ClipStats {
  max: number;
  min: number;
  mean: number;
  /** Whole-clip maximum of log10(max(mel, 1e-10)) before the floor (float32). */
  clip_max_log10: number;
  /** (clip_max_log10 - 8 + 4) / 4 in float32: the value of every floored entry. */
  floor_value: number;
  floored_fraction: number;
}

export interface ClipEntry {
  name: string;
  description: string;
  source: 'synth' | 'wav';
  generator: ClipSpec | null;
  wav: string | null;
  num_samples: number;
  sha256_int16_le: string;
  num_frames: number;
  num_audio_tokens: number;
  attention_mask_sum: number;
  /** "all" = frames 0..F-1, otherwise the stored frame indices in file order. */
  frames_stored: 'all' | number[];
  num_stored_frames: number;
  frames_file: string;
  /** Long clips only: per-frame mean over the 128 mel bins for all F frames (float32). */
  frame_means_file?: string;
  stats: ClipStats;
  checks: Record<string, number | boolean>;
}

export interface ErrorCase {
  name: string;
  description: string;
  generator: ClipSpec;
  num_samples: number;
  sha256_int16_le: string;
  raises: { type: string; message: string } | null;
}

export interface AudioManifest {
  versions: Record<string, string>;
  feature_extractor: Record<string, unknown>;
  call: Record<string, unknown>;
  mel_filters: { file: string; shape: [number, number] };
  hann_window: { file: string; length: number };
  clips: ClipEntry[];
  error_cases: ErrorCase[];
}

let manifestCache: AudioManifest | undefined;

export function loadManifest(): AudioManifest {
  manifestCache ??= JSON.parse(readFileSync(FIXTURE_DIR + 'manifest.json', 'utf8')) as AudioManifest;
  return manifestCache;
}

export function clipEntry(name: string): ClipEntry {
  const entry = loadManifest().clips.find((c) => c.name === name);
  if (!entry) throw new Error(`no audio fixture clip named ${name}`);
  return entry;
}

/** Round to nearest, ties to even (numpy.rint). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f; // exact: the fractional part of a double is representable
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function addLcg(acc: Float64Array, c: LcgComponent): void {
  const n = acc.length;
  const knots = c.envelope;
  if (knots.length < 2 || knots[0]?.[0] !== 0 || knots[knots.length - 1]?.[0] !== n) {
    throw new Error('lcg envelope must start at 0 and end at n');
  }
  let state = c.seed >>> 0;
  let i = 0;
  for (let k = 0; k + 1 < knots.length; k++) {
    const [i0, a0] = knots[k]!;
    const [i1, a1] = knots[k + 1]!;
    for (; i < i1; i++) {
      // state * 1664525 + 1013904223 < 2^53, so this is exact in doubles
      state = (state * 1664525 + 1013904223) % 4294967296;
      const amp = a0 + ((a1 - a0) * (i - i0)) / (i1 - i0);
      acc[i] = acc[i]! + ((state / 4294967296 - 0.5) * 2) * amp;
    }
  }
}

function addSine(acc: Float64Array, c: SineComponent): void {
  const twoPi = 2 * Math.PI;
  for (let i = 0; i < acc.length; i++) {
    acc[i] = acc[i]! + c.amp * Math.sin((twoPi * ((c.freq * i) % SAMPLE_RATE)) / SAMPLE_RATE);
  }
}

function addChirp(acc: Float64Array, c: ChirpComponent): void {
  const n = acc.length;
  const d = 2 * n * SAMPLE_RATE;
  if (!(c.f1 >= c.f0 && c.f0 >= 0) || !Number.isSafeInteger(2 * n * c.f0 * n + (c.f1 - c.f0) * n * n)) {
    throw new Error('chirp needs 0 <= f0 <= f1 and integers below 2^53');
  }
  const twoPi = 2 * Math.PI;
  for (let i = 0; i < n; i++) {
    const k = (2 * n * c.f0 * i + (c.f1 - c.f0) * i * i) % d;
    acc[i] = acc[i]! + c.amp * Math.sin((twoPi * k) / d);
  }
}

/** Regenerates a synthetic clip's int16 samples exactly as scripts/audio_fixtures.py `synth`. */
export function synthClip(spec: ClipSpec): Int16Array {
  const acc = new Float64Array(spec.n);
  for (const c of spec.components) {
    if (c.type === 'lcg') addLcg(acc, c);
    else if (c.type === 'sine') addSine(acc, c);
    else addChirp(acc, c);
  }
  const out = new Int16Array(spec.n);
  for (let i = 0; i < spec.n; i++) out[i] = Math.min(32767, Math.max(-32768, roundHalfEven(acc[i]!)));
  return out;
}

/** The extractor input: float32(int16 / 32768) (exact). */
export function int16ToFloat32(s: Int16Array): Float32Array {
  const x = new Float32Array(s.length);
  for (let i = 0; i < s.length; i++) x[i] = s[i]! / 32768;
  return x;
}

export function int16LeBytes(s: Int16Array): Buffer {
  if (endianness() === 'LE') return Buffer.from(s.buffer, s.byteOffset, s.byteLength);
  const b = Buffer.alloc(s.length * 2);
  for (let i = 0; i < s.length; i++) b.writeInt16LE(s[i]!, i * 2);
  return b;
}

export function sha256Int16(s: Int16Array): string {
  return createHash('sha256').update(int16LeBytes(s)).digest('hex');
}

/** Reads a 16-bit PCM mono 16 kHz WAV (any chunk order) into int16 samples. */
export function readWavInt16(path: string): Int16Array {
  const b = readFileSync(path);
  if (b.toString('ascii', 0, 4) !== 'RIFF' || b.toString('ascii', 8, 12) !== 'WAVE') throw new Error(`${path}: not a WAV`);
  let fmtOk = false;
  for (let p = 12; p + 8 <= b.length; ) {
    const id = b.toString('ascii', p, p + 4);
    const size = b.readUInt32LE(p + 4);
    const body = p + 8;
    if (id === 'fmt ') {
      const format = b.readUInt16LE(body);
      const channels = b.readUInt16LE(body + 2);
      const rate = b.readUInt32LE(body + 4);
      const bits = b.readUInt16LE(body + 14);
      if (format !== 1 || channels !== 1 || rate !== SAMPLE_RATE || bits !== 16) {
        throw new Error(`${path}: expected 16 kHz mono 16-bit PCM`);
      }
      fmtOk = true;
    } else if (id === 'data') {
      if (!fmtOk) throw new Error(`${path}: data before fmt`);
      const n = Math.floor(Math.min(size, b.length - body) / 2);
      const s = new Int16Array(n);
      for (let i = 0; i < n; i++) s[i] = b.readInt16LE(body + 2 * i);
      return s;
    }
    p = body + size + (size & 1);
  }
  throw new Error(`${path}: no data chunk`);
}

function readF32(file: string): Float32Array {
  const b = readFileSync(FIXTURE_DIR + file);
  const out = new Float32Array(b.length / 4);
  for (let i = 0; i < out.length; i++) out[i] = b.readFloatLE(i * 4);
  return out;
}

function readF64(file: string): Float64Array {
  const b = readFileSync(FIXTURE_DIR + file);
  const out = new Float64Array(b.length / 8);
  for (let i = 0; i < out.length; i++) out[i] = b.readDoubleLE(i * 8);
  return out;
}

/** int16 input of a fixture clip (synthesised or read from its WAV). */
export function clipInt16(entry: { generator: ClipSpec | null; wav?: string | null }): Int16Array {
  if (entry.generator) return synthClip(entry.generator);
  if (entry.wav) return readWavInt16(FIXTURE_DIR + entry.wav);
  throw new Error('clip has neither generator nor wav');
}

export interface FixtureClip {
  entry: ClipEntry;
  int16: Int16Array;
  /** The exact float32 input given to the reference extractor. */
  samples: Float32Array;
  /** Frame indices of `frames`, in order. */
  frameIndices: number[];
  /** Frame-major reference features: frames[j * 128 + m] = input_features[m][frameIndices[j]]. */
  frames: Float32Array;
  /** Long clips: mean over mel bins of every frame 0..F-1. */
  frameMeans?: Float32Array;
}

export function loadFixtureClip(name: string): FixtureClip {
  const entry = clipEntry(name);
  const int16 = clipInt16(entry);
  const frameIndices =
    entry.frames_stored === 'all' ? Array.from({ length: entry.num_frames }, (_, i) => i) : entry.frames_stored;
  const clip: FixtureClip = {
    entry,
    int16,
    samples: int16ToFloat32(int16),
    frameIndices,
    frames: readF32(entry.frames_file),
  };
  if (entry.frame_means_file) clip.frameMeans = readF32(entry.frame_means_file);
  return clip;
}

/** fe.mel_filters: 201 x 128 float64, row-major [fftBin * 128 + mel]. */
export function loadMelFilters(): Float64Array {
  return readF64(loadManifest().mel_filters.file);
}

/** torch.hann_window(400) (periodic), float32. */
export function loadHannWindow(): Float32Array {
  return readF32(loadManifest().hann_window.file);
}

/** Audio tokens for F mel frames: 13*floor(F/100) + ceil((F mod 100)/8). */
export function audioTokensClosedForm(frames: number): number {
  return 13 * Math.floor(frames / 100) + Math.ceil((frames % 100) / 8);
}

/** transformers' _get_feat_extract_output_lengths(F, n_window=50), step by step with floor division. */
export function audioTokensStepwise(frames: number): number {
  const r = frames % 100;
  const a = Math.floor((r - 1) / 2) + 1;
  const b = Math.floor((a - 1) / 2) + 1;
  const c = Math.floor((b - 1) / 2) + 1;
  return c + 13 * Math.floor(frames / 100);
}
