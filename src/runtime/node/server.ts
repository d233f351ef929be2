// The runtime node server (`omni-gateway runtime`): serves one RuntimeBackend (the native engine)
// to gateways over the binary WebSocket protocol of protocol.ts. Each gateway connection owns the
// engine sessions it opened (closed when it goes away); the node admits at most `maxSessions`
// sessions over all connections, pushes its load every heartbeat, and drops a gateway it has not
// heard from for `deadAfterMs`. See docs/runtime-protocol.md.
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import type { ChunkMedia, RuntimeBackend, RuntimeSession } from '../contract.js';
import { RuntimeError } from '../errors.js';
import {
  FrameError,
  MessageType,
  PROTOCOL_VERSION,
  PROTOCOL_VERSIONS,
  STAGING_VERSION,
  chunkOf,
  decodeFrame,
  encodeFrameParts,
  eventFrame,
  generateRequestOf,
  mediaTensor,
  stagedOf,
  subprotocolOf,
  versionOfSubprotocol,
  type Frame,
  type NodeHello,
  type NodeLoad,
} from './protocol.js';
import { sendParts } from './wire.js';

export interface NodeLogger {
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

const SILENT: NodeLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface RuntimeNodeServerOptions {
  runtime: RuntimeBackend;
  /** Shared secret gateways must present (`Authorization: Bearer ...` on the upgrade); empty = none. */
  secret?: string;
  /** Most engine sessions over all gateways (0 = no limit); beyond it OPEN answers server_busy. */
  maxSessions?: number;
  /** Interval of the load report (the node's heartbeat), ms. */
  heartbeatMs?: number;
  /** A gateway silent this long (no frame, not even a PING) is dropped, ms. */
  deadAfterMs?: number;
  /** Largest frame accepted, bytes. */
  maxPayload?: number;
  /** KV positions the node can hold over all sessions (for the load report); 0 = derived, -1 = unknown. */
  kvCapacity?: number;
  nodeId?: string;
  /** Time limit of the runtime's health probe (HEALTH requests, /healthz). */
  healthTimeoutMs?: number;
  /** Bytes of staged media one session may hold (protocol v2); a STAGE beyond it is refused. */
  maxStagedBytes?: number;
  log?: NodeLogger;
}

/** Default bound of staged media per session: a few 1080p images' patches (50 MB each). */
export const DEFAULT_MAX_STAGED_BYTES = 256 * 1024 * 1024;

interface ServedSession {
  session: RuntimeSession;
  maxLength: number;
  /** Request id of the running generate, 0 when none. */
  generating: number;
  /** Media the gateway uploaded ahead of the append that uses them, by the gateway's ref. */
  staged: Map<number, ChunkMedia>;
  stagedBytes: number;
}

interface Connection {
  ws: WebSocket;
  id: string;
  /** Negotiated protocol version (every frame to this gateway carries it). */
  version: number;
  sessions: Map<number, ServedSession>;
  lastSeen: number;
}

/** Constant-time comparison of a presented secret with the configured one (hashes equalise lengths). */
export function secretMatches(presented: string, expected: string): boolean {
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

function sendFrame(conn: Pick<Connection, 'ws' | 'version'>, frame: Frame): void {
  if (conn.ws.readyState !== conn.ws.OPEN) return;
  // Tensors go out from their own memory, never copied into a frame buffer.
  sendParts(conn.ws, encodeFrameParts(frame, conn.version), false);
}

function errorMeta(err: unknown, length?: number): Record<string, unknown> {
  const e = err as Error & { code?: string; param?: string };
  const code = err instanceof RuntimeError ? err.code : err instanceof FrameError ? 'segment_invalid' : typeof e.code === 'string' ? e.code : 'engine_failed';
  return { code, message: e.message ?? String(err), ...(e.param ? { param: e.param } : {}), ...(length !== undefined ? { length } : {}) };
}

export class RuntimeNodeServer {
  readonly nodeId: string;
  private readonly runtime: RuntimeBackend;
  private readonly secret: string;
  private readonly maxSessions: number;
  private readonly heartbeatMs: number;
  private readonly deadAfterMs: number;
  private readonly maxPayload: number;
  private readonly healthTimeoutMs: number;
  private readonly maxStagedBytes: number;
  private kvCapacity: number;
  private readonly log: NodeLogger;
  private readonly connections = new Set<Connection>();
  private readonly wss: WebSocketServer;
  private readonly http: Server;
  private timer: NodeJS.Timeout | undefined;
  private nextSession = 1;
  /** Sessions open (and OPENs admitted but not yet answered) over all connections. */
  private admitted = 0;
  private modelName = '';

  constructor(options: RuntimeNodeServerOptions) {
    this.runtime = options.runtime;
    this.secret = options.secret ?? '';
    this.maxSessions = options.maxSessions ?? 0;
    this.heartbeatMs = options.heartbeatMs ?? 500;
    this.deadAfterMs = options.deadAfterMs ?? Math.max(4 * this.heartbeatMs, 2_000);
    this.maxPayload = options.maxPayload ?? 512 * 1024 * 1024;
    this.healthTimeoutMs = options.healthTimeoutMs ?? 2_000;
    this.maxStagedBytes = options.maxStagedBytes ?? DEFAULT_MAX_STAGED_BYTES;
    this.kvCapacity = options.kvCapacity ?? 0;
    this.nodeId = options.nodeId ?? randomUUID();
    this.log = options.log ?? SILENT;
    this.wss = new WebSocketServer({
      noServer: true,
      maxPayload: this.maxPayload,
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handleProtocols: (offered) => pickProtocol(offered) ?? false,
    });
    this.http = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/healthz') {
        void this.runtime.health(this.healthTimeoutMs).then((h) => {
          res.writeHead(h.reachable && h.modelLoaded ? 200 : 503, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ ...h, load: this.load }));
        });
        return;
      }
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end(`omni-gateway runtime node: connect with a WebSocket (subprotocol ${subprotocolOf(PROTOCOL_VERSION)})\n`);
    });
    this.http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  /** Listens; resolves with the bound address (port 0 picks a free port). */
  async listen(host: string, port: number): Promise<{ host: string; port: number; url: string }> {
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(port, host, () => {
        this.http.off('error', reject);
        resolve();
      });
    });
    const addr = this.http.address() as AddressInfo;
    this.timer = setInterval(() => this.tick(), this.heartbeatMs);
    this.timer.unref();
    const shown = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
    // The model name for HELLO and the derived KV capacity come from the runtime once it is loaded.
    void this.runtime.health(this.healthTimeoutMs).then((h) => (this.modelName = h.model ?? ''));
    if (this.kvCapacity === 0) {
      void this.runtime.capabilities().then(
        (c) => {
          if (this.kvCapacity === 0) this.kvCapacity = this.maxSessions > 0 ? this.maxSessions * c.maxContext : -1;
        },
        () => undefined,
      );
    }
    return { host: addr.address, port: addr.port, url: `ws://${shown}:${addr.port}` };
  }

  /** The load report pushed to gateways. */
  get load(): NodeLoad {
    let held = 0;
    let generating = 0;
    for (const c of this.connections)
      for (const s of c.sessions.values()) {
        held += s.session.length;
        if (s.generating) generating++;
      }
    const cap = this.kvCapacity > 0 ? this.kvCapacity : -1;
    return { activeSessions: this.admitted, queuedDecode: generating, maxSessions: this.maxSessions, kvCapacityLeft: cap > 0 ? Math.max(0, cap - held) : -1, kvCapacity: cap };
  }

  /** Stops listening, closes every gateway connection and its sessions (the runtime stays open). */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const c of [...this.connections]) c.ws.close(1001, 'runtime node shutting down');
    for (const c of [...this.connections]) this.drop(c);
    this.wss.close();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refuse = (status: number, text: string, message: string) => {
      socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(message)}\r\n\r\n${message}`);
    };
    if (this.secret) {
      const auth = req.headers.authorization ?? '';
      const presented = /^Bearer (.+)$/.exec(auth)?.[1] ?? '';
      if (!secretMatches(presented, this.secret)) {
        // Never log what was presented.
        this.log.warn({ remote: req.socket.remoteAddress }, 'runtime connection refused: bad or missing secret');
        refuse(401, 'Unauthorized', 'a valid runtime secret is required (Authorization: Bearer ...)\n');
        return;
      }
    }
    const offered = new Set((req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim()).filter(Boolean));
    if (!pickProtocol(offered)) {
      const speaks = PROTOCOL_VERSIONS.map(subprotocolOf).join(', ');
      this.log.warn({ remote: req.socket.remoteAddress, offered: [...offered].slice(0, 8) }, 'runtime connection refused: no common protocol version');
      refuse(400, 'Bad Request', `no common runtime protocol version; this node speaks ${speaks}\n`);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req));
  }

  private accept(ws: WebSocket, req: IncomingMessage): void {
    const version = versionOfSubprotocol(ws.protocol) ?? PROTOCOL_VERSIONS[0];
    const conn: Connection = { ws, id: randomUUID().slice(0, 8), version, sessions: new Map(), lastSeen: Date.now() };
    this.connections.add(conn);
    this.log.info({ conn: conn.id, remote: req.socket.remoteAddress, version }, 'gateway connected');
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      conn.lastSeen = Date.now();
      if (!isBinary) {
        ws.close(1003, 'binary frames only');
        return;
      }
      let frame: Frame;
      try {
        frame = decodeFrame(data);
      } catch (err) {
        this.log.warn({ conn: conn.id, err: (err as Error).message }, 'malformed frame: closing the connection');
        ws.close(1002, (err as Error).message.slice(0, 120));
        return;
      }
      this.handle(conn, frame);
    });
    ws.on('close', () => this.drop(conn));
    ws.on('error', (err) => this.log.warn({ conn: conn.id, err: err.message }, 'gateway connection error'));
    const hello: NodeHello = { version, nodeId: this.nodeId, model: this.modelName, heartbeatMs: this.heartbeatMs, maxSessions: this.maxSessions, maxPayload: this.maxPayload };
    sendFrame(conn, { type: MessageType.HELLO, session: 0, request: 0, meta: { ...hello }, tensors: [] });
    sendFrame(conn, { type: MessageType.LOAD, session: 0, request: 0, meta: { ...this.load }, tensors: [] });
  }

  /** A gateway went away: its sessions are closed (running generates are cancelled first). */
  private drop(conn: Connection): void {
    if (!this.connections.delete(conn)) return;
    for (const [id, s] of conn.sessions) this.closeSession(conn, id, s);
    this.log.info({ conn: conn.id, active: this.admitted }, 'gateway disconnected');
  }

  private closeSession(conn: Connection, id: number, s: ServedSession): void {
    if (!conn.sessions.delete(id)) return;
    this.admitted--;
    if (s.generating) s.session.cancel();
    s.session.close();
    s.staged.clear();
    this.log.info({ conn: conn.id, session: id, active: this.admitted }, 'session closed');
  }

  private lastTick = Date.now();

  private tick(): void {
    const now = Date.now();
    // A stall of our own event loop is not the gateways' silence: their frames may wait unread.
    const stalled = now - this.lastTick > this.heartbeatMs + this.deadAfterMs / 2;
    this.lastTick = now;
    const load = this.load;
    for (const c of [...this.connections]) {
      if (stalled) c.lastSeen = Math.max(c.lastSeen, now);
      if (now - c.lastSeen > this.deadAfterMs) {
        this.log.warn({ conn: c.id, silentMs: now - c.lastSeen }, 'gateway missed its heartbeats: dropping it');
        c.ws.terminate();
        this.drop(c);
        continue;
      }
      sendFrame(c, { type: MessageType.LOAD, session: 0, request: 0, meta: { ...load }, tensors: [] });
    }
  }

  private reply(conn: Connection, frame: Frame, meta: Record<string, unknown>): void {
    sendFrame(conn, { type: MessageType.OK, session: frame.session, request: frame.request, meta, tensors: [] });
  }

  private fail(conn: Connection, frame: Frame, err: unknown, length?: number): void {
    sendFrame(conn, { type: MessageType.ERROR, session: frame.session, request: frame.request, meta: errorMeta(err, length), tensors: [] });
  }

  private served(conn: Connection, frame: Frame): ServedSession {
    const s = conn.sessions.get(frame.session);
    if (!s) throw new RuntimeError('session_closed', `no session ${frame.session} on this connection`, 'session');
    return s;
  }

  private handle(conn: Connection, frame: Frame): void {
    const run = (work: () => Promise<Record<string, unknown>>, length?: () => number | undefined) => {
      work().then(
        (meta) => this.reply(conn, frame, meta),
        (err: unknown) => this.fail(conn, frame, err, length?.()),
      );
    };
    switch (frame.type) {
      case MessageType.PING:
        sendFrame(conn, { type: MessageType.PONG, session: 0, request: frame.request, meta: frame.meta, tensors: [] });
        return;
      case MessageType.OPEN:
        return this.open(conn, frame);
      case MessageType.APPEND: {
        let s: ServedSession | undefined;
        return run(
          async () => {
            s = this.served(conn, frame);
            const held = s.staged;
            await s.session.append(chunkOf(frame, (ref) => held.get(ref)));
            return { length: s.session.length };
          },
          () => s?.session.length,
        );
      }
      case MessageType.TRUNCATE: {
        let s: ServedSession | undefined;
        return run(
          async () => {
            s = this.served(conn, frame);
            const length = frame.meta.length;
            if (typeof length !== 'number') throw new RuntimeError('segment_invalid', 'truncate needs a length', 'length');
            await s.session.truncate(length);
            return { length: s.session.length };
          },
          () => s?.session.length,
        );
      }
      case MessageType.CLOSE: {
        const s = conn.sessions.get(frame.session);
        if (s) this.closeSession(conn, frame.session, s);
        if (frame.request) this.reply(conn, frame, {});
        return;
      }
      case MessageType.CANCEL:
        conn.sessions.get(frame.session)?.session.cancel();
        return;
      case MessageType.STAGE:
        return run(() => Promise.resolve().then(() => this.stage(conn, frame)));
      case MessageType.UNSTAGE: {
        const s = conn.sessions.get(frame.session);
        const refs = Array.isArray(frame.meta.refs) ? (frame.meta.refs as unknown[]) : [];
        for (const ref of refs) {
          const m = typeof ref === 'number' ? s?.staged.get(ref) : undefined;
          if (!m || !s) continue;
          s.staged.delete(ref as number);
          s.stagedBytes -= mediaTensor(m).byteLength;
        }
        return;
      }
      case MessageType.GENERATE:
        return this.generate(conn, frame);
      case MessageType.CAPABILITIES:
        return run(async () => ({ capabilities: await this.runtime.capabilities() }));
      case MessageType.HEALTH:
        return run(async () => ({ health: await this.runtime.health(typeof frame.meta.timeoutMs === 'number' ? Math.min(frame.meta.timeoutMs, 60_000) : this.healthTimeoutMs), load: this.load }));
      case MessageType.PONG:
        return;
      default:
        this.fail(conn, frame, new RuntimeError('segment_invalid', `a node does not take ${frame.type} frames`));
    }
  }

  private open(conn: Connection, frame: Frame): void {
    if (this.maxSessions > 0 && this.admitted >= this.maxSessions) {
      this.fail(conn, frame, new RuntimeError('server_busy', `this runtime node is full (${this.admitted} of ${this.maxSessions} sessions); try another node or later`));
      return;
    }
    const maxLength = frame.meta.maxLength;
    if (maxLength !== undefined && (typeof maxLength !== 'number' || !Number.isSafeInteger(maxLength) || maxLength < 1)) {
      this.fail(conn, frame, new RuntimeError('segment_invalid', 'maxLength must be a positive integer', 'maxLength'));
      return;
    }
    this.admitted++;
    this.runtime.open(maxLength !== undefined ? { maxLength } : {}).then(
      (session) => {
        if (!this.connections.has(conn)) {
          // The gateway left while the engine opened the session.
          this.admitted--;
          session.close();
          return;
        }
        const id = this.nextSession++;
        conn.sessions.set(id, { session, maxLength: maxLength ?? 0, generating: 0, staged: new Map(), stagedBytes: 0 });
        this.log.info({ conn: conn.id, session: id, active: this.admitted }, 'session opened');
        sendFrame(conn, { type: MessageType.OK, session: id, request: frame.request, meta: { length: session.length }, tensors: [] });
      },
      (err: unknown) => {
        this.admitted--;
        this.fail(conn, frame, err);
      },
    );
  }

  /**
   * STAGE (v2): keeps a media item for a later APPEND of the same session to name by ref, so the
   * turn's append carries only ids and positions. Bounded per session; the gateway unstages.
   */
  private stage(conn: Connection, frame: Frame): Record<string, unknown> {
    if (conn.version < STAGING_VERSION) throw new RuntimeError('segment_invalid', `STAGE needs protocol version ${STAGING_VERSION}; this connection speaks ${conn.version}`);
    const s = this.served(conn, frame);
    const { ref, media } = stagedOf(frame);
    const old = s.staged.get(ref);
    const bytes = mediaTensor(media).byteLength;
    const after = s.stagedBytes - (old ? mediaTensor(old).byteLength : 0) + bytes;
    if (after > this.maxStagedBytes) {
      throw new RuntimeError('segment_invalid', `staged media would take ${after} bytes in this session; the node holds at most ${this.maxStagedBytes} (unstage some first)`, 'ref');
    }
    s.staged.set(ref, media);
    s.stagedBytes = after;
    return { stagedBytes: after };
  }

  private generate(conn: Connection, frame: Frame): void {
    let s: ServedSession;
    let parsed: ReturnType<typeof generateRequestOf>;
    try {
      s = this.served(conn, frame);
      parsed = generateRequestOf(frame.meta);
    } catch (err) {
      this.fail(conn, frame, err);
      return;
    }
    const stream = s.session.generate(parsed.request);
    // A cancel the gateway made after calling generate but before the stream started.
    if (parsed.cancelled) s.session.cancel();
    const request = frame.request;
    if (!s.generating) s.generating = request;
    void (async () => {
      try {
        for await (const e of stream) {
          if (conn.ws.readyState !== conn.ws.OPEN) {
            s.session.cancel();
            continue;
          }
          sendFrame(conn, eventFrame(frame.session, request, e, s.session.length));
        }
      } catch (err) {
        this.fail(conn, frame, err, s.session.length);
      } finally {
        if (s.generating === request) s.generating = 0;
      }
    })();
  }
}

function pickProtocol(offered: Set<string>): string | undefined {
  let best: number | undefined;
  for (const p of offered) {
    const v = versionOfSubprotocol(p);
    if (v !== undefined && (PROTOCOL_VERSIONS as readonly number[]).includes(v) && (best === undefined || v > best)) best = v;
  }
  return best === undefined ? undefined : subprotocolOf(best);
}

