// Per-turn latency as OpenTelemetry spans, exported over OTLP/HTTP when `--otlp-endpoint` is set:
// one `realtime.turn` span from the end of the user's turn to the first audio sent, with a child
// span per stage (features, fusion, queue, prefill, first_token, first_audio_chunk, encode, send),
// the same split the Prometheus histograms show. Without an endpoint nothing is recorded.
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { context, trace, type Span, type Tracer } from '@opentelemetry/api';
import { performance } from 'node:perf_hooks';
import { TURN_STAGES, type TurnTiming } from './turn_trace.js';

export interface TurnSpanInfo {
  sessionId: string;
  responseId: string;
  dialect: string;
}

export class TurnTracer {
  private constructor(
    private readonly provider: BasicTracerProvider,
    private readonly tracer: Tracer,
  ) {}

  /** A tracer exporting to `endpoint` (the OTLP/HTTP traces URL, e.g. http://collector:4318/v1/traces). */
  static create(endpoint: string, serviceName = 'omni-gateway'): TurnTracer {
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': serviceName }),
      spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter({ url: endpoint }), { scheduledDelayMillis: 1000 })],
    });
    return new TurnTracer(provider, provider.getTracer('omni-gateway.turns'));
  }

  /** Records one finished turn; `startedAt` is the turn's start on performance.now()'s clock. */
  record(timing: TurnTiming, startedAt: number, info: TurnSpanInfo): void {
    const toEpoch = (t: number): number => performance.timeOrigin + t;
    const root = this.tracer.startSpan('realtime.turn', {
      startTime: toEpoch(startedAt),
      attributes: {
        'omni.session_id': info.sessionId,
        'omni.response_id': info.responseId,
        'omni.dialect': info.dialect,
        ...(timing.firstAudioMs !== undefined ? { 'omni.first_audio_ms': timing.firstAudioMs } : {}),
      },
    });
    let at = startedAt;
    for (const stage of TURN_STAGES) {
      const ms = timing.stages[stage];
      if (ms === undefined) continue;
      const child = this.tracer.startSpan(`turn.${stage}`, { startTime: toEpoch(at) }, traceContext(root));
      at += ms;
      child.end(toEpoch(at));
    }
    root.end(toEpoch(startedAt + timing.totalMs));
  }

  async flush(): Promise<void> {
    await this.provider.forceFlush();
  }

  async close(): Promise<void> {
    await this.provider.shutdown();
  }
}

const traceContext = (parent: Span) => trace.setSpan(context.active(), parent);
