// The realtime WebSocket endpoints: `/v1/realtime` (OpenAI GA, or beta by header/subprotocol) and
// `/api-ws/v1/realtime` (Qwen-Omni / DashScope). The upgrade is always accepted; authentication and
// model problems are then answered like OpenAI does (one `error`, close 3000 or 4000). Each socket
// gets one RealtimeSession; this file only moves bytes: JSON in -> dialect -> session, session
// events -> dialect -> JSON out, with keepalive pings, a bounded outbound buffer and session expiry.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import type { QwenTokenizer } from '../../codecs/text/tokenizer.js';
import type { GatewayConfig } from '../../config/settings.js';
import { sharedTokenizer } from '../../fusion/model_input.js';
import type { RuntimeBackend } from '../../runtime/contract.js';
import { ApiKeys, presentedKey, type ApiKeyEntry } from '../auth/api_keys.js';
import { keepAlive, type ConnectionRegistry } from '../connections.js';
import type { GatewayMetrics } from '../metrics.js';
import type { TurnTracer } from '../tracing.js';
import { TurnTrace } from '../turn_trace.js';
import { attachSideband, type CallRegistry } from '../webrtc/index.js';
import { ClientSecrets } from './client_secrets.js';
import { clientEventId, gaDialect, parseSubprotocols, selectDialect } from './dialects/index.js';
import { newId } from './ids.js';
import { ProtocolError, type Dialect, type ServerEvent } from './model.js';
import { configuredLimits, RealtimeSession, type SessionLimits } from './session.js';

export const REALTIME_PATHS = ['/v1/realtime', '/api-ws/v1/realtime'] as const;

/** OpenAI pings about every 20 s; a peer that misses a whole interval is gone. */
export const PING_INTERVAL_MS = 20_000;
/** Outbound bytes a client may leave unread before it is closed (1013: try again later). */
export const MAX_OUTBOUND_BYTES = 32 * 1024 * 1024;

export interface RealtimeDeps {
  config: GatewayConfig;
  runtime: RuntimeBackend;
  connections: ConnectionRegistry;
  limits?: Partial<SessionLimits>;
  pingIntervalMs?: number;
  onBargeIn?: (info: { detectedAt: number; responseId: string }) => void;
  /** Every live session (for tests and metrics). */
  sessions?: Set<RealtimeSession>;
  /** Keys and their limits (default: the plain `apiKeys` list). */
  keys?: ApiKeys;
  /** Verifies ephemeral `ek_` secrets (from /v1/realtime/client_secrets). */
  clientSecrets?: ClientSecrets;
  metrics?: GatewayMetrics;
  /** OTLP export of per-turn latency spans, when configured. */
  tracer?: TurnTracer;
  /** Live WebRTC calls, for sideband sockets (`?call_id=rtc_...`). */
  calls?: CallRegistry;
}

/** `handleProtocols` for the WebSocket server: select `realtime` when offered, never the key. */
export function selectRealtimeProtocol(protocols: Set<string>): string | false {
  return protocols.has('realtime') ? 'realtime' : false;
}

export function registerRealtimeRoutes(app: FastifyInstance, deps: RealtimeDeps): void {
  const keys = deps.keys ?? ApiKeys.parse(deps.config.apiKeys);
  const models = new Set(deps.config.servedModels.split(','));
  // Loaded now: reading the vocabulary takes seconds, which must not stall the first connection.
  const tokenizer = sharedTokenizer();
  for (const path of REALTIME_PATHS) {
    app.get(path, { websocket: true }, (socket: WebSocket, request: FastifyRequest) => {
      accept(socket, request, path, { deps, keys, models, tokenizer });
    });
  }
}

interface AcceptContext {
  deps: RealtimeDeps;
  keys: ApiKeys;
  models: Set<string>;
  tokenizer: QwenTokenizer;
}

