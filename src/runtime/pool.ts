// A pool of runtime nodes behind the runtime contract. Sessions are placed by load (fewest active
// sessions, then most KV capacity left, then the shortest decode queue) and stay on their node
// (affinity). Admission control: when every node is full (the configured sessions per node, or the
// node refuses) open() rejects with RuntimeError `server_busy`, at once: there is no queue. When a
// node dies, its sessions' calls fail promptly with `engine_failed`; the pooled session then
// reopens on another healthy node for the next call and reports length 0, so the gateway's
// EngineContext re-prefills the whole conversation there.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Registry } from 'prom-client';
import type { ChunkMedia, GenerateRequest, ModelChunk, RuntimeBackend, RuntimeCapabilities, RuntimeEvent, RuntimeHealth, RuntimeKind, RuntimeSession } from './contract.js';
import { RuntimeError } from './errors.js';
import { NodeRuntime, type NodeRuntimeOptions, type NodeSession, type NodeState } from './node/client.js';
import { PoolMetrics } from './node/metrics.js';
import type { NodeLoad } from './node/protocol.js';

/** The contract's RuntimeKind has no 'pool' yet (contract.ts is not ours to edit): see the report. */
export const POOL_KIND: RuntimeKind = 'pool';

export interface RuntimePoolOptions {
  /** ws:// URLs of runtime nodes; a host name that resolves to several addresses is one node per address. */
  nodes: readonly string[];
  secret?: string;
  /** Most sessions this gateway places on one node (0 = as many as the node admits). */
  maxSessionsPerNode?: number;
  /** How long open() waits for a first node to come up, ms. */
  connectTimeoutMs?: number;
  /** Re-resolve host names this often, ms (0 = never). */
  dnsRefreshMs?: number;
  /** Resolver of a host name to addresses (tests); default dns.lookup with all addresses. */
  resolve?: (host: string) => Promise<string[]>;
  /** Passed to every NodeRuntime (heartbeat, timeouts). */
  node?: Omit<NodeRuntimeOptions, 'url' | 'secret'>;
  /** Registry for the pool's metrics (default: its own; see PoolMetrics.registerOn). */
  registry?: Registry;
}

export interface PoolNodeStats {
  url: string;
  state: NodeState;
  /** Sessions this pool placed there and still holds. */
  sessions: number;
  load: NodeLoad | undefined;
  error: string;
}

export interface PoolStats {
  nodes: PoolNodeStats[];
  sessions: number;
  busyRejections: number;
  failovers: number;
}

export interface PoolMember {
  node: NodeRuntime;
  /** The configured entry it came from (for DNS refresh). */
  entry: string;
  sessions: number;
  /** Removed from DNS: takes no new sessions, dropped when empty. */
  retired: boolean;
}

const defaultResolve = async (host: string): Promise<string[]> => (await lookup(host, { all: true })).map((a) => a.address);

export class RuntimePool implements RuntimeBackend {
  readonly kind = POOL_KIND;
  readonly metrics: PoolMetrics;
  private readonly members: PoolMember[] = [];
  private readonly options: RuntimePoolOptions;
  private readonly resolve: (host: string) => Promise<string[]>;
  private rr = 0;
  private busyRejections = 0;
  private failovers = 0;
  private started: Promise<void> | undefined;
  private dnsTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private caps: RuntimeCapabilities | undefined;

  constructor(options: RuntimePoolOptions) {
    if (options.nodes.length === 0) throw new RuntimeError('backend_unsupported', 'a runtime pool needs at least one node (--runtime-nodes)');
    for (const u of options.nodes) {
      if (!/^wss?:\/\/[^\s/]+\/?$/.test(u)) throw new RuntimeError('backend_unsupported', `runtime node ${JSON.stringify(u)} is not a ws://host:port URL`);
    }
    this.options = options;
    this.resolve = options.resolve ?? defaultResolve;
    this.metrics = new PoolMetrics(
      {
        nodeRows: () =>
          this.members.map((m) => ({
            node: m.node.url,
            up: m.node.state === 'up',
            sessions: m.sessions,
            nodeSessions: m.node.load?.activeSessions ?? 0,
            queueDepth: m.node.load?.queuedDecode ?? 0,
            kvCapacityLeft: m.node.load?.kvCapacityLeft ?? -1,
          })),
      },
      options.registry,
    );
  }

