// Silero VAD cost: one batched run of N frames from N streams against N single-frame runs (the
// baseline: what a per-stream VAD does), with the session in the worker thread (default) and on
// the main thread. The "event-loop delay" groups run 8 detectors (fed in real time, or with a
// backlog) and print how late the event loop ran (perf_hooks.monitorEventLoopDelay) and the
// batch sizes the batcher formed; their own timings are just the scenario's wall time.
// Run: npx vitest bench --run bench/vad_inference.bench.ts
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { bench, describe } from 'vitest';
import { VadBatcher } from '../src/codecs/audio/vad_batcher.js';
import { VoiceActivityDetector } from '../src/codecs/audio/vad_detector.js';
import { SILERO_FRAME_SAMPLES, SileroStreamState, SileroVad } from '../src/codecs/audio/vad_model.js';

const worker = await SileroVad.load({ thread: 'worker' });
const main = await SileroVad.load({ thread: 'main' });

// Speech-like input (the graph's cost does not depend on content): a tone with noise.
function signal(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = 0.2 * Math.sin((i * (seed + 3)) / 40) + (x / 2 ** 32 - 0.5) * 0.05;
  }
  return out;
}

for (const n of [8, 32]) {
  const frames = Array.from({ length: n }, (_, i) => signal(SILERO_FRAME_SAMPLES, i + 1));
  const states = frames.map(() => new SileroStreamState());
  for (const [where, model] of [
    ['worker thread', worker],
    ['main thread', main],
  ] as const) {
    describe(`Silero VAD, ${n} frames from ${n} streams (${where})`, () => {
      bench(`batched: one run of ${n}`, async () => {
        await model.inferBatch(frames, states);
      });
      bench(`unbatched: ${n} runs of 1`, async () => {
        for (let i = 0; i < n; i++) await model.infer(states[i]!, frames[i]!);
      });
    });
  }
}

/**
 * `streams` detectors over one batcher. `live`: 20 ms chunks on staggered 20 ms clocks, as clients send
 * them. Otherwise each stream's whole audio is pushed at once (a backlog scored flat out) while
 * the event loop is sampled.
 */
async function scenario(model: SileroVad | undefined, label: string, streams: number, live: boolean): Promise<void> {
  const seconds = live ? 2 : 10;
  const chunk = 320; // 20 ms
  const batcher = model ? new VadBatcher({ model, maxBatch: 32, maxDelayMs: 5 }) : undefined;
  const detectors = Array.from({ length: streams }, () => (batcher ? new VoiceActivityDetector({ inference: batcher }) : undefined));
  const audio = Array.from({ length: streams }, (_, i) => signal(16_000 * seconds, i + 1));
  const h = monitorEventLoopDelay({ resolution: 1 });
  // A timer keeps the loop turning so its lateness is sampled even when nothing else runs.
  const tick = setInterval(() => {}, 1);
  h.enable();
  const t0 = performance.now();
  if (live) {
    await Promise.all(
      detectors.map(
        (d, i) =>
          new Promise<void>((resolve) => {
            let k = 0;
            // Clients are not in phase: stagger each stream's chunk clock.
            setTimeout(() => {
              const timer = setInterval(() => {
                d?.push(audio[i]!.subarray(k * chunk, (k + 1) * chunk));
                if (++k * chunk >= audio[i]!.length) {
                  clearInterval(timer);
                  resolve();
                }
              }, 20);
            }, (20 * i) / streams);
          }),
      ),
    );
  } else {
    detectors.forEach((d, i) => d?.push(audio[i]!));
  }
  await Promise.all(detectors.map((d) => (d ? d.drain() : Promise.resolve())));
  const wall = performance.now() - t0;
  h.disable();
  clearInterval(tick);
  const ms = (v: number) => (v / 1e6).toFixed(2);
  const s = batcher?.stats;
  console.log(
    `[vad] ${label}: event-loop delay p50 ${ms(h.percentile(50))} ms, p99 ${ms(h.percentile(99))} ms, max ${ms(h.max)} ms` +
      (s ? `; ${s.frames} frames in ${s.runs} runs (mean batch ${(s.frames / s.runs).toFixed(2)}), ${((wall * 1000) / s.frames).toFixed(0)} µs per frame of wall time` : '') +
      `; wall ${wall.toFixed(0)} ms`,
  );
}

const once = { iterations: 1, time: 0, warmupIterations: 0, warmupTime: 0 };
describe('event-loop delay, 8 live streams x 2 s (20 ms chunks)', () => {
  bench('no VAD (timers only)', () => scenario(undefined, 'live 8, no VAD', 8, true), once);
  bench('VAD, session in worker thread', () => scenario(worker, 'live 8, worker thread', 8, true), once);
  bench('VAD, session on main thread', () => scenario(main, 'live 8, main thread', 8, true), once);
});

for (const n of [8, 32]) {
  describe(`event-loop delay, ${n} streams x 10 s pushed at once (backlog)`, () => {
    bench('VAD, session in worker thread', () => scenario(worker, `backlog ${n}, worker thread`, n, false), once);
    bench('VAD, session on main thread', () => scenario(main, `backlog ${n}, main thread`, n, false), once);
  });
}
