// Sampled frames of a video file, decoded by an ffmpeg child process (fluent-ffmpeg) and streamed
// one at a time: ffmpeg's `select` filter keeps only the wanted frame numbers, each leaves as a PPM
// image (its header carries the size, so rotation metadata and odd sizes need no guessing), and the
// consumer's pace is the pipe's pace -- at most a frame or two and the pipe buffer are ever held,
// whatever the length of the video.
//
// Frame numbers count decoded frames in presentation order with frame-rate conversion off
// (`passthrough`), so index i is the i-th frame any decoder of the file returns.
import type { ChildProcess } from 'node:child_process';
import { PassThrough } from 'node:stream';
import ffmpeg from 'fluent-ffmpeg';
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
}

export const DEFAULT_VIDEO_DECODE_TIMEOUT_MS = 10 * 60_000;
/** Sampled frames past the decoder's real end that the last frame may stand in for. */
export const MAX_MISSING_TAIL = 2;
const DEFAULT_MAX_FRAME_PIXELS = 40_000_000;

/** `-fps_mode` arrived in ffmpeg 5.1; older builds (the static @ffmpeg-installer one) take `-vsync`. */
function passthroughOption(binary: FfmpegBinary): string[] {
  const m = /ffmpeg version n?(\d+)\.(\d+)/.exec(binary.version);
  const modern = m ? Number(m[1]) > 5 || (Number(m[1]) === 5 && Number(m[2]) >= 1) : false;
  return modern ? ['-fps_mode', 'passthrough'] : ['-vsync', 'passthrough'];
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
 * copied once, straight from the pipe's chunks into the frame's own buffer.
 */
class PpmReader {
  private header = Buffer.alloc(0);
  private frame: { rgb: Uint8Array; filled: number; width: number; height: number } | undefined;

  constructor(private readonly maxPixels: number) {}

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
        this.frame = { rgb: new Uint8Array(width * height * 3), filled: 0, width, height };
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

/**
 * Decodes the frames numbered `indices` (ascending, distinct) of the video stream of `path`, in
 * order. The caller's pace throttles ffmpeg; breaking out of the loop kills it. Rejects with
 * CodecError: video_decode_failed (including a file that ends before the last wanted frame),
 * video_too_large, ffmpeg_timeout, ffmpeg_unavailable; or the signal's reason.
 */
export async function* decodeVideoFrames(path: string, indices: readonly number[], options: DecodeFramesOptions): AsyncGenerator<DecodedFrame> {
  if (indices.length === 0) return;
  for (let i = 0; i < indices.length; i++) {
    const v = indices[i]!;
    if (!Number.isSafeInteger(v) || v < 0 || (i > 0 && v <= indices[i - 1]!)) {
      throw new CodecError('video_option_invalid', 'frame indices must be ascending non-negative integers', 'indices');
    }
  }
  const { binary, signal } = options;
  signal?.throwIfAborted();
  const timeoutMs = options.timeoutMs ?? DEFAULT_VIDEO_DECODE_TIMEOUT_MS;
  const out = new PassThrough({ highWaterMark: 1 << 20 });
  const stderr: string[] = [];
  let failure: Error | undefined;
  // Read through a function: TypeScript would keep `failure` narrowed across the awaits below.
  const failed = (): Error | undefined => failure;
  let proc: ChildProcess | undefined;
  let exited = false;
  let exitWaiters: (() => void)[] = [];
  const kill = (reason: Error): void => {
    failure ??= reason;
    if (proc && !exited) proc.kill('SIGKILL');
    out.destroy();
  };

  const command = ffmpeg()
    .input(path)
    .inputOptions(['-nostdin'])
    .outputOptions(['-map', '0:v:0', '-vf', selectFilter(indices), ...passthroughOption(binary), '-f', 'image2pipe', '-c:v', 'ppm', '-map_metadata', '-1']);
  command.setFfmpegPath(binary.path);
  command.on('stderr', (line: string) => lastLines(stderr, line));
  command.on('start', () => {
    proc = (command as unknown as { ffmpegProc?: ChildProcess }).ffmpegProc;
    proc?.once('close', () => {
      exited = true;
      for (const w of exitWaiters) w();
      exitWaiters = [];
    });
    if (failure) proc?.kill('SIGKILL');
  });
  command.on('error', (err: Error) => {
    if (failure) return;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || /Cannot find ffmpeg/.test(err.message)) {
      failure = new CodecError('ffmpeg_unavailable', `ffmpeg at ${binary.path} could not be started: ${err.message}`, undefined, { cause: err });
    } else {
      const said = stderr.filter((l) => !/^(frame=|size=|video:|Input #|Output #|Stream |Duration|Metadata)/.test(l)).pop() ?? err.message;
      failure = new CodecError('video_decode_failed', `ffmpeg could not decode the video: ${said}`, 'video', { cause: err });
    }
    out.destroy();
  });
  const timer = setTimeout(() => kill(new CodecError('ffmpeg_timeout', `decoding the video took longer than ${timeoutMs} ms`, 'video')), timeoutMs);
  const onAbort = (): void => kill(signal!.reason as Error);
  signal?.addEventListener('abort', onAbort, { once: true });
  command.pipe(out, { end: true });

  const reader = new PpmReader(options.maxFramePixels ?? DEFAULT_MAX_FRAME_PIXELS);
  let produced = 0;
  let lastFrame: { rgb: Uint8Array; width: number; height: number } | undefined;
  try {
    try {
      for await (const chunk of out) {
        for (const f of reader.push(chunk as Buffer)) {
          if (produced === indices.length) break;
          lastFrame = f;
          yield { sourceIndex: indices[produced]!, ...f };
          produced++;
        }
        if (produced === indices.length) break;
      }
    } catch (err) {
      // The stream was destroyed by a failure recorded above; report that instead.
      if (!failure) throw err;
    }
    if (failure) throw failure;
    if (produced < indices.length) {
      // stdout ended early: wait for the exit so ffmpeg's own complaint (if any) is in.
      if (!exited && proc) await new Promise<void>((r) => exitWaiters.push(r));
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
      const said = stderr.filter((l) => /error|invalid|corrupt|truncat|missing/i.test(l)).pop();
      throw new CodecError(
        'video_decode_failed',
        `the video ended after ${produced} of the ${indices.length} sampled frames (wanted frame ${indices[produced]})${said ? `: ${said}` : ''}`,
        'video',
      );
    }
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    if (!exited) {
      if (proc) proc.kill('SIGKILL');
      else failure ??= new Error('stopped');
      out.destroy();
      if (proc) await new Promise<void>((r) => (exited ? r() : exitWaiters.push(r)));
    }
  }
}
