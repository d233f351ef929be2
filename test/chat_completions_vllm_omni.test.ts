// POST /v1/chat/completions served by vLLM-Omni (the recorded-shape server of
// test/helpers/vllm_omni_server.ts stands in for it: vLLM-Omni cannot run here). The request's
// media leave normalised by our codecs (audio as a 16 kHz WAV, JPEG/PNG as sent, other formats as
// PNG), the engine's text, speech and tool calls come back in OpenAI's shapes, stop sequences close
// the engine's stream, and its errors map onto coded HTTP errors before any byte is streamed.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VllmOmniRuntime } from '../src/runtime/vllm-omni.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { startFakeVllmOmni, tone, wavPcm16, type FakeVllmOmni } from './helpers/vllm_omni_server.js';

const MODEL = 'Qwen/Qwen3-Omni-30B-A3B-Instruct';
const SPEECH_WAV = readFileSync(join(import.meta.dirname, 'fixtures', 'audio', 'speech_en.wav'));
let srv: FakeVllmOmni;
let gw: TestGateway;
let png: Buffer;
let webp: Buffer;

beforeAll(async () => {
  srv = await startFakeVllmOmni(MODEL);
  gw = await startTestGateway({}, { runtime: new VllmOmniRuntime(srv.url, MODEL) });
  png = await sharp({ create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 90 } } }).png().toBuffer();
  webp = await sharp({ create: { width: 32, height: 16, channels: 3, background: { r: 10, g: 200, b: 90 } } }).webp({ lossless: true }).toBuffer();
});
afterAll(async () => {
  await gw?.gateway.close();
  await srv?.close();
});

const post = async (body: unknown): Promise<Response> =>
  fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

function sse(text: string): Record<string, unknown>[] {
  return text
    .split('\n\n')
    .filter((b) => b.startsWith('data: ') && b !== 'data: [DONE]')
    .map((b) => JSON.parse(b.slice(6)) as Record<string, unknown>);
}

type WireMessage = { role: string; content: string | { type: string; text?: string; audio_url?: { url: string }; image_url?: { url: string } }[]; tool_calls?: unknown[]; tool_call_id?: string };

