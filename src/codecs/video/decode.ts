// Sampled frames of a video file, decoded by an ffmpeg child process and streamed one at a time:
// ffmpeg's `select` filter keeps only the wanted frame numbers, each leaves as a PPM image (its
// header carries the size, so rotation metadata and odd sizes need no guessing), and the consumer's
// pace throttles ffmpeg. Frames are copied out of the pipe as they arrive, so ffmpeg keeps decoding
// while the consumer converts the previous ones; at most READ_AHEAD_FRAMES finished frames wait,
// whatever the length of the video.
//
// ffmpeg can also be started before the frames are known (startVideoDecoder): it loads (about
// 0.2 s for a distribution's dynamically linked build), opens the file and reads its headers, then
// waits for the select filter, which it reads from fd 3 (`-filter_script:v pipe:3`). planVideo
// starts one while ffprobe runs, so the two start-ups overlap instead of adding up.
//
// Frame numbers count decoded frames in presentation order with frame-rate conversion off
// (`passthrough`), so index i is the i-th frame any decoder of the file returns.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Writable } from 'node:stream';
import type { FfmpegBinary } from '../audio/ffmpeg.js';
import { CodecError } from '../errors.js';

export interface DecodedFrame {
  /** Source frame number (0-based, presentation order). */
  sourceIndex: number;
  /** width * height * 3 bytes, RGB interleaved. */
  rgb: Uint8Array;
  width: number;
  height: number;
}

export interface DecodeFramesOptions {
  binary: FfmpegBinary;
  /** Whole-decode wall-clock limit (default 10 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Largest frame accepted, in pixels (default 40 000 000). */
  maxFramePixels?: number;
  /**
   * An ffmpeg already started for this file (startVideoDecoder). Used when it is still waiting and
   * was started for the same path and binary; otherwise it is stopped and a new one started.
   */
  early?: EarlyVideoDecoder;
  /**
   * Frame buffers the caller is done with (it pushes them here): later frames of the same size are
   * decoded into them instead of new memory, which saves the page faults of fresh allocations.
   */
  spareFrames?: Uint8Array[];
}

export const DEFAULT_VIDEO_DECODE_TIMEOUT_MS = 10 * 60_000;
/** Sampled frames past the decoder's real end that the last frame may stand in for. */
export const MAX_MISSING_TAIL = 2;
const DEFAULT_MAX_FRAME_PIXELS = 40_000_000;
/**
 * Decoded frames that may wait for the consumer (one temporal step): ffmpeg decodes on while the
 * previous step is converted, and stops at the pipe beyond that.
 */
export const READ_AHEAD_FRAMES = 2;

function ffmpegVersion(binary: FfmpegBinary): [number, number] | undefined {
  const m = /ffmpeg version n?(\d+)\.(\d+)/.exec(binary.version);
  return m ? [Number(m[1]), Number(m[2])] : undefined;
}

/** `-fps_mode` arrived in ffmpeg 5.1; older builds (the static @ffmpeg-installer one) take `-vsync`. */
function passthroughOption(binary: FfmpegBinary): string[] {
  const v = ffmpegVersion(binary);
  const modern = v ? v[0] > 5 || (v[0] === 5 && v[1] >= 1) : false;
  return modern ? ['-fps_mode', 'passthrough'] : ['-vsync', 'passthrough'];
}

/**
 * Whether this ffmpeg can read its filter from fd 3 (`-filter_script:v pipe:3`), which starting it
 * early needs: released 4.x to 6.x (7.0 deprecated -filter_script; builds whose version does not
 * parse, such as git snapshots, are not guessed at), and not on Windows.
 */
function takesFilterFromFd(binary: FfmpegBinary): boolean {
  const v = ffmpegVersion(binary);
  return process.platform !== 'win32' && v !== undefined && v[0] >= 4 && v[0] <= 6;
}

