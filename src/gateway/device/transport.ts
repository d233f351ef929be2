// `GET /v1/device`: the embedded-device link (docs/device-protocol.md). Binary WebSocket messages
// only, one frame each (framing.ts); a HELLO negotiates version, model, key and audio codecs, then
// one RealtimeSession runs behind the link exactly as behind `/v1/realtime`: JSON control events in
// the GA dialect's names, but audio and camera frames as raw bytes. Every malformed frame is
// answered with one ERROR frame (code, message, param = the offending field) and the link stays
// up; only authentication (3000), a missing hello (4000), a peer that does not read (1013) and the
// session's own ends (1000, 1001, 1011) close it.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { QwenTokenizer } from '../../codecs/text/tokenizer.js';
import type { GatewayConfig } from '../../config/settings.js';
import type { RuntimeBackend } from '../../runtime/contract.js';
import { ApiKeys, presentedKey } from '../auth/api_keys.js';
import type { ConnectionRegistry } from '../connections.js';
import { clientEventId, gaDialect } from '../realtime/dialects/index.js';
import { newId } from '../realtime/ids.js';
import { ProtocolError, type ServerEvent, type SessionConfig } from '../realtime/model.js';
import { configuredLimits, RealtimeSession, type SessionLimits } from '../realtime/session.js';
import { DeviceAudioInput, DeviceAudioOutput } from './audio.js';
import { DEFAULT_MAX_FRAME_BYTES, encodeFrame, FrameType, frameTypeName, parseDeviceFrame } from './framing.js';
import { DEVICE_PROTOCOL_VERSION, parseHello, renderDeviceFormat, type DeviceHello } from './hello.js';
import { keepAlive } from '../connections.js';

export const DEVICE_PATH = '/v1/device';
/** Unread outbound bytes before the link is closed 1013 (about 20 s of 24 kHz PCM16, minutes of Opus). */
export const DEVICE_MAX_OUTBOUND_BYTES = 1024 * 1024;
/** Time a connected device has to send a valid HELLO. */
export const DEVICE_HELLO_TIMEOUT_MS = 10_000;
export const DEVICE_PING_INTERVAL_MS = 20_000;

export const DEVICE_CLOSE = {
  normal: 1000,
  goingAway: 1001,
  internalError: 1011,
  tryAgainLater: 1013,
  auth: 3000,
  hello: 4000,
} as const;

export interface DeviceDeps {
  config: GatewayConfig;
  runtime: RuntimeBackend;
  connections: ConnectionRegistry;
  tokenizer: QwenTokenizer;
  /** Largest frame accepted, header included (default 1 MiB). */
  maxFrameBytes?: number;
  /** Unread outbound bytes before the link is closed 1013 (default 1 MiB). */
  maxOutboundBytes?: number;
  helloTimeoutMs?: number;
  pingIntervalMs?: number;
  limits?: Partial<SessionLimits>;
  /** Every live session (e.g. `Gateway.realtimeSessions`). */
  sessions?: Set<RealtimeSession>;
  /** Route path (default `/v1/device`; tests mount variants with other bounds). */
  path?: string;
}

export function registerDeviceRoutes(app: FastifyInstance, deps: DeviceDeps): void {
  const keys = ApiKeys.parse(deps.config.apiKeys);
  const models = deps.config.servedModels
    .split(',')
    .map((m) => m.trim())
    .filter(Boolean);
  app.get(deps.path ?? DEVICE_PATH, { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
    new DeviceLink(socket, request, deps, keys, models);
  });
}

/** Client events that carry media as base64: on this link media travel as frames. */
const MEDIA_EVENTS: Record<string, string> = {
  'input_audio_buffer.append': 'AUDIO_IN (0x04)',
  'input_image_buffer.append': 'JPEG (0x06)',
};

