// Prometheus metrics (prom-client), one registry per gateway so tests and embedders can run
// several side by side. Route labels use the route template, never the raw URL, to keep
// cardinality bounded.
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const EVENT_LOOP_SAMPLE_MS = 10;

/** WebSocket traffic on one route in one direction, not yet added to the Prometheus counters. */
export interface WsTally {
  messages: number;
  bytes: number;
}

export class GatewayMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'omni_http_requests_total',
    help: 'HTTP requests answered, by method, route template and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'omni_http_request_duration_seconds',
    help: 'Time from request received to response sent',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly wsConnections = new Counter({
    name: 'omni_ws_connections_total',
    help: 'WebSocket connections accepted, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly wsActive = new Gauge({
    name: 'omni_ws_connections_active',
    help: 'WebSocket connections open now, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  // Every WebSocket message in and out is counted: at 200 realtime sessions that is ~20,000 a
  // second, and prom-client hashes the label set on every inc(). Sockets add to plain tallies
  // instead (`wsTally`), which these counters take in when they are collected (a scrape).
  private readonly wsTallies = new Map<string, WsTally>();

  readonly wsMessages = new Counter({
    name: 'omni_ws_messages_total',
    help: 'WebSocket messages, by route and direction (in = from client, out = to client)',
    labelNames: ['route', 'direction'] as const,
    registers: [this.registry],
    collect: () => this.flushWsTallies(),
  });

  readonly wsBytes = new Counter({
    name: 'omni_ws_message_bytes_total',
    help: 'WebSocket payload bytes, by route and direction',
    labelNames: ['route', 'direction'] as const,
    registers: [this.registry],
    collect: () => this.flushWsTallies(),
  });

  readonly eventLoopDelay = new Histogram({
    name: 'omni_event_loop_delay_seconds',
    help: `Event-loop delay: lateness of a timer due every ${EVENT_LOOP_SAMPLE_MS} ms`,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly realtimeSessions = new Gauge({
    name: 'omni_realtime_sessions_active',
    help: 'Realtime sessions open now, by dialect',
    labelNames: ['dialect'] as const,
    registers: [this.registry],
  });

  readonly realtimeResponses = new Counter({
    name: 'omni_realtime_responses_total',
    help: 'Realtime responses finished, by final status (completed, cancelled, incomplete, failed)',
    labelNames: ['status'] as const,
    registers: [this.registry],
  });

  readonly realtimeErrors = new Counter({
    name: 'omni_realtime_errors_total',
    help: 'Error events sent to realtime clients, by code',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly turnStage = new Histogram({
    name: 'omni_turn_stage_seconds',
    help: 'Per-turn latency by stage, from the end of the user turn to the first audio sent (features, fusion, queue, prefill, first_token, first_audio_chunk, encode, send)',
    labelNames: ['stage'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });

  readonly turnFirstAudio = new Histogram({
    name: 'omni_turn_first_audio_seconds',
    help: 'End of the user turn to the first audio byte handed to the client',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });

  readonly bargeInStop = new Histogram({
    name: 'omni_barge_in_stop_seconds',
    help: 'Barge-in: user speech detected to the interrupted response closed (no audio sent after the detection)',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: [this.registry],
  });

  private loopTimer: NodeJS.Timeout | undefined;

  /** The tally a socket adds its traffic to (shared by every socket of the route and direction). */
  wsTally(route: string, direction: 'in' | 'out'): WsTally {
    const key = `${direction} ${route}`;
    let tally = this.wsTallies.get(key);
    if (!tally) {
      tally = { messages: 0, bytes: 0 };
      this.wsTallies.set(key, tally);
      // The series exist from the first connection on, at 0, as they did with inc() per message.
      this.wsMessages.inc({ route, direction }, 0);
      this.wsBytes.inc({ route, direction }, 0);
    }
    return tally;
  }

  private flushWsTallies(): void {
    for (const [key, tally] of this.wsTallies) {
      if (tally.messages === 0 && tally.bytes === 0) continue;
      const space = key.indexOf(' ');
      const labels = { route: key.slice(space + 1), direction: key.slice(0, space) };
      this.wsMessages.inc(labels, tally.messages);
      this.wsBytes.inc(labels, tally.bytes);
      tally.messages = 0;
      tally.bytes = 0;
    }
  }

  constructor() {
    // Process CPU, memory, handles, GC, and Node's own event-loop lag summary gauges.
    collectDefaultMetrics({ register: this.registry });
  }

  /** Sample event-loop delay continuously until `stop()`. The timer never keeps the process alive. */
  start(): void {
    if (this.loopTimer) return;
    let due = performance.now() + EVENT_LOOP_SAMPLE_MS;
    const tick = () => {
      const now = performance.now();
      this.eventLoopDelay.observe(Math.max(0, now - due) / 1000);
      due = now + EVENT_LOOP_SAMPLE_MS;
      this.loopTimer = setTimeout(tick, EVENT_LOOP_SAMPLE_MS).unref();
    };
    this.loopTimer = setTimeout(tick, EVENT_LOOP_SAMPLE_MS).unref();
  }

  stop(): void {
    clearTimeout(this.loopTimer);
    this.loopTimer = undefined;
  }
}
