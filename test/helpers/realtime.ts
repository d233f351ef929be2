// Shared pieces of the realtime conformance suite (test/realtime_conformance_*.test.ts): one demo
// checkpoint cache for every file, a raw WebSocket client that records every server event in
// order, the speech fixtures (espeak-ng, scripts/realtime_fixtures.sh) and audio builders.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import alawmulaw from 'alawmulaw';
import WebSocket from 'ws';
import type { SettingKey } from '../../src/config/settings.js';
import type { ChunkMedia, ModelChunk, RuntimeBackend, RuntimeEvent, RuntimeSession } from '../../src/runtime/contract.js';
import { startTestGateway, type TestGateway } from './gateway.js';

/** One demo checkpoint for every realtime test file (made once per cache folder). */
export const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
export const API_KEY = 'sk-test';
export const MODEL = 'qwen3-omni';

/** A gateway on the demo runtime (or `runtime`) with one API key; extra flags override. */
export function startRealtimeGateway(flags: Partial<Record<SettingKey, string>> = {}, runtime?: RuntimeBackend): Promise<TestGateway> {
  return startTestGateway({ modelCache: DEMO_CACHE, apiKeys: API_KEY, ...flags }, runtime ? { runtime } : {});
}

/** Plain TCP for a `wss:` URL (the SDK always dials wss, §1.2): `ws` honours createConnection. */
export const plainTcp = { createConnection: (o: { host?: string; port?: number | string }) => net.connect({ host: o.host ?? '127.0.0.1', port: Number(o.port) }) };

export type Wire = Record<string, unknown> & { type: string; event_id?: string };
export type Pred = string | ((e: Wire) => boolean);

const match = (pred: Pred): ((e: Wire) => boolean) => (typeof pred === 'string' ? (e) => e.type === pred : pred);

export interface ConnectOptions {
  path?: string;
  /** Query string without `?`; default `model=qwen3-omni`. */
  query?: string;
  headers?: Record<string, string>;
  protocols?: string[];
  /** Runs right after `open`, in the same tick (events before `session.created`). */
  onOpen?: (ws: WebSocket) => void;
  /** Default: Bearer sk-test. Pass null for none. */
  apiKey?: string | null;
  /** More `ws` client options (e.g. `ca` for a TLS gateway, `autoPong: false`). */
  wsOptions?: WebSocket.ClientOptions;
}

