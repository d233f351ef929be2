// A realtime session served by vLLM-Omni (the recorded-shape server of
// test/helpers/vllm_omni_server.ts stands in for it: vLLM-Omni cannot run here). The conversation
// goes out as whole-turn chat messages with the user's audio as a 16 kHz WAV; the answer's text
// and speech come back as the usual realtime events; a cancel closes vLLM's stream.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VllmOmniRuntime } from '../src/runtime/vllm-omni.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeVllmOmni, tone, wavPcm16, type FakeVllmOmni } from './helpers/vllm_omni_server.js';

const MODEL = 'Qwen/Qwen3-Omni-30B-A3B-Instruct';
let srv: FakeVllmOmni;
let gw: TestGateway;

beforeAll(async () => {
  srv = await startFakeVllmOmni(MODEL);
  gw = await startTestGateway({}, { runtime: new VllmOmniRuntime(srv.url, MODEL) });
});
afterAll(async () => {
  await gw?.gateway.close();
  await srv?.close();
});

type Event = { type: string; [k: string]: unknown };

async function connect(): Promise<{ ws: WebSocket; events: Event[]; waitFor: (p: (e: Event) => boolean) => Promise<Event> }> {
  const ws = new WebSocket(`${gw.wsUrl}/v1/realtime?model=qwen3-omni`);
  const events: Event[] = [];
  ws.on('message', (d: Buffer) => events.push(JSON.parse(d.toString('utf8')) as Event));
  await new Promise((r) => ws.once('open', r));
  const waitFor = async (p: (e: Event) => boolean): Promise<Event> => {
    const t0 = Date.now();
    for (;;) {
      const hit = events.find(p);
      if (hit) return hit;
      if (Date.now() - t0 > 10_000) throw new Error(`timed out; got ${events.map((e) => e.type).join(', ')}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  return { ws, events, waitFor };
}

describe('realtime sessions on vLLM-Omni', () => {
  it('sends the spoken turn as a WAV and streams the text and speech back in order', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'Sunny ' }, { audio: wavPcm16(tone(0.2)) }, { text: 'today.' }, { audio: wavPcm16(tone(0.2)) }], promptTokens: 40, completionTokens: 3 });
    const { ws, events, waitFor } = await connect();
    ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: null } } } }));
    const pcm = readFileSync(join(import.meta.dirname, 'fixtures/realtime/weather_24k.wav')).subarray(44);
    ws.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: pcm.toString('base64') }));
    ws.send(JSON.stringify({ type: 'input_audio_buffer.commit' }));
    ws.send(JSON.stringify({ type: 'response.create' }));
    const done = await waitFor((e) => e.type === 'response.done');
    expect((done.response as { status: string }).status).toBe('completed');
    const transcript = events.filter((e) => e.type === 'response.output_audio_transcript.delta').map((e) => e.delta).join('');
    expect(transcript).toBe('Sunny today.');
    const audio = Buffer.concat(events.filter((e) => e.type === 'response.output_audio.delta').map((e) => Buffer.from(e.delta as string, 'base64')));
    expect(audio.length).toBe(2 * 2 * 4800);
    expect((done.response as { usage: { input_tokens: number } }).usage.input_tokens).toBe(40);
    const body = srv.requests.at(-1)!.body as { messages: { role: string; content: { type: string; audio_url?: { url: string } }[] }[]; modalities: string[] };
    expect(body.modalities).toEqual(['text', 'audio']);
    const part = body.messages.at(-1)!.content[0]!;
    expect(part.type).toBe('audio_url');
    const wav = Buffer.from(part.audio_url!.url.split(',')[1]!, 'base64');
    expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
    expect(wav.readUInt32LE(24)).toBe(16_000);
    ws.close();
  });

  it('response.cancel closes the vLLM stream and ends the response as cancelled', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'A long ' }, { stall: true }] });
    const { ws, waitFor } = await connect();
    ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } }));
    ws.send(JSON.stringify({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Talk.' }] } }));
    ws.send(JSON.stringify({ type: 'response.create' }));
    await waitFor((e) => e.type === 'response.output_text.delta');
    const n = srv.requests.length - 1;
    ws.send(JSON.stringify({ type: 'response.cancel' }));
    const done = await waitFor((e) => e.type === 'response.done');
    expect((done.response as { status: string }).status).toBe('cancelled');
    const closed = await srv.closed(n);
    expect(closed.finished).toBe(false);
    ws.close();
  });
});
