// Chunk size must not change anything: frames are cut at fixed stream positions, so 20 ms,
// 100 ms, random chunks and a single push give the same probabilities and the same events.
// This runs through the default path (process-wide batcher over the shared model).
import { describe, expect, it } from 'vitest';
import { VoiceActivityDetector, type VadEvent } from '../src/codecs/audio/vad_detector.js';
import { buildStream, chunked, speech } from './helpers/vad_audio.js';

async function run(chunks: Float32Array[]): Promise<{ events: VadEvent[]; probs: number[] }> {
  const events: VadEvent[] = [];
  const probs: number[] = [];
  const d = new VoiceActivityDetector({ onEvent: (e) => events.push(e), onFrame: (f) => probs.push(f.probability) });
  for (const [i, c] of chunks.entries()) {
    d.push(c);
    // Let scoring interleave with arrival every few chunks, as it does with a live client.
    if (i % 3 === 0) await new Promise((r) => setImmediate(r));
  }
  await d.drain();
  return { events, probs };
}

describe('chunking', () => {
  it('20 ms, 100 ms, random chunks and a single push give identical events and probabilities', async () => {
    const s = buildStream([
      { silenceMs: 1000 },
      { speech: speech('Could you book a table for two at seven?') },
      { silenceMs: 1500 },
      { speech: speech('Actually, make it eight.') },
      { silenceMs: 1000 },
    ]);
    let seed = 42;
    const random = Array.from({ length: 2000 }, () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return 1 + (seed % 3000);
    });
    const whole = await run([s.samples]);
    expect(whole.events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped', 'speech_started', 'speech_stopped']);
    expect(whole.probs).toHaveLength(Math.floor(s.samples.length / 512));
    for (const sizes of [[320], [1600], random, [1, 7, 511, 513, 1023]]) {
      const r = await run(chunked(s.samples, sizes));
      expect(r.events).toEqual(whole.events);
      expect(r.probs).toEqual(whole.probs);
    }
  });
});
