// Event-loop delay while the gateway computes audio features under load: 8 concurrent turns of 10 s
// each, repeatedly, through the async API (libuv pool) versus the same work done synchronously on
// the event loop. Also 16 live streams pushing 20 ms chunks every 20 ms into MelStream.
// Run: npm run build:ts && node bench/event_loop_load.mjs
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { MelStream, logMelFeatures } from '../dist/codecs/audio/mel.js';
import { nativeAddon } from '../dist/native/addon.js';

const clip = new Float32Array(16_000 * 10).map((_, i) => 0.3 * Math.sin(i * 0.013) + 0.01 * Math.sin(i * 1.7));
const ROUNDS = 25;
const CONCURRENCY = 8;

async function measure(label, work) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  h.disable();
  const p = (q) => (h.percentile(q) / 1e6).toFixed(2);
  console.log(`${label}: ${ms.toFixed(0)} ms total; event-loop delay p50 ${p(50)} ms, p99 ${p(99)} ms, max ${(h.max / 1e6).toFixed(2)} ms`);
}

const streams = Array.from({ length: 16 }, () => new MelStream());
function liveStreams(durationMs) {
  return new Promise((resolve) => {
    let pos = 0;
    const timer = setInterval(() => {
      for (const s of streams) s.push(clip.subarray(pos, pos + 320));
      pos = (pos + 320) % (clip.length - 320);
      if (pos === 0) for (const s of streams) s.reset();
    }, 20);
    setTimeout(() => {
      clearInterval(timer);
      resolve();
    }, durationMs);
  });
}

await measure('idle loop (reference)', () => new Promise((r) => setTimeout(r, 500)));
await measure(`async: ${ROUNDS} rounds x ${CONCURRENCY} turns of 10 s (logMelFeatures)`, async () => {
  for (let r = 0; r < ROUNDS; r++) await Promise.all(Array.from({ length: CONCURRENCY }, () => logMelFeatures(clip)));
});
await measure(`sync on the event loop: same work (what not to do)`, async () => {
  for (let r = 0; r < ROUNDS; r++) {
    for (let c = 0; c < CONCURRENCY; c++) nativeAddon().logMelSync(clip, 1);
    await new Promise((res) => setImmediate(res));
  }
});
await measure('16 live streams, 20 ms chunks into MelStream, for 2 s', () => liveStreams(2000));
