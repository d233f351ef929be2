// Realtime conformance, handshake and authentication (realtime-protocol.md §11, scenarios 1-6),
// against a real gateway serving TLS (a self-signed certificate made here with openssl) on the
// demo runtime. The official clients are used as they are: `openai` 7.x and 6.x
// `OpenAIRealtimeWS` (GA) and the 7.x beta client, all of which always dial wss (§1.2); raw `ws`
// covers what the SDKs cannot express (browser subprotocols, bad credentials, missing model).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { OpenAIRealtimeWS as BetaRealtimeWS7 } from 'openai/beta/realtime/ws';
import { OpenAIRealtimeWS as RealtimeWS7 } from 'openai/realtime/ws';
import OpenAI6 from 'openai6';
import { OpenAIRealtimeWS as RealtimeWS6 } from 'openai6/realtime/ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from './helpers/gateway.js';
import { API_KEY, errorsOf, MODEL, plainTcp, RtClient, startRealtimeGateway, type Wire } from './helpers/realtime.js';
import { checkResponseCycle, checkEventTypes } from './helpers/realtime_invariants.js';

let tls: TestGateway;
let plain: TestGateway;
let ca: Buffer;
let httpsBase: string;
let wssBase: string;

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'omni-rt-tls-'));
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
  ], { stdio: 'ignore' });
  ca = readFileSync(join(dir, 'cert.pem'));
  // A second, plain gateway on the same runtime checks the plain-TCP trick.
  tls = await startRealtimeGateway({ tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') });
  plain = await startRealtimeGateway({}, tls.gateway.runtime);
  httpsBase = tls.url; // https://127.0.0.1:<port>
  wssBase = tls.url.replace(/^https/, 'wss');
  await tls.gateway.runtime.capabilities();
}, 120_000);

afterAll(async () => {
  await plain?.gateway.app.close();
  await tls?.gateway.close();
});