class DeviceLink {
  private session: RealtimeSession | undefined;
  private audioIn: DeviceAudioInput | undefined;
  private audioOut: DeviceAudioOutput | undefined;
  private hello: DeviceHello | undefined;
  private sent = 0;
  private released = false;
  private readonly maxFrameBytes: number;
  private readonly maxOutboundBytes: number;
  private readonly helloTimer: NodeJS.Timeout;
  private ping: NodeJS.Timeout | undefined;
  private expiry: NodeJS.Timeout | undefined;
  private readonly headerKey: string | undefined;

  constructor(
    private readonly socket: WebSocket,
    request: FastifyRequest,
    private readonly deps: DeviceDeps,
    private readonly keys: ApiKeys,
    private readonly models: string[],
  ) {
    this.maxFrameBytes = deps.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.maxOutboundBytes = deps.maxOutboundBytes ?? DEVICE_MAX_OUTBOUND_BYTES;
    this.headerKey = presentedKey(request.headers);
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => this.onMessage(toBuffer(data), isBinary));
    socket.once('close', () => this.release());
    deps.connections.onShutdown(socket, (reason) => {
      this.sendError(new ProtocolError('server_shutting_down', `The server is shutting down: ${reason}`, null, 'server_error'), null);
      socket.close(DEVICE_CLOSE.goingAway, 'server shutting down');
    });
    this.helloTimer = setTimeout(() => {
      this.fatal(new ProtocolError('hello_timeout', `no valid HELLO frame within ${this.helloTimeoutMs} ms`, 'hello'), DEVICE_CLOSE.hello);
    }, this.helloTimeoutMs);
    // A wrong header key is refused now; a missing one may still come in the hello.
    if (!keys.open && this.headerKey !== undefined && !keys.accepts(this.headerKey)) {
      this.fatal(new ProtocolError('invalid_api_key', 'Incorrect API key provided.', null), DEVICE_CLOSE.auth);
    }
  }

  private get helloTimeoutMs(): number {
    return this.deps.helloTimeoutMs ?? DEVICE_HELLO_TIMEOUT_MS;
  }

  // ------------------------------------------------------------------------------------------
  // Inbound

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (this.released) return;
    if (!isBinary) {
      return this.refuse(new ProtocolError('invalid_event', 'Expected a binary WebSocket message; the device link carries binary frames only.', 'frame'));
    }
    const parsed = parseDeviceFrame(data, this.maxFrameBytes);
    if (!parsed.ok) return this.refuse(new ProtocolError(parsed.error.code, parsed.error.message, parsed.error.param));
    const { type, payload } = parsed.frame;
    if (type === FrameType.HELLO) return this.onHello(payload);
    const session = this.session;
    if (!session) {
      return this.refuse(new ProtocolError('hello_required', `the first frame must be HELLO (0x01); got ${frameTypeName(type)}`, 'frame.type'));
    }
    switch (type) {
      case FrameType.EVENT:
        return this.onEvent(session, payload);
      case FrameType.AUDIO_IN: {
        let audio: Buffer;
        try {
          audio = this.audioIn!.convert(payload);
        } catch (err) {
          return session.reject(asProtocolError(err), null);
        }
        return session.submit({ type: 'input_audio_buffer.append', audio, eventId: null });
      }
      case FrameType.JPEG:
        if (payload.length < 3 || payload[0] !== 0xff || payload[1] !== 0xd8 || payload[2] !== 0xff) {
          return session.reject(new ProtocolError('invalid_image', 'a JPEG frame starts with the SOI marker FF D8 FF', 'payload'), null);
        }
        return session.submit({ type: 'input_image_buffer.append', image: Buffer.from(payload), eventId: null });
      default:
        // WELCOME, AUDIO_OUT and ERROR are refused by the parser; nothing else reaches here.
        return session.reject(new ProtocolError('unexpected_frame_type', `frame type ${frameTypeName(type)} is not sent by devices`, 'frame.type'), null);
    }
  }

  /** An error for a frame: in queue order once a session runs (after what earlier frames caused). */
  private refuse(error: ProtocolError): void {
    if (this.session) this.session.reject(error, null);
    else this.sendError(error, null);
  }

  private onEvent(session: RealtimeSession, payload: Buffer): void {
    let value: unknown;
    try {
      value = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return session.reject(new ProtocolError('invalid_json', `Invalid event: failed to parse JSON value: ${(err as Error).message}`, 'payload'), null);
    }
    session.submitWith(clientEventId(value), (config) => {
      checkDeviceEvent(value);
      return gaDialect.parse(value, config);
    });
  }

  private onHello(payload: Buffer): void {
    if (this.session) {
      return this.session.reject(new ProtocolError('unexpected_hello', 'the link already said HELLO; reconnect to change its formats', 'frame.type'), null);
    }
    let hello: DeviceHello;
    try {
      hello = parseHello(payload);
    } catch (err) {
      return this.sendError(asProtocolError(err), null);
    }
    if (!this.keys.open) {
      const key = this.headerKey ?? hello.key;
      if (key === undefined) {
        return this.fatal(new ProtocolError(null, 'Missing bearer authentication in header (or hello.key)', null), DEVICE_CLOSE.auth);
      }
      if (!this.keys.accepts(key)) return this.fatal(new ProtocolError('invalid_api_key', 'Incorrect API key provided.', null), DEVICE_CLOSE.auth);
    }
    const model = hello.model ?? this.models[0];
    if (model === undefined || !this.models.includes(model)) {
      return this.sendError(new ProtocolError('invalid_model', `Model "${model}" is not served here; served models: ${this.models.join(', ')}`, 'hello.model'), null);
    }
    clearTimeout(this.helloTimer);
    this.hello = hello;
    this.open(hello, model);
  }

  // ------------------------------------------------------------------------------------------
  // Session

  private open(hello: DeviceHello, model: string): void {
    const { deps } = this;
    this.audioIn = new DeviceAudioInput(hello.audioIn);
    this.audioOut = new DeviceAudioOutput(hello.audioOut);
    const expiresAt = Math.floor(Date.now() / 1000) + deps.config.sessionMaxMinutes * 60;
    const base = gaDialect.initialConfig({ id: newId('sess'), model, expiresAt, defaultVoice: 'Cherry' });
    const config: SessionConfig = { ...base, inputFormat: this.audioIn.sessionFormat, outputFormat: this.audioOut.sessionFormat };
    const session = new RealtimeSession({
      config,
      runtime: deps.runtime,
      tokenizer: deps.tokenizer,
      send: (event) => this.onServerEvent(event),
      close: (code, reason) => this.socket.close(code, reason),
      limits: configuredLimits(deps.config, deps.limits),
    });
    this.session = session;
    deps.sessions?.add(session);
    this.sendFrame(
      FrameType.WELCOME,
      json({
        type: 'welcome',
        version: DEVICE_PROTOCOL_VERSION,
        session_id: config.id,
        model,
        audio_in: renderDeviceFormat(hello.audioIn),
        audio_out: { ...renderDeviceFormat(hello.audioOut), ...(hello.audioOut.codec === 'opus' ? { frame_ms: hello.audioOut.frameMs, bitrate: hello.audioOut.bitrate } : {}) },
        limits: { max_frame_bytes: this.maxFrameBytes, max_outbound_bytes: this.maxOutboundBytes, ping_interval_ms: this.pingIntervalMs },
        expires_at: expiresAt,
      }),
    );
    session.start();

    this.ping = keepAlive(this.socket, this.pingIntervalMs);
    this.expiry = setTimeout(() => {
      this.sendError(new ProtocolError('session_expired', `Your session hit the maximum duration of ${deps.config.sessionMaxMinutes} minutes.`, null), null);
      this.socket.close(DEVICE_CLOSE.normal, 'session expired');
    }, deps.config.sessionMaxMinutes * 60_000);
  }

  private get pingIntervalMs(): number {
    return this.deps.pingIntervalMs ?? DEVICE_PING_INTERVAL_MS;
  }

  // ------------------------------------------------------------------------------------------
  // Outbound

  private onServerEvent(event: ServerEvent): void {
    if (event.type === 'response.output_audio.delta') {
      for (const packet of this.audioOut!.push(event.audio)) this.sendFrame(FrameType.AUDIO_OUT, packet);
      return;
    }
    if (event.type === 'response.output_audio.done') {
      for (const packet of this.audioOut!.end()) this.sendFrame(FrameType.AUDIO_OUT, packet);
    }
    for (const wire of gaDialect.render(event)) {
      if ((wire.type === 'session.created' || wire.type === 'session.updated') && this.hello) showDeviceFormats(wire, this.hello);
      this.sendFrame(event.type === 'error' ? FrameType.ERROR : FrameType.EVENT, json(this.stamp(wire)));
    }
  }

  private sendError(error: ProtocolError, eventId: string | null): void {
    for (const wire of gaDialect.render({ type: 'error', error: error.body(eventId) })) this.sendFrame(FrameType.ERROR, json(this.stamp(wire)));
  }

  private stamp(wire: Record<string, unknown>): Record<string, unknown> {
    const { type, ...rest } = wire;
    return { type, event_id: `event_${(++this.sent).toString(36)}${newId('event').slice(6, 14)}`, ...rest };
  }

  private sendFrame(type: number, payload: Uint8Array): void {
    const socket = this.socket;
    if (socket.readyState !== socket.OPEN) return;
    socket.send(encodeFrame(type, payload), { binary: true });
    // A device that does not read cannot hold unbounded memory: close it (1013, try again later)
    // and release its session now; nothing more is written (sendFrame needs OPEN).
    if (socket.bufferedAmount > this.maxOutboundBytes) {
      socket.close(DEVICE_CLOSE.tryAgainLater, 'device is not reading fast enough');
      this.release();
    }
  }

  private fatal(error: ProtocolError, code: number): void {
    this.sendError(error, null);
    this.socket.close(code, `${error.errorType}${error.code ? `.${error.code}` : ''}`);
    this.release();
  }

  private release(): void {
    if (this.released) return;
    this.released = true;
    clearTimeout(this.helloTimer);
    clearInterval(this.ping);
    clearTimeout(this.expiry);
    if (this.session) {
      this.session.close();
      this.deps.sessions?.delete(this.session);
    }
  }
}

