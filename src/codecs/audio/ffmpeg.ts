// Compressed and container audio (MP3, AAC/M4A, Ogg/Opus/Vorbis, WebM, FLAC, ...) decoded by an
// ffmpeg child process through fluent-ffmpeg: bytes in on stdin, 16 kHz float32 WAV out on
// stdout, no temporary files. Resampling uses soxr at ffmpeg's default precision of 20 bits,
// which is libsoxr's HQ recipe, the one librosa.load uses (`soxr_hq`); an ffmpeg built without
// libsoxr falls back to its own swr resampler. Channels are kept through ffmpeg and averaged
// here (librosa's to_mono), rather than ffmpeg's `-ac 1` matrix, which weights centre, surround
// and LFE channels differently for more than two channels. Resampling is linear, so averaging
// after it equals averaging before it.
//
// Every run is bounded: output beyond the duration limit, a wall-clock timeout and an abort
// signal all kill the process, and the promise settles only once the process has exited.
import { execFile } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
import { CodecError } from '../errors.js';
import { downmixInterleaved } from './downmix.js';
import { concatFloat32 } from './sample_convert.js';

export interface FfmpegBinary {
  path: string;
  /** Where it was found: an explicit option, FFMPEG_PATH, PATH, or the @ffmpeg-installer package. */
  source: 'option' | 'env' | 'path' | 'ffmpeg-installer';
  /** The first line of `ffmpeg -version`. */
  version: string;
  /** Built with libsoxr (`--enable-libsoxr`). */
  soxr: boolean;
}

const PROBE_TIMEOUT_MS = 10_000;
const found = new Map<string, Promise<FfmpegBinary>>();

function probe(path: string, source: FfmpegBinary['source']): Promise<FfmpegBinary> {
  return new Promise((resolve, reject) => {
    execFile(path, ['-hide_banner', '-version'], { timeout: PROBE_TIMEOUT_MS, windowsHide: true }, (err, stdout) => {
      if (err) {
        reject(new Error(err.message, { cause: err }));
        return;
      }
      const version = stdout.split('\n', 1)[0]?.trim() ?? '';
      if (!version.startsWith('ffmpeg version')) {
        reject(new Error(`${path} -version did not print an ffmpeg version`));
        return;
      }
      resolve({ path, source, version, soxr: stdout.includes('--enable-libsoxr') });
    });
  });
}

function onPath(name: string): string | undefined {
  const names = process.platform === 'win32' ? [`${name}.exe`] : [name];
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    for (const n of names) {
      const candidate = join(dir, n);
      try {
        accessSync(candidate, constants.X_OK);
        if (statSync(candidate).isFile()) return candidate;
      } catch {
        // not here
      }
    }
  }
  return undefined;
}

function installerPath(): string | undefined {
  try {
    // Optional dependency; its index throws when the platform binary is missing.
    const mod = createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path?: unknown };
    return typeof mod.path === 'string' ? mod.path : undefined;
  } catch {
    return undefined;
  }
}

async function locate(preferred: string | undefined): Promise<FfmpegBinary> {
  const explicit: [string, FfmpegBinary['source']] | undefined = preferred
    ? [preferred, 'option']
    : process.env.FFMPEG_PATH
      ? [process.env.FFMPEG_PATH, 'env']
      : undefined;
  // An ffmpeg named explicitly is the only one tried: silently using another would hide a
  // misconfiguration.
  const candidates: [string, FfmpegBinary['source']][] = explicit
    ? [explicit]
    : ([
        [onPath('ffmpeg'), 'path'],
        [installerPath(), 'ffmpeg-installer'],
      ].filter((c): c is [string, FfmpegBinary['source']] => c[0] !== undefined));
  const failures: string[] = [];
  for (const [path, source] of candidates) {
    try {
      return await probe(path, source);
    } catch (err) {
      failures.push(`${path}: ${(err as Error).message}`);
    }
  }
  const tried = failures.length > 0 ? ` (${failures.join('; ')})` : ' (none on PATH and @ffmpeg-installer/ffmpeg is not installed)';
  throw new CodecError('ffmpeg_unavailable', `ffmpeg is needed to decode this audio but none could be run${tried}`);
}

/**
 * The ffmpeg to use: `preferred`, else $FFMPEG_PATH, else `ffmpeg` on PATH, else the binary of
 * the optional @ffmpeg-installer/ffmpeg package. Probed once (`-version`) and remembered; a failed
 * lookup is retried next time. Throws CodecError `ffmpeg_unavailable`.
 */
