// A spoken conversation end to end through the official `openai` client: espeak-ng speech streamed
// in 20 ms chunks, server VAD ends the turn, the demo model answers with text and speech together,
// and a second utterance during the answer barges in: the answer is cancelled (turn_detected), its
// item keeps only the transcript that was sent, and the new turn gets its own response.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');

function speech(text: string, dir: string): Buffer {
  const wav = join(dir, `${text.length}.wav`);
  const raw = join(dir, `${text.length}.raw`);
  execFileSync('espeak-ng', ['-w', wav, text]);
  execFileSync('sox', [wav, '-r', '24000', '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', raw]);
  return readFileSync(raw);
}

type Event = { type: string; [k: string]: unknown };

let gw: TestGateway;
let first: Buffer;
let second: Buffer;

beforeAll(async () => {
  gw = await startTestGateway({ modelCache: DEMO_CACHE, playbackLeadMs: '200' });
  const dir = mkdtempSync(join(tmpdir(), 'omni-spoken-'));
  first = speech('What is the weather like in Paris today?', dir);
  second = speech('Stop, tell me about Berlin instead.', dir);
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

describe('spoken turn through the openai client', () => {
  it('VAD ends the turn, text and audio stream together, a second utterance barges in and gets its own answer', async () => {
    const port = Number(new URL(gw.url).port);
    const client = new OpenAI({ apiKey: 'sk-local', baseURL: `http://127.0.0.1:${port}/v1` });
    const rt = new OpenAIRealtimeWS({ model: 'qwen3-omni', options: { createConnection: () => net.connect({ host: '127.0.0.1', port }) } }, client);
    const events: Event[] = [];
    rt.on('event', (e) => events.push(e as unknown as Event));
    rt.on('error', (e) => events.push({ type: 'sdk_error', message: String(e.message) }));
    await new Promise<void>((resolve, reject) => {
      rt.socket.once('open', () => resolve());
      rt.socket.once('error', reject);
    });
    rt.send({
      type: 'session.update',
      session: {
        type: 'realtime',
        output_modalities: ['audio'],
        max_output_tokens: 60,
        audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 300, prefix_padding_ms: 200 } } },
      },
    });
    const silence = Buffer.alloc(24_000 * 2 * 0.6);
    const stream = async (pcm: Buffer): Promise<void> => {
      for (let i = 0; i < pcm.length; i += 960) {
        rt.send({ type: 'input_audio_buffer.append', audio: pcm.subarray(i, i + 960).toString('base64') });
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    const waitFor = async (pred: (e: Event) => boolean, ms = 60_000): Promise<Event> => {
      const t0 = Date.now();
      for (;;) {
        const hit = events.find(pred);
        if (hit) return hit;
        if (Date.now() - t0 > ms) throw new Error(`timed out; got ${events.map((e) => e.type).join(', ')}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };

    await stream(Buffer.concat([silence, first, silence]));
    const stopped = await waitFor((e) => e.type === 'input_audio_buffer.speech_stopped');
    const userItem = stopped.item_id as string;
    const created = await waitFor((e) => e.type === 'response.created');
    const firstId = (created.response as { id: string }).id;
    await waitFor((e) => e.type === 'response.output_audio.delta' && e.response_id === firstId);
    await waitFor((e) => e.type === 'response.output_audio_transcript.delta' && e.response_id === firstId);

    // Barge in while the answer is still being spoken.
    await stream(Buffer.concat([second, silence]));
    const done = await waitFor((e) => e.type === 'response.done' && (e.response as { id: string }).id === firstId);
    const response = done.response as { status: string; status_details: { reason: string }; output: { id: string; status: string; content: { transcript: string }[] }[] };
    expect(response.status).toBe('cancelled');
    expect(response.status_details.reason).toBe('turn_detected');
    expect(response.output[0]!.status).toBe('incomplete');
    const doneAt = events.indexOf(done);
    expect(events.slice(doneAt + 1).some((e) => e.response_id === firstId)).toBe(false);

    // The transcript kept is a prefix of what was streamed: only what was sent as audio was heard.
    const streamed = events
      .filter((e) => e.type === 'response.output_audio_transcript.delta' && e.response_id === firstId)
      .map((e) => e.delta as string)
      .join('');
    const kept = response.output[0]!.content[0]!.transcript;
    expect(streamed.startsWith(kept)).toBe(true);

    // The second utterance is its own user turn with its own response.
    const secondStop = await waitFor((e) => e.type === 'input_audio_buffer.speech_stopped' && e.item_id !== userItem);
    const next = await waitFor((e) => e.type === 'response.created' && (e.response as { id: string }).id !== firstId);
    expect(events.indexOf(next)).toBeGreaterThan(events.indexOf(secondStop));
    const nextId = (next.response as { id: string }).id;
    await waitFor((e) => e.type === 'response.output_audio.delta' && e.response_id === nextId);
    rt.send({ type: 'response.cancel' });
    await waitFor((e) => e.type === 'response.done' && (e.response as { id: string }).id === nextId);
    expect(events.filter((e) => e.type === 'sdk_error' || e.type === 'error')).toEqual([]);
    rt.close();
  }, 120_000);
});