/**
 * select filter keeping exactly `indices` (ascending, distinct). The terms are summed as a balanced
 * tree: ffmpeg's expression parser recurses once per `+` of a flat chain and gives up on a few
 * hundred terms (a 5 minute video samples 600 frames); a tree nests only log2(n) deep.
 */
export function selectFilter(indices: readonly number[]): string {
  const tree = (lo: number, hi: number): string => {
    if (hi - lo === 1) return `eq(n\\,${indices[lo]!})`;
    const mid = (lo + hi) >> 1;
    return `(${tree(lo, mid)}+${tree(mid, hi)})`;
  };
  return `select='${tree(0, indices.length)}'`;
}

/**
 * Incremental PPM (P6, 8-bit) splitter over ffmpeg's image2pipe output. Each frame's pixels are
 * copied once, straight from the pipe's chunks into the frame's own buffer: a spare one of the
 * right size when the consumer has handed any back, else new memory.
 */
class PpmReader {
  private header = Buffer.alloc(0);
  private frame: { rgb: Uint8Array; filled: number; width: number; height: number } | undefined;

  constructor(
    private readonly maxPixels: number,
    private readonly spare: Uint8Array[] = [],
  ) {}

  private buffer(bytes: number): Uint8Array {
    const i = this.spare.findIndex((b) => b.length === bytes);
    if (i >= 0) return this.spare.splice(i, 1)[0]!;
    // Every byte is written from the pipe before the frame is handed out: no zero-fill needed.
    const b = Buffer.allocUnsafeSlow(bytes);
    return new Uint8Array(b.buffer, b.byteOffset, b.length);
  }

  /** Frames completed by this chunk. */
  push(chunk: Buffer): { rgb: Uint8Array; width: number; height: number }[] {
    const done: { rgb: Uint8Array; width: number; height: number }[] = [];
    let at = 0;
    while (at < chunk.length) {
      if (!this.frame) {
        // Headers are a few dozen bytes: gather them (rarely across chunks), then parse.
        const take = Math.min(chunk.length - at, 64 - this.header.length);
        this.header = Buffer.concat([this.header, chunk.subarray(at, at + take)]);
        const m = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(this.header.toString('latin1'));
        if (!m) {
          if (this.header.length >= 64 || (this.header.length >= 2 && this.header.toString('latin1', 0, 2) !== 'P6')) {
            throw new CodecError('video_decode_failed', 'ffmpeg produced a frame this reader does not understand', 'video');
          }
          at += take;
          continue;
        }
        const width = Number(m[1]);
        const height = Number(m[2]);
        if (Number(m[3]) !== 255) throw new CodecError('video_decode_failed', `unexpected frame depth ${m[3]}`, 'video');
        if (width * height > this.maxPixels) {
          throw new CodecError('video_too_large', `video frames are ${width}x${height}; the limit is ${this.maxPixels} pixels`, 'video');
        }
        // Bytes of this chunk that belong to the header; the rest are pixels.
        at += m[0].length - (this.header.length - take);
        this.header = Buffer.alloc(0);
        this.frame = { rgb: this.buffer(width * height * 3), filled: 0, width, height };
        continue;
      }
      const f = this.frame;
      const n = Math.min(chunk.length - at, f.rgb.length - f.filled);
      f.rgb.set(chunk.subarray(at, at + n), f.filled);
      f.filled += n;
      at += n;
      if (f.filled === f.rgb.length) {
        done.push({ rgb: f.rgb, width: f.width, height: f.height });
        this.frame = undefined;
      }
    }
    return done;
  }
}

/** Keeps the last lines of ffmpeg's stderr for error messages. */
function lastLines(lines: string[], line: string): void {
  const t = line.trim();
  if (!t) return;
  if (lines.length === 20) lines.shift();
  lines.push(t);
}

