// Output audio pacing and the record of what was heard. Audio leaves at real-time pace with a
// small lead (the client's jitter buffer), so a barge-in stops what the client has not received
// yet and the gateway knows how far playback got: `heard()` maps sent audio back to the reply text
// it covered, which is where the assistant item is truncated.

export interface PacedChunk {
  /** Encoded audio; filled from `encode` when the chunk leaves, if it came without. */
  bytes?: Buffer;
  /**
   * Encodes the chunk when it is sent (in queue order, so a stateful encoder sees the stream in
   * order). Audio that is stopped before it leaves (a barge-in) is never encoded.
   */
  encode?: () => Buffer;
  /** Duration in ms. */
  ms: number;
  /** Answer text length covered once this chunk has played. */
  textEnd: number;
  /** 24 kHz samples of the chunk (kept for retrieve and truncate). */
  samples: Float32Array;
}

/** A chunk as it leaves: encoded. */
export type SentChunk = PacedChunk & { bytes: Buffer };

const NO_BYTES = Buffer.alloc(0);

export interface PlaybackOptions {
  /** How far ahead of real time audio may be sent, ms. */
  leadMs: number;
  send: (chunk: SentChunk) => void;
  now?: () => number;
}

export class PlaybackClock {
  private readonly queue: PacedChunk[] = [];
  private startedAt: number | undefined;
  private sentMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private drainWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];
  /** Why the clock stopped on its own (an encoder failed in a timer tick); drained() rejects with it. */
  private failure: Error | undefined;
  /** [ms sent so far, text covered] after each sent chunk. */
  private readonly marks: { endMs: number; textEnd: number }[] = [];
  private readonly sentSamples: Float32Array[] = [];
  private readonly now: () => number;

  constructor(private readonly options: PlaybackOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /** Audio ms sent to the client so far. */
  get sentDurationMs(): number {
    return this.sentMs;
  }

  /** Audio queued but not sent yet. */
  get pendingMs(): number {
    return this.queue.reduce((n, c) => n + c.ms, 0);
  }

  push(chunk: PacedChunk): void {
    if (this.stopped) return;
    this.queue.push(chunk);
    this.pump();
  }

  /** Resolves when every queued chunk has been sent (or the clock stopped). */
  drained(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.queue.length === 0 || this.stopped) return Promise.resolve();
    return new Promise((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  /** Stops at once: nothing queued is sent. Returns the ms that had been sent. */
  stop(): number {
    this.stopped = true;
    this.queue.length = 0;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.settle();
    return this.sentMs;
  }

  /** Answer text length covered by the first `ms` of sent audio. */
  textHeard(ms = this.sentMs): number {
    let text = 0;
    for (const m of this.marks) {
      if (m.endMs > ms + 1e-6) break;
      text = m.textEnd;
    }
    return text;
  }

  /** The sent audio, joined (24 kHz). */
  samples(): Float32Array {
    const n = this.sentSamples.reduce((a, s) => a + s.length, 0);
    const out = new Float32Array(n);
    let at = 0;
    for (const s of this.sentSamples) {
      out.set(s, at);
      at += s.length;
    }
    return out;
  }

  private pump(): void {
    if (this.timer || this.stopped) return;
    const now = this.now();
    this.startedAt ??= now;
    while (this.queue.length > 0) {
      const ahead = this.sentMs - (now - this.startedAt);
      if (ahead > this.options.leadMs) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, Math.max(1, ahead - this.options.leadMs));
        return;
      }
      const chunk = this.queue.shift()!;
      if (chunk.encode !== undefined) {
        try {
          chunk.bytes = chunk.encode();
        } catch (err) {
          // This may run in a timer: stop, and let whoever waits for the drain report it.
          this.failure = err instanceof Error ? err : new Error(String(err));
          this.stop();
          return;
        }
        chunk.encode = undefined;
      }
      chunk.bytes ??= NO_BYTES;
      this.sentMs += chunk.ms;
      this.marks.push({ endMs: this.sentMs, textEnd: chunk.textEnd });
      this.sentSamples.push(chunk.samples);
      this.options.send(chunk as SentChunk);
    }
    this.settle();
  }

  private settle(): void {
    if (this.queue.length > 0 && !this.stopped) return;
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) {
      if (this.failure) w.reject(this.failure);
      else w.resolve();
    }
  }
}
