// Shared bits for the audio codec tests: deterministic randomness, signals, a frequency
// estimate, and ffmpeg (system, or @ffmpeg-installer's) to make container files at test time.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { locateFfmpeg } from '../../src/codecs/audio/ffmpeg.js';

/** mulberry32: deterministic chunk sizes and noise. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomBytes(n: number, seed: number): Uint8Array {
  const next = rng(seed);
  return Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
}

export { concatFloat32 as concatFloat } from '../../src/codecs/audio/sample_convert.js';

/** Splits `bytes` at random sizes in [1, maxSize] (odd sizes included). */
export function randomChunks(bytes: Uint8Array, seed: number, maxSize: number): Uint8Array[] {
  const next = rng(seed);
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.min(1 + Math.floor(next() * maxSize), bytes.length - at);
    chunks.push(bytes.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

export function sine(freq: number, rate: number, samples: number, amplitude = 0.5): Float32Array {
  return Float32Array.from({ length: samples }, (_, i) => amplitude * Math.sin((2 * Math.PI * freq * i) / rate));
}

/** Frequency of a clean sine from its rising zero crossings (edges skipped). */
export function sineFrequency(x: Float32Array, rate: number): number {
  const from = Math.floor(x.length * 0.1);
  const to = Math.floor(x.length * 0.9);
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = from + 1; i < to; i++) {
    if (x[i - 1]! < 0 && x[i]! >= 0) {
      const t = i - 1 + x[i - 1]! / (x[i - 1]! - x[i]!);
      if (first < 0) first = t;
      last = t;
      count++;
    }
  }
  return count < 2 ? 0 : ((count - 1) * rate) / (last - first);
}

/** Root mean square over the middle 80 % (codec edges skipped). */
export function rms(x: Float32Array): number {
  const from = Math.floor(x.length * 0.1);
  const to = Math.floor(x.length * 0.9);
  let s = 0;
  for (let i = from; i < to; i++) s += x[i]! * x[i]!;
  return Math.sqrt(s / Math.max(1, to - from));
}

/** The ffmpeg the codecs would use (system first, then @ffmpeg-installer's). */
export async function ffmpegPath(): Promise<string> {
  return (await locateFfmpeg()).path;
}

/** Runs ffmpeg with `args` (feeding `input` on stdin if given) and returns its stdout. */
export function runFfmpeg(path: string, args: string[], input?: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      path,
      ['-hide_banner', '-loglevel', 'error', ...args],
      { encoding: 'buffer', maxBuffer: 256 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`ffmpeg ${args.join(' ')} failed: ${stderr.toString()}`, { cause: err }));
        else resolve(stdout);
      },
    );
    if (input) child.stdin!.end(input);
    else child.stdin!.end();
  });
}

/** PIDs of this process's live (not zombie) children whose command name is `name` (Linux /proc). */
export function childPids(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (comm === name && state !== 'Z' && Number(ppid) === process.pid) pids.push(Number(entry));
  }
  return pids;
}
