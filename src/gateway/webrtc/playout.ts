// Model speech onto a WebRTC audio track. The session hands over each response's audio as it is
// paced (real time plus a small lead); this buffer decodes it from the response's wire format,
// resamples it to 48 kHz and writes exact 10 ms frames to the track on a wall-clock schedule, with
// silence between responses so the track's timing never stalls. It tells the call when a response
// starts playing (`output_audio_buffer.started`) and when it has drained after its last audio
// (`stopped`), and drops everything at once on barge-in (`cleared`).
import { g711Decode } from '../../codecs/audio/g711.js';
import { pcm16leToFloat32 } from '../../codecs/audio/pcm.js';
import { createResampler, type Resampler } from '../../codecs/audio/resample.js';
import { float32ToInt16, int16ToFloat32 } from '../../codecs/audio/sample_convert.js';
import type { AudioFormat } from '../realtime/model.js';
import { PLAYOUT_FRAME_MS, PLAYOUT_FRAME_SAMPLES, PLAYOUT_RATE } from './media.js';

export interface PlayoutOptions {
  /** Writes one 10 ms frame (480 samples, 48 kHz mono). */
  write: (frame: Int16Array) => void;
  /** The first audio of a response is being played. */
  onStarted: (responseId: string) => void;
  /** A finished response's last audio has been played. */
  onStopped: (responseId: string) => void;
  now?: () => number;
  /** Frames of lag after which the schedule restarts instead of bursting to catch up (default 20). */
  maxCatchUpFrames?: number;
}

interface Segment {
  responseId: string;
  samples: Int16Array;
  at: number;
}

interface ResponseAudio {
  format: AudioFormat;
  resampler: Resampler | undefined;
  finished: boolean;
  started: boolean;
}

const SILENCE = new Int16Array(PLAYOUT_FRAME_SAMPLES);

export class AudioPlayout {
  private readonly queue: Segment[] = [];
  private readonly responses = new Map<string, ResponseAudio>();
  /** Responses whose audio was cleared or dropped: later deltas of theirs are ignored. */
  private readonly ignored = new Set<string>();
  private readonly now: () => number;
  private readonly maxCatchUp: number;
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;
  private framesWritten = 0;
  private closed = false;

  constructor(private readonly options: PlayoutOptions) {
    this.now = options.now ?? (() => performance.now());
    this.maxCatchUp = options.maxCatchUpFrames ?? 20;
  }

  /** Starts writing frames (silence until audio arrives). */
  start(): void {
    if (this.timer || this.closed) return;
    this.t0 = this.now();
    this.framesWritten = 0;
    this.timer = setInterval(() => this.tick(), PLAYOUT_FRAME_MS);
    this.timer.unref?.();
  }

