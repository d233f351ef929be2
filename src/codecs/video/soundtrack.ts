// A video's soundtrack as model audio (16 kHz mono float32), for audio-in-video: ffmpeg reads the
// file itself (no copy of the whole video in memory) through the same decode path as audio files.
import { decodeWithFfmpeg, locateFfmpeg, MODEL_SAMPLE_RATE } from '../audio/ffmpeg.js';
import { CodecError } from '../errors.js';

export interface SoundtrackOptions {
  ffmpegPath?: string;
  /** Longest soundtrack accepted, in seconds (default 600). */
  maxDurationSeconds?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Decodes the first audio stream of the video file at `path` to 16 kHz mono. Rejects with
 * CodecError: audio_format_unsupported (no soundtrack), audio_decode_failed, audio_too_long,
 * ffmpeg_unavailable, ffmpeg_timeout.
 */
export async function extractSoundtrack(path: string, options: SoundtrackOptions = {}): Promise<Float32Array> {
  const binary = await locateFfmpeg(options.ffmpegPath);
  const maxSeconds = options.maxDurationSeconds ?? 600;
  try {
    const r = await decodeWithFfmpeg(
      { path },
      {
        binary,
        maxSamples: Math.floor(maxSeconds * MODEL_SAMPLE_RATE),
        timeoutMs: options.timeoutMs ?? 120_000,
        signal: options.signal,
        knownContainer: true,
        label: 'video soundtrack',
      },
    );
    return r.samples;
  } catch (err) {
    if (err instanceof CodecError && err.code === 'audio_format_unsupported' && /no audio stream/.test(err.message)) {
      throw new CodecError('audio_format_unsupported', 'the video has no soundtrack (audio in video needs one)', 'video', { cause: err });
    }
    throw err;
  }
}
