// Assembles the Fastify application: logging, metrics, WebSocket support with connection tracking,
// health routes, and an orderly close. Transports and APIs register onto `Gateway.app`.
import { readFileSync } from 'node:fs';
import Fastify, { type FastifyInstance } from 'fastify';
import websocket from '@fastify/websocket';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { WebSocket } from 'ws';
import type { DestinationStream } from 'pino';
import { ConfigError, settingLabel } from '../config/load.js';
import type { GatewayConfig } from '../config/settings.js';
import type { RuntimeBackend } from '../runtime/contract.js';
import { ConnectionRegistry } from './connections.js';
import { registerErrorHandlers } from './errors.js';
import { registerHealthRoutes, type ReadinessState } from './health.js';
import { fastifyLogOptions } from './logger.js';
import { GatewayMetrics } from './metrics.js';
import { sharedTokenizer } from '../fusion/model_input.js';
import { ApiKeys } from './auth/api_keys.js';
import { httpAuth } from './auth/http_auth.js';
import { AllowedOrigins, registerOriginChecks } from './auth/origins.js';
import { registerDeviceRoutes } from './device/index.js';
import { CallRegistry, registerDemoRoute, registerWebRtcRoutes } from './webrtc/index.js';
import { parseIceServers } from './webrtc/wrtc_peer.js';
import { TurnTracer } from './tracing.js';
import { registerChatRoutes } from './chat/routes.js';
import { ClientSecrets, registerClientSecretRoute } from './realtime/client_secrets.js';
import type { RealtimeSession } from './realtime/session.js';
import { registerRealtimeRoutes, selectRealtimeProtocol } from './realtime/transport.js';

/** Largest WebSocket message accepted: a 15 MiB audio append, base64-encoded, plus JSON framing. */
export const MAX_WS_PAYLOAD_BYTES = 21 * 1024 * 1024;

export interface GatewayOptions {
  config: GatewayConfig;
  runtime: RuntimeBackend;
  /** Where JSON logs go (default stdout). */
  logStream?: DestinationStream;
  /** Extra routes registered after the built-in ones (embedders, tests). */
  routes?: (app: FastifyInstance, gateway: Gateway) => void | Promise<void>;
}

export interface ShutdownReport {
  /** Sessions that closed by themselves within the drain bound. */
  closed: number;
  /** Sessions cut off at the bound. */
  terminated: number;
  durationMs: number;
}

export class Gateway {
  readonly state: ReadinessState = { draining: false };
  /** Live realtime sessions (every dialect and transport). */
  readonly realtimeSessions = new Set<RealtimeSession>();
  /** Live WebRTC calls (by `rtc_` id). */
  readonly calls = new CallRegistry();
  private closing: Promise<ShutdownReport> | undefined;
  private closeReason = 'server shutting down';
  private drained = { closed: 0, terminated: 0 };

  constructor(
    readonly app: FastifyInstance,
    readonly metrics: GatewayMetrics,
    readonly connections: ConnectionRegistry,
    readonly runtime: RuntimeBackend,
    readonly config: GatewayConfig,
  ) {}

  /**
   * Graceful shutdown: readiness turns false, new connections are refused, open sessions are told
   * and given `drainTimeoutMs` to finish, then whatever is left is cut. Safe to call twice.
   */
  close(reason?: string): Promise<ShutdownReport> {
    if (reason) this.closeReason = reason;
    this.closing ??= this.doClose();
    return this.closing;
  }

  /** Run by the WebSocket plugin's preClose hook, once upgrades are no longer accepted. */
  async drainSessions(): Promise<void> {
    this.state.draining = true;
    this.drained = await this.connections.drain(this.config.drainTimeoutMs, this.closeReason);
  }

  private async doClose(): Promise<ShutdownReport> {
    const started = Date.now();
    this.state.draining = true;
    // Requests still running at the bound (long HTTP streams) are cut with their connection.
    const force = setTimeout(() => this.app.server.closeAllConnections(), this.config.drainTimeoutMs);
    try {
      await this.app.close();
    } finally {
      clearTimeout(force);
      this.metrics.stop();
      await this.runtime.close();
    }
    return { ...this.drained, durationMs: Date.now() - started };
  }
}

