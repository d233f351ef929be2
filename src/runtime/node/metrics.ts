// Prometheus metrics of a runtime pool, per engine (node URL). The runtime does not import the
// gateway: the pool makes its metrics in its own registry (or one it is given), and the gateway can
// register them on its /metrics registry with `registerOn`.
import { Counter, Gauge, Histogram, Registry, type Metric } from 'prom-client';

export interface PoolGaugeSource {
  /** One row per node: this gateway's sessions there and the node's last load report. */
  nodeRows(): { node: string; up: boolean; sessions: number; nodeSessions: number; queueDepth: number; kvCapacityLeft: number }[];
}

const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class PoolMetrics {
  readonly registry: Registry;
  readonly up: Gauge<'node'>;
  readonly sessions: Gauge<'node'>;
  readonly nodeSessions: Gauge<'node'>;
  readonly queueDepth: Gauge<'node'>;
  readonly kvCapacityLeft: Gauge<'node'>;
  readonly timeToFirstToken: Histogram<'node'>;
  readonly timeToFirstAudio: Histogram<'node'>;
  readonly errors: Counter<'node' | 'code'>;
  readonly failovers: Counter<'node'>;
  readonly busy: Counter;

  constructor(source: PoolGaugeSource, registry?: Registry) {
    this.registry = registry ?? new Registry();
    const registers = [this.registry];
    const rows = () => source.nodeRows();
    const gauge = (name: string, help: string, pick: (r: ReturnType<typeof rows>[number]) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['node'] as const,
        registers,
        collect() {
          this.reset();
          for (const r of rows()) this.set({ node: r.node }, pick(r));
        },
      });
    this.up = gauge('omni_runtime_node_up', 'Runtime node connected and said hello (1) or not (0)', (r) => (r.up ? 1 : 0));
    this.sessions = gauge('omni_runtime_sessions', "This gateway's engine sessions on the node", (r) => r.sessions);
    this.nodeSessions = gauge('omni_runtime_node_sessions', 'Engine sessions the node reported (all gateways)', (r) => r.nodeSessions);
    this.queueDepth = gauge('omni_runtime_queue_depth', 'Generates running or waiting for decode on the node (its last load report)', (r) => r.queueDepth);
    this.kvCapacityLeft = gauge('omni_runtime_kv_capacity_left', 'KV positions the node can still hold (-1 unknown)', (r) => r.kvCapacityLeft);
    this.timeToFirstToken = new Histogram({
      name: 'omni_runtime_time_to_first_token_seconds',
      help: 'From generate to the first token event, per node',
      labelNames: ['node'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.timeToFirstAudio = new Histogram({
      name: 'omni_runtime_time_to_first_audio_seconds',
      help: 'From generate to the first audio event, per node',
      labelNames: ['node'] as const,
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.errors = new Counter({
      name: 'omni_runtime_errors_total',
      help: 'Runtime calls that failed, per node and RuntimeError code',
      labelNames: ['node', 'code'] as const,
      registers,
    });
    this.failovers = new Counter({
      name: 'omni_runtime_failovers_total',
      help: 'Sessions reopened on another node after theirs was lost, by the node lost',
      labelNames: ['node'] as const,
      registers,
    });
    this.busy = new Counter({
      name: 'omni_runtime_busy_rejections_total',
      help: 'Sessions refused with server_busy because every node was full',
      registers,
    });
  }

  private all(): Metric[] {
    return [this.up, this.sessions, this.nodeSessions, this.queueDepth, this.kvCapacityLeft, this.timeToFirstToken, this.timeToFirstAudio, this.errors, this.failovers, this.busy];
  }

  /** Also exposes these metrics on another registry (e.g. the gateway's /metrics). */
  registerOn(registry: Registry): void {
    for (const m of this.all()) if (!registry.getSingleMetric((m as unknown as { name: string }).name)) registry.registerMetric(m);
  }
}
