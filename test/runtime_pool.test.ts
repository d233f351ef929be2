// The runtime pool in process: two runtime node servers on loopback over one native engine (the
// demo checkpoint). Placement by load with affinity, admission control (server_busy at once, by
// the pool's limit or the node's refusal), failover (a node lost mid-generate fails it promptly
// with engine_failed; the next call reopens elsewhere, length 0, and EngineContext re-prefills:
// the reply is then bit-identical to a fresh session's), DNS expansion, and the metrics.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildModelInput } from '../src/fusion/model_input.js';
import { EngineContext } from '../src/gateway/engine_context.js';
import type { RuntimeEvent, RuntimeSession } from '../src/runtime/contract.js';
import { createRuntime } from '../src/runtime/create.js';
import { NativeRuntime } from '../src/runtime/native.js';
import { RuntimeNodeServer } from '../src/runtime/node/server.js';
import type { PooledSession} from '../src/runtime/pool.js';
import { RuntimePool } from '../src/runtime/pool.js';

const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
const SECRET = 'pool-test-secret';

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => (e as { code?: string }).code,
  );
const tokensOf = (events: RuntimeEvent[]) => events.flatMap((e) => (e.type === 'token' ? [e.id] : []));
async function collect(gen: AsyncGenerator<RuntimeEvent>): Promise<RuntimeEvent[]> {
  const out: RuntimeEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

let runtime: NativeRuntime;
beforeAll(async () => {
  runtime = new NativeRuntime({ model: '', modelCache: DEMO_CACHE });
  await runtime.start();
  // Load the tokenizer now: its first load blocks the event loop for seconds.
  await buildModelInput([{ role: 'user', content: 'warm up' }]);
}, 120_000);
afterAll(async () => {
  await runtime?.close();
});

interface Nodes {
  servers: RuntimeNodeServer[];
  urls: string[];
}
const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
});

async function startNodes(n: number, maxSessions = 0): Promise<Nodes> {
  const servers: RuntimeNodeServer[] = [];
  const urls: string[] = [];
  for (let i = 0; i < n; i++) {
    const s = new RuntimeNodeServer({ runtime, secret: SECRET, maxSessions, heartbeatMs: 100 });
    urls.push((await s.listen('127.0.0.1', 0)).url);
    servers.push(s);
    cleanup.push(() => s.close());
  }
  return { servers, urls };
}

function pool(urls: string[], extra: Partial<ConstructorParameters<typeof RuntimePool>[0]> = {}): RuntimePool {
  const p = new RuntimePool({ nodes: urls, secret: SECRET, node: { heartbeatMs: 100, deadAfterMs: 600 }, ...extra });
  cleanup.push(() => p.close());
  return p;
}

const nodeOf = (s: RuntimeSession) => (s as PooledSession).nodeUrl;

