// A small TypeScript SDK for the gateway's embedded-device link (`GET /v1/device`,
// docs/device-protocol.md). One dependency: `ws`. Audio and camera frames travel as raw bytes in
// binary frames (`type | 32-bit big-endian length | payload`), control events as JSON with the
// OpenAI Realtime GA names.
//
//   const dev = await DeviceClient.connect({ url: 'ws://127.0.0.1:8080/v1/device', apiKey: 'sk-...' });
//   dev.on('audio', (pcm) => speaker.write(pcm));           // PCM16 LE (or Opus packets)
//   dev.on('event', (e) => console.log(e.type));
//   dev.on('error', (e) => console.warn(e.error.code, e.error.message));
//   dev.sendAudio(micChunk);                                 // PCM16 LE at audioIn.rate, or one Opus packet
//   dev.sendEvent({ type: 'response.create' });
//   await dev.close();
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';

export const FRAME = { HELLO: 0x01, WELCOME: 0x02, EVENT: 0x03, AUDIO_IN: 0x04, AUDIO_OUT: 0x05, JPEG: 0x06, ERROR: 0x07 } as const;
export const FRAME_HEADER_BYTES = 5;
export const DEVICE_PROTOCOL_VERSION = 1;

export type Codec = 'pcm16' | 'opus';

export interface DeviceClientOptions {
  /** `ws://host:port/v1/device` (or `wss://`). */
  url: string;
  apiKey?: string;
  /**
   * Where the key goes: the `Authorization: Bearer` header (default) or the hello's `key` field,
   * for WebSocket stacks that cannot set headers.
   */
  keyIn?: 'header' | 'hello';
  /** Default: the gateway's first served model. */
  model?: string;
  /** Mic audio: PCM16 LE at `rate` (8000/16000/24000/48000, default 16000) or Opus packets (16000/24000/48000). */
  audioIn?: { codec: Codec; rate?: number };
  /** Speech: PCM16 LE at `rate` (default 24000) or Opus packets of `frameMs` at `rate` (default 48000). */
  audioOut?: { codec: Codec; rate?: number; frameMs?: number; bitrate?: number };
  /** Extra `ws` options (TLS `ca`, `createConnection`...). */
  wsOptions?: WebSocket.ClientOptions;
  /** How long to wait for the welcome (default 15 s). */
  timeoutMs?: number;
}

export interface Welcome {
  type: 'welcome';
  version: number;
  session_id: string;
  model: string;
  audio_in: { type: string; rate: number };
  audio_out: { type: string; rate: number; frame_ms?: number; bitrate?: number };
  limits: { max_frame_bytes: number; max_outbound_bytes: number; ping_interval_ms: number };
  expires_at: number;
}

export type ServerEvent = { type: string; event_id?: string } & Record<string, unknown>;

export interface DeviceError {
  type: 'error';
  event_id?: string;
  error: { type: string; code: string | null; message: string; param: string | null; event_id: string | null };
}

export interface DeviceClientEvents {
  audio: [bytes: Buffer];
  event: [event: ServerEvent];
  error: [error: DeviceError];
  close: [code: number, reason: string];
}

export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out[0] = type;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export function decodeFrame(message: Buffer): { type: number; payload: Buffer } {
  if (message.length < FRAME_HEADER_BYTES) throw new Error(`device frame shorter than its ${FRAME_HEADER_BYTES}-byte header`);
  const length = message.readUInt32BE(1);
  if (length !== message.length - FRAME_HEADER_BYTES) throw new Error(`device frame declares ${length} bytes, carries ${message.length - FRAME_HEADER_BYTES}`);
  return { type: message[0]!, payload: message.subarray(FRAME_HEADER_BYTES) };
}

export class DeviceClient extends EventEmitter<DeviceClientEvents> {
  /** Every JSON event and error received, in order (handy for tests and logs). */
  readonly received: ServerEvent[] = [];
  closeInfo: { code: number; reason: string } | undefined;
  private readonly closedPromise: Promise<{ code: number; reason: string }>;

  private constructor(
    readonly ws: WebSocket,
    readonly welcome: Welcome,
  ) {
    super();
    this.closedPromise = new Promise((resolve) => {
      const done = (code: number, reason: string): void => {
        this.closeInfo ??= { code, reason };
        resolve(this.closeInfo);
      };
      if (ws.readyState === WebSocket.CLOSED) done(1006, '');
      ws.on('close', (code, reason) => {
        done(code, reason.toString());
        this.emit('close', code, reason.toString());
      });
    });
  }

