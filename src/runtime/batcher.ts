// Continuous batching for decode: sessions ask for one step each whenever they are ready; the
// requests that arrive while the engine is busy (or within the same tick) run together as one
// batched step, which reads each weight once for all of them. A session never has two steps in
// flight. The batch size is bounded; requests beyond it wait for the next step.
import { RuntimeError } from './errors.js';
import type { Position3 } from './generation.js';

export interface BatchStep<S> {
  session: S;
  token: number;
  position: Position3;
}

export type DecodeBatchFn<S> = (steps: BatchStep<S>[]) => Promise<Float32Array[]>;

interface Pending<S> extends BatchStep<S> {
  resolve: (logits: Float32Array) => void;
  reject: (err: unknown) => void;
}

export interface DecodeBatcherStats {
  batches: number;
  steps: number;
  largestBatch: number;
}

export class DecodeBatcher<S> {
  readonly stats: DecodeBatcherStats = { batches: 0, steps: 0, largestBatch: 0 };
  private queue: Pending<S>[] = [];
  private readonly inFlight = new Set<S>();
  private running = false;
  private scheduled = false;

  constructor(
    private readonly decodeBatch: DecodeBatchFn<S>,
    private readonly maxBatch = 32,
  ) {
    if (!Number.isSafeInteger(maxBatch) || maxBatch < 1) {
      throw new RuntimeError('generation_invalid', `the decode batch size must be a positive integer, got ${maxBatch}`, 'maxBatch');
    }
  }

  /** One decode step for `session`; resolves with its next-token logits. */
  step(session: S, token: number, position: Position3): Promise<Float32Array> {
    if (this.inFlight.has(session) || this.queue.some((p) => p.session === session)) {
      return Promise.reject(new RuntimeError('session_busy', 'this session already has a decode step in flight', 'session'));
    }
    return new Promise((resolve, reject) => {
      this.queue.push({ session, token, position, resolve, reject });
      this.schedule();
    });
  }

  /** Requests queued and not yet running. */
  get waiting(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    // One macrotask of gathering: every session whose previous step resolved in this turn of the
    // loop joins the same batch.
    setImmediate(() => {
      this.scheduled = false;
      void this.run();
    });
  }

  private async run(): Promise<void> {
    if (this.running || this.queue.length === 0) return;
    this.running = true;
    const batch = this.queue.splice(0, this.maxBatch);
    for (const p of batch) this.inFlight.add(p.session);
    this.stats.batches++;
    this.stats.steps += batch.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, batch.length);
    const settle = (p: Pending<S>, logits: Float32Array | undefined): void => {
      if (logits) p.resolve(logits);
      else p.reject(new RuntimeError('engine_failed', 'the engine returned no logits for this session'));
    };
    try {
      const out = await this.decodeBatch(batch.map(({ session, token, position }) => ({ session, token, position })));
      batch.forEach((p, i) => settle(p, out[i]));
    } catch (err) {
      // The engine checks every step before it runs any: one session's problem (full, closed,
      // bad token) fails the whole batch. Run them one by one so only that session gets the error.
      if (batch.length === 1) {
        batch[0]!.reject(err);
      } else {
        for (const p of batch) {
          try {
            settle(p, (await this.decodeBatch([{ session: p.session, token: p.token, position: p.position }]))[0]);
          } catch (e) {
            p.reject(e);
          }
        }
      }
    } finally {
      for (const p of batch) this.inFlight.delete(p.session);
      this.running = false;
      if (this.queue.length > 0) this.schedule();
    }
  }
}