  /** Stops the clock and drops everything. */
  close(): void {
    this.closed = true;
    clearInterval(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    this.responses.clear();
  }

  /** Queued audio not yet played, ms. */
  get queuedMs(): number {
    return (this.queue.reduce((n, s) => n + s.samples.length - s.at, 0) / PLAYOUT_RATE) * 1000;
  }

  /** The response whose audio is playing or queued first, if any. */
  get current(): string | undefined {
    return this.queue[0]?.responseId;
  }

  /** Declares a response's audio format (from `response.created`). */
  begin(responseId: string, format: AudioFormat): void {
    if (this.closed || this.ignored.has(responseId) || this.responses.has(responseId)) return;
    this.responses.set(responseId, { format, resampler: undefined, finished: false, started: false });
  }

  /** One audio delta of a response, in its wire format. */
  push(responseId: string, bytes: Buffer, fallback: AudioFormat): void {
    if (this.closed || this.ignored.has(responseId)) return;
    let r = this.responses.get(responseId);
    if (!r) {
      r = { format: fallback, resampler: undefined, finished: false, started: false };
      this.responses.set(responseId, r);
    }
    if (r.finished) return;
    const floats = decode(bytes, r.format);
    r.resampler ??= createResampler(r.format.rate, PLAYOUT_RATE);
    this.enqueue(responseId, r.resampler.push(floats));
  }

  /** No more audio for this response: the rest plays, then `onStopped` (if it ever started). */
  finish(responseId: string): void {
    const r = this.responses.get(responseId);
    if (!r || r.finished) return;
    r.finished = true;
    if (r.resampler) this.enqueue(responseId, r.resampler.flush());
    this.settle(responseId);
  }

  /**
   * Drops all queued audio at once (barge-in, output_audio_buffer.clear). Returns the response
   * that was playing or queued (undefined when nothing was). Later audio of the responses
   * dropped is ignored.
   */
  clear(): string | undefined {
    const id = this.queue[0]?.responseId ?? [...this.responses.entries()].find(([, r]) => r.started && !r.finished)?.[0];
    for (const s of this.queue) this.ignore(s.responseId);
    for (const key of this.responses.keys()) this.ignore(key);
    this.queue.length = 0;
    this.responses.clear();
    return id;
  }

  /** Ignores any further audio of this response (it was cancelled before it played). */
  drop(responseId: string): void {
    this.ignore(responseId);
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i]!.responseId === responseId) this.queue.splice(i, 1);
    this.responses.delete(responseId);
  }

  private ignore(responseId: string): void {
    this.ignored.add(responseId);
    // Bounded: only recent responses can still send late deltas.
    if (this.ignored.size > 256) this.ignored.delete(this.ignored.values().next().value!);
  }

  private enqueue(responseId: string, floats: Float32Array): void {
    if (floats.length === 0) return;
    this.queue.push({ responseId, samples: float32ToInt16(floats), at: 0 });
  }

  /** A finished response with nothing left queued: stopped (or forgotten if it never played). */
  private settle(responseId: string): void {
    const r = this.responses.get(responseId);
    if (!r?.finished || this.queue.some((s) => s.responseId === responseId)) return;
    this.responses.delete(responseId);
    if (r.started) this.options.onStopped(responseId);
  }

  private tick(): void {
    const due = Math.floor((this.now() - this.t0) / PLAYOUT_FRAME_MS);
    if (due - this.framesWritten > this.maxCatchUp) {
      // The event loop stalled: restart the schedule rather than burst seconds of audio.
      this.framesWritten = due - 1;
    }
    while (this.framesWritten < due && !this.closed) {
      this.framesWritten++;
      this.writeFrame();
    }
  }

  private writeFrame(): void {
    if (this.queue.length === 0) {
      this.options.write(SILENCE);
      return;
    }
    const frame = new Int16Array(PLAYOUT_FRAME_SAMPLES);
    let filled = 0;
    const finishedHere: string[] = [];
    while (filled < frame.length && this.queue.length > 0) {
      const seg = this.queue[0]!;
      const r = this.responses.get(seg.responseId);
      if (r && !r.started) {
        r.started = true;
        this.options.onStarted(seg.responseId);
      }
      const n = Math.min(frame.length - filled, seg.samples.length - seg.at);
      frame.set(seg.samples.subarray(seg.at, seg.at + n), filled);
      filled += n;
      seg.at += n;
      if (seg.at === seg.samples.length) {
        this.queue.shift();
        if (!this.queue.some((s) => s.responseId === seg.responseId)) finishedHere.push(seg.responseId);
      }
    }
    this.options.write(frame);
    for (const id of finishedHere) this.settle(id);
  }
}

function decode(bytes: Buffer, format: AudioFormat): Float32Array {
  if (format.encoding === 'pcm16') return pcm16leToFloat32(bytes.length % 2 === 0 ? bytes : bytes.subarray(0, bytes.length - 1));
  return int16ToFloat32(g711Decode(format.encoding === 'g711_ulaw' ? 'mulaw' : 'alaw', bytes));
}