  /** Opens the link, sends the hello and resolves with the client once the welcome arrives. */
  static connect(options: DeviceClientOptions): Promise<DeviceClient> {
    const headers: Record<string, string> = {};
    const keyIn = options.keyIn ?? 'header';
    if (options.apiKey !== undefined && keyIn === 'header') headers.authorization = `Bearer ${options.apiKey}`;
    const ws = new WebSocket(options.url, { perMessageDeflate: false, ...options.wsOptions, headers: { ...options.wsOptions?.headers, ...headers } });
    const hello: Record<string, unknown> = { version: DEVICE_PROTOCOL_VERSION };
    if (options.model !== undefined) hello.model = options.model;
    if (options.apiKey !== undefined && keyIn === 'hello') hello.key = options.apiKey;
    if (options.audioIn) hello.audio_in = { codec: options.audioIn.codec, ...(options.audioIn.rate ? { rate: options.audioIn.rate } : {}) };
    if (options.audioOut) {
      const o = options.audioOut;
      hello.audio_out = { codec: o.codec, ...(o.rate ? { rate: o.rate } : {}), ...(o.frameMs ? { frame_ms: o.frameMs } : {}), ...(o.bitrate ? { bitrate: o.bitrate } : {}) };
    }
    return new Promise<DeviceClient>((resolve, reject) => {
      // Frames that arrive before the welcome (errors) are kept for the client's listeners.
      const early: Buffer[] = [];
      const timer = setTimeout(() => fail(new Error('no welcome from the gateway in time')), options.timeoutMs ?? 15_000);
      const fail = (err: Error): void => {
        clearTimeout(timer);
        ws.off('message', onMessage);
        ws.terminate();
        reject(err);
      };
      const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
        if (!isBinary) return fail(new Error('the gateway sent a text message on the device link'));
        let frame: { type: number; payload: Buffer };
        try {
          frame = decodeFrame(toBuffer(data));
        } catch (err) {
          return fail(err as Error);
        }
        if (frame.type === FRAME.ERROR) {
          const e = JSON.parse(frame.payload.toString('utf8')) as DeviceError;
          early.push(toBuffer(data));
          // Before the welcome every error is about the hello: the connect fails with it.
          return fail(Object.assign(new Error(`${e.error.code ?? 'error'}: ${e.error.message}`), { deviceError: e }));
        }
        if (frame.type !== FRAME.WELCOME) return fail(new Error(`expected WELCOME, got frame type ${frame.type}`));
        clearTimeout(timer);
        ws.off('message', onMessage);
        const client = new DeviceClient(ws, JSON.parse(frame.payload.toString('utf8')) as Welcome);
        ws.on('message', (d: WebSocket.RawData, bin: boolean) => client.onMessage(toBuffer(d), bin));
        resolve(client);
      };
      ws.on('message', onMessage);
      ws.on('error', (err) => fail(err));
      ws.once('close', (code, reason) => fail(new Error(`the gateway closed the link: ${code} ${reason.toString()}`)));
      ws.once('open', () => ws.send(encodeFrame(FRAME.HELLO, Buffer.from(JSON.stringify(hello)))));
    });
  }

  /** Mic audio: PCM16 LE bytes at the negotiated rate (any whole number of samples), or one Opus packet. */
  sendAudio(bytes: Uint8Array): void {
    this.sendFrame(FRAME.AUDIO_IN, bytes);
  }

  /** One camera frame (JPEG bytes); the gateway keeps the newest few for the next user turn. */
  sendJpeg(jpeg: Uint8Array): void {
    this.sendFrame(FRAME.JPEG, jpeg);
  }

  /** One realtime control event, e.g. `{ type: 'response.create', response: { max_output_tokens: 32 } }`. */
  sendEvent(event: { type: string } & Record<string, unknown>): void {
    this.sendFrame(FRAME.EVENT, Buffer.from(JSON.stringify(event), 'utf8'));
  }

  /** A raw frame (tests, extensions). */
  sendFrame(type: number, payload: Uint8Array = new Uint8Array(0)): void {
    this.sendRaw(encodeFrame(type, payload));
  }

  /** A raw WebSocket binary message, framed or not (tests). */
  sendRaw(message: Uint8Array): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(message, { binary: true });
  }

  /** Resolves with the first received event (or error) matching, waiting up to `timeoutMs`. */
  waitFor(pred: string | ((e: ServerEvent) => boolean), timeoutMs = 30_000, from = 0): Promise<ServerEvent> {
    const match = typeof pred === 'string' ? (e: ServerEvent) => e.type === pred : pred;
    return new Promise((resolve, reject) => {
      const hit = this.received.slice(from).find(match);
      if (hit) return resolve(hit);
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for an event; got ${this.received.map((e) => e.type).join(', ')}`));
      }, timeoutMs);
      const onAny = (e: ServerEvent): void => {
        if (!match(e)) return;
        cleanup();
        resolve(e);
      };
      const onClose = (): void => {
        cleanup();
        reject(new Error(`the link closed (${this.closeInfo?.code} ${this.closeInfo?.reason}) before the event came`));
      };
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('event', onAny);
        this.anyListeners.delete(onAny);
        this.off('close', onClose);
      };
      this.on('event', onAny);
      this.anyListeners.add(onAny);
      this.once('close', onClose);
    });
  }

  /** Closes the link (1000) and resolves with the close code and reason. */
  close(code = 1000, reason = 'bye'): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close(code, reason);
    return this.closedPromise;
  }

  get closed(): Promise<{ code: number; reason: string }> {
    return this.closedPromise;
  }

  /** waitFor also sees errors; they are delivered to these as well as to 'error' listeners. */
  private readonly anyListeners = new Set<(e: ServerEvent) => void>();

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) return;
    let frame: { type: number; payload: Buffer };
    try {
      frame = decodeFrame(data);
    } catch {
      return;
    }
    switch (frame.type) {
      case FRAME.AUDIO_OUT:
        this.emit('audio', frame.payload);
        return;
      case FRAME.EVENT: {
        const e = JSON.parse(frame.payload.toString('utf8')) as ServerEvent;
        this.received.push(e);
        this.emit('event', e);
        return;
      }
      case FRAME.ERROR: {
        const e = JSON.parse(frame.payload.toString('utf8')) as DeviceError;
        this.received.push(e as unknown as ServerEvent);
        for (const l of this.anyListeners) l(e as unknown as ServerEvent);
        // Errors are not fatal on this link: without a listener they are only recorded.
        if (this.listenerCount('error') > 0) this.emit('error', e);
        return;
      }
    }
  }
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