function accept(socket: WebSocket, request: FastifyRequest, path: string, ctx: AcceptContext): void {
  const { deps } = ctx;
  const protocolHeader = request.headers['sec-websocket-protocol'];
  const offered = typeof protocolHeader === 'string' ? protocolHeader : undefined;
  const sub = parseSubprotocols(offered);
  const dialect = selectDialect({ path, headers: request.headers, protocols: offered });
  const query = new URL(request.url, 'http://localhost').searchParams;

  // Event ids: a random per-connection prefix and a counter (unique without a random draw per event).
  const idPrefix = `event_${newId('event').slice(6, 14)}`;
  let n = 0;
  const write = (wire: Record<string, unknown>): void => {
    if (socket.readyState !== socket.OPEN) return;
    const { type, ...rest } = wire;
    socket.send(JSON.stringify({ type, event_id: `${idPrefix}${(++n).toString(36)}`, ...rest }));
  };
  const fatal = (error: ProtocolError, code: number): void => {
    for (const wire of dialect.render({ type: 'error', error: error.body(null) })) write(wire);
    socket.close(code, `${error.errorType}${error.code ? `.${error.code}` : ''}`);
  };

  // Authentication and model, answered after the upgrade the way OpenAI answers them. An
  // ephemeral secret is checked whenever one is presented; it may carry the session to start with.
  const key = presentedKey(request.headers, sub.apiKey);
  let secretSession: Record<string, unknown> | undefined;
  let keyEntry: ApiKeyEntry | undefined;
  if (key !== undefined && ClientSecrets.looksLike(key) && deps.clientSecrets) {
    const check = deps.clientSecrets.verify(key);
    if (!check.ok) {
      return fatal(new ProtocolError('invalid_api_key', check.reason === 'expired' ? 'The client secret has expired.' : 'Incorrect client secret provided.', null), 3000);
    }
    secretSession = check.session;
  } else if (!ctx.keys.open) {
    if (key === undefined) return fatal(new ProtocolError(null, 'Missing bearer or basic authentication in header', null), 3000);
    keyEntry = ctx.keys.find(key);
    if (!keyEntry) return fatal(new ProtocolError('invalid_api_key', 'Incorrect API key provided.', null), 3000);
  }
  if (query.has('call_id')) {
    // A sideband socket: observe and control an existing WebRTC call's session.
    const call = deps.calls?.get(query.get('call_id')!);
    if (!call) return fatal(new ProtocolError('invalid_value', `no call has id '${query.get('call_id')}'`, 'call_id'), 4000);
    return attachSideband(socket, call);
  }
  const model = query.get('model');
  if (!model) return fatal(new ProtocolError('missing_model', 'You must provide a model parameter', 'model'), 4000);
  if (!ctx.models.has(model)) {
    return fatal(new ProtocolError('invalid_model', `Model "${model}" is not served here; served models: ${[...ctx.models].join(', ')}`, 'model'), 4000);
  }

  const expiresAt = Math.floor(Date.now() / 1000) + deps.config.sessionMaxMinutes * 60;
  let config = dialect.initialConfig({ id: newId('sess'), model, expiresAt, defaultVoice: 'Cherry' });
  if (secretSession) {
    // Validated when the secret was minted (GA shape); applied before session.created.
    const command = gaDialect.parse({ type: 'session.update', session: secretSession }, config);
    if (command.type === 'session.update') config = { ...config, ...command.patch, passthrough: { ...config.passthrough, ...command.patch.passthrough } };
  }
  let releaseKey: (() => void) | undefined;
  try {
    releaseKey = keyEntry?.usage.openSession();
  } catch (err) {
    return fatal(err as ProtocolError, 1008);
  }
  const metrics = deps.metrics;
  const bargeIns = new Map<string, number>();
  const send = (event: ServerEvent): void => {
    if (metrics) observe(event);
    for (const wire of dialect.render(event)) write(wire);
    // A client that does not read cannot hold unbounded memory: close it (1013, try again later).
    // Its session is released now: the close handshake waits behind the unread bytes (ws gives
    // the peer 30 s to answer), and nothing more is written meanwhile (write() needs OPEN).
    if (socket.bufferedAmount > MAX_OUTBOUND_BYTES && socket.readyState === socket.OPEN) {
      socket.close(1013, 'client is not reading fast enough');
      release();
    }
  };
  const live: RealtimeSession = new RealtimeSession({
    config,
    runtime: deps.runtime,
    tokenizer: ctx.tokenizer,
    send,
    close: (code, reason) => socket.close(code, reason),
    limits: configuredLimits(deps.config, deps.limits),
    imagesNeedAudio: dialect.name === 'dashscope',
    onBargeIn: (info) => {
      bargeIns.set(info.responseId, info.detectedAt);
      deps.onBargeIn?.(info);
    },
    ...(keyEntry ? { keyUsage: keyEntry.usage } : {}),
    ...(metrics || deps.tracer ? { newTrace: (responseId: string, startedAt: number) => newTrace(responseId, startedAt) } : {}),
  });
  /** Metrics of what the session sends: errors by code, responses by status, barge-in stop time. */
  function observe(event: ServerEvent): void {
    if (event.type === 'error') metrics!.realtimeErrors.inc({ code: event.error.code ?? 'none' });
    else if (event.type === 'response.done') {
      metrics!.realtimeResponses.inc({ status: event.response.status });
      const detectedAt = bargeIns.get(event.response.id);
      if (detectedAt !== undefined) {
        bargeIns.delete(event.response.id);
        metrics!.bargeInStop.observe((performance.now() - detectedAt) / 1000);
      }
    }
  }
  function newTrace(responseId: string, startedAt: number): TurnTrace {
    return new TurnTrace(startedAt, (timing) => {
      if (metrics) {
        for (const [stage, ms] of Object.entries(timing.stages)) metrics.turnStage.observe({ stage }, ms / 1000);
        if (timing.firstAudioMs !== undefined) metrics.turnFirstAudio.observe(timing.firstAudioMs / 1000);
      }
      deps.tracer?.record(timing, startedAt, { sessionId: config.id, responseId, dialect: dialect.name });
    });
  }
  metrics?.realtimeSessions.inc({ dialect: dialect.name });
  deps.sessions?.add(live);
  live.start();

  socket.on('message', (data: Buffer, isBinary: boolean) => onMessage(live, dialect, data, isBinary));

  const ping = keepAlive(socket, deps.pingIntervalMs ?? PING_INTERVAL_MS);
  const expiry = setTimeout(
    () => {
      send({ type: 'error', error: new ProtocolError('session_expired', `Your session hit the maximum duration of ${deps.config.sessionMaxMinutes} minutes.`, null).body(null) });
      socket.close(1000, 'session expired');
    },
    deps.config.sessionMaxMinutes * 60_000,
  );
  deps.connections.onShutdown(socket, (reason) => {
    send({ type: 'error', error: new ProtocolError('server_shutting_down', `The server is shutting down: ${reason}`, null, 'server_error').body(null) });
    socket.close(1001, 'server shutting down');
  });
  let released = false;
  function release(): void {
    if (released) return;
    released = true;
    clearInterval(ping);
    clearTimeout(expiry);
    live.close();
    releaseKey?.();
    metrics?.realtimeSessions.dec({ dialect: dialect.name });
    deps.sessions?.delete(live);
  }
  socket.once('close', release);
}

function onMessage(session: RealtimeSession, dialect: Dialect, data: Buffer, isBinary: boolean): void {
  if (isBinary) {
    session.reject(new ProtocolError('invalid_event', 'Expected a text WebSocket message; binary frames are not supported.', null), null);
    return;
  }
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    session.reject(new ProtocolError('invalid_json', `Invalid event: failed to parse JSON value: ${(err as Error).message}`, null), null);
    return;
  }
  session.submitWith(clientEventId(value), (config) => dialect.parse(value, config));
}
