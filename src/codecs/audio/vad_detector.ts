// Server-VAD turn detection for one stream of 16 kHz audio, with the OpenAI `server_vad`
// parameters. Audio arrives in chunks of any size; it is cut into 512-sample Silero frames
// aligned to the stream start, so events do not depend on how the audio was chunked.
//
// Timeline: sample 0 is the first sample ever pushed; `reset()` does not restart it (OpenAI's
// audio_start_ms / audio_end_ms count from the start of the session's audio). Frame k after the
// latest reset covers [R + 512k, R + 512(k+1)), R being the sample count at that reset.
//
// Turn rules, per frame with speech probability p:
// - speech begins at the start of a frame with p >= threshold, and is confirmed once frames with
//   p >= exitThreshold have continued for minSpeechDurationMs (counted from that frame's start
//   to the end of the current frame); a shorter burst (a click) is ignored. On confirmation
//   `speech_started` is emitted with audio start = speech start - prefixPaddingMs, clamped so it
//   never reaches back before the latest reset or the previous turn's end of detection.
// - during speech, a frame with p >= exitThreshold extends it. `speech_stopped` is emitted at the
//   end of the first frame whose end lies at least silenceDurationMs after the end of the last
//   speech frame, with audio end = end of the last speech frame (silence not included).
// Times in ms are samples / 16: whole numbers unless a reset fell between 16-sample boundaries
// (the *Sample fields are always exact).
// exitThreshold below threshold is Silero's own hysteresis (its reference uses threshold - 0.15):
// it keeps weak syllables inside a turn without making starts any easier.
import { CodecError } from '../errors.js';
import { getSharedVadBatcher } from './vad_batcher.js';
import type { VadInference } from './vad_model.js';
import { SILERO_FRAME_SAMPLES, SILERO_SAMPLE_RATE, SileroStreamState } from './vad_model.js';

const SAMPLES_PER_MS = SILERO_SAMPLE_RATE / 1000;

export interface VadConfig {
  /** Speech probability that starts speech, 0..1 (OpenAI `threshold`, default 0.5). */
  threshold: number;
  /** Audio kept before the detected start, ms (OpenAI `prefix_padding_ms`, default 300). */
  prefixPaddingMs: number;
  /** Continuous non-speech that ends a turn, ms (OpenAI `silence_duration_ms`, default 500). */
  silenceDurationMs: number;
  /** Shortest speech that starts a turn, ms (default 64: two frames; one-frame clicks are ignored). */
  minSpeechDurationMs: number;
  /** Probability below which a frame counts as non-speech once speech started (default max(threshold - 0.15, 0.01), at most threshold). */
  exitThreshold: number;
}

export const DEFAULT_VAD_CONFIG: Readonly<Omit<VadConfig, 'exitThreshold'>> = Object.freeze({
  threshold: 0.5,
  prefixPaddingMs: 300,
  silenceDurationMs: 500,
  minSpeechDurationMs: 64,
});

const PARAM_NAMES: Record<keyof VadConfig, string> = {
  threshold: 'threshold',
  prefixPaddingMs: 'prefix_padding_ms',
  silenceDurationMs: 'silence_duration_ms',
  minSpeechDurationMs: 'min_speech_duration_ms',
  exitThreshold: 'exit_threshold',
};

// Upper bounds keep memory (prefix audio) and turn lengths sane; DashScope caps silence at 6000.
const MAX_PREFIX_PADDING_MS = 10_000;
const MAX_SILENCE_DURATION_MS = 60_000;
const MAX_MIN_SPEECH_MS = 10_000;

/**
 * Fills defaults and validates. Throws CodecError `vad_config_invalid` whose param is the
 * protocol name under `paramPrefix`, e.g. `turn_detection.prefix_padding_ms`.
 */