export async function buildGateway(options: GatewayOptions): Promise<Gateway> {
  const { config } = options;
  const app = Fastify({
    ...fastifyLogOptions(config.logLevel, options.logStream),
    ...(config.tlsCert ? { https: readTls(config) } : {}),
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as FastifyInstance;

  const metrics = new GatewayMetrics();
  const connections = new ConnectionRegistry(metrics);
  const gateway = new Gateway(app, metrics, connections, options.runtime, config);

  // Wrap every WebSocket route's handler so its sockets are counted and drained on shutdown.
  // Registered before the WebSocket plugin so it sees the handler the route author wrote.
  app.addHook('onRoute', (route) => {
    if (!route.websocket) return;
    const handler = route.handler as unknown as (this: unknown, socket: WebSocket, ...rest: unknown[]) => unknown;
    const path = route.url ?? route.path;
    route.handler = function (this: unknown, socket: WebSocket, ...rest: unknown[]) {
      connections.track(socket, path);
      return handler.call(this, socket, ...rest);
    } as unknown as typeof route.handler;
  });

  await app.register(websocket, {
    // Browsers send credentials as subprotocols and fail unless `realtime` is selected.
    options: { maxPayload: MAX_WS_PAYLOAD_BYTES, perMessageDeflate: false, handleProtocols: selectRealtimeProtocol },
    preClose: () => gateway.drainSessions(),
  });

  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const labels = { method: request.method, route };
    metrics.httpRequests.inc({ ...labels, status_code: String(reply.statusCode) });
    metrics.httpDuration.observe(labels, reply.elapsedTime / 1000);
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    done(null, payload);
  });

  registerErrorHandlers(app);
  await registerOriginChecks(app, new AllowedOrigins(config.allowedOrigins));
  registerHealthRoutes(app, options.runtime, gateway.state, config.runtimeHealthTimeoutMs);
  const clientSecrets = new ClientSecrets(config.clientSecretKey);
  let keys: ApiKeys;
  try {
    keys = ApiKeys.load(config.apiKeys, config.apiKeysFile);
  } catch (err) {
    throw new ConfigError(`invalid setting ${settingLabel('apiKeysFile')}: ${(err as Error).message}`, 'apiKeysFile');
  }
  const tracer = config.otlpEndpoint ? TurnTracer.create(config.otlpEndpoint) : undefined;
  if (tracer) app.addHook('onClose', () => tracer.close());
  let iceServers;
  try {
    iceServers = parseIceServers(config.iceServers);
  } catch (err) {
    throw new ConfigError(`invalid setting ${settingLabel('iceServers')}: ${(err as Error).message}`, 'iceServers');
  }
  const calls = registerWebRtcRoutes(app, { config, runtime: options.runtime, secrets: clientSecrets, sessions: gateway.realtimeSessions, calls: gateway.calls, iceServers });
  registerDemoRoute(app);
  registerRealtimeRoutes(app, { config, runtime: options.runtime, connections, sessions: gateway.realtimeSessions, keys, clientSecrets, metrics, calls, ...(tracer ? { tracer } : {}) });
  registerClientSecretRoute(app, config, clientSecrets, keys);
  registerDeviceRoutes(app, { config, runtime: options.runtime, connections, tokenizer: sharedTokenizer(), sessions: gateway.realtimeSessions });
  // A plugin scope, so the key check applies to these routes only (health and metrics stay open).
  await app.register((scope, _opts, done) => {
    scope.addHook('preHandler', httpAuth(keys, clientSecrets));
    registerChatRoutes(scope, { runtime: options.runtime, tokenizer: sharedTokenizer() });
    done();
  });
  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  if (options.routes) await app.register(async (scope) => options.routes?.(scope, gateway));
  metrics.start();
  return gateway;
}

function readTls(config: GatewayConfig): { cert: Buffer; key: Buffer } {
  const read = (path: string, key: 'tlsCert' | 'tlsKey') => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`invalid setting ${settingLabel(key)}: cannot read ${path}: ${(err as Error).message}`, key);
    }
  };
  return { cert: read(config.tlsCert, 'tlsCert'), key: read(config.tlsKey, 'tlsKey') };
}
