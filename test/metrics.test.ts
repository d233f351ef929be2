import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.gateway.close();
  gw = undefined;
});

async function scrape(url: string): Promise<{ text: string; contentType: string | null }> {
  const res = await fetch(`${url}/metrics`);
  expect(res.status).toBe(200);
  return { text: await res.text(), contentType: res.headers.get('content-type') };
}

function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return undefined;
}

describe('metrics', () => {
  it('serves Prometheus text with process metrics and the event-loop delay histogram', async () => {
    gw = await startTestGateway();
    await new Promise((r) => setTimeout(r, 100)); // let the loop sampler observe a few ticks
    const { text, contentType } = await scrape(gw.url);
    expect(contentType).toContain('text/plain');
    expect(text).toContain('# TYPE omni_event_loop_delay_seconds histogram');
    expect(sample(text, 'omni_event_loop_delay_seconds_count')).toBeGreaterThan(0);
    expect(sample(text, 'omni_event_loop_delay_seconds_bucket', { le: '+Inf' })).toBe(
      sample(text, 'omni_event_loop_delay_seconds_count'),
    );
    expect(text).toContain('# TYPE process_cpu_user_seconds_total counter');
    expect(text).toContain('process_resident_memory_bytes');
    expect(text).toContain('nodejs_eventloop_lag_p99_seconds');
  });

  it('sees a blocked event loop in the delay histogram', async () => {
    gw = await startTestGateway();
    const over100ms = (text: string) =>
      (sample(text, 'omni_event_loop_delay_seconds_count') ?? 0) -
      (sample(text, 'omni_event_loop_delay_seconds_bucket', { le: '0.1' }) ?? 0);
    const before = over100ms((await scrape(gw.url)).text);
    const end = Date.now() + 150;
    while (Date.now() < end) {
      /* block the loop on purpose */
    }
    await new Promise((r) => setTimeout(r, 30));
    expect(over100ms((await scrape(gw.url)).text)).toBeGreaterThanOrEqual(before + 1);
  });

  it('counts HTTP requests by route template and status', async () => {
    gw = await startTestGateway();
    await fetch(`${gw.url}/healthz`);
    await fetch(`${gw.url}/healthz`);
    await fetch(`${gw.url}/does/not/exist/123`);
    const { text } = await scrape(gw.url);
    expect(sample(text, 'omni_http_requests_total', { route: '/healthz', status_code: '200' })).toBe(2);
    expect(sample(text, 'omni_http_requests_total', { route: 'unmatched', status_code: '404' })).toBe(1);
    expect(text).not.toContain('/does/not/exist');
    expect(sample(text, 'omni_http_request_duration_seconds_count', { route: '/healthz' })).toBe(2);
  });

  it('counts WebSocket connections, messages and bytes per route', async () => {
    gw = await startTestGateway(
      {},
      {
        routes: (app) => {
          app.get('/test/echo', { websocket: true }, (socket) => {
            socket.on('message', (data: Buffer) => socket.send(data));
          });
        },
      },
    );
    const ws = new WebSocket(`${gw.wsUrl}/test/echo`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    const echoed = new Promise((resolve) => ws.once('message', resolve));
    ws.send('hello');
    await echoed;

    let { text } = await scrape(gw.url);
    const route = { route: '/test/echo' };
    expect(sample(text, 'omni_ws_connections_total', route)).toBe(1);
    expect(sample(text, 'omni_ws_connections_active', route)).toBe(1);
    expect(sample(text, 'omni_ws_messages_total', { ...route, direction: 'in' })).toBe(1);
    expect(sample(text, 'omni_ws_messages_total', { ...route, direction: 'out' })).toBe(1);
    expect(sample(text, 'omni_ws_message_bytes_total', { ...route, direction: 'in' })).toBe(5);

    ws.close();
    await new Promise((r) => ws.once('close', r));
    await new Promise((r) => setTimeout(r, 50));
    ({ text } = await scrape(gw.url));
    expect(sample(text, 'omni_ws_connections_active', route)).toBe(0);
  });
});
