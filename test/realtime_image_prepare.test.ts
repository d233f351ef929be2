// Image frames are featurized when they arrive and handed to the runtime ahead of the turn
// (RuntimeSession.prepare), so a runtime node receives the patches before the user stops speaking
// and the turn's append names them instead of carrying them: the prepared arrays must be the very
// ones the turn appends (staging works by identity).
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestGateway } from './helpers/gateway.js';
import { appendAudio, errorsOf, fixturePcm, RtClient, scriptedRuntime, startRealtimeGateway, type ScriptedRuntime } from './helpers/realtime.js';

let gw: TestGateway;
let runtime: ScriptedRuntime;
let jpeg: Buffer;

beforeAll(async () => {
  runtime = scriptedRuntime();
  gw = await startRealtimeGateway({}, runtime);
  jpeg = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 20, g: 130, b: 90 } } }).jpeg().toBuffer();
}, 60_000);

afterAll(async () => {
  await gw?.gateway.close();
});

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('image frames reach the runtime before the turn ends', () => {
  it('a frame is prepared while the user still speaks; the turn appends the same patches', async () => {
    const c = await RtClient.connect(gw.wsUrl);
    await c.next('session.created');
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } } });
    await c.next('session.updated');
    const before = runtime.prepared.length;
    c.send({ type: 'input_image_buffer.append', image: jpeg.toString('base64') });
    appendAudio(c, fixturePcm('weather_24k').subarray(0, 24_000));
    // Prepared before any commit: the patches exist and the runtime has them.
    await until(() => runtime.prepared.length > before);
    const prepared = runtime.prepared.at(-1)!;
    expect(prepared).toMatchObject({ kind: 'image', grid: [1, 30, 40] });
    expect(c.events.some((e) => e.type === 'input_audio_buffer.committed')).toBe(false);
    c.send({ type: 'input_audio_buffer.commit' });
    await c.next('input_audio_buffer.committed');
    c.send({ type: 'response.create', response: { max_output_tokens: 2 } });
    await c.next('response.done');
    const appendedImages = runtime.appended.flatMap((chunk) => chunk.media ?? []).filter((m) => m.kind === 'image');
    expect(appendedImages.length).toBeGreaterThan(0);
    const pixels = (m: typeof prepared) => (m.kind === 'audio' ? m.features : m.pixelValues);
    expect(pixels(appendedImages.at(-1)!)).toBe(pixels(prepared));
    expect(errorsOf(c.events)).toEqual([]);
    await c.close();
  });
});
