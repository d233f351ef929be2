// What a video file holds, from ffprobe (shipped with ffmpeg): displayed size, frame count, frame
// rate, duration, and whether there is a soundtrack. Reading the container index is enough for
// most files; when it has no frame count, packets are counted (demuxing only, no decoding).
// Matroska/WebM never state a count, so for them the packets are counted in the same ffprobe run
// rather than a second one (each ffprobe start costs about 0.2 s with a distribution's ffmpeg).
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CodecError } from '../errors.js';
import type { FfmpegBinary } from '../audio/ffmpeg.js';

export interface VideoProbe {
  /** Displayed size (rotation metadata applied, as ffmpeg's decoder output is). */
  width: number;
  height: number;
  /** Frames in the video stream. */
  totalFrames: number;
  /** Average frame rate of the stream. */
  fps: number;
  durationSeconds: number;
  codec: string;
  container: string;
  hasAudio: boolean;
}

export interface ProbeOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

const DEFAULT_PROBE_TIMEOUT_MS = 30_000;

/** ffprobe next to the ffmpeg in use (same package or directory), else on PATH. */
export function ffprobePath(binary: FfmpegBinary): string {
  if (process.env.FFPROBE_PATH) return process.env.FFPROBE_PATH;
  const name = process.platform === 'win32' ? 'ffprobe.exe' : 'ffprobe';
  const sibling = join(dirname(binary.path), basename(binary.path).replace(/ffmpeg/, 'ffprobe'));
  try {
    accessSync(sibling, constants.X_OK);
    return sibling;
  } catch {
    return name;
  }
}

function run(path: string, args: string[], options: ProbeOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      path,
      args,
      { timeout: options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS, maxBuffer: 4 << 20, windowsHide: true, signal: options.signal, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (!err) {
          resolve(stdout);
          return;
        }
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (options.signal?.aborted) reject(options.signal.reason as Error);
        else if (e.code === 'ENOENT' || e.code === 'EACCES') {
          reject(new CodecError('ffmpeg_unavailable', `ffprobe is needed to read videos but ${path} could not be run (${e.message}); install ffmpeg (it includes ffprobe) or set FFPROBE_PATH`, undefined, { cause: err }));
        } else if (e.killed) {
          reject(new CodecError('ffmpeg_timeout', `ffprobe did not finish within ${options.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS} ms`, 'video', { cause: err }));
        } else {
          const said = String(stderr).trim().split('\n').filter(Boolean).pop() ?? e.message;
          reject(new CodecError('video_decode_failed', `the video could not be read: ${said}`, 'video', { cause: err }));
        }
      },
    );
  });
}

/** "30000/1001" -> 29.97; 0/0 and garbage -> NaN. */
function rate(s: unknown): number {
  if (typeof s !== 'string') return NaN;
  const [n, d] = s.split('/').map(Number);
  if (d === undefined) return Number(n);
  return d ? n! / d : NaN;
}

interface ProbeStream {
  codec_type?: string;
  codec_name?: string;
  width?: number;
  height?: number;
  avg_frame_rate?: string;
  r_frame_rate?: string;
  nb_frames?: string;
  nb_read_packets?: string;
  duration?: string;
  tags?: { rotate?: string };
  side_data_list?: { rotation?: number }[];
}

/** Matroska and WebM start with the EBML magic; their headers carry no frame count. */
async function isMatroska(path: string): Promise<boolean> {
  try {
    const file = await open(path, 'r');
    try {
      const head = Buffer.alloc(4);
      const { bytesRead } = await file.read(head, 0, 4, 0);
      return bytesRead === 4 && head.readUInt32BE(0) === 0x1a45dfa3;
    } finally {
      await file.close();
    }
  } catch {
    return false; // ffprobe reports an unreadable file in its own words
  }
}

/**
 * Probes a video file. Rejects with CodecError: video_format_unsupported (not a media file, or no
 * video stream), video_decode_failed, video_empty (no frames), ffmpeg_unavailable, ffmpeg_timeout.
 */
export async function probeVideo(path: string, binary: FfmpegBinary, options: ProbeOptions = {}): Promise<VideoProbe> {
  const probe = ffprobePath(binary);
  const countNow = await isMatroska(path);
  const entries = `stream=codec_type,codec_name,width,height,avg_frame_rate,r_frame_rate,nb_frames,duration${countNow ? ',nb_read_packets' : ''}:stream_tags=rotate:stream_side_data=rotation:format=format_name,duration`;
  let out: string;
  try {
    out = await run(probe, ['-v', 'error', ...(countNow ? ['-count_packets'] : []), '-of', 'json', '-show_entries', entries, '--', path], options);
  } catch (err) {
    if (err instanceof CodecError && err.code === 'video_decode_failed' && /Invalid data|could not find codec|End of file/i.test(err.message)) {
      throw new CodecError('video_format_unsupported', `not a recognised video file: ${err.message.replace(/^the video could not be read: /, '')}`, 'video', { cause: err });
    }
    throw err;
  }
  const json = JSON.parse(out) as { streams?: ProbeStream[]; format?: { format_name?: string; duration?: string } };
  const streams = json.streams ?? [];
  const video = streams.find((s) => s.codec_type === 'video' && (s.width ?? 0) > 0);
  if (!video) throw new CodecError('video_format_unsupported', 'the file has no video stream', 'video');
  const rotation = Number(video.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? video.tags?.rotate ?? 0);
  const quarterTurn = Math.abs(Math.round(rotation / 90)) % 2 === 1;
  const width = quarterTurn ? video.height! : video.width!;
  const height = quarterTurn ? video.width! : video.height!;
  const duration = Number(video.duration ?? json.format?.duration ?? NaN);
  let totalFrames = Number(video.nb_frames ?? NaN);
  if (!Number.isSafeInteger(totalFrames) || totalFrames <= 0) {
    // No index count (Matroska/WebM, raw streams): count the packets of the stream (`v:0`, the
    // first video stream).
    if (countNow) {
      totalFrames = Number(streams.find((s) => s.codec_type === 'video')?.nb_read_packets ?? 0);
    } else {
      const counted = JSON.parse(
        await run(probe, ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-of', 'json', '-show_entries', 'stream=nb_read_packets', '--', path], options),
      ) as { streams?: ProbeStream[] };
      totalFrames = Number(counted.streams?.[0]?.nb_read_packets ?? 0);
    }
  }
  if (!(totalFrames > 0)) throw new CodecError('video_empty', 'the video stream holds no frames', 'video');
  let fps = rate(video.avg_frame_rate);
  if (!(fps > 0)) fps = rate(video.r_frame_rate);
  if (!(fps > 0) && duration > 0) fps = totalFrames / duration;
  if (!(fps > 0)) throw new CodecError('video_decode_failed', 'the video has no usable frame rate or duration', 'video');
  return {
    width,
    height,
    totalFrames,
    fps,
    durationSeconds: duration > 0 ? duration : totalFrames / fps,
    codec: video.codec_name ?? 'unknown',
    container: json.format?.format_name ?? 'unknown',
    hasAudio: streams.some((s) => s.codec_type === 'audio'),
  };
}