export function resolveVadConfig(input: Partial<VadConfig> = {}, paramPrefix = 'turn_detection'): Readonly<VadConfig> {
  const param = (k: keyof VadConfig) => (paramPrefix ? `${paramPrefix}.${PARAM_NAMES[k]}` : PARAM_NAMES[k]);
  const num = (k: keyof VadConfig, fallback: number, min: number, max: number, integer: boolean): number => {
    const v: unknown = input[k] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
      const kind = integer ? 'an integer' : 'a number';
      throw new CodecError('vad_config_invalid', `${param(k)} must be ${kind} from ${min} to ${max} (got ${String(v)})`, param(k));
    }
    return v;
  };
  const threshold = num('threshold', DEFAULT_VAD_CONFIG.threshold, 0, 1, false);
  const prefixPaddingMs = num('prefixPaddingMs', DEFAULT_VAD_CONFIG.prefixPaddingMs, 0, MAX_PREFIX_PADDING_MS, true);
  const silenceDurationMs = num('silenceDurationMs', DEFAULT_VAD_CONFIG.silenceDurationMs, 0, MAX_SILENCE_DURATION_MS, true);
  const minSpeechDurationMs = num('minSpeechDurationMs', DEFAULT_VAD_CONFIG.minSpeechDurationMs, 0, MAX_MIN_SPEECH_MS, true);
  const exitThreshold = num('exitThreshold', Math.min(threshold, Math.max(threshold - 0.15, 0.01)), 0, threshold, false);
  return Object.freeze({ threshold, prefixPaddingMs, silenceDurationMs, minSpeechDurationMs, exitThreshold });
}

export interface VadSpeechStarted {
  type: 'speech_started';
  /** Start of the turn's audio, prefix padding included (OpenAI `audio_start_ms`). */
  audioStartMs: number;
  audioStartSample: number;
  /** Where speech itself was detected to begin, before padding. */
  speechStartMs: number;
  /** Stream position at which the start was confirmed (end of the confirming frame). */
  detectedAtMs: number;
}

export interface VadSpeechStopped {
  type: 'speech_stopped';
  /** End of the last speech frame (OpenAI `audio_end_ms`); the trailing silence is not included. */
  audioEndMs: number;
  audioEndSample: number;
  /** Stream position at which the silence was long enough (end of the deciding frame). */
  detectedAtMs: number;
}

export type VadEvent = VadSpeechStarted | VadSpeechStopped;

/** One scored frame, for debugging and metrics. */
export interface VadFrame {
  startSample: number;
  endSample: number;
  probability: number;
  /** Whether the detector is inside a confirmed turn after this frame. */
  speaking: boolean;
}

export interface VoiceActivityDetectorOptions {
  config?: Partial<VadConfig>;
  /** Prefix for `param` in config errors (default `turn_detection`). */
  paramPrefix?: string;
  /** Rate of the pushed audio; only 16000 is accepted (resample first). */
  sampleRate?: number;
  /** Where frames are scored; defaults to the process-wide batcher over the shared model. */
  inference?: VadInference;
  onEvent?: (event: VadEvent) => void;
  onFrame?: (frame: VadFrame) => void;
  /** Called once when scoring fails; the detector then refuses audio until `reset()`. */
  onError?: (error: Error) => void;
  /** Most audio pushed but not yet scored, ms (default 600 000); `push` beyond it throws `vad_overloaded`. */
  maxBacklogMs?: number;
}

type TurnState = 'silence' | 'candidate' | 'speech';

export class VoiceActivityDetector {
  readonly config: Readonly<VadConfig>;
  private readonly inference: VadInference;
  private readonly onEvent: ((e: VadEvent) => void) | undefined;
  private readonly onFrame: ((f: VadFrame) => void) | undefined;
  private readonly onError: ((e: Error) => void) | undefined;
  private readonly maxBacklogSamples: number;
  private readonly prefixSamples: number;
  private readonly silenceSamples: number;
  private readonly minSpeechSamples: number;

  private state = new SileroStreamState();
  // Unscored audio: buf[head, tail) holds stream samples [nextFrameStart, pushed).
  private buf = new Float32Array(SILERO_FRAME_SAMPLES * 8);
  private head = 0;
  private tail = 0;
  private pushed = 0;
  private nextFrameStart = 0;
  private floorSample = 0;
  private generation = 0;
  private pumping = false;
  private failure: Error | undefined;
  private closed = false;
  private waiters: { resolve: () => void; reject: (e: unknown) => void }[] = [];

  private turn: TurnState = 'silence';
  private speechStart = 0;
  private lastSpeechEnd = 0;
  private frames = 0;
  private lastP = Number.NaN;