/** Drives an SDK realtime client: records events, runs one text response, closes. */
async function sdkRoundTrip(rt: { on: (ev: string, f: (e: never) => void) => void; send: (e: never) => void; close: () => void; socket: { on: (ev: string, f: (...a: unknown[]) => void) => void } }): Promise<Wire[]> {
  const events: Wire[] = [];
  const errors: unknown[] = [];
  rt.on('error', (e: never) => errors.push(e));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no response.done; events: ${events.map((e) => e.type).join(', ')}`)), 15_000);
    rt.on('event', (e: never) => {
      events.push(e);
      if ((e as Wire).type === 'response.done') {
        clearTimeout(timer);
        resolve();
      }
    });
    rt.socket.on('open', () => {
      rt.send({ type: 'response.create', response: { output_modalities: ['text'], max_output_tokens: 4 } } as never);
    });
  });
  rt.close();
  expect(errors).toEqual([]);
  return events;
}

describe('scenario 1: the official SDKs connect over wss and complete a response', () => {
  it('openai 7.x OpenAIRealtimeWS over TLS: session.created first, then a response round trip', async () => {
    const client = new OpenAI({ apiKey: API_KEY, baseURL: `${httpsBase}/v1` });
    const rt = new RealtimeWS7({ model: MODEL, options: { ca } }, client);
    expect(rt.url.toString()).toBe(`${wssBase}/v1/realtime?model=${MODEL}`);
    const events = await sdkRoundTrip(rt as never);
    expect(events[0]!.type).toBe('session.created');
    const done = events.find((e) => e.type === 'response.done')!;
    checkResponseCycle(events, (done.response as { id: string }).id, 'ga');
  });

  it('openai 6.x OpenAIRealtimeWS over TLS: session.created first, then a response round trip', async () => {
    const client = new OpenAI6({ apiKey: API_KEY, baseURL: `${httpsBase}/v1` });
    const rt = new RealtimeWS6({ model: MODEL, options: { ca } }, client);
    const events = await sdkRoundTrip(rt as never);
    expect(events[0]!.type).toBe('session.created');
    checkResponseCycle(events, ((events.at(-1)!.response ?? events.find((e) => e.type === 'response.done')!.response) as { id: string }).id, 'ga');
  });

  it('both SDK lines also work over the plain-TCP createConnection trick', async () => {
    for (const [Client, Rt] of [[OpenAI, RealtimeWS7], [OpenAI6, RealtimeWS6]] as const) {
      const client = new Client({ apiKey: API_KEY, baseURL: `${plain.url}/v1` });
      const rt = new Rt({ model: MODEL, options: plainTcp as never }, client);
      const events = await sdkRoundTrip(rt as never);
      expect(events[0]!.type).toBe('session.created');
      expect(events.some((e) => e.type === 'response.done')).toBe(true);
    }
  });

  it('every GA server event is a member of the SDK RealtimeServerEvent union and has its required fields', async () => {
    const client = new OpenAI({ apiKey: API_KEY, baseURL: `${httpsBase}/v1` });
    const events = await sdkRoundTrip(new RealtimeWS7({ model: MODEL, options: { ca } }, client) as never);
    checkEventTypes(events, 'ga');
  });
});

describe('scenario 2: browser subprotocols', () => {
  it('selects exactly `realtime`, authenticates with the key token and never echoes it (GA)', async () => {
    const c = await RtClient.connect(wssBase, { apiKey: null, protocols: ['realtime', `openai-insecure-api-key.${API_KEY}`], wsOptions: { ca } });
    expect(c.ws.protocol).toBe('realtime');
    const created = await c.next('session.created');
    expect(created.session).toMatchObject({ type: 'realtime', object: 'realtime.session' });
    // OpenAI sessions expire about 60 minutes ahead (the gateway's default maximum).
    const expiresIn = (created.session as { expires_at: number }).expires_at - Date.now() / 1000;
    expect(expiresIn).toBeGreaterThan(3590);
    expect(expiresIn).toBeLessThan(3610);
    await c.close();
    // The key never reaches the logs (the subprotocol header is not logged verbatim).
    expect(tls.logs.join('\n')).not.toContain(`openai-insecure-api-key.${API_KEY}`);
  });

  it('picks the beta dialect when openai-beta.realtime-v1 is offered', async () => {
    const c = await RtClient.connect(wssBase, {
      apiKey: null,
      protocols: ['realtime', `openai-insecure-api-key.${API_KEY}`, 'openai-beta.realtime-v1'],
      wsOptions: { ca },
    });
    expect(c.ws.protocol).toBe('realtime');
    const created = await c.next('session.created');
    const session = created.session as Record<string, unknown>;
    expect(session.modalities).toEqual(['text', 'audio']);
    expect(session.input_audio_format).toBe('pcm16');
    expect(session).not.toHaveProperty('type');
    await c.close();
  });

  it('a wrong key in the subprotocol gets invalid_api_key and close 3000', async () => {
    const c = await RtClient.connect(wssBase, { apiKey: null, protocols: ['realtime', 'openai-insecure-api-key.sk-wrong'], wsOptions: { ca } });
    expect(c.ws.protocol).toBe('realtime');
    expect(await c.closed).toEqual({ code: 3000, reason: 'invalid_request_error.invalid_api_key' });
    expect(errorsOf(c.events).map((e) => e.code)).toEqual(['invalid_api_key']);
  });
});

describe('scenarios 3-4: credentials and model are answered after the upgrade', () => {
  it('a bad key: 101, then one error invalid_api_key, then close 3000, nothing else', async () => {
    const c = await RtClient.connect(wssBase, { apiKey: 'sk-wrong', wsOptions: { ca } });
    const close = await c.closed;
    expect(close).toEqual({ code: 3000, reason: 'invalid_request_error.invalid_api_key' });
    expect(c.events.map((e) => e.type)).toEqual(['error']);
    expect(c.events[0]!.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_api_key' });
  });

  it('no credentials: error with code null and the OpenAI message, close 3000', async () => {
    const c = await RtClient.connect(wssBase, { apiKey: null, wsOptions: { ca } });
    expect((await c.closed).code).toBe(3000);
    expect(c.events).toHaveLength(1);
    expect(c.events[0]!.error).toMatchObject({ code: null, message: 'Missing bearer or basic authentication in header' });
  });

  it('a missing model query gives missing_model and close 4000', async () => {
    const c = await RtClient.connect(wssBase, { query: '', wsOptions: { ca } });
    expect(await c.closed).toEqual({ code: 4000, reason: 'invalid_request_error.missing_model' });
    expect(errorsOf(c.events).map((e) => e.code)).toEqual(['missing_model']);
    expect(c.events).toHaveLength(1);
  });

  it('an unknown model gives invalid_model and close 4000', async () => {
    const c = await RtClient.connect(wssBase, { query: 'model=no-such-model', wsOptions: { ca } });
    expect(await c.closed).toEqual({ code: 4000, reason: 'invalid_request_error.invalid_model' });
    expect(errorsOf(c.events).map((e) => e.code)).toEqual(['invalid_model']);
    expect(c.events).toHaveLength(1);
  });
});

describe('scenario 5: the beta header serves the beta dialect', () => {
  it('the openai beta client gets beta event names end to end, never beta_api_shape_disabled', async () => {
    const client = new OpenAI({ apiKey: API_KEY, baseURL: `${httpsBase}/v1` });
    const rt = new BetaRealtimeWS7({ model: MODEL, options: { ca } }, client);
    const events: Wire[] = [];
    rt.on('error', (e) => events.push({ type: 'sdk-error', error: e }));
    rt.on('event', (e) => events.push(e as unknown as Wire));
    rt.socket.on('open', () => {
      rt.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] } });
      rt.send({ type: 'response.create', response: { modalities: ['text'], max_response_output_tokens: 4 } });
    });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no response.done: ${events.map((e) => e.type).join(', ')}`)), 15_000);
      rt.on('response.done', () => {
        clearTimeout(t);
        resolve();
      });
    });
    rt.close();
    expect(events.filter((e) => e.type === 'error' || e.type === 'sdk-error')).toEqual([]);
    expect(events[0]!.type).toBe('session.created');
    expect((events[0]!.session as Record<string, unknown>).modalities).toEqual(['text', 'audio']);
    const types = events.map((e) => e.type);
    expect(types).toContain('conversation.item.created');
    expect(types).toContain('response.text.delta');
    expect(types.filter((t) => t.startsWith('response.output_') && !t.startsWith('response.output_item'))).toEqual([]);
    expect(types).not.toContain('conversation.item.added');
    const done = events.find((e) => e.type === 'response.done')!;
    checkResponseCycle(events, (done.response as { id: string }).id, 'beta');
    checkEventTypes(events, 'beta');
  });
});

describe('scenario 6: the DashScope path', () => {
  it('session.created in DashScope shape: text+audio, voice Cherry, server_vad 0.5/300/800', async () => {
    const c = await RtClient.connect(wssBase, { path: '/api-ws/v1/realtime', query: 'model=qwen3-omni-flash-realtime', wsOptions: { ca } });
    const created = await c.next('session.created');
    expect(c.events[0]!.type).toBe('session.created');
    expect(created.session).toMatchObject({
      object: 'realtime.session',
      model: 'qwen3-omni-flash-realtime',
      modalities: ['text', 'audio'],
      voice: 'Cherry',
      turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 800 },
    });
    // DashScope errors carry no inner event_id (§6.1).
    c.send({ type: 'nope', event_id: 'c1' });
    const err = await c.next('error');
    expect(err.error).not.toHaveProperty('event_id');
    await c.close();
  });
});