/** A raw realtime client: every server event recorded in order, with a read cursor. */
export class RtClient {
  readonly events: Wire[] = [];
  private cursor = 0;
  private waiters = new Set<() => void>();
  readonly closed: Promise<{ code: number; reason: string }>;
  closeInfo: { code: number; reason: string } | undefined;
  /** Wall time (performance.now) each event arrived. */
  readonly times: number[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      this.events.push(isBinary ? { type: '<binary>' } : (JSON.parse((data as Buffer).toString('utf8')) as Wire));
      this.times.push(performance.now());
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) => {
      ws.on('close', (code, reason) => {
        this.closeInfo = { code, reason: reason.toString() };
        resolve(this.closeInfo);
        for (const w of this.waiters) w();
      });
    });
    ws.on('error', () => undefined);
  }

  static async connect(baseWsUrl: string, o: ConnectOptions = {}): Promise<RtClient> {
    const headers: Record<string, string> = { ...o.headers };
    const key = o.apiKey === undefined ? API_KEY : o.apiKey;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    const query = o.query ?? `model=${MODEL}`;
    const ws = new WebSocket(`${baseWsUrl}${o.path ?? '/v1/realtime'}${query ? `?${query}` : ''}`, o.protocols ?? [], { ...o.wsOptions, headers });
    const client = new RtClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        o.onOpen?.(ws);
        resolve();
      });
      ws.once('error', reject);
    });
    return client;
  }

  send(event: Record<string, unknown>): void {
    this.ws.send(JSON.stringify(event));
  }

  /** Index where the next `next()` starts looking. */
  mark(): number {
    return this.cursor;
  }

  /** Events from index `from` (default: the cursor) to now. */
  since(from = this.cursor): Wire[] {
    return this.events.slice(from);
  }

  /** Waits for the first event after the cursor that matches; moves the cursor past it. */
  async next(pred: Pred, timeoutMs = 15_000): Promise<Wire> {
    const test = match(pred);
    const found = await this.until(() => {
      for (let i = this.cursor; i < this.events.length; i++) if (test(this.events[i]!)) return i;
      return undefined;
    }, timeoutMs, typeof pred === 'string' ? pred : 'predicate');
    this.cursor = found + 1;
    return this.events[found]!;
  }

  /** Waits until some event anywhere in the log matches (cursor unchanged). */
  async seen(pred: Pred, timeoutMs = 15_000): Promise<Wire> {
    const test = match(pred);
    const i = await this.until(() => {
      const at = this.events.findIndex(test);
      return at < 0 ? undefined : at;
    }, timeoutMs, typeof pred === 'string' ? pred : 'predicate');
    return this.events[i]!;
  }

  /** Resolves once `check` returns a value (re-checked on every event and on close). */
  private until<T>(check: () => T | undefined, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const run = (): boolean => {
        const v = check();
        if (v === undefined) return false;
        cleanup();
        resolve(v);
        return true;
      };
      const waiter = (): void => {
        if (run()) return;
        if (this.closeInfo) {
          cleanup();
          reject(new Error(`socket closed (${this.closeInfo.code} ${this.closeInfo.reason}) before ${what}; events: ${this.summary()}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; events: ${this.summary()}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      this.waiters.add(waiter);
      waiter();
    });
  }

  /** Types of the events so far (errors with their code), for failure messages. */
  summary(from = 0): string {
    return this.events
      .slice(from)
      .map((e) => (e.type === 'error' ? `error(${String((e.error as { code?: unknown }).code)})` : e.type))
      .filter((t, i, a) => !(t.endsWith('.delta') && a[i - 1] === t))
      .join(', ');
  }

  /** The `response.done` of `responseId`. */
  responseDone(responseId: string, timeoutMs = 20_000): Promise<Wire> {
    return this.seen((e) => e.type === 'response.done' && (e.response as { id: string }).id === responseId, timeoutMs);
  }

  /** Waits `ms` and returns the events that arrived meanwhile. */
  async quiet(ms: number): Promise<Wire[]> {
    const from = this.events.length;
    await new Promise((r) => setTimeout(r, ms));
    return this.events.slice(from);
  }

  close(code = 1000): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code);
    return this.closed;
  }
}

/** The error events among `events`, as their inner error objects. */
export function errorsOf(events: readonly Wire[]): { code: string | null; param: string | null; message: string; type: string; event_id?: string | null }[] {
  return events.filter((e) => e.type === 'error').map((e) => e.error as { code: string | null; param: string | null; message: string; type: string });
}

// ---------------------------------------------------------------------------------------------
// Audio

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'realtime');

/** PCM16 mono samples of a fixture WAV (its `data` chunk). */
export function fixturePcm(name: 'weather_24k' | 'weather_16k' | 'interrupt_24k'): Buffer {
  const wav = readFileSync(join(FIXTURES, `${name}.wav`));
  let at = 12;
  while (at + 8 <= wav.length) {
    const id = wav.toString('latin1', at, at + 4);
    const size = wav.readUInt32LE(at + 4);
    if (id === 'data') return wav.subarray(at + 8, at + 8 + size);
    at += 8 + size + (size % 2);
  }
  throw new Error(`${name}.wav has no data chunk`);
}

/** PCM16 silence (a very faint noise floor would also do; exact zeros are fine for Silero). */
export function silence(ms: number, rate = 24_000): Buffer {
  return Buffer.alloc(Math.round((rate * ms) / 1000) * 2);
}

/** Cuts audio into base64 chunks of `ms` (20 ms = 960 bytes of PCM16 at 24 kHz = 48000 bytes/s). */
export function chunks(audio: Buffer, ms = 20, bytesPerSecond = 48_000): string[] {
  const size = Math.round((bytesPerSecond * ms) / 1000);
  const out: string[] = [];
  for (let i = 0; i < audio.length; i += size) out.push(audio.subarray(i, Math.min(audio.length, i + size)).toString('base64'));
  return out;
}

/** Sends audio as `input_audio_buffer.append` events (as fast as the socket takes them). */
export function appendAudio(client: RtClient, audio: Buffer, ms = 20, bytesPerSecond = 48_000): void {
  for (const b64 of chunks(audio, ms, bytesPerSecond)) client.send({ type: 'input_audio_buffer.append', audio: b64 });
}

/** Sends audio paced: one `ms` chunk per `ms / speedup` of wall time; stops early when `stop()` says so. */
export async function streamAudio(client: RtClient, audio: Buffer, opts: { ms?: number; bytesPerSecond?: number; speedup?: number; stop?: () => boolean } = {}): Promise<void> {
  const ms = opts.ms ?? 20;
  const speedup = opts.speedup ?? 1;
  const start = performance.now();
  let sent = 0;
  for (const b64 of chunks(audio, ms, opts.bytesPerSecond ?? 48_000)) {
    if (opts.stop?.()) return;
    client.send({ type: 'input_audio_buffer.append', audio: b64 });
    sent += ms;
    const wait = sent / speedup - (performance.now() - start);
    if (wait > 2) await new Promise((r) => setTimeout(r, wait));
  }
}

/** Bytes of the base64 `delta`s of the given events. */
export function audioBytes(events: readonly Wire[]): Buffer[] {
  return events.map((e) => Buffer.from(e.delta as string, 'base64'));
}

/** A GA text user message. */
export function userText(text: string, id?: string): Record<string, unknown> {
  return { type: 'message', role: 'user', ...(id ? { id } : {}), content: [{ type: 'input_text', text }] };
}

// ---------------------------------------------------------------------------------------------
// A scripted runtime: no model, replies are given token ids (e.g. a Qwen3 tool call the random
// demo weights would never produce), or `open()` fails (warm-up failure).


export interface ScriptedRuntime extends RuntimeBackend {
  /** Token ids of the next replies, one list per generate() (an empty reply when none is left). */
  replies: number[][];
  opened: number;
  closedSessions: number;
  /** Media hinted with `prepare()` and chunks appended, in order (all sessions). */
  prepared: ChunkMedia[];
  appended: ModelChunk[];
}

export function scriptedRuntime(opts: { failOpen?: string } = {}): ScriptedRuntime {
  const rt: ScriptedRuntime = {
    kind: 'native',
    replies: [],
    opened: 0,
    closedSessions: 0,
    prepared: [],
    appended: [],
    health: () => Promise.resolve({ reachable: true, modelLoaded: true, detail: 'scripted' }),
    capabilities: () => Promise.resolve({ audioIn: true, imageIn: true, videoIn: true, speechOut: false, voices: [], maxContext: 32768 }),
    close: () => Promise.resolve(),
    open: () => {
      if (opts.failOpen) return Promise.reject(Object.assign(new Error(opts.failOpen), { code: 'model_unavailable' }));
      rt.opened++;
      let length = 0;
      let cancelled = false;
      const session: RuntimeSession = {
        get length() {
          return length;
        },
        append: (chunk) => {
          rt.appended.push(chunk);
          length += chunk.ids.length;
          return Promise.resolve();
        },
        prepare: (media) => {
          rt.prepared.push(media);
        },
        truncate: (n) => {
          length = Math.min(length, n);
          return Promise.resolve();
        },
        cancel: () => {
          cancelled = true;
        },
        close: () => {
          rt.closedSessions++;
        },
        async *generate(request): AsyncGenerator<RuntimeEvent> {
          cancelled = false;
          const ids = rt.replies.shift() ?? [];
          let n = 0;
          while (n < Math.min(ids.length, request.maxTokens)) {
            await new Promise((r) => setImmediate(r));
            if (cancelled) break;
            length++;
            yield { type: 'token', id: ids[n++]!, thinking: false, forced: false };
          }
          const reason = cancelled ? 'cancelled' : n < ids.length ? 'length' : 'stop';
          yield { type: 'done', reason, usage: { promptTokens: length - n, outputTokens: n, thinkingTokens: 0 } };
        },
      };
      return Promise.resolve(session);
    },
  };
  return rt;
}

/** 24 kHz PCM16 -> 8 kHz G.711 μ-law (3-tap average, then decimate: fine for test speech). */
export function toMulaw8k(pcm24: Buffer): Buffer {
  const n = Math.floor(pcm24.length / 6);
  const out = new Int16Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.round((pcm24.readInt16LE(6 * i) + pcm24.readInt16LE(6 * i + 2) + pcm24.readInt16LE(6 * i + 4)) / 3);
  return Buffer.from(alawmulaw.mulaw.encode(out));
}