/** ffmpeg's arguments: the video stream of `path`, the frames the filter keeps, PPM on stdout. */
function decoderArgs(path: string, binary: FfmpegBinary, filter: { inline: string } | { fd: 3 }): string[] {
  const select = 'inline' in filter ? ['-vf', filter.inline] : ['-filter_script:v', 'pipe:3'];
  return [
    '-hide_banner', '-nostats', '-nostdin',
    '-i', path,
    '-map', '0:v:0', ...select, ...passthroughOption(binary),
    '-f', 'image2pipe', '-c:v', 'ppm', '-map_metadata', '-1', 'pipe:1',
  ];
}

/** One ffmpeg child: its exit, its stderr's last lines, and how it failed. */
class FfmpegRun {
  readonly proc: ChildProcess;
  readonly stderr: string[] = [];
  /** Why it failed: ours (a kill with a reason) or its own (spawn error, non-zero exit). */
  failure: Error | undefined;
  exited = false;
  private exitWaiters: (() => void)[] = [];
  private partialLine = '';

  constructor(
    readonly path: string,
    readonly binary: FfmpegBinary,
    args: string[],
    /** The select filter arrives later on fd 3 (startVideoDecoder). */
    readonly filterFromFd: boolean,
  ) {
    this.proc = spawn(binary.path, args, { stdio: ['ignore', 'pipe', 'pipe', filterFromFd ? 'pipe' : 'ignore'], windowsHide: true });
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (text: string) => {
      const lines = (this.partialLine + text).split(/\r\n|\r|\n/);
      this.partialLine = lines.pop() ?? '';
      for (const l of lines) lastLines(this.stderr, l);
    });
    // Writing the filter to an ffmpeg that already died fails with EPIPE; its exit says why.
    (this.proc.stdio[3] as Writable | null)?.on('error', () => undefined);
    this.proc.on('error', (err: NodeJS.ErrnoException) => {
      if (!this.failure) {
        if (err.code === 'ENOENT' || err.code === 'EACCES') {
          this.failure = new CodecError('ffmpeg_unavailable', `ffmpeg at ${binary.path} could not be started: ${err.message}`, undefined, { cause: err });
        } else {
          this.failure = new CodecError('video_decode_failed', `ffmpeg could not decode the video: ${err.message}`, 'video', { cause: err });
        }
      }
      // A process that never started sends no 'close'.
      if (this.proc.pid === undefined) this.markExited();
    });
    this.proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      if (this.partialLine) lastLines(this.stderr, this.partialLine);
      if (!this.failure && (code !== 0 || signal)) {
        const said =
          this.stderr.filter((l) => !/^(frame=|size=|video:|Input #|Output #|Stream |Duration|Metadata)/.test(l)).pop() ??
          (signal ? `ffmpeg was killed with signal ${signal}` : `ffmpeg exited with code ${code}`);
        this.failure = new CodecError('video_decode_failed', `ffmpeg could not decode the video: ${said}`, 'video');
      }
      this.markExited();
    });
  }

  private markExited(): void {
    if (this.exited) return;
    this.exited = true;
    for (const w of this.exitWaiters) w();
    this.exitWaiters = [];
  }

  /** Stops it (SIGKILL), recording `reason` as the failure unless one is already known. */
  kill(reason: Error): void {
    this.failure ??= reason;
    if (!this.exited) this.proc.kill('SIGKILL');
  }

  waitExit(): Promise<void> {
    return this.exited ? Promise.resolve() : new Promise((r) => this.exitWaiters.push(r));
  }

  /** Hands a waiting ffmpeg its select filter (fd 3). */
  select(indices: readonly number[]): void {
    (this.proc.stdio[3] as Writable).end(selectFilter(indices));
  }
}

/**
 * An ffmpeg started for a file before its frame selection is known (startVideoDecoder). Hand it to
 * decodeVideoFrames (`early`), or cancel it; one not taken within the time given to expireIn stops
 * by itself, and any left when this process exits are stopped.
 */
