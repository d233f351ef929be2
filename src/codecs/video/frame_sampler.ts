// Live video into the model's vision input: frames from a client (JPEG/PNG/WebP images) or from a
// WebRTC track (raw I420) arrive at whatever rate the camera runs; the sampler keeps one every
// 1/fps seconds (default 2 fps, the rate the model was trained on), converts at most one frame at
// a time off the event loop, and pairs consecutive kept frames into temporal patch steps.
//
// Bounded: kept frames wait in a queue of `maxPending`; when conversion falls behind, the oldest
// waiting frame is dropped (live video wants the newest picture, not a growing delay) and counted.
// A frame whose source size differs from the previous one ends the current segment (its held frame
// is paired with itself, as the reference pads an odd count) and starts a new one at the new size.
import { nativeAddon } from '../../native/addon.js';
import { CodecError } from '../errors.js';
import { decodeImage } from '../image/decode.js';
import { QWEN3_OMNI_IMAGE, visionTokenCount } from '../image/smart_resize.js';
import { temporalStep, type PatchDtype, type PatchValues } from './patches.js';
import { videoFrameSize, type VideoSizeOptions } from './sampling.js';

export type LiveFrame =
  /** An encoded picture (JPEG, PNG, WebP, AVIF, GIF, TIFF). */
  | { kind: 'image'; bytes: Uint8Array; timestampMs: number }
  /** A raw I420 frame (BT.601 limited range), width * height luma then two quarter chroma planes. */
  | { kind: 'i420'; data: Uint8Array; width: number; height: number; timestampMs: number };

export interface LiveVideoStep {
  /** Increments whenever the source size changes (a new video item for the model). */
  segment: number;
  /** Temporal index within the segment. */
  t: number;
  /** [1, resizedHeight / 16, resizedWidth / 16] for this step. */
  grid: [number, number, number];
  tokens: number;
  pixelValues: PatchValues;
  /** Timestamps of the two frames (equal when the last frame of a segment was repeated). */
  timestampsMs: [number, number];
  sourceWidth: number;
  sourceHeight: number;
}

export interface FrameSamplerStats {
  received: number;
  /** Skipped by the rate limit (arrived sooner than 1/fps after the last kept frame). */
  skipped: number;
  /** Kept, then dropped because conversion was behind and the queue was full. */
  dropped: number;
  /** Failed to decode or convert (reported through onError). */
  failed: number;
  steps: number;
}

export interface FrameSamplerOptions extends VideoSizeOptions {
  /** Frames kept per second (default 2). */
  fps?: number;
  /** Kept frames waiting for conversion (default 4); beyond it the oldest is dropped. */
  maxPending?: number;
  dtype?: PatchDtype;
  /** Largest source frame in pixels (default 40 000 000). */
  maxFramePixels?: number;
  onStep: (step: LiveVideoStep) => void;
  /** A frame that could not be used; the sampler carries on. */
  onError?: (err: CodecError) => void;
}

interface RgbFrame {
  rgb: Uint8Array;
  width: number;
  height: number;
  timestampMs: number;
}

export class FrameSampler {
  readonly stats: FrameSamplerStats = { received: 0, skipped: 0, dropped: 0, failed: 0, steps: 0 };
  private readonly intervalMs: number;
  private readonly maxPending: number;
  private readonly pending: LiveFrame[] = [];
  private nextDueMs = -Infinity;
  private lastTimestampMs = -Infinity;
  private held: RgbFrame | undefined;
  private segment = -1;
  private t = 0;
  private size: { width: number; height: number; resizedHeight: number; resizedWidth: number } | undefined;
  /** Conversion work, strictly one after another (drains and flushes). */
  private chain: Promise<void> = Promise.resolve();
  private outstanding = 0;
  private draining = false;
  private closed = false;

  constructor(private readonly options: FrameSamplerOptions) {
    const fps = options.fps ?? 2;
    if (!(fps > 0) || !Number.isFinite(fps)) throw new CodecError('video_option_invalid', `fps must be positive, got ${fps}`, 'fps');
    const maxPending = options.maxPending ?? 4;
    if (!Number.isSafeInteger(maxPending) || maxPending < 1) {
      throw new CodecError('video_option_invalid', `maxPending must be a positive integer, got ${maxPending}`, 'maxPending');
    }
    this.intervalMs = 1000 / fps;
    this.maxPending = maxPending;
  }

  /**
   * Offers a frame. Returns whether it was kept by the rate limit. Throws CodecError frame_invalid
   * for a malformed frame (the sampler is unaffected) and frame_sampler_closed after close().
   */
  push(frame: LiveFrame): boolean {
    if (this.closed) throw new CodecError('frame_sampler_closed', 'the frame sampler is closed', 'frame');
    checkFrame(frame);
    if (frame.timestampMs < this.lastTimestampMs) {
      throw new CodecError('frame_invalid', `frame timestamps must not go backwards (${frame.timestampMs} ms after ${this.lastTimestampMs} ms)`, 'timestampMs');
    }
    this.lastTimestampMs = frame.timestampMs;
    this.stats.received++;
    // 2 ms of slack for rounded timestamps; a frame that is really early waits for the next one
    // (at most one camera frame later).
    if (frame.timestampMs + 2 < this.nextDueMs) {
      this.stats.skipped++;
      return false;
    }
    // Anchored schedule (no drift), but never due sooner than half an interval after this frame:
    // a late frame must not let the next camera frame through right behind it.
    this.nextDueMs =
      this.nextDueMs === -Infinity ? frame.timestampMs + this.intervalMs : Math.max(this.nextDueMs + this.intervalMs, frame.timestampMs + this.intervalMs / 2);
    if (this.pending.length === this.maxPending) {
      this.pending.shift();
      this.stats.dropped++;
    }
    this.pending.push(frame);
    if (!this.draining) {
      this.draining = true;
      void this.enqueue(() => this.drain());
    }
    return true;
  }

