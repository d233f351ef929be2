import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { demoModelDir, type NativeRuntime } from '../src/runtime/native.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeVllm, type FakeVllm } from './helpers/vllm-server.js';

let gw: TestGateway | undefined;
let vllm: FakeVllm | undefined;

afterEach(async () => {
  await gw?.gateway.close();
  await vllm?.close();
  gw = undefined;
  vllm = undefined;
});

async function getJson(url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('health and readiness', () => {
  it('answers liveness on /healthz with a request id header', async () => {
    gw = await startTestGateway();
    const res = await fetch(`${gw.url}/healthz`, { headers: { 'x-request-id': 'trace-42' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
    expect(res.headers.get('x-request-id')).toBe('trace-42');
  });

  it('mints a request id when the caller gives none or a malformed one', async () => {
    gw = await startTestGateway();
    const res = await fetch(`${gw.url}/healthz`, { headers: { 'x-request-id': 'bad id\twith spaces' } });
    expect(res.headers.get('x-request-id')).toMatch(/^req_[0-9a-f-]{36}$/);
  });

  it('native: not ready until the engine has loaded, then ready naming the checkpoint', async () => {
    const model = join(import.meta.dirname, 'fixtures', 'engine', 'tiny');
    gw = await startTestGateway({ model });
    let r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(503);
    expect(r.body.runtime).toMatchObject({ backend: 'native', reachable: true, modelLoaded: false, detail: 'the model has not been loaded yet' });
    await (gw.gateway.runtime as NativeRuntime).start();
    r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(200);
    expect(r.body.runtime).toMatchObject({ backend: 'native', modelLoaded: true, model, detail: 'native engine ready (2 layers, 4 experts, hidden 64)' });
  });

  it('native without a model: makes the demo checkpoint once and says plainly it is random', async () => {
    const cache = mkdtempSync(join(tmpdir(), 'omni-cache-'));
    gw = await startTestGateway({ modelCache: cache });
    await (gw.gateway.runtime as NativeRuntime).start();
    const r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(200);
    expect(String((r.body.runtime as { detail: string }).detail)).toMatch(/demo checkpoint with random weights .*its words are noise/);
    expect(existsSync(join(demoModelDir(cache), 'model.safetensors'))).toBe(true);
  });

  it('native: a checkpoint that cannot load keeps the gateway up and not ready, with the reason', async () => {
    gw = await startTestGateway({ model: join(tmpdir(), 'no-such-checkpoint') });
    await expect((gw.gateway.runtime as NativeRuntime).start()).rejects.toMatchObject({ code: 'checkpoint_missing' });
    const r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(503);
    expect(String((r.body.runtime as { detail: string }).detail)).toMatch(/could not be loaded: checkpoint_missing/);
  });

  it('is ready when vLLM-Omni is up and serves the configured model', async () => {
    vllm = await startFakeVllm();
    gw = await startTestGateway({ runtime: 'vllm-omni', runtimeUrl: vllm.url, model: 'Qwen/Qwen3-Omni-30B-A3B-Instruct' });
    const { status, body } = await getJson(`${gw.url}/readyz`);
    expect(status).toBe(200);
    expect(body).toEqual({
      ready: true,
      runtime: {
        backend: 'vllm-omni',
        reachable: true,
        modelLoaded: true,
        model: 'Qwen/Qwen3-Omni-30B-A3B-Instruct',
        detail: 'vLLM-Omni serves Qwen/Qwen3-Omni-30B-A3B-Instruct',
      },
    });
  });

  it('is not ready when vLLM-Omni serves another model, and names what it serves', async () => {
    vllm = await startFakeVllm({ models: ['other/model'] });
    gw = await startTestGateway({ runtime: 'vllm-omni', runtimeUrl: vllm.url, model: 'Qwen/Qwen3-Omni-30B-A3B-Instruct' });
    const { status, body } = await getJson(`${gw.url}/readyz`);
    expect(status).toBe(503);
    expect((body.runtime as { detail: string }).detail).toContain('(it serves: other/model)');
  });

  it('is not ready while the engine reports unhealthy, and ready again when it recovers', async () => {
    vllm = await startFakeVllm({ healthStatus: 500 });
    gw = await startTestGateway({ runtime: 'vllm-omni', runtimeUrl: vllm.url });
    let r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(503);
    expect((r.body.runtime as { detail: string }).detail).toContain('answered /health with HTTP 500');
    vllm.set({ healthStatus: 200 });
    r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(200);
  });

  it('is not ready, promptly, when the engine is unreachable or hangs', async () => {
    vllm = await startFakeVllm();
    const deadUrl = vllm.url;
    await vllm.close();
    gw = await startTestGateway({ runtime: 'vllm-omni', runtimeUrl: deadUrl });
    let r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(503);
    expect((r.body.runtime as { detail: string }).detail).toContain('unreachable: ECONNREFUSED');
    await gw.gateway.close();

    vllm = await startFakeVllm({ stall: true });
    gw = await startTestGateway({ runtime: 'vllm-omni', runtimeUrl: vllm.url, runtimeHealthTimeoutMs: '200' });
    const t0 = Date.now();
    r = await getJson(`${gw.url}/readyz`);
    expect(r.status).toBe(503);
    expect((r.body.runtime as { detail: string }).detail).toContain('no answer within 200 ms');
    expect(Date.now() - t0).toBeLessThan(5000); // bounded by the probe timeout, not the engine
  });

  it('shares one runtime probe among concurrent readiness requests', async () => {
    vllm = await startFakeVllm({ delayMs: 300 });
    gw = await startTestGateway({ runtime: 'vllm-omni', runtimeUrl: vllm.url });
    const url = gw.url;
    const results = await Promise.all(Array.from({ length: 20 }, () => fetch(`${url}/readyz`).then((r) => r.status)));
    expect(results.every((s) => s === 200)).toBe(true);
    expect(vllm.hits.health).toBeLessThanOrEqual(2);
  });

  it('reports not ready while draining', async () => {
    vllm = await startFakeVllm();
    gw = await startTestGateway({ runtime: 'vllm-omni', runtimeUrl: vllm.url });
    gw.gateway.state.draining = true;
    const { status, body } = await getJson(`${gw.url}/readyz`);
    expect(status).toBe(503);
    expect(body.reason).toContain('draining');
  });

  it('answers unknown routes in the OpenAI error shape without echoing the query', async () => {
    gw = await startTestGateway();
    const { status, body } = await getJson(`${gw.url}/nope?api_key=sk-secret`);
    expect(status).toBe(404);
    expect(body).toEqual({
      error: { type: 'not_found_error', code: 'not_found', message: 'no route GET /nope', param: null },
    });
  });
});
