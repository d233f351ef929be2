// Many streams scored together: one Silero run per batch, each stream with its own recurrent
// state, must give what each stream gets alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CodecError } from '../src/codecs/errors.js';
import { VadBatcher } from '../src/codecs/audio/vad_batcher.js';
import { VoiceActivityDetector, type VadEvent } from '../src/codecs/audio/vad_detector.js';
import { SILERO_FRAME_SAMPLES, SileroStreamState, SileroVad, getSharedSileroVad } from '../src/codecs/audio/vad_model.js';
import { buildStream, chunked, speech } from './helpers/vad_audio.js';

const TEXTS = [
  'Good morning, what is the weather like?',
  'Set a timer for ten minutes.',
  'How far is the moon from the earth?',
  'Play some jazz in the living room.',
  'Remind me to buy milk tomorrow.',
  'What time does the pharmacy close?',
  'Translate thank you into French.',
  'Read me the latest news headlines.',
];

let model: SileroVad;
let streams: Float32Array[];

beforeAll(async () => {
  model = await SileroVad.load();
  // Eight different streams: different words, lead-in silences and noise floors.
  streams = TEXTS.map(
    (t, i) =>
      buildStream(
        [{ silenceMs: 300 + 170 * i, noise: 0.002 * (i % 3) }, { speech: speech(t) }, { silenceMs: 900, noise: 0.002 * (i % 3) }, { speech: speech(TEXTS[(i + 3) % 8]!) }, { silenceMs: 800 }],
        i + 1,
      ).samples,
  );
});

afterAll(async () => {
  await model.close();
});

interface Scored {
  probs: number[];
  events: VadEvent[];
}

function detector(inference: VadBatcher | SileroVad, out: Scored): VoiceActivityDetector {
  return new VoiceActivityDetector({ inference, onEvent: (e) => out.events.push(e), onFrame: (f) => out.probs.push(f.probability) });
}

