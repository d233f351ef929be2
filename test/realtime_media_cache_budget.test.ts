// A realtime session's featurized media (patches, log-mel features) are cached per content part
// for later turns, within a byte budget: beyond it the least recently used are dropped and
// featurized again on the next use, never the one just made; parts that leave the conversation
// are forgotten at once; failures are not cached. The budget is a gateway setting, and the
// realtime settings reach WebSocket sessions as they reach WebRTC calls.
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { MediaCache } from '../src/gateway/realtime/media.js';
import type { AudioFormat, ContentPart } from '../src/gateway/realtime/model.js';
import { RtClient, scriptedRuntime, startRealtimeGateway } from './helpers/realtime.js';

const FORMAT: AudioFormat = { encoding: 'pcm16', rate: 24_000 };
// 64 x 64 stays 64 x 64: 16 patches of 1536 floats.
const IMAGE_BYTES = 16 * 1536 * 4;
type ImagePart = ContentPart & { type: 'input_image' };
let images: Buffer[];

beforeAll(async () => {
  images = await Promise.all(
    [10, 90, 170, 250].map((r) => sharp({ create: { width: 64, height: 64, channels: 3, background: { r, g: 40, b: 200 } } }).png().toBuffer()),
  );
});

const part = (i: number): ImagePart => ({ type: 'input_image', image: images[i]!, mime: 'image/png', detail: 'auto' });
const cacheOf = (budget: number) => new MediaCache(new WeakMap(), budget);

describe('MediaCache budget', () => {
  it('keeps media within the budget, dropping the least recently used first', async () => {
    const cache = cacheOf(2.5 * IMAGE_BYTES);
    const [a, b, c] = [part(0), part(1), part(2)];
    const firstA = await cache.featurize(a, FORMAT, 'a');
    const firstB = await cache.featurize(b, FORMAT, 'b');
    expect(cache.bytes).toBe(2 * IMAGE_BYTES);
    expect(await cache.featurize(a, FORMAT, 'a')).toBe(firstA); // a used again: b is now the oldest
    await cache.featurize(c, FORMAT, 'c');
    expect(cache.bytes).toBe(2 * IMAGE_BYTES);
    expect(await cache.featurize(a, FORMAT, 'a')).toBe(firstA);
    // b was dropped: featurized again, the same values in new arrays.
    const againB = await cache.featurize(b, FORMAT, 'b');
    expect(againB).not.toBe(firstB);
    expect(againB.type === 'image' && firstB.type === 'image' && Buffer.from(againB.pixelValues.buffer).equals(Buffer.from(firstB.pixelValues.buffer))).toBe(true);
    expect(cache.bytes).toBe(2 * IMAGE_BYTES);
  });

  it('holds the newest item even when it alone is over the budget', async () => {
    const cache = cacheOf(IMAGE_BYTES / 2);
    const [a, b] = [part(0), part(1)];
    const firstA = await cache.featurize(a, FORMAT, 'a');
    expect(cache.bytes).toBe(IMAGE_BYTES);
    expect(await cache.featurize(a, FORMAT, 'a')).toBe(firstA);
    await cache.featurize(b, FORMAT, 'b');
    expect(cache.bytes).toBe(IMAGE_BYTES);
    expect(await cache.featurize(a, FORMAT, 'a')).not.toBe(firstA);
  });

  it('forgets a part at once, also while it is still being featurized', async () => {
    const cache = cacheOf(10 * IMAGE_BYTES);
    const [a, b] = [part(0), part(1)];
    const firstA = await cache.featurize(a, FORMAT, 'a');
    cache.forget(a);
    expect(cache.bytes).toBe(0);
    expect(await cache.featurize(a, FORMAT, 'a')).not.toBe(firstA);
    const pending = cache.featurize(b, FORMAT, 'b');
    cache.forget(b);
    await pending;
    expect(cache.bytes).toBe(IMAGE_BYTES); // a only: b finished after it was forgotten
    cache.forget(part(3)); // never featurized: nothing to do
    expect(cache.bytes).toBe(IMAGE_BYTES);
  });

  it('does not hold a failure, and tries again on the next use', async () => {
    const cache = cacheOf(10 * IMAGE_BYTES);
    const bad: ImagePart = { type: 'input_image', image: Buffer.from('not an image'), mime: 'image/png', detail: 'auto' };
    await expect(cache.featurize(bad, FORMAT, 'item.content[0]')).rejects.toMatchObject({ param: 'item.content[0].image_url' });
    expect(cache.bytes).toBe(0);
    bad.image = images[2]!;
    await expect(cache.featurize(bad, FORMAT, 'item.content[0]')).resolves.toMatchObject({ type: 'image', grid: [1, 4, 4] });
    expect(cache.bytes).toBe(IMAGE_BYTES);
  });
});

describe('realtime settings', () => {
  it('reach WebSocket sessions: media cache budget and playback lead', async () => {
    const gw = await startRealtimeGateway({ realtimeMediaCacheMb: '64', playbackLeadMs: '1234' }, scriptedRuntime());
    try {
      const c = await RtClient.connect(gw.wsUrl);
      await c.next('session.created');
      const [session] = [...gw.gateway.realtimeSessions];
      expect(session?.limits).toMatchObject({ maxCachedMediaBytes: 64 * 1024 * 1024, playbackLeadMs: 1234 });
      await c.close();
    } finally {
      await gw.gateway.close();
    }
  });
});
