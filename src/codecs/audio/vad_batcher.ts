// Gathers frames pushed by many streams and scores them in one Silero run. A batch leaves when
// `maxBatch` frames wait, when the oldest has waited `maxDelayMs`, or as soon as a run returns
// (frames that queued during a run have already waited that long). Up to `maxInFlight` runs are
// in flight (default 2): the model runs them one after the other on its one core, but the next
// batch is already waiting there while the main thread takes the previous one's results, so the
// worker does not sit idle for an event-loop turn between runs. A stream has one frame queued or
// running at a time (its next frame needs the state this one leaves), so runs never share a stream.
//
// Bound: at most `maxQueue` frames wait. Beyond that `infer` rejects with CodecError
// `vad_overloaded` at once; frames already queued are never dropped.
import { CodecError } from '../errors.js';
import type { SileroStreamState, SileroVad, VadInference } from './vad_model.js';
import { SILERO_FRAME_SAMPLES, getSharedSileroVad } from './vad_model.js';

export interface VadBatcherOptions {
  /**
   * Most frames per run (default 64); also capped by what the model export takes. A run of 64
   * costs the model ~10% less per frame than one of 32, which with 200 streams is the margin
   * between keeping up and falling behind on a 2-core machine.
   */
  maxBatch?: number;
  /** Longest a frame waits for company before its batch leaves, in ms (default 5). */
  maxDelayMs?: number;
  /** Most frames waiting, not counting the batches in flight (default 1024). */
  maxQueue?: number;
  /** Most runs in flight at once (default 2). */
  maxInFlight?: number;
  /** The model, or how to get it; defaults to the process-wide shared model. */
  model?: SileroVad | (() => Promise<SileroVad>);
  /**
   * Longest one run (loading the model and scoring the batch) may take, in ms (default 5000).
   * Past it the batch rejects with `vad_model_unavailable` and the next batch may start.
   */
  runTimeoutMs?: number;
}

export interface VadBatcherStats {
  runs: number;
  frames: number;
  /** Largest batch run so far. */
  largestBatch: number;
  /** Frames refused because the queue was full. */
  rejected: number;
}

interface Request {
  state: SileroStreamState;
  frame: Float32Array;
  resolve: (p: number) => void;
  reject: (e: unknown) => void;
}

