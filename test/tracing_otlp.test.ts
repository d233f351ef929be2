// Turn latency spans reach an OTLP/HTTP collector: a `realtime.turn` span with one child per
// stage, laid end to end in stage order, with the session and response ids.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { TurnTracer } from '../src/gateway/tracing.js';
import { TurnTrace } from '../src/gateway/turn_trace.js';

interface OtlpSpan {
  name: string;
  spanId: string;
  parentSpanId?: string;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string } }[];
}

describe('OTLP turn spans', () => {
  it('exports the turn and its stages to the collector', async () => {
    const bodies: unknown[] = [];
    const server = createServer((req, res) => {
      let data = '';
      req.on('data', (c: Buffer) => (data += c.toString('utf8')));
      req.on('end', () => {
        bodies.push(JSON.parse(data));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const tracer = TurnTracer.create(`http://127.0.0.1:${port}/v1/traces`);
    const t0 = 1000;
    const trace = new TurnTrace(t0);
    trace.mark('features', t0 + 2);
    trace.mark('fusion', t0 + 5);
    trace.mark('prefill', t0 + 40);
    trace.mark('first_token', t0 + 55);
    trace.mark('first_audio_chunk', t0 + 90);
    trace.mark('send', t0 + 91);
    tracer.record(trace.finish(), t0, { sessionId: 'sess_1', responseId: 'resp_1', dialect: 'ga' });
    await tracer.flush();
    await tracer.close();
    server.close();
    const spans = (bodies as { resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[] }[]).flatMap((b) => b.resourceSpans.flatMap((r) => r.scopeSpans.flatMap((s) => s.spans)));
    const root = spans.find((s) => s.name === 'realtime.turn')!;
    expect(root.attributes).toContainEqual({ key: 'omni.response_id', value: { stringValue: 'resp_1' } });
    const children = spans.filter((s) => s.parentSpanId === root.spanId);
    expect(children.map((s) => s.name)).toEqual(['turn.features', 'turn.fusion', 'turn.prefill', 'turn.first_token', 'turn.first_audio_chunk', 'turn.send']);
    const ms = (ns: string): number => Number(BigInt(ns) / 1000n) / 1000;
    expect(ms(children[2]!.endTimeUnixNano) - ms(children[2]!.startTimeUnixNano)).toBeCloseTo(35, 0);
    expect(ms(root.endTimeUnixNano) - ms(root.startTimeUnixNano)).toBeCloseTo(91, 0);
  });
});
