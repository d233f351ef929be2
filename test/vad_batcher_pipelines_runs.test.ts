// The batcher keeps up to `maxInFlight` runs going, so the model's worker has the next batch
// waiting while the main thread takes the previous one's results; a stream still has one frame
// queued or running at a time.
import { describe, expect, it } from 'vitest';
import { VadBatcher } from '../src/codecs/audio/vad_batcher.js';
import { SILERO_FRAME_SAMPLES, SileroStreamState, type SileroVad } from '../src/codecs/audio/vad_model.js';

function manualModel() {
  const runs: { size: number; finish: () => void }[] = [];
  const model = {
    maxBatch: Number.POSITIVE_INFINITY,
    inferBatch: (frames: readonly Float32Array[]) =>
      new Promise<Float32Array>((resolve) => runs.push({ size: frames.length, finish: () => resolve(new Float32Array(frames.length).fill(0.25)) })),
  } as unknown as SileroVad;
  return { model, runs };
}

const frame = () => new Float32Array(SILERO_FRAME_SAMPLES);
const settle = () => new Promise((r) => setTimeout(r, 5));

describe('vad batcher pipelining', () => {
  it('starts a second run while the first is in flight, and no third before one returns', async () => {
    const { model, runs } = manualModel();
    const batcher = new VadBatcher({ model, maxBatch: 2, maxDelayMs: 0, maxInFlight: 2 });
    const results = Array.from({ length: 6 }, () => batcher.infer(new SileroStreamState(), frame()));
    await settle();
    expect(runs.map((r) => r.size)).toEqual([2, 2]);
    expect(batcher.queued).toBe(2);
    runs[0]!.finish();
    await settle();
    expect(runs.map((r) => r.size)).toEqual([2, 2, 2]);
    runs[1]!.finish();
    runs[2]!.finish();
    expect(await Promise.all(results)).toEqual([0.25, 0.25, 0.25, 0.25, 0.25, 0.25]);
    expect(batcher.stats).toMatchObject({ runs: 3, frames: 6, largestBatch: 2 });
  });

  it('with maxInFlight 1 runs one batch at a time', async () => {
    const { model, runs } = manualModel();
    const batcher = new VadBatcher({ model, maxBatch: 2, maxDelayMs: 0, maxInFlight: 1 });
    const results = Array.from({ length: 4 }, () => batcher.infer(new SileroStreamState(), frame()));
    await settle();
    expect(runs).toHaveLength(1);
    runs[0]!.finish();
    await settle();
    expect(runs).toHaveLength(2);
    runs[1]!.finish();
    await Promise.all(results);
  });

  it('refuses a bad maxInFlight', () => {
    expect(() => new VadBatcher({ maxInFlight: 0 })).toThrow(RangeError);
  });
});