describe('runtime pool', () => {
  it('spreads sessions by load and keeps each on its node', async () => {
    const { urls } = await startNodes(2);
    const p = pool(urls);
    const sessions = [];
    for (let i = 0; i < 4; i++) sessions.push(await p.open());
    const where = sessions.map(nodeOf);
    expect(where.filter((u) => u === urls[0])).toHaveLength(2);
    expect(where.filter((u) => u === urls[1])).toHaveLength(2);
    // Affinity: work on a session stays where it was placed.
    const plan = await buildModelInput([{ role: 'user', content: 'Hello there' }]);
    const ctx = new EngineContext(sessions[0]!);
    await ctx.sync(plan);
    expect(nodeOf(sessions[0]!)).toBe(where[0]);
    expect(p.stats().nodes.map((n) => n.sessions)).toEqual([2, 2]);
    sessions[0]!.close();
    sessions[2]!.close();
    expect(p.stats().sessions).toBe(2);
    // The emptier node takes the next one.
    const next = await p.open();
    expect(nodeOf(next)).toBeDefined();
    expect(p.stats().nodes.map((n) => n.sessions).sort()).toEqual([1, 2]);
    const h = await p.health(2_000);
    expect(h).toMatchObject({ reachable: true, modelLoaded: true });
    expect(h.detail).toMatch(/2 of 2 runtime nodes ready/);
    expect(await p.capabilities()).toEqual(await runtime.capabilities());
  });

  it('rejects with server_busy at once when every node is full (pool limit), and counts it', async () => {
    const { urls } = await startNodes(2);
    const registry = new Registry();
    const p = pool(urls, { maxSessionsPerNode: 1, registry });
    const a = await p.open();
    const b = await p.open();
    expect(new Set([nodeOf(a), nodeOf(b)]).size).toBe(2);
    const t0 = performance.now();
    const err = (await p.open().then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    ))!;
    expect(performance.now() - t0).toBeLessThan(100);
    expect(err).toMatchObject({ code: 'server_busy' });
    expect(err.message).toMatch(/every runtime node is full \(2 nodes, at most 1 session each\)/);
    a.close();
    const c = await p.open();
    expect(nodeOf(c)).toBe(nodeOf(a) ?? urls.find((u) => u !== nodeOf(b)));
    const text = await registry.metrics();
    expect(text).toMatch(/omni_runtime_busy_rejections_total 1/);
    expect(text).toMatch(/omni_runtime_sessions\{node="ws:\/\/127\.0\.0\.1:\d+"\} 1/);
    expect(text).toMatch(/omni_runtime_node_up\{node="ws:\/\/127\.0\.0\.1:\d+"\} 1/);
  });

  it('rejects with server_busy when the nodes refuse (their own limit)', async () => {
    const { urls } = await startNodes(2, 1);
    const p = pool(urls);
    await p.open();
    await p.open();
    expect(await codeOf(p.open())).toBe('server_busy');
  });

  it('fails a generate within 1 s when its node dies, then reopens elsewhere and re-prefills (same greedy reply)', async () => {
    const { servers, urls } = await startNodes(2);
    const registry = new Registry();
    const p = pool(urls, { registry });
    const plan = await buildModelInput([
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Tell me a very long story about the sea.' },
    ]);
    const req = { maxTokens: 24, sampling: { temperature: 0 } };
    // Reference: the same plan on a fresh in-process session.
    const ref = await runtime.open();
    await ref.append({ ids: plan.ids, positions: plan.positions });
    const expected = tokensOf(await collect(ref.generate(req)));
    ref.close();

    const s = await p.open();
    const ctx = new EngineContext(s);
    await ctx.sync(plan);
    const first = nodeOf(s)!;
    const dying = servers[urls.indexOf(first)]!;
    const events: RuntimeEvent[] = [];
    let killedAt = 0;
    const err = await (async () => {
      for await (const e of s.generate({ maxTokens: 4000, sampling: { temperature: 0 } })) {
        events.push(e);
        if (events.length === 2) {
          killedAt = performance.now();
          void dying.close();
        }
      }
    })().catch((e: unknown) => e as Error & { code: string });
    const failedAfter = performance.now() - killedAt;
    expect(err).toMatchObject({ code: 'engine_failed' });
    expect(failedAfter).toBeLessThan(1_000);
    expect(s.length).toBe(0);
    expect(nodeOf(s)).toBeUndefined();

    // The next call lands on the other node; EngineContext re-prefills the whole plan there.
    const synced = await ctx.sync(plan);
    expect(synced).toEqual({ reused: 0, prefilled: plan.length });
    expect(nodeOf(s)).toBe(urls.find((u) => u !== first));
    expect(tokensOf(await collect(s.generate(req)))).toEqual(expected);
    const text = await registry.metrics();
    expect(text).toMatch(new RegExp(`omni_runtime_failovers_total\\{node="${first.replace(/[/.]/g, '\\$&')}"\\} 1`));
    expect(text).toMatch(/omni_runtime_errors_total\{node="[^"]+",code="engine_failed"\} 1/);
    expect(text).toMatch(/omni_runtime_time_to_first_token_seconds_count\{node="[^"]+"\} [12]/);
    const down = p.stats().nodes.find((n) => n.url === first)!;
    expect(down.state).not.toBe('up');
  });

  it('answers engine_failed (not busy) when no node is reachable, and never hangs', async () => {
    const p = pool(['ws://127.0.0.1:1'], { connectTimeoutMs: 300 });
    const t0 = performance.now();
    expect(await codeOf(p.open())).toBe('engine_failed');
    expect(performance.now() - t0).toBeLessThan(2_000);
    const h = await p.health(500);
    expect(h.reachable).toBe(false);
    expect(h.detail).toMatch(/0 of 1 runtime nodes ready/);
  });

  it('expands a DNS name to one node per address', async () => {
    const { urls } = await startNodes(1);
    const port = new URL(urls[0]!).port;
    const p = pool([`ws://nodes.internal:${port}`], { resolve: () => Promise.resolve(['127.0.0.1', '::1']) });
    await p.start();
    expect(p.stats().nodes.map((n) => n.url)).toEqual([`ws://127.0.0.1:${port}`, `ws://[::1]:${port}`]);
    const s = await p.open();
    expect(nodeOf(s)).toBe(`ws://127.0.0.1:${port}`);
  });

  it('is created from settings as runtime kind pool', () => {
    const r = createRuntime({ runtime: 'pool', runtimeUrl: '', model: '', runtimeNodes: 'ws://127.0.0.1:1,ws://127.0.0.1:2', runtimeSecret: 's', nodeMaxSessions: 2 });
    cleanup.push(() => r.close());
    expect(r).toBeInstanceOf(RuntimePool);
    expect(r.kind).toBe('pool');
    expect(() => createRuntime({ runtime: 'pool', runtimeUrl: '', model: '', runtimeNodes: '' })).toThrow(/runtime-nodes/);
  });
});