export interface EarlyVideoDecoder {
  /** Stops it unless decodeVideoFrames has taken it. Idempotent. */
  cancel(): void;
  /** Stops it if it has not been taken `ms` from now. */
  expireIn(ms: number): void;
}

/** Early decoders not taken yet. */
const waiting = new Set<EarlyDecoder>();
let exitHook = false;

class EarlyDecoder implements EarlyVideoDecoder {
  private run: FfmpegRun | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(run: FfmpegRun) {
    this.run = run;
    waiting.add(this);
    // It must not keep the event loop alive while nobody has taken it.
    run.proc.unref();
    for (const s of [run.proc.stdout, run.proc.stderr, run.proc.stdio[3]]) (s as { unref?: () => void } | null)?.unref?.();
    if (!exitHook) {
      exitHook = true;
      process.once('exit', () => {
        for (const d of waiting) d.cancel();
      });
    }
  }

  cancel(): void {
    clearTimeout(this.timer);
    waiting.delete(this);
    this.run?.kill(new Error('not used'));
    this.run = undefined;
  }

  expireIn(ms: number): void {
    clearTimeout(this.timer);
    if (!this.run) return;
    this.timer = setTimeout(() => this.cancel(), ms);
    this.timer.unref();
  }

  /** The waiting process for `path` and `binary`, if it still waits; else it is stopped. */
  take(path: string, binary: FfmpegBinary): FfmpegRun | undefined {
    const run = this.run;
    this.run = undefined;
    clearTimeout(this.timer);
    waiting.delete(this);
    if (!run) return undefined;
    if (run.exited || run.failure || run.path !== path || run.binary.path !== binary.path) {
      run.kill(new Error('not used'));
      return undefined;
    }
    run.proc.ref();
    for (const s of [run.proc.stdout, run.proc.stderr]) (s as { ref?: () => void } | null)?.ref?.();
    return run;
  }
}

/**
 * Starts ffmpeg on `path` now, to be given its frame selection later through decodeVideoFrames:
 * process start-up and header parsing then overlap whatever the caller does meanwhile (ffprobe).
 * Undefined where this ffmpeg cannot take its filter late (see takesFilterFromFd).
 */
export function startVideoDecoder(path: string, binary: FfmpegBinary): EarlyVideoDecoder | undefined {
  if (!takesFilterFromFd(binary)) return undefined;
  return new EarlyDecoder(new FfmpegRun(path, binary, decoderArgs(path, binary, { fd: 3 }), true));
}

/**
 * Decodes the frames numbered `indices` (ascending, distinct) of the video stream of `path`, in
 * order. The caller's pace throttles ffmpeg; breaking out of the loop kills it. Rejects with
 * CodecError: video_decode_failed (including a file that ends before the last wanted frame),
 * video_too_large, ffmpeg_timeout, ffmpeg_unavailable; or the signal's reason.
 */