  /** Resolves the node list and connects to every node (idempotent; open() and health() call it). */
  start(): Promise<void> {
    this.started ??= (async () => {
      await this.refreshMembers();
      const every = this.options.dnsRefreshMs ?? 30_000;
      if (every > 0 && this.options.nodes.some((u) => needsLookup(u))) {
        this.dnsTimer = setInterval(() => void this.refreshMembers().catch(() => undefined), every);
        this.dnsTimer.unref();
      }
    })();
    return this.started;
  }

  /** Expands the configured entries (DNS names to one node per address), adding and retiring members. */
  private async refreshMembers(): Promise<void> {
    const wanted = new Map<string, string>();
    for (const entry of this.options.nodes) {
      for (const url of await this.expand(entry)) wanted.set(url, entry);
    }
    if (this.closed) return;
    for (const [url, entry] of wanted) {
      const existing = this.members.find((m) => m.node.url === url);
      if (existing) {
        existing.retired = false;
        continue;
      }
      const node = new NodeRuntime({ ...this.options.node, url, ...(this.options.secret ? { secret: this.options.secret } : {}) });
      this.members.push({ node, entry, sessions: 0, retired: false });
      node.start();
    }
    for (const m of this.members) if (!wanted.has(m.node.url)) m.retired = true;
    for (const m of [...this.members]) {
      if (m.retired && m.sessions === 0) {
        this.members.splice(this.members.indexOf(m), 1);
        void m.node.close();
      }
    }
  }

  private async expand(entry: string): Promise<string[]> {
    const url = new URL(entry);
    if (!needsLookup(entry)) return [trimSlash(entry)];
    try {
      const addrs = [...new Set(await this.resolve(url.hostname))];
      if (addrs.length === 0) return [trimSlash(entry)];
      return addrs.map((a) => `${url.protocol}//${isIP(a) === 6 ? `[${a}]` : a}:${url.port || (url.protocol === 'wss:' ? '443' : '80')}`);
    } catch {
      // Unresolvable now: keep the name (the client reports the error; a refresh may resolve it).
      return [trimSlash(entry)];
    }
  }

  /** PoolMembers and their load, for health and metrics. */
  stats(): PoolStats {
    return {
      nodes: this.members.map((m) => ({ url: m.node.url, state: m.node.state, sessions: m.sessions, load: m.node.load, error: m.node.error })),
      sessions: this.members.reduce((n, m) => n + m.sessions, 0),
      busyRejections: this.busyRejections,
      failovers: this.failovers,
    };
  }

