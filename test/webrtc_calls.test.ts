// WebRTC calls end to end, node to node (realtime-protocol.md §1.4, §8, §11 scenarios 41-43): an
// @roamhq/wrtc client offers a microphone track carrying espeak-ng speech and the `oai-events`
// data channel; the gateway answers (raw SDP or multipart with a session), sends session.created
// first on the channel, turns the track's speech into VAD turns and responses, plays the reply on
// its own track with output_audio_buffer.started/stopped (and cleared on interrupt), accepts a
// sideband WebSocket, and hangs up.
/* eslint-disable @typescript-eslint/no-unsafe-member-access -- server events are free-form JSON */
import OpenAI from 'openai';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SettingKey } from '../src/config/settings.js';
import type { CallRegistry } from '../src/gateway/webrtc/index.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { DEMO_CACHE } from './helpers/realtime.js';
import { WebRtcTestClient, speech48k, type Wire } from './helpers/webrtc_client.js';

const API_KEY = 'sk-webrtc';
const SECRET_KEY = 'webrtc-test-signing-key';
const FLAGS: Partial<Record<SettingKey, string>> = { modelCache: DEMO_CACHE, apiKeys: API_KEY, clientSecretKey: SECRET_KEY, playbackLeadMs: '200' };

let gw: TestGateway;
let calls: CallRegistry;
let speechOut = false;
let utterance: Int16Array;
const clients: WebRtcTestClient[] = [];

beforeAll(async () => {
  // The gateway serves the calls routes and the `?call_id=` sideband on /v1/realtime itself.
  gw = await startTestGateway(FLAGS);
  calls = gw.gateway.calls;
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
  utterance = speech48k('What is the weather like in Paris today?');
}, 120_000);

afterEach(() => {
  for (const c of clients.splice(0)) c.close();
});

afterAll(async () => {
  await gw?.gateway.close();
});

