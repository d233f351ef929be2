// Browser origins: with --allowed-origins, CORS preflights name only allowed origins, a request
// or WebSocket upgrade from another origin is refused with 403 before any session exists, and
// requests without an Origin (servers, devices, SDKs on Node) pass.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

let gw: TestGateway;
beforeAll(async () => {
  gw = await startTestGateway({ modelCache: join(tmpdir(), 'omni-test-demo-cache'), allowedOrigins: 'https://app.example.com' });
}, 120_000);
afterAll(async () => {
  await gw?.gateway.close();
});

function upgrade(origin?: string): Promise<{ status?: number; first?: string }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${gw.wsUrl}/v1/realtime?model=qwen3-omni`, origin ? { origin } : {});
    ws.once('unexpected-response', (_req, res) => resolve({ status: res.statusCode }));
    ws.once('message', (d: Buffer) => {
      resolve({ first: (JSON.parse(d.toString('utf8')) as { type: string }).type });
      ws.close();
    });
    ws.once('error', () => undefined);
  });
}

describe('allowed origins', () => {
  it('answers CORS preflights for allowed origins only', async () => {
    const ok = await fetch(`${gw.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } });
    expect(ok.status).toBe(204);
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    const bad = await fetch(`${gw.url}/v1/chat/completions`, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    expect(bad.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('refuses requests from other origins with 403, and lets requests without an Origin through', async () => {
    const bad = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { origin: 'https://evil.example', 'content-type': 'application/json' }, body: '{}' });
    expect(bad.status).toBe(403);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('origin_not_allowed');
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200);
  });

  it('refuses a WebSocket upgrade from another origin before any session exists', async () => {
    expect(await upgrade('https://evil.example')).toEqual({ status: 403 });
    expect(gw.gateway.realtimeSessions.size).toBe(0);
    expect(await upgrade('https://app.example.com')).toEqual({ first: 'session.created' });
    expect(await upgrade()).toEqual({ first: 'session.created' });
  });
});