  async health(timeoutMs: number): Promise<RuntimeHealth> {
    const t0 = Date.now();
    try {
      await Promise.race([this.start(), new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    } catch {
      // reported below
    }
    const left = Math.max(1, timeoutMs - (Date.now() - t0));
    const probes = await Promise.all(this.members.map(async (m) => ({ m, h: await m.node.health(left) })));
    const ready = probes.filter((p) => p.h.reachable && p.h.modelLoaded);
    const reachable = probes.some((p) => p.h.reachable);
    const each = probes.map((p) => `${p.m.node.url}: ${p.h.reachable ? (p.h.modelLoaded ? `ready, ${p.m.node.load?.activeSessions ?? 0} sessions` : p.h.detail) : `down (${p.h.detail})`}`);
    const model = ready[0]?.h.model;
    return {
      reachable,
      modelLoaded: ready.length > 0,
      ...(model ? { model } : {}),
      detail: `${ready.length} of ${probes.length} runtime nodes ready; ${each.join('; ')}`,
    };
  }

  async capabilities(): Promise<RuntimeCapabilities> {
    if (this.caps) return this.caps;
    await this.start();
    const up = await this.upMembers();
    let last: unknown;
    for (const m of up) {
      try {
        this.caps = await m.node.capabilities();
        return this.caps;
      } catch (err) {
        last = err;
      }
    }
    throw last instanceof Error ? last : new RuntimeError('engine_failed', 'no runtime node is reachable');
  }

  /** PoolMembers that are up, waiting up to the connect timeout for a first one. */
  private async upMembers(): Promise<PoolMember[]> {
    const up = () => this.members.filter((m) => m.node.state === 'up' && !m.retired);
    if (up().length > 0) return up();
    const wait = this.options.connectTimeoutMs ?? 5_000;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, wait);
      timer.unref();
      const listeners = this.members.map((m) => {
        const f = (s: NodeState) => s === 'up' && done();
        m.node.on('state', f);
        return () => m.node.off('state', f);
      });
      function done() {
        clearTimeout(timer);
        for (const off of listeners) off();
        resolve();
      }
    });
    return up();
  }

  async open(options: { maxLength?: number } = {}): Promise<RuntimeSession> {
    if (this.closed) throw new RuntimeError('session_closed', 'the runtime pool is closed');
    await this.start();
    const session = new PooledSession(this, options);
    await session.place(undefined);
    return session;
  }

  /** Opens an engine session on the best node (never `avoid`); server_busy when every node is full. */
  async place(maxLength: number | undefined, avoid?: NodeRuntime): Promise<{ member: PoolMember; session: NodeSession }> {
    const live = await this.upMembers();
    // Prefer another node than the one just lost; it may be the only one back, though.
    const others = live.filter((m) => m.node !== avoid);
    const up = others.length > 0 ? others : live;
    if (up.length === 0) {
      const why = this.members.map((m) => `${m.node.url}: ${m.node.error || m.node.state}`).join('; ');
      throw new RuntimeError('engine_failed', `no runtime node is reachable (${why})`);
    }
    const limit = this.options.maxSessionsPerNode ?? 0;
    const active = (m: PoolMember) => Math.max(m.sessions, m.node.load?.activeSessions ?? 0);
    const kvLeft = (m: PoolMember) => m.node.load?.kvCapacityLeft ?? -1;
    const offset = this.rr++;
    const ranked = up
      .map((m, i) => ({ m, i: (i + offset) % up.length }))
      .sort((a, b) => active(a.m) - active(b.m) || kvLeft(b.m) - kvLeft(a.m) || (a.m.node.load?.queuedDecode ?? 0) - (b.m.node.load?.queuedDecode ?? 0) || a.i - b.i)
      .map((x) => x.m);
    let busy = 0;
    let last: unknown;
    for (const m of ranked) {
      if (limit > 0 && m.sessions >= limit) {
        busy++;
        continue;
      }
      // Count it before the round trip so concurrent opens spread too.
      m.sessions++;
      try {
        const session = await m.node.open(maxLength !== undefined ? { maxLength } : {});
        return { member: m, session };
      } catch (err) {
        m.sessions--;
        const code = (err as RuntimeError).code;
        if (code === 'server_busy') busy++;
        else this.metrics.errors.inc({ node: m.node.url, code: code ?? 'engine_failed' });
        last = err;
      }
    }
    if (busy === ranked.length) {
      this.busyRejections++;
      this.metrics.busy.inc();
      throw new RuntimeError(
        'server_busy',
        `every runtime node is full (${ranked.length} node${ranked.length === 1 ? '' : 's'}${limit > 0 ? `, at most ${limit} session${limit === 1 ? '' : 's'} each` : ''}); try again later`,
      );
    }
    throw last instanceof Error ? last : new RuntimeError('engine_failed', 'no runtime node could open a session');
  }

  /** A pooled session let go of its node session. */
  release(member: PoolMember): void {
    member.sessions = Math.max(0, member.sessions - 1);
    if (member.retired && member.sessions === 0 && this.members.includes(member)) {
      this.members.splice(this.members.indexOf(member), 1);
      void member.node.close();
    }
  }

  noteFailover(from: NodeRuntime): void {
    this.failovers++;
    this.metrics.failovers.inc({ node: from.url });
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.dnsTimer);
    await Promise.all(this.members.map((m) => m.node.close()));
  }
}

/**
 * A session of the pool: an engine session on one node (affinity) until that node is lost; then
 * `length` reads 0 and the next append / truncate / generate reopens on another node.
 */
