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
const DEFAULT_MAX_FRAME_PIXELS = 40_000_000;

/** `-fps_mode` arrived in ffmpeg 5.1; older builds (the static @ffmpeg-installer one) take `-vsync`. */
function passthroughOption(binary: FfmpegBinary): string[] {
  const m = /ffmpeg version n?(\d+)\.(\d+)/.exec(binary.version);
  const modern = m ? Number(m[1]) > 5 || (Number(m[1]) === 5 && Number(m[2]) >= 1) : false;
  return modern ? ['-fps_mode', 'passthrough'] : ['-vsync', 'passthrough'];
}

/** select filter keeping exactly `indices` (ascending, distinct). */
function selectFilter(indices: readonly number[]): string {
  return `select='${indices.map((i) => `eq(n\\,${i})`).join('+')}'`;
}

/** Incremental PPM (P6, 8-bit) splitter over ffmpeg's image2pipe output. */
class PpmReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private header: { width: number; height: number; offset: number } | undefined;

  constructor(private readonly maxPixels: number) {}

  push(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** The next complete frame, or undefined until more bytes arrive. */
  next(): { rgb: Uint8Array; width: number; height: number } | undefined {
    if (this.pendingBytes === 0) return undefined;
    if (!this.header) {
      const head = this.peek(Math.min(this.pendingBytes, 64));
      const m = /^P6\s+(\d+)\s+(\d+)\s+(\d+)\s/.exec(head.toString('latin1'));
      if (!m) {
        if (head.length >= 64 || (head.length >= 2 && head.toString('latin1', 0, 2) !== 'P6')) {
          throw new CodecError('video_decode_failed', 'ffmpeg produced a frame this reader does not understand', 'video');
        }
        return undefined;
      }
      const width = Number(m[1]);
      const height = Number(m[2]);
      if (Number(m[3]) !== 255) throw new CodecError('video_decode_failed', `unexpected frame depth ${m[3]}`, 'video');
      if (width * height > this.maxPixels) {
        throw new CodecError('video_too_large', `video frames are ${width}x${height}; the limit is ${this.maxPixels} pixels`, 'video');
      }
      this.header = { width, height, offset: m[0].length };
    }
    const { width, height, offset } = this.header;
    const size = width * height * 3;
    if (this.pendingBytes < offset + size) return undefined;
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    // A copy: the frame outlives the chunk it came in, which Node may reuse.
    const rgb = new Uint8Array(all.subarray(offset, offset + size));
    const rest = all.subarray(offset + size);
    this.pending = rest.length > 0 ? [rest] : [];
    this.pendingBytes = rest.length;
    this.header = undefined;
    return { rgb, width, height };
  }

  get buffered(): number {
    return this.pendingBytes;
  }

  private peek(n: number): Buffer {
    if (this.pending.length === 1 || (this.pending[0]?.length ?? 0) >= n) return this.pending[0]!.subarray(0, n);
    return Buffer.concat(this.pending, this.pendingBytes).subarray(0, n);
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
  try {
    try {
      for await (const chunk of out) {
        reader.push(chunk as Buffer);
        for (let f = reader.next(); f; f = reader.next()) {
          if (produced === indices.length) break;
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