export function locateFfmpeg(preferred?: string): Promise<FfmpegBinary> {
  const key = preferred ?? `env:${process.env.FFMPEG_PATH ?? ''}`;
  let pending = found.get(key);
  if (!pending) {
    pending = locate(preferred);
    found.set(key, pending);
    pending.catch(() => found.delete(key));
  }
  return pending;
}

export interface FfmpegDecodeOptions {
  binary: FfmpegBinary;
  /** Most 16 kHz samples accepted; more is `audio_too_long`. */
  maxSamples: number;
  timeoutMs: number;
  signal?: AbortSignal;
  /** Whether the caller recognised the container (turns ffmpeg's "invalid data" into `audio_decode_failed` rather than `audio_format_unsupported`). */
  knownContainer: boolean;
  /** Container name for messages, e.g. "MP3". */
  label: string;
}

export interface FfmpegDecodeResult {
  /** Mono float32 at 16 kHz. */
  samples: Float32Array;
  /** ffmpeg's demuxer name (first of its aliases), e.g. `mp3`, `mov`, `ogg`, `matroska`. */
  demuxer: string;
  /** ffmpeg's name of the decoded stream's codec, e.g. `mp3`, `aac`, `opus`. */
  codec: string;
  sourceSampleRate: number;
  sourceChannels: number;
  /** ffmpeg's warnings and errors about the input (a damaged file can still decode in part). */
  warnings: string[];
}

export const MODEL_SAMPLE_RATE = 16000;

/**
 * Decode `source` (encoded bytes, fed on stdin, or a file ffmpeg reads itself -- a video's
 * soundtrack, without loading the whole file) to 16 kHz mono float32 with ffmpeg. Rejects only
 * with CodecError (or `signal.reason`).
 */
