// Per-key usage limits: concurrent sessions, and requests, audio seconds and tokens per minute.
// Minute budgets are token buckets refilled continuously (a client never waits for a window
// edge); the state is per process (several gateways share a key's limits only through Redis,
// which this module does not do). Every refusal names the limit, so the client sees which one.
import { ProtocolError } from '../realtime/model.js';

export interface KeyLimits {
  /** Sessions (realtime connections and in-flight chat requests) open at once. */
  sessions?: number;
  requestsPerMinute?: number;
  /** Seconds of input audio accepted per minute. */
  audioSecondsPerMinute?: number;
  /** Prompt plus output tokens per minute. */
  tokensPerMinute?: number;
}

export const LIMIT_KEYS = ['sessions', 'requestsPerMinute', 'audioSecondsPerMinute', 'tokensPerMinute'] as const;

class Bucket {
  private level: number;
  private at: number;

  constructor(
    readonly capacity: number,
    private readonly now: () => number,
  ) {
    this.level = capacity;
    this.at = now();
  }

  private refill(): void {
    const t = this.now();
    this.level = Math.min(this.capacity, this.level + ((t - this.at) / 60_000) * this.capacity);
    this.at = t;
  }

  /** Takes `n` if available (all or nothing). */
  take(n: number): boolean {
    this.refill();
    if (this.level < n) return false;
    this.level -= n;
    return true;
  }

  /** Takes `n` even past empty (usage already happened, e.g. tokens generated); the debt delays later requests. */
  charge(n: number): void {
    this.refill();
    this.level -= n;
  }

  get remaining(): number {
    this.refill();
    return Math.max(0, Math.floor(this.level));
  }

  /** Seconds until the bucket is full again. */
  get resetSeconds(): number {
    this.refill();
    return Math.max(0, ((this.capacity - this.level) / this.capacity) * 60);
  }
}

export interface RateLimitReport {
  name: 'requests' | 'tokens';
  limit: number;
  remaining: number;
  reset_seconds: number;
}

/** The usage state of one API key. */
export class KeyUsage {
  private open = 0;
  private readonly requests?: Bucket;
  private readonly audio?: Bucket;
  private readonly tokens?: Bucket;

  constructor(
    readonly limits: KeyLimits,
    now: () => number = () => performance.now(),
  ) {
    if (limits.requestsPerMinute) this.requests = new Bucket(limits.requestsPerMinute, now);
    if (limits.audioSecondsPerMinute) this.audio = new Bucket(limits.audioSecondsPerMinute, now);
    if (limits.tokensPerMinute) this.tokens = new Bucket(limits.tokensPerMinute, now);
  }

  get openSessions(): number {
    return this.open;
  }

  /** Opens a session (a realtime connection or a chat request); returns its release. */
  openSession(): () => void {
    if (this.limits.sessions !== undefined && this.open >= this.limits.sessions) {
      throw new ProtocolError('session_limit_reached', `this API key may hold ${this.limits.sessions} sessions at once`, null);
    }
    this.open++;
    let released = false;
    return () => {
      if (!released) this.open--;
      released = true;
    };
  }

  /** One request (a response.create or a chat completion). */
  request(): void {
    if (this.requests && !this.requests.take(1)) {
      throw new ProtocolError('rate_limit_exceeded', `Rate limit reached for requests: ${this.requests.capacity} per minute; try again in ${this.requests.resetSeconds.toFixed(1)} s`, null);
    }
    if (this.tokens && this.tokens.remaining <= 0) {
      throw new ProtocolError('rate_limit_exceeded', `Rate limit reached for tokens: ${this.tokens.capacity} per minute; try again in ${this.tokens.resetSeconds.toFixed(1)} s`, null);
    }
  }

  /** Input audio about to be accepted, in seconds. */
  audioSeconds(seconds: number): void {
    if (this.audio && !this.audio.take(seconds)) {
      throw new ProtocolError('rate_limit_exceeded', `Rate limit reached for input audio: ${this.audio.capacity} s per minute; this audio was not accepted`, 'audio');
    }
  }

  /** Tokens a reply used (prompt + output), charged after the fact. */
  chargeTokens(n: number): void {
    this.tokens?.charge(n);
  }

  /** The `rate_limits.updated` payload. */
  report(): RateLimitReport[] {
    const out: RateLimitReport[] = [];
    if (this.requests) out.push({ name: 'requests', limit: this.requests.capacity, remaining: this.requests.remaining, reset_seconds: round(this.requests.resetSeconds) });
    if (this.tokens) out.push({ name: 'tokens', limit: this.tokens.capacity, remaining: this.tokens.remaining, reset_seconds: round(this.tokens.resetSeconds) });
    return out;
  }
}

const round = (v: number): number => Math.round(v * 1000) / 1000;

/** Validates a limits object from the keys file; `where` names it in errors. */
export function parseKeyLimits(value: unknown, where: string): KeyLimits {
  if (value === undefined) return {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${where} must be an object`);
  const out: KeyLimits = {};
  for (const [k, v] of Object.entries(value)) {
    if (!(LIMIT_KEYS as readonly string[]).includes(k)) throw new Error(`${where}.${k} is not a limit (${LIMIT_KEYS.join(', ')})`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || (k === 'sessions' && !Number.isInteger(v))) {
      throw new Error(`${where}.${k} must be a positive number${k === 'sessions' ? ' (integer)' : ''}`);
    }
    out[k as keyof KeyLimits] = v;
  }
  return out;
}