async function post(body: string | FormData, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${gw.url}/v1/realtime/calls`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, ...(typeof body === 'string' ? { 'content-type': 'application/sdp' } : {}), ...headers },
    body,
  });
}

/** A connected call: the answer applied, the events channel open, the microphone running. */
async function call(options: { session?: Record<string, unknown>; video?: boolean } = {}): Promise<{ client: WebRtcTestClient; id: string; res: Response }> {
  const client = new WebRtcTestClient({ video: options.video ?? false });
  clients.push(client);
  const offer = await client.offer();
  let res: Response;
  if (options.session) {
    const form = new FormData();
    form.append('sdp', new Blob([offer], { type: 'application/sdp' }), '');
    form.append('session', new Blob([JSON.stringify(options.session)], { type: 'application/json' }), '');
    res = await post(form);
  } else {
    res = await post(offer);
  }
  expect(res.status).toBe(201);
  const answer = await res.text();
  await client.accept(answer);
  await client.channelOpen;
  client.startMic();
  const id = (res.headers.get('location') ?? '').split('/').pop()!;
  return { client, id, res };
}

const textOnly = { type: 'realtime', output_modalities: ['text'], max_output_tokens: 12 };

describe('POST /v1/realtime/calls (scenario 41)', () => {
  it('answers a raw SDP offer with 201, an SDP answer and a Location; session.created comes first on the channel', async () => {
    const { client, id, res } = await call();
    expect(res.headers.get('content-type')).toMatch(/^application\/sdp/);
    expect(res.headers.get('location')).toMatch(/^\/v1\/realtime\/calls\/rtc_[A-Za-z0-9_-]+$/);
    expect(id).toMatch(/^rtc_/);
    const first = await client.waitFor(() => true, 10_000);
    expect(first.type).toBe('session.created');
    expect(first.event_id).toMatch(/^event_/);
    expect(first.session.type).toBe('realtime');
    expect(calls.get(id)).toBeDefined();
  });

  it('applies the multipart session (openai SDK calls.create)', async () => {
    const client = new WebRtcTestClient();
    clients.push(client);
    const sdk = new OpenAI({ apiKey: API_KEY, baseURL: `${gw.url}/v1` });
    const res = await sdk.realtime.calls.create({
      sdp: await client.offer(),
      session: { type: 'realtime', instructions: 'Answer in one word.', max_output_tokens: 7, output_modalities: ['text'] },
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('location')).toMatch(/^\/v1\/realtime\/calls\/rtc_/);
    await client.accept(await res.text());
    await client.channelOpen;
    const created = await client.waitFor('session.created');
    expect(created.session.instructions).toBe('Answer in one word.');
    expect(created.session.max_output_tokens).toBe(7);
    expect(created.session.output_modalities).toEqual(['text']);
  });

  it('refuses an invalid SDP with 400 and a JSON error', async () => {
    for (const sdp of ['hello', 'v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=garbage\r\n', '']) {
      const res = await post(sdp);
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/application\/json/);
      const body = (await res.json()) as { error: Record<string, unknown> };
      expect(body.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_offer', param: 'sdp' });
      expect(typeof body.error.message).toBe('string');
    }
    const form = new FormData();
    form.append('session', JSON.stringify(textOnly));
    const missing = await post(form);
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { param: string } }).error.param).toBe('sdp');
    const badSession = new FormData();
    badSession.append('sdp', 'v=0\r\n');
    badSession.append('session', JSON.stringify({ type: 'realtime', max_output_tokens: -3 }));
    const bad = await post(badSession);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { param: string } }).error.param).toMatch(/^session\.max_output_tokens/);
    expect(calls.size).toBe(0);
  });

  it('needs an API key or a client secret; the secret brings its session', async () => {
    const offer = await new WebRtcTestClient().offer();
    expect((await post(offer, { authorization: '' })).status).toBe(401);
    expect((await post(offer, { authorization: 'Bearer sk-wrong' })).status).toBe(401);
    expect((await post(offer, { authorization: 'Bearer ek_forged.sig' })).status).toBe(401);
    const minted = await fetch(`${gw.url}/v1/realtime/client_secrets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ session: { type: 'realtime', instructions: 'From the secret.', output_modalities: ['text'] } }),
    });
    expect(minted.status).toBe(200);
    const { value } = (await minted.json()) as { value: string };
    const client = new WebRtcTestClient();
    clients.push(client);
    const res = await post(await client.offer(), { authorization: `Bearer ${value}` });
    expect(res.status).toBe(201);
    await client.accept(await res.text());
    await client.channelOpen;
    const created = await client.waitFor('session.created');
    expect(created.session.instructions).toBe('From the secret.');
  });
});

