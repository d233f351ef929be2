// The gateway side of one runtime node: `NodeRuntime implements RuntimeBackend` over the binary
// WebSocket protocol of protocol.ts. One connection per node, reconnected with backoff; requests
// correlate by id; a generate's events stream back as frames. When the connection is lost (the
// node died, or missed its heartbeats) every session on it is lost at once: pending calls and
// running generates reject with RuntimeError `engine_failed`, so a pool can reopen elsewhere.
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import type { ChunkMedia, GenerateRequest, ModelChunk, RuntimeBackend, RuntimeCapabilities, RuntimeEvent, RuntimeHealth, RuntimeKind, RuntimeSession } from '../contract.js';
import { RuntimeError } from '../errors.js';
import type { FrameError } from './protocol.js';
import { sendParts } from './wire.js';
import {
  MessageType,
  PROTOCOL_VERSIONS,
  STAGING_VERSION,
  chunkPayload,
  decodeFrame,
  encodeFrameParts,
  eventOf,
  generatePayload,
  loadOf,
  mediaTensor,
  stagePayload,
  subprotocolOf,
  versionOfSubprotocol,
  wireErrorOf,
  type Frame,
  type NodeHello,
  type NodeLoad,
} from './protocol.js';

/** The contract's RuntimeKind has no 'node' yet (contract.ts is not ours to edit): see the report. */
export const NODE_KIND: RuntimeKind = 'node';

export interface NodeRuntimeOptions {
  /** ws://host:port of an `omni-gateway runtime` process. */
  url: string;
  /** Shared secret (sent as `Authorization: Bearer ...` on the upgrade). */
  secret?: string;
  /** PING interval, ms. */
  heartbeatMs?: number;
  /** The node counts as dead after this long without any frame from it, ms. */
  deadAfterMs?: number;
  /** Time limit of one connection attempt (and of open() waiting for a connection), ms. */
  connectTimeoutMs?: number;
  /** Time limit of open, truncate, capabilities and health requests, ms. */
  requestTimeoutMs?: number;
  /** Reconnect backoff bounds, ms. */
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** Largest frame accepted from the node, bytes. */
  maxPayload?: number;
  /**
   * Bytes of media one session keeps staged on the node (protocol v2, `prepare()`); the oldest
   * are unstaged beyond it. Keep it at or under the node's own bound (256 MiB by default).
   */
  stageBudgetBytes?: number;
}

/** Media smaller than this travel inline: one more round trip would cost more than the bytes. */
export const STAGE_MIN_BYTES = 64 * 1024;

export type NodeState = 'idle' | 'connecting' | 'up' | 'down' | 'closed';

interface Pending {
  resolve: (frame: Frame) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout | undefined;
}

/** Events of a generate in flight: pushed by the connection, pulled by the generator. */
class EventStream {
  private readonly items: RuntimeEvent[] = [];
  private error: Error | undefined;
  private ended = false;
  private wake: (() => void) | undefined;
  /** Session length the node reported with the last DONE / ERROR. */
  length: number | undefined;