describe('chat completions on vLLM-Omni', () => {
  it('streams text and speech; media leave as a 16 kHz WAV and the image bytes', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'A red ' }, { audio: wavPcm16(tone(0.1)) }, { text: 'square.' }, { audio: wavPcm16(tone(0.1)) }], promptTokens: 77, completionTokens: 3 });
    const res = await post({
      model: 'qwen3-omni',
      stream: true,
      stream_options: { include_usage: true },
      modalities: ['text', 'audio'],
      audio: { voice: 'Ethan', format: 'pcm16' },
      messages: [
        { role: 'system', content: 'Be brief.' },
        {
          role: 'user',
          content: [
            { type: 'input_audio', input_audio: { data: SPEECH_WAV.toString('base64'), format: 'wav' } },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${png.toString('base64')}` } },
            { type: 'text', text: 'What is this?' },
          ],
        },
      ],
    });
    expect(res.status).toBe(200);
    const chunks = sse(await res.text());
    type Delta = { content?: string; audio?: { data?: string; transcript?: string } };
    const deltas = chunks.flatMap((c) => (c.choices as { delta: Delta }[]).map((x) => x.delta));
    const transcript = deltas.map((d) => d.audio?.transcript ?? d.content ?? '').join('');
    expect(transcript).toBe('A red square.');
    const pcm = Buffer.concat(deltas.filter((d) => d.audio?.data).map((d) => Buffer.from(d.audio!.data!, 'base64')));
    expect(pcm.length).toBe(2 * 2 * 2400);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 77, completion_tokens: 3 });

    const sent = srv.requests.at(-1)!.body as { messages: WireMessage[]; modalities: string[]; stream: boolean };
    expect(sent.modalities).toEqual(['text', 'audio']);
    expect(sent.messages[0]).toEqual({ role: 'system', content: 'Be brief.' });
    const parts = sent.messages[1]!.content as Exclude<WireMessage['content'], string>;
    expect(parts.map((p) => p.type)).toEqual(['audio_url', 'image_url', 'text']);
    const wav = Buffer.from(parts[0]!.audio_url!.url.split(',')[1]!, 'base64');
    expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
    expect(wav.readUInt32LE(24)).toBe(16_000);
    expect(Buffer.from(parts[1]!.image_url!.url.split(',')[1]!, 'base64').equals(png)).toBe(true);
  });

  it('works with the official openai client: tool calls come back with ids; tool results go out with their call id', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ toolCall: { name: 'get_weather', arguments: ['{"city": ', '"Paris"}'] } }] });
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused' });
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', description: 'Weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const first = await client.chat.completions.create({ model: 'qwen3-omni', messages: [{ role: 'user', content: 'Weather in Paris?' }], tools });
    const call = first.choices[0]!.message.tool_calls![0]! as { id: string; function: { name: string; arguments: string } };
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    expect(call.id).toMatch(/^call_/);
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{"city": "Paris"}' });
    expect((srv.requests.at(-1)!.body as { tools: unknown[] }).tools).toEqual(tools);

    srv.enqueue({ kind: 'stream', steps: [{ text: 'Sunny.' }] });
    const second = await client.chat.completions.create({
      model: 'qwen3-omni',
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: call.function }] },
        { role: 'tool', tool_call_id: call.id, content: '{"sky": "clear"}' },
      ],
    });
    expect(second.choices[0]!.message.content).toBe('Sunny.');
    const sent = (srv.requests.at(-1)!.body as { messages: WireMessage[] }).messages;
    expect(sent[1]).toMatchObject({ role: 'assistant', tool_calls: [{ id: call.id, type: 'function', function: call.function }] });
    expect(sent[2]).toEqual({ role: 'tool', content: '{"sky": "clear"}', tool_call_id: call.id });
  });

  it('a stop sequence ends the answer there and closes the engine stream', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'one two ' }, { text: 'STOP three' }, { delayMs: 300 }, { text: ' four' }] });
    const res = await post({ model: 'qwen3-omni', stop: ['STOP'], messages: [{ role: 'user', content: 'Count.' }] });
    const body = (await res.json()) as { choices: { message: { content: string }; finish_reason: string }[] };
    expect(body.choices[0]).toMatchObject({ message: { content: 'one two ' }, finish_reason: 'stop' });
    const closed = await srv.closed(srv.requests.length - 1);
    expect(closed.finished).toBe(false);
  });

  it('other image formats go as lossless PNG of the decoded pixels', async () => {
    srv.enqueue({ kind: 'stream', steps: [{ text: 'Green.' }] });
    const res = await post({ model: 'qwen3-omni', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/webp;base64,${webp.toString('base64')}` } }] }] });
    expect(res.status).toBe(200);
    const part = ((srv.requests.at(-1)!.body as { messages: WireMessage[] }).messages[0]!.content as { image_url: { url: string } }[])[0]!;
    expect(part.image_url.url.startsWith('data:image/png;base64,')).toBe(true);
    const back = await sharp(Buffer.from(part.image_url.url.split(',')[1]!, 'base64')).raw().toBuffer({ resolveWithObject: true });
    const orig = await sharp(webp).removeAlpha().raw().toBuffer();
    expect(back.info).toMatchObject({ width: 32, height: 16, channels: 3 });
    expect(back.data.equals(orig)).toBe(true);
  });

  it('errors: engine 400 and 503, a corrupt image, a thinking budget: coded JSON, nothing streamed', async () => {
    const before = srv.requests.length;
    srv.enqueue({ kind: 'error', status: 400, message: 'max_tokens is too large' });
    let res = await post({ model: 'qwen3-omni', stream: true, messages: [{ role: 'user', content: 'Hi' }] });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const refused = ((await res.json()) as { error: { code: string; message: string } }).error;
    expect(refused.code).toBe('generation_invalid');
    expect(refused.message).toMatch(/max_tokens is too large/);

    srv.enqueue({ kind: 'error', status: 503, message: 'overloaded' });
    res = await post({ model: 'qwen3-omni', messages: [{ role: 'user', content: 'Hi' }] });
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('server_busy');

    res = await post({ model: 'qwen3-omni', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${png.subarray(0, 40).toString('base64')}` } }] }] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string } }).error.param).toBe('messages[0].content[0].image_url.url');

    res = await post({ model: 'qwen3-omni', thinking: { type: 'enabled', budget_tokens: 64 }, messages: [{ role: 'user', content: 'Hi' }] });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string; param: string } }).error).toMatchObject({ code: 'unsupported_parameter', param: 'thinking.budget_tokens' });
    // The corrupt image and the budget never reached the engine.
    expect(srv.requests.length).toBe(before + 2);
  });
});