/** Device-link rules on top of the GA grammar: media travel as frames, formats come from the hello. */
function checkDeviceEvent(value: unknown): void {
  if (!isObject(value)) return;
  const frame = typeof value.type === 'string' ? MEDIA_EVENTS[value.type] : undefined;
  if (frame) throw new ProtocolError('use_binary_frame', `on the device link, ${String(value.type)} is sent as ${frame} frames, never base64`, 'type');
  if (value.type === 'session.update' && isObject(value.session) && isObject(value.session.audio)) {
    for (const dir of ['input', 'output'] as const) {
      const d = value.session.audio[dir];
      if (isObject(d) && d.format !== undefined) throw formatFixed(`session.audio.${dir}.format`);
    }
  }
  if (value.type === 'response.create' && isObject(value.response) && isObject(value.response.audio)) {
    const out = value.response.audio.output;
    if (isObject(out) && out.format !== undefined) throw formatFixed('response.audio.output.format');
  }
}

function formatFixed(param: string): ProtocolError {
  return new ProtocolError('invalid_value', `the device link's audio formats are fixed by its HELLO; reconnect to change ${param}`, param);
}

/** session.created/updated show the formats on the wire (Opus included), not the PCM inside. */
function showDeviceFormats(wire: Record<string, unknown>, hello: DeviceHello): void {
  const audio = (wire.session as { audio?: { input?: Record<string, unknown>; output?: Record<string, unknown> } } | undefined)?.audio;
  if (audio?.input) audio.input.format = renderDeviceFormat(hello.audioIn);
  if (audio?.output) audio.output.format = renderDeviceFormat(hello.audioOut);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function json(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

function asProtocolError(err: unknown): ProtocolError {
  if (err instanceof ProtocolError) return err;
  return new ProtocolError('server_error', (err as Error).message, null, 'server_error');
}

function toBuffer(data: Buffer | ArrayBuffer | Buffer[]): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}
