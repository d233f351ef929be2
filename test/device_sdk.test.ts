// The TypeScript device SDK (examples/device-sdk) against a real gateway on the demo model:
// a spoken manual turn with a camera frame (PCM16 both ways), a server-VAD turn, and errors
// delivered to the SDK's 'error' listeners without ending the link.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SettingKey } from '../src/config/settings.js';
import { DeviceClient, type DeviceError } from '../examples/device-sdk/device_client.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
const KEY = 'sk-device-sdk';
const JPEG = readFileSync(new URL('./fixtures/image/exif2_240x320.jpg', import.meta.url));

async function startDeviceGateway(): Promise<TestGateway> {
  const flags: Partial<Record<SettingKey, string>> = { modelCache: DEMO_CACHE, apiKeys: KEY };
  // The gateway serves /v1/device itself.
  return startTestGateway(flags);
}

function speech16k(text: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'omni-device-sdk-'));
  execFileSync('espeak-ng', ['-w', join(dir, 's.wav'), text]);
  execFileSync('sox', [join(dir, 's.wav'), '-r', '16000', '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', join(dir, 's.raw')]);
  return readFileSync(join(dir, 's.raw'));
}

let gw: TestGateway;
let url: string;
let speechOut = false;
let question: Buffer;

beforeAll(async () => {
  gw = await startDeviceGateway();
  url = `${gw.wsUrl}/v1/device`;
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
  question = speech16k('Describe what the camera sees.');
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

describe('DeviceClient', () => {
  it('a spoken manual turn with a camera frame: raw PCM16 audio out, transcript events, no base64 anywhere', async (ctx) => {
    if (!speechOut) ctx.skip();
    const client = await DeviceClient.connect({ url, apiKey: KEY, audioIn: { codec: 'pcm16', rate: 16000 }, audioOut: { codec: 'pcm16', rate: 24000 } });
    const audio: Buffer[] = [];
    /** How many JSON events had arrived when each audio frame came. */
    const audioAt: number[] = [];
    client.on('audio', (pcm) => {
      audio.push(Buffer.from(pcm));
      audioAt.push(client.received.length);
    });
    client.sendEvent({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], audio: { input: { turn_detection: null } } } });
    for (let i = 0; i < question.length; i += 640) client.sendAudio(question.subarray(i, i + 640));
    client.sendJpeg(JPEG);
    client.sendEvent({ type: 'input_audio_buffer.commit' });
    client.sendEvent({ type: 'response.create', response: { max_output_tokens: 16 } });
    const done = await client.waitFor('response.done', 120_000);
    expect(client.received.filter((e) => e.type === 'error')).toEqual([]);
    const user = client.received.find((e) => e.type === 'conversation.item.added' && (e.item as { role: string }).role === 'user')!;
    expect((user.item as { content: { type: string }[] }).content.map((p) => p.type)).toEqual(['input_image', 'input_audio']);
    const types = client.received.map((e) => e.type);
    expect(types).toContain('response.output_audio_transcript.delta');
    expect(types).toContain('response.output_audio.done');
    expect(types).not.toContain('response.output_audio.delta');
    const bytes = Buffer.concat(audio);
    expect(bytes.length).toBeGreaterThan(0);
    expect(bytes.length % 2).toBe(0);
    // Audio frames arrive inside the audio part: after content_part.added, before output_audio.done.
    expect(Math.min(...audioAt)).toBeGreaterThan(types.indexOf('response.content_part.added'));
    expect(Math.max(...audioAt)).toBeLessThanOrEqual(types.indexOf('response.output_audio.done'));
    expect((done.response as { status: string }).status).toMatch(/completed|incomplete/);
    await client.close();
  }, 150_000);

  it('a server-VAD turn: speech then silence ends the turn and the reply comes by itself', async () => {
    const client = await DeviceClient.connect({ url, apiKey: KEY });
    client.sendEvent({
      type: 'session.update',
      session: { type: 'realtime', output_modalities: ['text'], max_output_tokens: 6, audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 300 } } } },
    });
    const pcm = Buffer.concat([Buffer.alloc(16000), question, Buffer.alloc(32000)]);
    for (let i = 0; i < pcm.length; i += 640) client.sendAudio(pcm.subarray(i, i + 640));
    const done = await client.waitFor('response.done', 90_000);
    const types = client.received.map((e) => e.type);
    const order = ['input_audio_buffer.speech_started', 'input_audio_buffer.speech_stopped', 'input_audio_buffer.committed', 'response.created', 'response.done'];
    expect(order.map((t) => types.indexOf(t))).toEqual([...order.map((t) => types.indexOf(t))].sort((a, b) => a - b));
    expect(order.every((t) => types.includes(t))).toBe(true);
    expect((done.response as { status: string }).status).toMatch(/completed|incomplete/);
    await client.close();
  }, 120_000);

  it('barge-in: speaking over the reply cancels it (turn_detected), its audio stops, the new turn gets its own reply', async (ctx) => {
    if (!speechOut) ctx.skip();
    const client = await DeviceClient.connect({ url, apiKey: KEY, audioOut: { codec: 'opus', rate: 24000, frameMs: 20 } });
    /** [packet, events received before it] */
    const packets: [Buffer, number][] = [];
    client.on('audio', (p) => packets.push([Buffer.from(p), client.received.length]));
    client.sendEvent({
      type: 'session.update',
      session: { type: 'realtime', output_modalities: ['audio'], max_output_tokens: 40, audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 300 } } } },
    });
    const silence = Buffer.alloc(16000); // 0.5 s
    const turn = Buffer.concat([silence, question, silence, silence]);
    for (let i = 0; i < turn.length; i += 640) client.sendAudio(turn.subarray(i, i + 640));
    const first = await client.waitFor('response.created', 60_000);
    const firstId = (first.response as { id: string }).id;
    await new Promise<void>((resolve) => client.once('audio', () => resolve()));
    // The next reply is short (the running one keeps its 40), then the user talks over the reply.
    client.sendEvent({ type: 'session.update', session: { type: 'realtime', max_output_tokens: 8 } });
    for (let i = 0; i < turn.length; i += 640) client.sendAudio(turn.subarray(i, i + 640));
    const cancelled = await client.waitFor((e) => e.type === 'response.done' && (e.response as { id: string }).id === firstId, 60_000);
    expect(cancelled.response).toMatchObject({ status: 'cancelled', status_details: { reason: 'turn_detected' } });
    const second = await client.waitFor((e) => e.type === 'response.done' && (e.response as { id: string }).id !== firstId, 120_000);
    expect((second.response as { status: string }).status).toMatch(/completed|incomplete/);
    // No audio between the cancelled reply's end and the next reply's audio part.
    const doneAt = client.received.indexOf(cancelled);
    const nextPart = client.received.findIndex((e, i) => i > doneAt && e.type === 'response.content_part.added');
    expect(packets.filter(([, at]) => at > doneAt && at <= nextPart)).toEqual([]);
    expect(packets.length).toBeGreaterThan(0);
    await client.close();
  }, 240_000);

  it("errors reach 'error' listeners and waitFor; the link stays up", async () => {
    const client = await DeviceClient.connect({ url, apiKey: KEY });
    const errors: DeviceError[] = [];
    client.on('error', (e) => errors.push(e));
    client.sendAudio(Buffer.alloc(5));
    client.sendEvent({ type: 'response.cancel', event_id: 'cancel-1' });
    const e = await client.waitFor((x) => x.type === 'error' && (x.error as { event_id: string | null }).event_id === 'cancel-1');
    expect((e.error as { code: string }).code).toBe('response_cancel_not_active');
    expect(errors.map((x) => x.error.code)).toEqual(['invalid_audio_frame', 'response_cancel_not_active']);
    client.sendEvent({ type: 'input_audio_buffer.clear' });
    await client.waitFor('input_audio_buffer.cleared');
    await client.close();
  });

  it('connect fails with the gateway error for a wrong key', async () => {
    await expect(DeviceClient.connect({ url, apiKey: 'sk-wrong' })).rejects.toThrow(/invalid_api_key/);
    await expect(DeviceClient.connect({ url, apiKey: KEY, audioIn: { codec: 'pcm16', rate: 11025 } })).rejects.toThrow(/hello.audio_in.rate must be one of/);
  });
});