  /** Waits for queued frames, then emits a held odd frame paired with itself (end of input). */
  flush(): Promise<void> {
    return this.enqueue(async () => {
      if (this.held && !this.closed) await this.emit(this.held, undefined);
    });
  }

  /**
   * Runs `work` after everything queued before it, so steps leave in order, one at a time; with
   * nothing queued it starts at once (a frame is taken for conversion before the next push).
   */
  private enqueue(work: () => Promise<void>): Promise<void> {
    const next = this.outstanding === 0 ? work() : this.chain.then(work);
    this.outstanding++;
    this.chain = next.catch(() => undefined).then(() => void this.outstanding--);
    return next;
  }

  /** Stops accepting frames; queued ones are discarded, a conversion in flight finishes silently. */
  close(): void {
    this.closed = true;
    this.stats.dropped += this.pending.length;
    this.pending.length = 0;
    this.held = undefined;
  }

  private async drain(): Promise<void> {
    try {
      await this.drainPending();
    } finally {
      this.draining = false;
    }
  }

  private async drainPending(): Promise<void> {
    for (let frame = this.pending.shift(); frame && !this.closed; frame = this.pending.shift()) {
      let rgb: RgbFrame;
      try {
        rgb = await toRgb(frame, this.options.maxFramePixels);
        if (this.closed) return;
        await this.accept(rgb);
      } catch (err) {
        this.stats.failed++;
        const e = err instanceof CodecError ? err : new CodecError('frame_invalid', `frame could not be used: ${(err as Error).message}`, 'frame', { cause: err });
        this.options.onError?.(e);
      }
    }
  }

  private async accept(frame: RgbFrame): Promise<void> {
    if (!this.size || this.size.width !== frame.width || this.size.height !== frame.height) {
      if (this.held) await this.emit(this.held, undefined);
      const [resizedHeight, resizedWidth] = videoFrameSize(frame.height, frame.width, 2, this.options);
      this.size = { width: frame.width, height: frame.height, resizedHeight, resizedWidth };
      this.segment++;
      this.t = 0;
    }
    if (!this.held) {
      this.held = frame;
      return;
    }
    const first = this.held;
    this.held = undefined;
    await this.emit(first, frame);
  }

  private async emit(first: RgbFrame, second: RgbFrame | undefined): Promise<void> {
    if (first === this.held) this.held = undefined;
    const size = this.size!;
    const segment = this.segment;
    const t = this.t++;
    const pixelValues = await temporalStep(first.rgb, second?.rgb ?? null, first.width, first.height, size.resizedHeight, size.resizedWidth, {
      dtype: this.options.dtype,
    });
    if (this.closed) return;
    const p = QWEN3_OMNI_IMAGE.patchSize;
    const grid: [number, number, number] = [1, size.resizedHeight / p, size.resizedWidth / p];
    this.stats.steps++;
    this.options.onStep({
      segment,
      t,
      grid,
      tokens: visionTokenCount(grid),
      pixelValues,
      timestampsMs: [first.timestampMs, (second ?? first).timestampMs],
      sourceWidth: first.width,
      sourceHeight: first.height,
    });
  }
}

function checkFrame(frame: LiveFrame): void {
  if (typeof frame !== 'object' || frame === null) throw new CodecError('frame_invalid', 'a frame must be an object', 'frame');
  if (!Number.isFinite(frame.timestampMs)) throw new CodecError('frame_invalid', 'timestampMs must be a finite number', 'timestampMs');
  if (frame.kind === 'image') {
    if (!(frame.bytes instanceof Uint8Array) || frame.bytes.length === 0) throw new CodecError('frame_invalid', 'an image frame needs its encoded bytes', 'bytes');
    return;
  }
  if (frame.kind === 'i420') {
    const { width, height, data } = frame;
    if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) {
      throw new CodecError('frame_invalid', `I420 width and height must be positive integers, got ${width}x${height}`, 'width');
    }
    const need = width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2);
    if (!(data instanceof Uint8Array) || data.length !== need) {
      throw new CodecError('frame_invalid', `an I420 frame of ${width}x${height} is ${need} bytes, got ${data instanceof Uint8Array ? data.length : typeof data}`, 'data');
    }
    return;
  }
  throw new CodecError('frame_invalid', `unknown frame kind ${JSON.stringify((frame as { kind?: unknown }).kind)} (image or i420)`, 'kind');
}

async function toRgb(frame: LiveFrame, maxFramePixels = 40_000_000): Promise<RgbFrame> {
  if (frame.kind === 'image') {
    const d = await decodeImage(frame.bytes, { maxInputPixels: maxFramePixels });
    return { rgb: d.rgb, width: d.width, height: d.height, timestampMs: frame.timestampMs };
  }
  if (frame.width * frame.height > maxFramePixels) {
    throw new CodecError('video_too_large', `frame is ${frame.width}x${frame.height}; the limit is ${maxFramePixels} pixels`, 'frame');
  }
  try {
    const rgb = await nativeAddon().i420ToRgb(frame.data, frame.width, frame.height);
    return { rgb, width: frame.width, height: frame.height, timestampMs: frame.timestampMs };
  } catch (err) {
    throw new CodecError('frame_invalid', (err as Error).message, 'frame', { cause: err });
  }
}
