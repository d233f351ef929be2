import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { redactUrl } from '../src/gateway/logger.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.gateway.close();
  gw = undefined;
});

describe('structured logs', () => {
  it('log JSON lines with the request id and never a credential', async () => {
    gw = await startTestGateway(
      { logLevel: 'trace' },
      { routes: (app) => void app.get('/test/ws', { websocket: true }, (socket) => socket.close()) },
    );
    await fetch(`${gw.url}/nowhere?api_key=sk-LEAK1&access_token=sk-LEAK2&lang=en`, {
      headers: { authorization: 'Bearer sk-LEAK3', 'api-key': 'sk-LEAK4', 'x-request-id': 'trace-7' },
    });
    const ws = new WebSocket(`${gw.wsUrl}/test/ws?key=sk-LEAK5`, ['realtime', 'openai-insecure-api-key.sk-LEAK6']);
    await new Promise((r) => ws.once('close', r).once('error', r));
    await gw.gateway.close();

    const all = gw.logs.join('\n');
    expect(all).not.toMatch(/sk-LEAK/);
    const entries = gw.logs.map((l) => JSON.parse(l) as Record<string, unknown>);
    const incoming = entries.find((e) => e.request_id === 'trace-7' && e.msg === 'incoming request');
    expect(incoming?.req).toMatchObject({
      method: 'GET',
      url: '/nowhere?api_key=[REDACTED]&access_token=[REDACTED]&lang=en',
    });
    expect(entries.every((e) => e.service === 'omni-gateway' && typeof e.time === 'string')).toBe(true);
  });

  it('does not log health probes and metric scrapes', async () => {
    gw = await startTestGateway();
    await fetch(`${gw.url}/healthz`);
    await fetch(`${gw.url}/metrics`);
    expect(gw.logs.some((l) => l.includes('/healthz') || l.includes('/metrics'))).toBe(false);
  });

  it('masks secret query parameters only', () => {
    expect(redactUrl('/v1/realtime?model=qwen&token=abc')).toBe('/v1/realtime?model=qwen&token=[REDACTED]');
    expect(redactUrl('/x?Client_Secret=1&%61pi_key=2')).toBe('/x?Client_Secret=[REDACTED]&%61pi_key=[REDACTED]');
    expect(redactUrl('/plain')).toBe('/plain');
  });
});