export class PooledSession implements RuntimeSession {
  private inner: { member: PoolMember; session: NodeSession } | undefined;
  private placing: Promise<{ member: PoolMember; session: NodeSession }> | undefined;
  private cancels = 0;
  private closed = false;

  constructor(
    private readonly pool: RuntimePool,
    private readonly options: { maxLength?: number },
  ) {}

  /** The node the session lives on now (undefined after a loss, until the next call). */
  get nodeUrl(): string | undefined {
    return this.inner && !this.inner.session.lost ? this.inner.member.node.url : undefined;
  }

  get length(): number {
    return this.inner && !this.inner.session.lost ? this.inner.session.length : 0;
  }

  /** Opens on the best node (used by open(), and after a loss). */
  async place(avoid: NodeRuntime | undefined): Promise<NodeSession> {
    this.placing ??= this.pool.place(this.options.maxLength, avoid).finally(() => (this.placing = undefined));
    const placed = await this.placing;
    if (this.closed) {
      placed.session.close();
      this.pool.release(placed.member);
      throw new RuntimeError('session_closed', 'the session is closed');
    }
    this.inner = placed;
    return placed.session;
  }

  /** The live node session, reopening elsewhere when the last one was lost. */
  private async current(): Promise<NodeSession> {
    if (this.closed) throw new RuntimeError('session_closed', 'the session is closed');
    const inner = this.inner;
    if (inner && !inner.session.lost) return inner.session;
    let avoid: NodeRuntime | undefined;
    if (inner) {
      this.inner = undefined;
      avoid = inner.member.node;
      this.pool.release(inner.member);
      this.pool.noteFailover(avoid);
    }
    return this.place(avoid);
  }

  private noteError(err: unknown, node: NodeRuntime): never {
    const code = (err as RuntimeError).code ?? 'engine_failed';
    this.pool.metrics.errors.inc({ node: node.url, code });
    throw err;
  }

  async append(chunk: ModelChunk): Promise<void> {
    const s = await this.current();
    await s.append(chunk).catch((err: unknown) => this.noteError(err, s.node));
  }

  generate(request: GenerateRequest): AsyncGenerator<RuntimeEvent> {
    return this.run(request, this.cancels);
  }

  private async *run(request: GenerateRequest, cancelsAtCall: number): AsyncGenerator<RuntimeEvent> {
    const s = await this.current();
    const node = s.node.url;
    const stream = s.generate(request);
    if (this.cancels !== cancelsAtCall) s.cancel();
    const t0 = performance.now();
    let firstToken = true;
    let firstAudio = true;
    try {
      for await (const e of stream) {
        if (e.type === 'token' && firstToken) {
          firstToken = false;
          this.pool.metrics.timeToFirstToken.observe({ node }, (performance.now() - t0) / 1000);
        } else if (e.type === 'audio' && firstAudio) {
          firstAudio = false;
          this.pool.metrics.timeToFirstAudio.observe({ node }, (performance.now() - t0) / 1000);
        }
        yield e;
      }
    } catch (err) {
      this.noteError(err, s.node);
    }
  }

  prepare(media: ChunkMedia): void {
    // Only where the session lives now: a reopen elsewhere re-sends media inline.
    if (this.inner && !this.inner.session.lost) this.inner.session.prepare(media);
  }

  cancel(): void {
    this.cancels++;
    if (this.inner && !this.inner.session.lost) this.inner.session.cancel();
  }

  async truncate(length: number): Promise<void> {
    const inner = this.inner;
    // Nothing to keep on a lost node: truncating to 0 is what a reopen gives anyway.
    if (length === 0 && (!inner || inner.session.lost)) return;
    const s = await this.current();
    await s.truncate(length).catch((err: unknown) => this.noteError(err, s.node));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const inner = this.inner;
    this.inner = undefined;
    if (inner) {
      inner.session.close();
      this.pool.release(inner.member);
    }
  }
}

function needsLookup(entry: string): boolean {
  const host = new URL(entry).hostname.replace(/^\[|\]$/g, '');
  return isIP(host) === 0 && host !== 'localhost';
}

const trimSlash = (u: string): string => u.replace(/\/$/, '');