  constructor(options: VoiceActivityDetectorOptions = {}) {
    const rate = options.sampleRate ?? SILERO_SAMPLE_RATE;
    if (rate !== SILERO_SAMPLE_RATE) {
      throw new CodecError(
        'audio_sample_rate_unsupported',
        `voice activity detection takes ${SILERO_SAMPLE_RATE} Hz audio (got ${rate}); resample first`,
        'sampleRate',
      );
    }
    this.config = resolveVadConfig(options.config, options.paramPrefix);
    this.inference = options.inference ?? getSharedVadBatcher();
    this.onEvent = options.onEvent;
    this.onFrame = options.onFrame;
    this.onError = options.onError;
    const backlogMs = options.maxBacklogMs ?? 600_000;
    if (!Number.isFinite(backlogMs) || backlogMs < SILERO_FRAME_SAMPLES / SAMPLES_PER_MS) {
      throw new RangeError(`maxBacklogMs must be at least one frame (${SILERO_FRAME_SAMPLES / SAMPLES_PER_MS} ms)`);
    }
    this.maxBacklogSamples = Math.floor(backlogMs * SAMPLES_PER_MS);
    this.prefixSamples = this.config.prefixPaddingMs * SAMPLES_PER_MS;
    this.silenceSamples = this.config.silenceDurationMs * SAMPLES_PER_MS;
    this.minSpeechSamples = this.config.minSpeechDurationMs * SAMPLES_PER_MS;
  }

  /** Inside a confirmed turn (between speech_started and speech_stopped). */
  get speaking(): boolean {
    return this.turn === 'speech';
  }

  /** Probability of the latest scored frame (NaN before the first). */
  get lastProbability(): number {
    return this.lastP;
  }

  get framesScored(): number {
    return this.frames;
  }

  /** Samples ever accepted by `push`, the length of the stream's timeline. */
  get samplesPushed(): number {
    return this.pushed;
  }

  /** Samples accepted but not yet scored (including an incomplete last frame). */
  get backlogSamples(): number {
    return this.tail - this.head;
  }

  /**
   * Appends 16 kHz mono samples (any length). All or nothing: on a throw nothing was taken.
   * Throws CodecError `audio_invalid_samples` on NaN/Infinity (they would poison the model state),
   * `vad_overloaded` beyond the backlog bound, or the stored failure after a scoring error.
   */
  push(samples: Float32Array): void {
    if (this.closed) throw new Error('voice activity detector is closed');
    if (this.failure !== undefined) throw this.failure;
    // x - x is 0 for every finite sample and NaN for NaN and ±Infinity: one branch-free pass (a
    // per-sample Number.isFinite test cost more than the rest of a 20 ms push), then the culprit
    // is looked up only when there is one.
    let poison = 0;
    for (let i = 0; i < samples.length; i++) poison += samples[i]! - samples[i]!;
    if (poison !== 0) {
      const i = samples.findIndex((x) => !Number.isFinite(x));
      throw new CodecError('audio_invalid_samples', `audio sample ${i} is not a finite number`, 'audio');
    }
    const backlog = this.tail - this.head + samples.length;
    if (backlog > this.maxBacklogSamples) {
      throw new CodecError(
        'vad_overloaded',
        `voice activity detection is ${Math.round((this.tail - this.head) / SAMPLES_PER_MS)} ms behind; ` +
          `this chunk would pass the ${Math.round(this.maxBacklogSamples / SAMPLES_PER_MS)} ms limit`,
        'audio',
      );
    }
    this.append(samples);
    this.pushed += samples.length;
    // Most 20 ms pushes complete no frame, or find the pump already waiting on one: starting the
    // (async) pump only when it has work spares a promise per push.
    if (!this.pumping && this.tail - this.head >= SILERO_FRAME_SAMPLES) void this.pump();
  }