describe('media and events (scenario 42)', () => {
  it('turns speech on the microphone track into a VAD turn and a response', async () => {
    const { client } = await call({ session: { ...textOnly, audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 400 } } } } });
    await client.waitFor('session.created');
    await client.say(new Int16Array(48_000 * 0.3));
    await client.say(utterance);
    const started = await client.waitFor('input_audio_buffer.speech_started', 20_000);
    const stopped = await client.waitFor('input_audio_buffer.speech_stopped', 20_000);
    expect(stopped.item_id).toBe(started.item_id);
    // The turn is about as long as the utterance (the track carries it at real time).
    const spoken = (stopped.audio_end_ms as number) - (started.audio_start_ms as number);
    expect(spoken).toBeGreaterThan(800);
    await client.waitFor((e) => e.type === 'input_audio_buffer.committed' && e.item_id === started.item_id);
    const done = await client.waitFor('response.done', 60_000);
    expect(done.response.status).toMatch(/completed|incomplete/);
    expect(client.events.some((e) => e.type === 'response.output_text.delta')).toBe(true);
    expect(client.events.some((e) => e.type === 'response.output_audio.delta' || e.type === 'input_audio_buffer.append')).toBe(false);
  }, 90_000);

  it('plays the reply on the track with output_audio_buffer.started and stopped', async (ctx) => {
    if (!speechOut) ctx.skip();
    const { client } = await call({ session: { type: 'realtime', output_modalities: ['audio'], max_output_tokens: 5 } });
    await client.waitFor('session.created');
    const before = client.remote.loudFrames;
    client.send({ type: 'response.create' });
    const created = await client.waitFor('response.created');
    const rid = created.response.id as string;
    const started = await client.waitFor('output_audio_buffer.started', 60_000);
    expect(started.response_id).toBe(rid);
    const done = await client.waitFor('response.done', 60_000);
    const stopped = await client.waitFor('output_audio_buffer.stopped', 30_000);
    expect(stopped.response_id).toBe(rid);
    const order = (t: string) => client.events.findIndex((e) => e.type === t);
    expect(order('response.content_part.added')).toBeLessThan(order('output_audio_buffer.started'));
    expect(order('response.done')).toBeLessThan(order('output_audio_buffer.stopped'));
    expect(done.response.status).toMatch(/completed|incomplete/);
    // Speech reached the client's remote track, and no audio went over the channel.
    expect(client.remote.loudFrames - before).toBeGreaterThan(10);
    expect(client.events.some((e) => e.type === 'response.output_audio.delta')).toBe(false);
    expect(client.events.some((e) => e.type === 'response.output_audio_transcript.delta')).toBe(true);
  }, 90_000);

  it('response.cancel + output_audio_buffer.clear stop the speech at once with output_audio_buffer.cleared', async (ctx) => {
    if (!speechOut) ctx.skip();
    const { client } = await call({ session: { type: 'realtime', output_modalities: ['audio'], max_output_tokens: 400 } });
    await client.waitFor('session.created');
    client.send({ type: 'response.create' });
    const created = await client.waitFor('response.created');
    const rid = created.response.id as string;
    await client.waitFor('output_audio_buffer.started', 60_000);
    await new Promise((r) => setTimeout(r, 300));
    client.send({ type: 'response.cancel' });
    client.send({ type: 'output_audio_buffer.clear' });
    const cleared = await client.waitFor('output_audio_buffer.cleared', 10_000);
    expect(cleared.response_id).toBe(rid);
    const done = await client.waitFor('response.done');
    expect(done.response.status).toBe('cancelled');
    // Nothing loud arrives once the jitter buffer has played out.
    const at = performance.now();
    await new Promise((r) => setTimeout(r, 1200));
    expect(client.remote.lastLoudAt).toBeLessThan(at + 600);
    expect(client.events.some((e) => e.type === 'output_audio_buffer.stopped' && e.response_id === rid)).toBe(false);
  }, 90_000);

  it('speech over the reply barges in: the response is cancelled (turn_detected) and its audio cleared', async (ctx) => {
    if (!speechOut) ctx.skip();
    const { client } = await call({
      session: { type: 'realtime', output_modalities: ['audio'], max_output_tokens: 400, audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 400 } } } },
    });
    await client.waitFor('session.created');
    client.send({ type: 'response.create' });
    const created = await client.waitFor('response.created');
    await client.waitFor('output_audio_buffer.started', 60_000);
    await client.say(utterance);
    const cleared = await client.waitFor('output_audio_buffer.cleared', 20_000);
    expect(cleared.response_id).toBe(created.response.id);
    const done = await client.waitFor((e) => e.type === 'response.done' && e.response.id === created.response.id);
    expect(done.response.status_details?.reason).toBe('turn_detected');
    const ix = (pred: (e: Wire) => boolean) => client.events.findIndex(pred);
    expect(ix((e) => e.type === 'input_audio_buffer.speech_started')).toBeLessThan(ix((e) => e.type === 'output_audio_buffer.cleared'));
  }, 90_000);

  it('samples the camera track into the next user turn', async () => {
    const { client, id } = await call({ session: textOnly, video: true });
    client.startCamera(15);
    await client.waitFor('session.created');
    await new Promise((r) => setTimeout(r, 2500));
    // The microphone has been sending silence all along: commit it as a turn with the pictures.
    client.send({ type: 'input_audio_buffer.commit' });
    const added = await client.waitFor((e) => e.type === 'conversation.item.added' || e.type === 'error', 10_000);
    expect(added.type).toBe('conversation.item.added');
    const content = added.item.content as { type: string }[];
    const images = content.filter((c) => c.type === 'input_image').length;
    // About one picture a second from a 15 fps camera.
    expect(images).toBeGreaterThanOrEqual(1);
    expect(images).toBeLessThanOrEqual(4);
    const item = calls.get(id)!.session.conversation.get(added.item.id as string);
    const image = item?.type === 'message' ? item.content.find((p) => p.type === 'input_image') : undefined;
    expect(image?.type === 'input_image' && image.image.subarray(0, 3).toString('hex')).toBe('ffd8ff');
  }, 30_000);
});