  push(e: RuntimeEvent): void {
    this.items.push(e);
    this.wake?.();
  }
  fail(err: Error): void {
    this.error ??= err;
    this.wake?.();
  }
  end(): void {
    this.ended = true;
    this.wake?.();
  }
  async next(): Promise<RuntimeEvent | undefined> {
    for (;;) {
      if (this.items.length > 0) return this.items.shift();
      if (this.error) throw this.error;
      if (this.ended) return undefined;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** One connection to a node; replaced on reconnect (sessions die with it). */
class Link {
  readonly pending = new Map<number, Pending>();
  readonly streams = new Map<number, EventStream>();
  readonly sessions = new Set<NodeSession>();
  private nextRequest = 1;
  lastSeen = Date.now();
  /** Bytes written to the node on this connection. */
  sent = 0;
  hello: NodeHello | undefined;
  lost: Error | undefined;

  constructor(readonly ws: WebSocket) {}

  /** Negotiated protocol version (the node's choice among ours; known once the upgrade is done). */
  get version(): number {
    return versionOfSubprotocol(this.ws.protocol) ?? PROTOCOL_VERSIONS[0];
  }

  requestId(): number {
    const id = this.nextRequest;
    this.nextRequest = this.nextRequest >= 0xffff_fff0 ? 1 : this.nextRequest + 1;
    return id;
  }

  send(frame: Frame): void {
    if (this.lost) throw this.lost;
    // A zero masking key: the payload is written from the tensors' own memory (no frame buffer
    // copy, no XOR pass). The link is authenticated (wire.ts says why this is sound).
    this.sent += sendParts(this.ws, encodeFrameParts(frame, this.version), true);
  }

  request(frame: Omit<Frame, 'request'>, timeoutMs: number | undefined): Promise<Frame> {
    const request = this.requestId();
    return new Promise<Frame>((resolve, reject) => {
      const timer = timeoutMs
        ? setTimeout(() => {
            this.pending.delete(request);
            reject(new RuntimeError('engine_failed', `the runtime node did not answer within ${timeoutMs} ms`));
          }, timeoutMs)
        : undefined;
      this.pending.set(request, { resolve, reject, timer });
      try {
        this.send({ ...frame, request });
      } catch (err) {
        clearTimeout(timer);
        this.pending.delete(request);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  /** The connection is gone: everything in flight fails with `err`, every session is lost. */
  lose(err: Error): void {
    if (this.lost) return;
    this.lost = err;
    for (const s of this.sessions) s.markLost(err);
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const s of this.streams.values()) s.fail(err);
    this.streams.clear();
  }
}

export class NodeRuntime extends EventEmitter implements RuntimeBackend {
  readonly kind = NODE_KIND;
  readonly url: string;
  private readonly opts: Required<Omit<NodeRuntimeOptions, 'secret'>> & { secret: string };
  private link: Link | undefined;
  private connecting: Promise<Link> | undefined;
  private stateNow: NodeState = 'idle';
  private lastError = '';
  private reconnectTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private backoff: number;
  private caps: RuntimeCapabilities | undefined;
  /** Bytes written on connections that are gone. */
  private sentBefore = 0;
  /** Latest load the node reported (undefined before its first report). */
  load: NodeLoad | undefined;

  constructor(options: NodeRuntimeOptions) {
    super();
    this.url = options.url;
    this.opts = {
      url: options.url,
      secret: options.secret ?? '',
      heartbeatMs: options.heartbeatMs ?? 500,
      deadAfterMs: options.deadAfterMs ?? 2_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 5_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
      reconnectMinMs: options.reconnectMinMs ?? 200,
      reconnectMaxMs: options.reconnectMaxMs ?? 5_000,
      maxPayload: options.maxPayload ?? 512 * 1024 * 1024,
      stageBudgetBytes: options.stageBudgetBytes ?? 256 * 1024 * 1024,
    };
    this.backoff = this.opts.reconnectMinMs;
  }

  get state(): NodeState {
    return this.stateNow;
  }

  /** Why the node is down (last connection error), empty when up. */
  get error(): string {
    return this.lastError;
  }

  get hello(): NodeHello | undefined {
    return this.link?.hello;
  }

  /** Bytes written to the node so far (all connections). */
  get bytesSent(): number {
    return this.sentBefore + (this.link?.sent ?? 0);
  }

  /** Connects now and keeps reconnecting while not closed. */
  start(): void {
    this.connect().catch(() => undefined);
  }

  /** The live connection, connecting (or waiting for one) as needed. */
  private connect(): Promise<Link> {
    if (this.stateNow === 'closed') return Promise.reject(new RuntimeError('session_closed', 'the runtime node client is closed'));
    if (this.link && !this.link.lost && this.stateNow === 'up') return Promise.resolve(this.link);
    this.connecting ??= this.dial().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private dial(): Promise<Link> {
    clearTimeout(this.reconnectTimer);
    this.setState('connecting');
    return new Promise<Link>((resolve, reject) => {
      const ws = new WebSocket(this.url, PROTOCOL_VERSIONS.map(subprotocolOf).reverse(), {
        headers: this.opts.secret ? { authorization: `Bearer ${this.opts.secret}` } : {},
        perMessageDeflate: false,
        maxPayload: this.opts.maxPayload,
        skipUTF8Validation: true,
        handshakeTimeout: this.opts.connectTimeoutMs,
        generateMask: (mask: Buffer) => void mask.fill(0),
      });
      const link = new Link(ws);
      let settled = false;
      const timer = setTimeout(() => fail(new RuntimeError('engine_failed', `runtime node ${this.url} did not say hello within ${this.opts.connectTimeoutMs} ms`)), this.opts.connectTimeoutMs);
      const fail = (err: Error) => {
        clearTimeout(timer);
        if (!settled) {
          settled = true;
          reject(err);
        }
        ws.terminate();
        this.onLost(link, err);
      };
      ws.on('unexpected-response', (_req, res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d.slice(0, 512)));
        res.on('end', () => fail(new RuntimeError('engine_failed', `runtime node ${this.url} refused the connection: ${res.statusCode} ${body.trim()}`)));
      });
      ws.on('error', (err) => fail(new RuntimeError('engine_failed', `runtime node ${this.url}: ${err.message}`, undefined, { cause: err })));
      ws.on('close', (code, reason) => fail(new RuntimeError('engine_failed', `the connection to runtime node ${this.url} was lost (${code}${reason.length ? ` ${reason.toString()}` : ''})`)));
      ws.on('message', (data: Buffer) => {
        link.lastSeen = Date.now();
        let frame: Frame;
        try {
          frame = decodeFrame(data);
        } catch (err) {
          fail(new RuntimeError('engine_failed', `runtime node ${this.url} sent a malformed frame: ${(err as Error).message}`));
          return;
        }
        if (frame.type === MessageType.HELLO && !settled) {
          link.hello = frame.meta as unknown as NodeHello;
          settled = true;
          clearTimeout(timer);
          this.link = link;
          this.caps = undefined;
          this.lastError = '';
          this.backoff = this.opts.reconnectMinMs;
          this.startHeartbeat(link);
          this.setState('up');
          resolve(link);
          return;
        }
        this.onFrame(link, frame);
      });
    });
  }

  private startHeartbeat(link: Link): void {
    clearInterval(this.heartbeat);
    let lastTick = Date.now();
    this.heartbeat = setInterval(() => {
      if (link.lost) return;
      const now = Date.now();
      // Our own event loop stalled (a long synchronous task): the node's frames may be waiting
      // unread in the socket, so a stall is not the node's silence.
      if (now - lastTick > this.opts.heartbeatMs + this.opts.deadAfterMs / 2) link.lastSeen = Math.max(link.lastSeen, now);
      lastTick = now;
      if (now - link.lastSeen > this.opts.deadAfterMs) {
        link.ws.terminate();
        this.onLost(link, new RuntimeError('engine_failed', `runtime node ${this.url} missed its heartbeats (silent for ${Date.now() - link.lastSeen} ms)`));
        return;
      }
      try {
        link.send({ type: MessageType.PING, session: 0, request: 0, meta: { t: Date.now() }, tensors: [] });
      } catch {
        // lost meanwhile
      }
    }, this.opts.heartbeatMs);
    this.heartbeat.unref();
  }

  private onLost(link: Link, err: Error): void {
    if (link.lost) return;
    link.lose(err);
    if (this.link === link) {
      clearInterval(this.heartbeat);
      this.sentBefore += link.sent;
      this.link = undefined;
      this.load = undefined;
    }
    if (this.stateNow === 'closed') return;
    this.lastError = err.message;
    this.setState('down');
    this.emit('lost', err);
    // Reconnect with exponential backoff (the pool keeps placing elsewhere meanwhile).
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => void this.connect().catch(() => undefined), this.backoff);
    this.reconnectTimer.unref();
    this.backoff = Math.min(this.backoff * 2, this.opts.reconnectMaxMs);
  }

  private setState(state: NodeState): void {
    if (this.stateNow === state) return;
    this.stateNow = state;
    this.emit('state', state);
  }

  private onFrame(link: Link, frame: Frame): void {
    switch (frame.type) {
      case MessageType.LOAD:
        this.load = loadOf(frame.meta);
        this.emit('load', this.load);
        return;
      case MessageType.PONG:
      case MessageType.PING:
        return;
      case MessageType.OK:
      case MessageType.ERROR: {
        const stream = link.streams.get(frame.request);
        if (stream && frame.type === MessageType.ERROR) {
          const w = wireErrorOf(frame.meta);
          if (typeof frame.meta.length === 'number') stream.length = frame.meta.length;
          link.streams.delete(frame.request);
          stream.fail(new RuntimeError(w.code, w.message, w.param));
          return;
        }
        const p = link.pending.get(frame.request);
        if (!p) return;
        link.pending.delete(frame.request);
        clearTimeout(p.timer);
        if (frame.type === MessageType.OK) p.resolve(frame);
        else {
          const w = wireErrorOf(frame.meta);
          const err = new RuntimeError(w.code, w.message, w.param) as RuntimeError & { length?: number };
          if (typeof frame.meta.length === 'number') err.length = frame.meta.length;
          p.reject(err);
        }
        return;
      }
      case MessageType.TOKEN:
      case MessageType.AUDIO:
      case MessageType.DONE: {
        const stream = link.streams.get(frame.request);
        if (!stream) return;
        let e: RuntimeEvent;
        try {
          e = eventOf(frame);
        } catch (err) {
          stream.fail(new RuntimeError('engine_failed', `runtime node ${this.url} sent a bad event: ${(err as FrameError).message}`));
          link.streams.delete(frame.request);
          return;
        }
        stream.push(e);
        if (e.type === 'done') {
          if (typeof frame.meta.length === 'number') stream.length = frame.meta.length;
          link.streams.delete(frame.request);
          stream.end();
        }
        return;
      }
      default:
        return;
    }
  }

  /** Waits for a connection up to the connect timeout. */
  private async live(): Promise<Link> {
    try {
      return await this.connect();
    } catch (err) {
      if (err instanceof RuntimeError) throw err;
      throw new RuntimeError('engine_failed', `runtime node ${this.url} is not reachable: ${(err as Error).message}`, undefined, { cause: err });
    }
  }

  async health(timeoutMs: number): Promise<RuntimeHealth> {
    const deadline = new Promise<RuntimeHealth>((resolve) =>
      setTimeout(() => resolve({ reachable: false, modelLoaded: false, detail: `runtime node ${this.url} did not answer within ${timeoutMs} ms` }), timeoutMs).unref(),
    );
    const probe = (async (): Promise<RuntimeHealth> => {
      try {
        const link = await this.live();
        const reply = await link.request({ type: MessageType.HEALTH, session: 0, meta: { timeoutMs }, tensors: [] }, timeoutMs);
        return reply.meta.health as RuntimeHealth;
      } catch (err) {
        return { reachable: false, modelLoaded: false, detail: (err as Error).message };
      }
    })();
    return Promise.race([probe, deadline]);
  }

  async capabilities(): Promise<RuntimeCapabilities> {
    if (this.caps && this.stateNow === 'up') return this.caps;
    const link = await this.live();
    // The node waits for its model before answering: no timeout beyond the connection's health.
    const reply = await link.request({ type: MessageType.CAPABILITIES, session: 0, meta: {}, tensors: [] }, undefined);
    this.caps = reply.meta.capabilities as RuntimeCapabilities;
    return this.caps;
  }

  async open(options: { maxLength?: number } = {}): Promise<NodeSession> {
    const link = await this.live();
    const reply = await link.request({ type: MessageType.OPEN, session: 0, meta: options.maxLength !== undefined ? { maxLength: options.maxLength } : {}, tensors: [] }, undefined);
    const session = new NodeSession(this, link, reply.session, this.opts.requestTimeoutMs, this.opts.stageBudgetBytes);
    if (link.lost) session.markLost(link.lost);
    else link.sessions.add(session);
    return session;
  }

  close(): Promise<void> {
    this.setState('closed');
    clearTimeout(this.reconnectTimer);
    clearInterval(this.heartbeat);
    const link = this.link;
    this.link = undefined;
    if (link) {
      link.lose(new RuntimeError('session_closed', 'the runtime node client was closed'));
      link.ws.close(1000, 'gateway closing');
    }
    return Promise.resolve();
  }
}

/** A media item uploaded to the node ahead of its append. */
interface Staged {
  ref: number;
  bytes: number;
  /** Resolves true once the node holds it, false when it refused (the item then goes inline). */
  ready: Promise<boolean>;
  dropped: boolean;
}

/** An engine session on a node. `lost` once its connection is gone: every call then fails. */
export class NodeSession implements RuntimeSession {
  private len = 0;
  private cancels = 0;
  private closed = false;
  private lostError: Error | undefined;
  /** Staged media by tensor identity (the codecs' arrays: the same object in every turn's plan). */
  private readonly stagedByTensor = new WeakMap<Float32Array, Staged>();
  /** Staged media in least-recently-used order (Map keeps insertion order; use re-inserts). */
  private readonly stagedLru = new Map<number, Staged>();
  private stagedBytes = 0;
  private nextRef = 1;

  constructor(
    readonly node: NodeRuntime,
    private readonly link: Link,
    /** The node's id of the session. */
    readonly id: number,
    private readonly timeoutMs: number,
    private readonly stageBudgetBytes: number = 256 * 1024 * 1024,
  ) {}

  /** Bytes of media staged on the node for this session. */
  get staged(): number {
    return this.stagedBytes;
  }

  get length(): number {
    return this.len;
  }

  /** Whether the connection this session lived on is gone (its context is lost with it). */
  get lost(): boolean {
    return this.lostError !== undefined;
  }

  markLost(err: Error): void {
    this.lostError ??= err;
  }

  private check(): void {
    if (this.closed) throw new RuntimeError('session_closed', 'the session is closed');
    if (this.lostError) throw new RuntimeError('engine_failed', this.lostError.message, undefined, { cause: this.lostError });
  }

  private lengthFrom(err: unknown): never {
    const e = err as RuntimeError & { length?: number };
    if (typeof e.length === 'number') this.len = e.length;
    throw err;
  }

  /**
   * Uploads `media` to the node now (protocol v2), so the append that later carries it sends a
   * reference instead of its bytes: an image that arrived mid-turn leaves the turn's critical path.
   * A hint: nothing happens on a v1 node, for small items, or beyond the budget.
   */
  prepare(media: ChunkMedia): void {
    if (this.closed || this.lostError || this.link.version < STAGING_VERSION) return;
    const tensor = mediaTensor(media);
    const known = this.stagedByTensor.get(tensor);
    if ((known && !known.dropped) || tensor.byteLength < STAGE_MIN_BYTES || tensor.byteLength > this.stageBudgetBytes) return;
    // Oldest out first: the node holds at most the budget for this session.
    const unstage: number[] = [];
    for (const [ref, old] of this.stagedLru) {
      if (this.stagedBytes + tensor.byteLength <= this.stageBudgetBytes) break;
      this.drop(old);
      unstage.push(ref);
    }
    const ref = this.nextRef++;
    const { meta, tensors } = stagePayload(ref, media);
    try {
      if (unstage.length > 0) this.link.send({ type: MessageType.UNSTAGE, session: this.id, request: 0, meta: { refs: unstage }, tensors: [] });
    } catch {
      return;
    }
    const entry: Staged = { ref, bytes: tensor.byteLength, dropped: false, ready: Promise.resolve(false) };
    entry.ready = this.link.request({ type: MessageType.STAGE, session: this.id, meta, tensors }, undefined).then(
      () => !entry.dropped,
      () => {
        // Refused (over the node's bound) or lost: the item goes inline.
        this.drop(entry);
        return false;
      },
    );
    this.stagedByTensor.set(tensor, entry);
    this.stagedLru.set(ref, entry);
    this.stagedBytes += entry.bytes;
  }

  private drop(entry: Staged): void {
    if (entry.dropped) return;
    entry.dropped = true;
    this.stagedLru.delete(entry.ref);
    this.stagedBytes -= entry.bytes;
  }

  /** Refs of the chunk's media the node holds (waiting for uploads still in flight). */
  private async stagedRefs(chunk: ModelChunk): Promise<Map<ChunkMedia, number>> {
    const found: [ChunkMedia, Staged][] = [];
    for (const m of chunk.media ?? []) {
      const entry = this.stagedByTensor.get(mediaTensor(m));
      if (entry && !entry.dropped) found.push([m, entry]);
    }
    await Promise.all(found.map(([, e]) => e.ready));
    // Checked after every wait: an entry unstaged meanwhile must not be named.
    const refs = new Map<ChunkMedia, number>();
    for (const [m, entry] of found) {
      if (entry.dropped) continue;
      refs.set(m, entry.ref);
      // Used: most recently.
      this.stagedLru.delete(entry.ref);
      this.stagedLru.set(entry.ref, entry);
    }
    return refs;
  }

  async append(chunk: ModelChunk): Promise<void> {
    this.check();
    const refs = this.stagedLru.size > 0 ? await this.stagedRefs(chunk) : undefined;
    const { meta, tensors } = chunkPayload(chunk, refs && refs.size > 0 ? (m) => refs.get(m) : undefined);
    const reply = await this.link.request({ type: MessageType.APPEND, session: this.id, meta, tensors }, undefined).catch((err: unknown) => this.lengthFrom(err));
    this.len = reply.meta.length as number;
  }

  generate(request: GenerateRequest): AsyncGenerator<RuntimeEvent> {
    return this.run(request, this.cancels);
  }

  private async *run(request: GenerateRequest, cancelsAtCall: number): AsyncGenerator<RuntimeEvent> {
    this.check();
    const link = this.link;
    const id = link.requestId();
    const stream = new EventStream();
    link.streams.set(id, stream);
    let finished = false;
    try {
      link.send({ type: MessageType.GENERATE, session: this.id, request: id, meta: generatePayload(request, this.cancels !== cancelsAtCall), tensors: [] });
      for (;;) {
        let e: RuntimeEvent | undefined;
        try {
          e = await stream.next();
        } finally {
          if (stream.length !== undefined) this.len = stream.length;
        }
        if (!e) break;
        if (e.type === 'done') finished = true;
        yield e;
      }
    } finally {
      link.streams.delete(id);
      // The consumer stopped reading early: stop the node's work too.
      if (!finished && !link.lost && !this.closed) this.cancel();
    }
  }

  cancel(): void {
    this.cancels++;
    if (this.closed || this.lostError) return;
    try {
      this.link.send({ type: MessageType.CANCEL, session: this.id, request: 0, meta: {}, tensors: [] });
    } catch {
      // lost meanwhile: nothing runs there any more
    }
  }

  async truncate(length: number): Promise<void> {
    this.check();
    const reply = await this.link.request({ type: MessageType.TRUNCATE, session: this.id, meta: { length }, tensors: [] }, this.timeoutMs).catch((err: unknown) => this.lengthFrom(err));
    this.len = reply.meta.length as number;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.link.sessions.delete(this);
    if (this.lostError) return;
    try {
      this.link.send({ type: MessageType.CLOSE, session: this.id, request: 0, meta: {}, tensors: [] });
    } catch {
      // lost meanwhile
    }
  }
}