export function decodeWithFfmpeg(source: Uint8Array | { path: string }, options: FfmpegDecodeOptions): Promise<FfmpegDecodeResult> {
  const { binary, maxSamples, timeoutMs, signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason as Error);
  const sink = new WavFloatSink(maxSamples);
  const stderr = new StderrLog();
  const input = new PassThrough();
  if (source instanceof Uint8Array) input.end(source);
  else input.end();
  const resampler = binary.soxr ? `aresample=${MODEL_SAMPLE_RATE}:resampler=soxr` : `aresample=${MODEL_SAMPLE_RATE}`;
  // One sample past the limit is enough to know the input is too long; ffmpeg stops there.
  const maxSeconds = (maxSamples + 1) / MODEL_SAMPLE_RATE;
  const command = ffmpeg({ stdoutLines: 200 })
    .input(source instanceof Uint8Array ? input : source.path)
    .outputOptions([
      '-hide_banner',
      '-nostats',
      '-map', '0:a:0',
      '-af', resampler,
      '-ar', String(MODEL_SAMPLE_RATE),
      '-t', maxSeconds.toFixed(6),
      '-map_metadata', '-1',
    ])
    .audioCodec('pcm_f32le')
    .format('wav');
  // fluent-ffmpeg keeps this path process-wide (and its capability cache with it): every caller
  // should take its binary from locateFfmpeg so they agree.
  command.setFfmpegPath(binary.path);

  return new Promise<FfmpegDecodeResult>((resolve, reject) => {
    let proc: ChildProcess | undefined;
    let exited = false;
    let sinkDone = false;
    let settled = false;
    /** Why we stopped ffmpeg ourselves; wins over whatever ffmpeg says after being killed. */
    let stopReason: Error | undefined;
    let ffmpegError: Error | undefined;

    const timer = setTimeout(() => {
      stop(new CodecError('ffmpeg_timeout', `ffmpeg did not finish decoding ${options.label} within ${timeoutMs} ms`, 'audio'));
    }, timeoutMs);
    const onAbort = (): void => stop(signal!.reason as Error);
    signal?.addEventListener('abort', onAbort, { once: true });

    function stop(reason: Error): void {
      stopReason ??= reason;
      if (proc && !exited) proc.kill('SIGKILL');
      // Not spawned yet (fluent-ffmpeg probes capabilities first): settle now; `start` kills it.
      if (!proc) finish();
    }
    sink.onOverflow = () =>
      stop(new CodecError('audio_too_long', `${options.label} audio is longer than the limit of ${(maxSamples / MODEL_SAMPLE_RATE).toFixed(3)} s`, 'audio'));

    function finish(): void {
      if (settled) return;
      if (proc && !(exited && sinkDone) && !stopReason) return;
      if (proc && !exited) return; // killed: wait for the exit so no process outlives the promise
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      input.destroy();
      if (stopReason) {
        reject(stopReason);
        return;
      }
      try {
        resolve(result());
      } catch (err) {
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    }

    function result(): FfmpegDecodeResult {
      const info = stderr.info;
      const last = stderr.lastProblem();
      if (ffmpegError || sink.error) {
        throw classifyFailure(ffmpegError ?? sink.error!, stderr, options);
      }
      const samples = sink.samples();
      if (samples.length === 0) {
        if (last) throw new CodecError('audio_decode_failed', `could not decode ${options.label} audio: ${last}`, 'audio');
        throw new CodecError('audio_empty', `${options.label} input holds no audio samples`, 'audio');
      }
      return {
        samples,
        demuxer: info.demuxer,
        codec: info.codec,
        sourceSampleRate: info.sampleRate,
        sourceChannels: sink.header?.channels ?? 0,
        warnings: stderr.problems(),
      };
    }

    command.on('stderr', (line: string) => stderr.add(line));
    command.on('start', () => {
      proc = (command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
      if (!proc) return;
      proc.once('close', () => {
        exited = true;
        // stdout's end reaches the sink just before or after this; if it never ended (torn
        // down), there is nothing more to wait for.
        if (!sink.writableEnded) {
          sinkDone = true;
          ffmpegError ??= new Error('ffmpeg output ended abruptly');
        }
        finish();
      });
      if (stopReason || settled) proc.kill('SIGKILL');
    });
    command.on('error', (err: Error) => {
      // Also raised after our own kill ("killed with signal"); stopReason has the real cause.
      ffmpegError ??= err;
      if (!proc || proc.pid === undefined) {
        // Failed before spawning: no process to wait for.
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        input.destroy();
        reject(stopReason ?? classifyFailure(err, stderr, options));
      }
    });
    sink.on('finish', () => {
      sinkDone = true;
      finish();
    });
    command.pipe(sink, { end: true });
  });
}

/** Map an ffmpeg failure onto the codec error catalogue, quoting ffmpeg's own words. */
function classifyFailure(err: Error, stderr: StderrLog, options: FfmpegDecodeOptions): CodecError {
  if (err instanceof CodecError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'EACCES' || /Cannot find ffmpeg/.test(err.message)) {
    return new CodecError('ffmpeg_unavailable', `ffmpeg at ${options.binary.path} could not be started: ${err.message}`, undefined, { cause: err });
  }
  const all = stderr.all();
  const last = stderr.lastProblem() ?? err.message;
  if (/matches no streams|does not contain any stream|Output file #0 does not contain/.test(all)) {
    return new CodecError('audio_format_unsupported', `${options.label} input has no audio stream`, 'audio', { cause: err });
  }
  if (/Decoder \(codec [^)]*\) not found|Unknown decoder|could not find codec parameters|unsupported codec/i.test(all)) {
    return new CodecError('audio_format_unsupported', `${options.label} audio uses a codec this ffmpeg cannot decode: ${last}`, 'audio', { cause: err });
  }
  if (!options.knownContainer && /Invalid data found when processing input|could not find corresponding|Failed to probe/i.test(all)) {
    return new CodecError('audio_format_unsupported', `not a recognised audio format (ffmpeg: ${last})`, 'audio', { cause: err });
  }
  if (/killed with signal/.test(err.message)) {
    return new CodecError('ffmpeg_failed', `ffmpeg stopped unexpectedly (${err.message}): ${last}`, 'audio', { cause: err });
  }
  return new CodecError('audio_decode_failed', `could not decode ${options.label} audio: ${last}`, 'audio', { cause: err });
}

interface InputInfo {
  demuxer: string;
  codec: string;
  sampleRate: number;
}

/** ffmpeg's stderr, line by line: the input's description and the lines that report problems. */
class StderrLog {
  readonly info: InputInfo = { demuxer: '', codec: '', sampleRate: 0 };
  private readonly lines: string[] = [];
  private readonly problemLines: string[] = [];
  private section: 'head' | 'input' | 'after' = 'head';
  private static readonly MAX_LINES = 200;

  add(raw: string): void {
    const line = raw.trim();
    if (!line) return;
    if (this.lines.length === StderrLog.MAX_LINES) this.lines.shift();
    this.lines.push(line);
    const input = /^Input #0, ([^,]+)/.exec(line);
    if (input) {
      this.section = 'input';
      this.info.demuxer = input[1]!;
      return;
    }
    if (/^(Output #0|Stream mapping:)/.test(line)) this.section = 'after';
    if (this.section === 'input' && !this.info.codec) {
      const stream = /Stream #0:\d+.*?: Audio: ([^\s,]+).*?, (\d+) Hz/.exec(line);
      if (stream) {
        this.info.codec = stream[1]!;
        this.info.sampleRate = Number(stream[2]);
        return;
      }
    }
    if (StderrLog.isProblem(line) && this.problemLines.length < 50) this.problemLines.push(line);
  }

  private static isProblem(line: string): boolean {
    if (/^(size=|video:|Output file is empty|Conversion failed!|Press \[q\])/.test(line)) return false;
    return /error|invalid|failed|not found|could not|cannot|unsupported|partial file|truncat|corrupt|missing|no such|does not contain|matches no streams|Unknown|End of file/i.test(line);
  }

  problems(): string[] {
    return [...this.problemLines];
  }

  lastProblem(): string | undefined {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const line = this.lines[i]!;
      if (StderrLog.isProblem(line)) return line;
    }
    return undefined;
  }

  all(): string {
    return this.lines.join('\n');
  }
}

interface WavHeader {
  channels: number;
  sampleRate: number;
}

/**
 * Reads the float32 WAV that ffmpeg streams (header sizes unknown on a pipe, so the data runs to
 * the end), averaging channels chunk by chunk as it arrives.
 */
class WavFloatSink extends Writable {
  header: WavHeader | undefined;
  error: Error | undefined;
  onOverflow: () => void = () => undefined;
  private head = Buffer.alloc(0);
  private carry = Buffer.alloc(0);
  private readonly chunks: Float32Array[] = [];
  private count = 0;
  private overflowed = false;

  constructor(private readonly maxSamples: number) {
    // No 'close' event: fluent-ffmpeg kills the process 20 ms after its output stream closes,
    // which could cut off a process still finishing on a loaded machine.
    super({ emitClose: false });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.overflowed || this.error) {
      callback();
      return;
    }
    try {
      if (!this.header) {
        this.head = Buffer.concat([this.head, chunk]);
        const parsed = parseWavStreamHeader(this.head);
        if (!parsed) {
          if (this.head.length > 1 << 16) throw new Error('ffmpeg output has no WAV data chunk');
          callback();
          return;
        }
        this.header = parsed.header;
        chunk = this.head.subarray(parsed.dataStart);
        this.head = Buffer.alloc(0);
      }
      this.consume(chunk);
    } catch (err) {
      this.error = new CodecError('ffmpeg_failed', `unexpected ffmpeg output: ${(err as Error).message}`, 'audio', { cause: err });
    }
    callback();
  }

  private consume(chunk: Buffer): void {
    const frameBytes = 4 * this.header!.channels;
    const data = this.carry.length > 0 ? Buffer.concat([this.carry, chunk]) : chunk;
    const whole = data.length - (data.length % frameBytes);
    this.carry = whole === data.length ? Buffer.alloc(0) : Buffer.from(data.subarray(whole));
    if (whole === 0) return;
    // Copy into an aligned Float32Array (stdout chunks can start at any byte offset).
    const floats = new Float32Array(whole / 4);
    new Uint8Array(floats.buffer).set(data.subarray(0, whole));
    const mono = downmixInterleaved(floats, this.header!.channels);
    this.count += mono.length;
    if (this.count > this.maxSamples) {
      this.overflowed = true;
      this.onOverflow();
      return;
    }
    this.chunks.push(mono);
  }

  samples(): Float32Array {
    return concatFloat32(this.chunks);
  }
}

/** The fmt fields and where the samples start, once the bytes up to the data chunk are in. */
function parseWavStreamHeader(b: Buffer): { header: WavHeader; dataStart: number } | undefined {
  if (b.length < 12) return undefined;
  if (b.toString('latin1', 0, 4) !== 'RIFF' || b.toString('latin1', 8, 12) !== 'WAVE') {
    throw new Error('ffmpeg output is not a WAV stream');
  }
  let header: WavHeader | undefined;
  for (let at = 12; at + 8 <= b.length; ) {
    const id = b.toString('latin1', at, at + 4);
    const size = b.readUInt32LE(at + 4);
    if (id === 'data') {
      if (!header) throw new Error('WAV data chunk before its fmt chunk');
      return { header, dataStart: at + 8 };
    }
    if (at + 8 + size > b.length) return undefined;
    if (id === 'fmt ') {
      const tag = b.readUInt16LE(at + 8);
      const format = tag === 0xfffe && size >= 26 ? b.readUInt16LE(at + 8 + 24) : tag;
      const bits = b.readUInt16LE(at + 8 + 14);
      if (format !== 3 || bits !== 32) throw new Error(`expected float32 WAV, got format ${format} at ${bits} bits`);
      header = { channels: b.readUInt16LE(at + 8 + 2), sampleRate: b.readUInt32LE(at + 8 + 4) };
      if (header.channels < 1) throw new Error('WAV with no channels');
    }
    at += 8 + size + (size & 1);
  }
  return undefined;
}