  /** Resolves once every complete frame pushed so far is scored and its events emitted. */
  drain(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /**
   * Forgets the turn, the model's recurrent state, any failure, and the audio not yet scored
   * (call after the input buffer is committed by the client or cleared). The timeline goes on:
   * later timestamps still count from the stream start, and padding will not reach back past
   * this point. Not needed after this detector's own speech_stopped.
   */
  reset(): void {
    this.generation++;
    this.state = new SileroStreamState();
    this.head = this.tail = 0;
    this.nextFrameStart = this.pushed;
    this.floorSample = this.pushed;
    this.turn = 'silence';
    this.failure = undefined;
    this.settleWaiters();
  }

  /** Stops scoring; frames in flight are ignored and `push` throws from now on. */
  close(): void {
    this.closed = true;
    this.generation++;
    this.head = this.tail = 0;
    this.settleWaiters();
  }

  private isIdle(): boolean {
    // Once closed nothing more will be emitted, whatever is still in flight.
    return this.closed || (!this.pumping && this.tail - this.head < SILERO_FRAME_SAMPLES);
  }

  private append(samples: Float32Array): void {
    const need = this.tail - this.head + samples.length;
    if (this.tail + samples.length > this.buf.length) {
      if (need <= this.buf.length / 2) {
        this.buf.copyWithin(0, this.head, this.tail);
      } else {
        const grown = new Float32Array(Math.max(need * 2, this.buf.length));
        grown.set(this.buf.subarray(this.head, this.tail));
        this.buf = grown;
      }
      this.tail -= this.head;
      this.head = 0;
    }
    this.buf.set(samples, this.tail);
    this.tail += samples.length;
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (!this.closed && this.failure === undefined && this.tail - this.head >= SILERO_FRAME_SAMPLES) {
        const gen = this.generation;
        const start = this.nextFrameStart;
        const frame = this.buf.slice(this.head, this.head + SILERO_FRAME_SAMPLES);
        this.head += SILERO_FRAME_SAMPLES;
        this.nextFrameStart += SILERO_FRAME_SAMPLES;
        let p: number;
        try {
          p = await this.inference.infer(this.state, frame);
        } catch (err) {
          // A failure of audio that a reset has since discarded does not concern the new audio.
          if (gen !== this.generation) continue;
          this.fail(err);
          break;
        }
        if (gen !== this.generation) continue;
        this.score(start, start + SILERO_FRAME_SAMPLES, p);
      }
    } catch (err) {
      // A listener threw: the detector cannot know what state its owner is in, so it stops.
      this.fail(err);
    } finally {
      this.pumping = false;
      this.settleWaiters();
    }
  }

  private fail(err: unknown): void {
    // Once per failure: a listener that throws while the detector is failing must not be called again.
    if (this.failure !== undefined) return;
    this.failure = err instanceof Error ? err : new Error(String(err));
    if (this.onError === undefined) return;
    try {
      this.onError(this.failure);
    } catch (listenerErr) {
      // There is nobody left to tell: report it (once) and keep the detector's own failure.
      console.error('voice activity detector: onError listener threw', listenerErr);
    }
  }

  private settleWaiters(): void {
    if (this.waiters.length === 0) return;
    if (this.failure !== undefined) {
      const w = this.waiters.splice(0);
      for (const x of w) x.reject(this.failure);
    } else if (this.isIdle()) {
      const w = this.waiters.splice(0);
      for (const x of w) x.resolve();
    }
  }

  private score(start: number, end: number, p: number): void {
    this.frames++;
    this.lastP = p;
    const { threshold, exitThreshold } = this.config;
    switch (this.turn) {
      case 'silence':
        if (p >= threshold) {
          this.turn = 'candidate';
          this.speechStart = start;
          this.lastSpeechEnd = end;
          this.confirmIfLongEnough(end);
        }
        break;
      case 'candidate':
        if (p >= exitThreshold) {
          this.lastSpeechEnd = end;
          this.confirmIfLongEnough(end);
        } else {
          this.turn = 'silence';
        }
        break;
      case 'speech':
        if (p >= exitThreshold) {
          this.lastSpeechEnd = end;
        } else if (end - this.lastSpeechEnd >= this.silenceSamples) {
          this.turn = 'silence';
          // The next turn's padding must not reach into audio that belongs to this one.
          this.floorSample = end;
          this.onEvent?.({
            type: 'speech_stopped',
            audioEndMs: this.lastSpeechEnd / SAMPLES_PER_MS,
            audioEndSample: this.lastSpeechEnd,
            detectedAtMs: end / SAMPLES_PER_MS,
          });
        }
        break;
    }
    this.onFrame?.({ startSample: start, endSample: end, probability: p, speaking: this.turn === 'speech' });
  }

  private confirmIfLongEnough(end: number): void {
    if (end - this.speechStart < this.minSpeechSamples) return;
    this.turn = 'speech';
    const audioStart = Math.max(this.floorSample, this.speechStart - this.prefixSamples);
    this.onEvent?.({
      type: 'speech_started',
      audioStartMs: audioStart / SAMPLES_PER_MS,
      audioStartSample: audioStart,
      speechStartMs: this.speechStart / SAMPLES_PER_MS,
      detectedAtMs: end / SAMPLES_PER_MS,
    });
  }
}