export async function* decodeVideoFrames(path: string, indices: readonly number[], options: DecodeFramesOptions): AsyncGenerator<DecodedFrame> {
  const { binary, signal } = options;
  let early = options.early;
  try {
    if (indices.length === 0) return;
    for (let i = 0; i < indices.length; i++) {
      const v = indices[i]!;
      if (!Number.isSafeInteger(v) || v < 0 || (i > 0 && v <= indices[i - 1]!)) {
        throw new CodecError('video_option_invalid', 'frame indices must be ascending non-negative integers', 'indices');
      }
    }
    signal?.throwIfAborted();
  } catch (err) {
    early?.cancel();
    throw err;
  }
  const timeoutMs = options.timeoutMs ?? DEFAULT_VIDEO_DECODE_TIMEOUT_MS;
  let run = early instanceof EarlyDecoder ? early.take(path, binary) : (early?.cancel(), undefined);
  early = undefined;
  if (run) run.select(indices);
  else run = new FfmpegRun(path, binary, decoderArgs(path, binary, { inline: selectFilter(indices) }), false);
  const ffmpegRun = run;
  const stdout = ffmpegRun.proc.stdout!;

  // Frames are cut out of the pipe as its chunks arrive, whether or not the consumer is waiting;
  // the pipe is paused while READ_AHEAD_FRAMES finished frames are queued.
  const reader = new PpmReader(options.maxFramePixels ?? DEFAULT_MAX_FRAME_PIXELS, options.spareFrames);
  const ready: { rgb: Uint8Array; width: number; height: number }[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  const notify = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  // A stop of ours (abort, timeout, a frame refused) ends the stream at once, queued frames and all.
  let stopped: Error | undefined;
  const fail = (reason: Error): void => {
    stopped ??= reason;
    ready.length = 0;
    ffmpegRun.kill(reason);
    stdout.destroy();
    notify();
  };
  stdout.on('data', (chunk: Buffer) => {
    try {
      for (const f of reader.push(chunk)) ready.push(f);
    } catch (err) {
      fail(err as Error);
      return;
    }
    if (ready.length >= READ_AHEAD_FRAMES) stdout.pause();
    notify();
  });
  stdout.once('end', () => {
    ended = true;
    notify();
  });
  stdout.once('close', () => {
    ended = true;
    notify();
  });
  stdout.on('error', () => undefined); // destroyed by a kill; the run's failure tells why
  // The run's own failure (spawn error, non-zero exit) ends the wait too.
  void ffmpegRun.waitExit().then(notify);

  const timer = setTimeout(() => fail(new CodecError('ffmpeg_timeout', `decoding the video took longer than ${timeoutMs} ms`, 'video')), timeoutMs);
  const onAbort = (): void => fail(signal!.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });

  let produced = 0;
  let lastFrame: { rgb: Uint8Array; width: number; height: number } | undefined;
  // Read through functions: TypeScript would keep them narrowed across the awaits below.
  const stoppedBy = (): Error | undefined => stopped;
  const failed = (): Error | undefined => stopped ?? ffmpegRun.failure;
  try {
    while (produced < indices.length) {
      const stop = stoppedBy();
      if (stop) throw stop;
      const f = ready.shift();
      if (f) {
        if (ready.length < READ_AHEAD_FRAMES && stdout.isPaused()) stdout.resume();
        lastFrame = f;
        yield { sourceIndex: indices[produced]!, ...f };
        produced++;
        continue;
      }
      // ffmpeg's own failure (a non-zero exit) is reported once the frames it did send are out.
      if (ended || ffmpegRun.exited) break;
      await new Promise<void>((r) => (wake = r));
    }
    if (produced < indices.length) {
      // stdout ended early: wait for the exit so ffmpeg's own complaint (if any) is in.
      await ffmpegRun.waitExit();
      const late = failed();
      if (late) throw late;
      // A container index can count a few more samples than the decoder returns (edit lists of
      // trimmed MP4s, a dropped last frame): the last decoded frame stands in for at most
      // MAX_MISSING_TAIL of them. More missing than that is a damaged file.
      if (lastFrame && indices.length - produced <= MAX_MISSING_TAIL) {
        while (produced < indices.length) {
          yield { sourceIndex: indices[produced]!, ...lastFrame, rgb: lastFrame.rgb.slice() };
          produced++;
        }
        return;
      }
      const said = ffmpegRun.stderr.filter((l) => /error|invalid|corrupt|truncat|missing/i.test(l)).pop();
      throw new CodecError(
        'video_decode_failed',
        `the video ended after ${produced} of the ${indices.length} sampled frames (wanted frame ${indices[produced]})${said ? `: ${said}` : ''}`,
        'video',
      );
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    if (!ffmpegRun.exited) {
      ffmpegRun.kill(new Error('stopped'));
      stdout.destroy();
      await ffmpegRun.waitExit();
    }
  }
}