describe('sideband and hangup (scenario 43)', () => {
  it('a sideband WebSocket observes and controls the call; hangup ends both', async () => {
    const { client, id } = await call({ session: textOnly });
    await client.waitFor('session.created');
    const ws = new WebSocket(`${gw.wsUrl}/v1/realtime?call_id=${id}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const seen: Wire[] = [];
    ws.on('message', (d) => seen.push(JSON.parse((d as Buffer).toString('utf8')) as Wire));
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', instructions: 'Set by the sideband.' } }));
    const updated = await client.waitFor('session.updated');
    expect(updated.session.instructions).toBe('Set by the sideband.');
    for (let i = 0; i < 100 && !seen.some((e) => e.type === 'session.updated'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen.find((e) => e.type === 'session.updated')?.event_id).toBe(updated.event_id);
    // Client events on the data channel are seen by the sideband too.
    client.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] } });
    await client.waitFor('conversation.item.done');
    for (let i = 0; i < 100 && !seen.some((e) => e.type === 'conversation.item.done'); i++) await new Promise((r) => setTimeout(r, 20));
    expect(seen.some((e) => e.type === 'conversation.item.done')).toBe(true);

    const hang = await fetch(`${gw.url}/v1/realtime/calls/${id}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
    expect(hang.status).toBe(200);
    expect(await closed).toBe(1000);
    await client.channelClosed;
    expect(calls.get(id)).toBeUndefined();
    const again = await fetch(`${gw.url}/v1/realtime/calls/${id}/hangup`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}` } });
    expect(again.status).toBe(404);
  }, 30_000);

  it('an unknown call id gives error then close 4000', async () => {
    const ws = new WebSocket(`${gw.wsUrl}/v1/realtime?call_id=rtc_nope`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const seen: Wire[] = [];
    ws.on('message', (d) => seen.push(JSON.parse((d as Buffer).toString('utf8')) as Wire));
    const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
    expect(code).toBe(4000);
    expect(seen[0]?.type).toBe('error');
  });

  it('session.close on the channel ends the call', async () => {
    const { client, id } = await call({ session: textOnly });
    await client.waitFor('session.created');
    client.send({ type: 'session.close' });
    await client.channelClosed;
    for (let i = 0; i < 100 && calls.get(id); i++) await new Promise((r) => setTimeout(r, 25));
    expect(calls.get(id)).toBeUndefined();
  }, 20_000);

  it('the client closing its peer connection ends the call and releases the session', async () => {
    const { client, id } = await call({ session: textOnly });
    await client.waitFor('session.created');
    const sessionsBefore = gw.gateway.realtimeSessions.size;
    client.close();
    for (let i = 0; i < 200 && calls.get(id); i++) await new Promise((r) => setTimeout(r, 25));
    expect(calls.get(id)).toBeUndefined();
    expect(gw.gateway.realtimeSessions.size).toBe(sessionsBefore - 1);
  }, 20_000);
});