export class VadBatcher implements VadInference {
  readonly maxBatch: number;
  readonly maxDelayMs: number;
  readonly maxQueue: number;
  readonly runTimeoutMs: number;
  readonly maxInFlight: number;
  private readonly getModel: () => Promise<SileroVad>;
  private queue: Request[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running = 0;
  private closed = false;
  private readonly counters: VadBatcherStats = { runs: 0, frames: 0, largestBatch: 0, rejected: 0 };

  constructor(options: VadBatcherOptions = {}) {
    this.maxBatch = positiveInt(options.maxBatch ?? 64, 'maxBatch');
    this.maxDelayMs = options.maxDelayMs ?? 5;
    if (!Number.isFinite(this.maxDelayMs) || this.maxDelayMs < 0) throw new RangeError('maxDelayMs must be a finite number >= 0');
    this.maxQueue = positiveInt(options.maxQueue ?? 1024, 'maxQueue');
    this.maxInFlight = positiveInt(options.maxInFlight ?? 2, 'maxInFlight');
    this.runTimeoutMs = options.runTimeoutMs ?? 5000;
    if (!Number.isFinite(this.runTimeoutMs) || this.runTimeoutMs <= 0) throw new RangeError('runTimeoutMs must be a finite number > 0');
    const model = options.model;
    this.getModel = model === undefined ? getSharedSileroVad : typeof model === 'function' ? model : () => Promise.resolve(model);
  }

  /** Frames waiting for a run (not counting the runs in flight). */
  get queued(): number {
    return this.queue.length;
  }

  get stats(): Readonly<VadBatcherStats> {
    return { ...this.counters };
  }

  /**
   * Speech probability of `frame` for the stream `state`, scored in the next batch. A stream
   * submits its next frame only after this settles. Rejects with `vad_overloaded` when the queue
   * is full, and with `vad_model_unavailable` when the model cannot be loaded or run.
   */
  infer(state: SileroStreamState, frame: Float32Array): Promise<number> {
    if (frame.length !== SILERO_FRAME_SAMPLES) {
      return Promise.reject(new RangeError(`Silero frames are ${SILERO_FRAME_SAMPLES} samples (got ${frame.length})`));
    }
    if (state.busy) return Promise.reject(new Error('this stream already has a frame queued or running'));
    if (this.closed) return Promise.reject(new CodecError('vad_model_unavailable', 'VAD batcher is closed'));
    if (this.queue.length >= this.maxQueue) {
      this.counters.rejected++;
      return Promise.reject(new CodecError('vad_overloaded', `VAD queue is full (${this.maxQueue} frames waiting)`));
    }
    state.busy = true;
    return new Promise<number>((resolve, reject) => {
      this.queue.push({ state, frame, resolve, reject });
      this.schedule();
    });
  }

  /** Rejects waiting frames and refuses new ones. The model itself stays loaded (it may be shared). */
  close(): void {
    this.closed = true;
    this.clearTimer();
    const waiting = this.queue;
    this.queue = [];
    const err = new CodecError('vad_model_unavailable', 'VAD batcher is closed');
    for (const r of waiting) {
      r.state.busy = false;
      r.reject(err);
    }
  }

  private schedule(): void {
    if (this.running >= this.maxInFlight || this.queue.length === 0) return;
    if (this.queue.length >= this.maxBatch || this.maxDelayMs === 0) {
      this.clearTimer();
      void this.runBatch();
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        if (this.running < this.maxInFlight) void this.runBatch();
      }, this.maxDelayMs);
    }
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async runBatch(): Promise<void> {
    if (this.queue.length === 0) return;
    this.running++;
    let batch: Request[] = [];
    let deadline: NodeJS.Timeout | undefined;
    // A hung load or run (a stuck worker) must not hold `running` forever: past the deadline the
    // batch fails. Were the run to finish later, its streams have already been told it failed.
    const timedOut = new Promise<never>((_, reject) => {
      deadline = setTimeout(
        () => reject(new CodecError('vad_model_unavailable', `Silero VAD run did not finish within ${this.runTimeoutMs} ms`)),
        this.runTimeoutMs,
      );
    });
    try {
      const model = await Promise.race([this.getModel(), timedOut]);
      batch = this.queue.splice(0, Math.min(this.maxBatch, model.maxBatch));
      if (batch.length === 0) return;
      const probs = await Promise.race([
        model.inferBatch(
          batch.map((r) => r.frame),
          batch.map((r) => r.state),
        ),
        timedOut,
      ]);
      this.counters.runs++;
      this.counters.frames += batch.length;
      this.counters.largestBatch = Math.max(this.counters.largestBatch, batch.length);
      for (let i = 0; i < batch.length; i++) {
        const r = batch[i]!;
        r.state.busy = false;
        r.resolve(probs[i]!);
      }
    } catch (err) {
      // A model that cannot load fails everything waiting: nothing behind it would fare better.
      const failed = batch.length > 0 ? batch : this.queue.splice(0);
      for (const r of failed) {
        r.state.busy = false;
        r.reject(err);
      }
    } finally {
      clearTimeout(deadline);
      this.running--;
      // After the resolutions' continuations have queued the streams' next frames, run again
      // at once if anything waits: those frames have waited at least one run already.
      setImmediate(() => {
        if (this.running >= this.maxInFlight || this.queue.length === 0) return;
        this.clearTimer();
        void this.runBatch();
      });
    }
  }
}

function positiveInt(v: number, name: string): number {
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1`);
  return v;
}

let sharedBatcher: VadBatcher | undefined;

/** The process-wide batcher over the shared model (created on first use, model loaded lazily). */
export function getSharedVadBatcher(): VadBatcher {
  sharedBatcher ??= new VadBatcher();
  return sharedBatcher;
}
