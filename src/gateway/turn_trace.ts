// Where a turn's latency goes: from the end of the user's turn (VAD speech stop, commit, or
// response.create) to the first audio byte handed to the client, split by stage. Each stage is
// the time since the previous mark, so the stages add up to the total; a stage that never happens
// (a text-only reply has no audio) is simply absent.
import { performance } from 'node:perf_hooks';

export const TURN_STAGES = [
  /** Log-mel features of the turn's audio (the tail not yet computed). */
  'features',
  /** Chat layout, tokenization, placeholders and TMRoPE positions. */
  'fusion',
  /** Waiting for the runtime (model load, engine session). */
  'queue',
  /** Prefill of what the engine did not hold yet. */
  'prefill',
  'first_token',
  /** First speech chunk out of the runtime (talker + code-to-wave). */
  'first_audio_chunk',
  /** Conversion to the client's audio format. */
  'encode',
  /** Handed to the transport. */
  'send',
] as const;

export type TurnStage = (typeof TURN_STAGES)[number];

export interface TurnTiming {
  /** Milliseconds per stage, in order. */
  stages: Partial<Record<TurnStage, number>>;
  /** Turn end to the last mark, ms. */
  totalMs: number;
  /** Turn end to first audio sent, ms (undefined without audio). */
  firstAudioMs?: number;
}

export type TurnTraceSink = (timing: TurnTiming) => void;

export class TurnTrace {
  private readonly stages: Partial<Record<TurnStage, number>> = {};
  private last: number;
  private done = false;

  constructor(
    readonly startedAt: number = performance.now(),
    private readonly sink?: TurnTraceSink,
  ) {
    this.last = startedAt;
  }

  /** Closes `stage` now (first call wins: a stage is measured once). */
  mark(stage: TurnStage, at: number = performance.now()): void {
    if (this.done || this.stages[stage] !== undefined) return;
    this.stages[stage] = Math.max(0, at - this.last);
    this.last = Math.max(this.last, at);
  }

  /** Ends the trace (at first audio sent, or at the response's end) and reports it once. */
  finish(): TurnTiming {
    const timing: TurnTiming = {
      stages: { ...this.stages },
      totalMs: this.last - this.startedAt,
      ...(this.stages.send !== undefined ? { firstAudioMs: this.last - this.startedAt } : {}),
    };
    if (!this.done) {
      this.done = true;
      this.sink?.(timing);
    }
    return timing;
  }
}