describe('batched inference', () => {
  it('eight streams batched give the probabilities and events each gets alone (within 1e-5)', async () => {
    const alone: Scored[] = [];
    for (const s of streams) {
      const out: Scored = { probs: [], events: [] };
      const d = detector(model, out);
      d.push(s);
      await d.drain();
      alone.push(out);
    }

    // No deadline in play: a batch leaves only when 8 frames wait or the previous run returns,
    // so the batch sizes below do not depend on timers. (Pushing outpaces scoring: every stream
    // keeps a backlog until its audio ends, so each run takes a frame from every active stream.)
    const batcher = new VadBatcher({ model, maxBatch: 8, maxDelayMs: 60_000 });
    const together: Scored[] = streams.map(() => ({ probs: [], events: [] }));
    const detectors = together.map((out) => detector(batcher, out));
    // 20 ms chunks, round robin, as live clients would send them.
    const chunks = streams.map((s) => chunked(s, [320]));
    const longest = Math.max(...chunks.map((c) => c.length));
    for (let k = 0; k < longest; k++) {
      for (const [i, d] of detectors.entries()) {
        const c = chunks[i]![k];
        if (c) d.push(c);
      }
      if (k % 5 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(detectors.map((d) => d.drain()));

    const stats = batcher.stats;
    expect(stats.largestBatch).toBe(8);
    expect(stats.frames).toBe(alone.reduce((n, a) => n + a.probs.length, 0));
    expect(stats.runs).toBeLessThan(stats.frames / 2);
    for (const [i, a] of alone.entries()) {
      const b = together[i]!;
      expect(b.probs).toHaveLength(a.probs.length);
      const worst = Math.max(...a.probs.map((p, j) => Math.abs(p - b.probs[j]!)));
      expect(worst, `stream ${i}`).toBeLessThanOrEqual(1e-5);
      expect(b.events, `stream ${i}`).toEqual(a.events);
      expect(a.events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped', 'speech_started', 'speech_stopped']);
    }
  });

  it('one batch call equals per-stream calls, and the main-thread session equals the worker', async () => {
    const main = await SileroVad.load({ thread: 'main' });
    try {
      const frames = streams.map((s) => s.subarray(16000, 16000 + SILERO_FRAME_SAMPLES));
      const batchStates = frames.map(() => new SileroStreamState());
      const soloStates = frames.map(() => new SileroStreamState());
      const mainStates = frames.map(() => new SileroStreamState());
      // Several steps, so the recurrent state has to be carried per stream.
      for (let step = 0; step < 4; step++) {
        const batched = await model.inferBatch(frames, batchStates);
        const onMain = await main.inferBatch(frames, mainStates);
        for (const [i, f] of frames.entries()) {
          const solo = await model.infer(soloStates[i]!, f);
          expect(Math.abs(batched[i]! - solo)).toBeLessThanOrEqual(1e-5);
          expect(Math.abs(onMain[i]! - solo)).toBeLessThanOrEqual(1e-5);
        }
      }
      for (const [i, s] of batchStates.entries()) {
        for (let j = 0; j < s.h.length; j++) expect(Math.abs(s.h[j]! - soloStates[i]!.h[j]!)).toBeLessThanOrEqual(1e-5);
      }
      expect(batchStates[0]!.h.some((v) => v !== 0)).toBe(true);
    } finally {
      await main.close();
    }
  });
});

describe('the batcher', () => {
  const frame = () => new Float32Array(SILERO_FRAME_SAMPLES);

  it('sends a partial batch when the deadline passes', async () => {
    const batcher = new VadBatcher({ model, maxBatch: 32, maxDelayMs: 20 });
    const probs = await Promise.all([0, 1, 2].map(() => batcher.infer(new SileroStreamState(), frame())));
    expect(probs).toHaveLength(3);
    expect(batcher.stats).toMatchObject({ runs: 1, frames: 3, largestBatch: 3 });
  });

  it('sends a full batch at once, without waiting for the deadline', async () => {
    const batcher = new VadBatcher({ model, maxBatch: 4, maxDelayMs: 60_000 });
    const probs = await Promise.all([0, 1, 2, 3].map(() => batcher.infer(new SileroStreamState(), frame())));
    expect(probs).toHaveLength(4);
    expect(batcher.stats).toMatchObject({ runs: 1, largestBatch: 4 });
  });

  it('refuses frames beyond its queue bound with vad_overloaded and still scores those queued', async () => {
    const batcher = new VadBatcher({ model, maxBatch: 32, maxDelayMs: 10, maxQueue: 2 });
    const a = batcher.infer(new SileroStreamState(), frame());
    const b = batcher.infer(new SileroStreamState(), frame());
    const third = new SileroStreamState();
    await expect(batcher.infer(third, frame())).rejects.toMatchObject({ code: 'vad_overloaded' });
    expect(third.busy).toBe(false);
    expect(await Promise.all([a, b])).toHaveLength(2);
    expect(batcher.stats).toMatchObject({ frames: 2, rejected: 1 });
  });

  it('a detector whose frame is refused reports vad_overloaded', async () => {
    const batcher = new VadBatcher({ model, maxBatch: 32, maxDelayMs: 10, maxQueue: 1 });
    const errors: unknown[] = [];
    const first = new VoiceActivityDetector({ inference: batcher });
    const second = new VoiceActivityDetector({ inference: batcher, onError: (e) => errors.push(e) });
    first.push(frame());
    second.push(frame());
    await first.drain();
    await expect(second.drain()).rejects.toMatchObject({ code: 'vad_overloaded' });
    expect(errors).toHaveLength(1);
  });

  it('takes one frame per stream at a time (its state is needed for the next)', async () => {
    const batcher = new VadBatcher({ model });
    const s = new SileroStreamState();
    const first = batcher.infer(s, frame());
    await expect(batcher.infer(s, frame())).rejects.toThrow('already has a frame');
    await first;
    await expect(batcher.infer(s, frame())).resolves.toBeTypeOf('number');
  });

  it('fails waiting frames with vad_model_unavailable when the model cannot load', async () => {
    const batcher = new VadBatcher({ model: () => SileroVad.load({ modelPath: '/nonexistent/silero_vad.onnx' }), maxDelayMs: 1 });
    const err = await batcher.infer(new SileroStreamState(), frame()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodecError);
    expect(err).toMatchObject({ code: 'vad_model_unavailable' });
  });

  it('fails a run that never finishes with vad_model_unavailable and goes on with the next batch', async () => {
    let calls = 0;
    const hung = {
      maxBatch: Number.POSITIVE_INFINITY,
      // The first run hangs (a stuck worker); later runs go to the real model.
      inferBatch: (frames: readonly Float32Array[], states: readonly SileroStreamState[]) =>
        calls++ === 0 ? new Promise<Float32Array>(() => {}) : model.inferBatch(frames, states),
    } as unknown as SileroVad;
    const batcher = new VadBatcher({ model: hung, maxDelayMs: 0, runTimeoutMs: 50 });
    const s = new SileroStreamState();
    const err = await batcher.infer(s, frame()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CodecError);
    expect(err).toMatchObject({ code: 'vad_model_unavailable' });
    expect(s.busy).toBe(false);
    await expect(batcher.infer(new SileroStreamState(), frame())).resolves.toBeTypeOf('number');
  });

  it('replaces the shared model once its worker is gone, so later runs work again', async () => {
    const first = await getSharedSileroVad();
    await expect(first.infer(new SileroStreamState(), frame())).resolves.toBeTypeOf('number');
    await first.close();
    expect(first.alive).toBe(false);
    await expect(first.infer(new SileroStreamState(), frame())).rejects.toMatchObject({ code: 'vad_model_unavailable' });

    const second = await getSharedSileroVad();
    try {
      expect(second).not.toBe(first);
      expect(second.alive).toBe(true);
      const batcher = new VadBatcher({ maxDelayMs: 0 });
      await expect(batcher.infer(new SileroStreamState(), frame())).resolves.toBeTypeOf('number');
    } finally {
      await second.close();
    }
  });
});
