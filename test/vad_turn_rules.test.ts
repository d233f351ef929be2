// The turn-detection rules on scripted probabilities, frame by frame, so every boundary is
// exact: a frame is 512 samples = 32 ms, frame k covers [32k, 32k + 32) ms.
import { describe, expect, it } from 'vitest';
import { VoiceActivityDetector, type VadConfig, type VadEvent } from '../src/codecs/audio/vad_detector.js';
import type { SileroStreamState, VadInference } from '../src/codecs/audio/vad_model.js';

const FRAME = 512;

/** Returns the scripted probability for each successive frame (0 after the script ends). */
class Scripted implements VadInference {
  calls = 0;
  readonly states: SileroStreamState[] = [];
  constructor(private readonly probs: number[]) {}
  infer(state: SileroStreamState, _frame: Float32Array): Promise<number> {
    this.states.push(state);
    return Promise.resolve(this.probs[this.calls++] ?? 0);
  }
}

async function run(probs: number[], config: Partial<VadConfig>, frames = probs.length) {
  const events: VadEvent[] = [];
  const d = new VoiceActivityDetector({ inference: new Scripted(probs), config, onEvent: (e) => events.push(e) });
  d.push(new Float32Array(frames * FRAME));
  await d.drain();
  return { events, d };
}

const seq = (...parts: [number, number][]) => parts.flatMap(([p, n]) => Array<number>(n).fill(p));

describe('speech start', () => {
  it('starts at the first frame over the threshold and confirms after the minimum speech duration', async () => {
    const { events } = await run(seq([0.1, 10], [0.9, 5], [0, 3]), { prefixPaddingMs: 0, minSpeechDurationMs: 64 });
    expect(events).toEqual([{ type: 'speech_started', audioStartMs: 320, audioStartSample: 5120, speechStartMs: 320, detectedAtMs: 384 }]);
  });

  it('moves audio_start_ms back by the prefix padding, clamped at the stream start', async () => {
    const a = await run(seq([0, 20], [0.9, 4]), { prefixPaddingMs: 300 });
    expect(a.events[0]).toMatchObject({ audioStartMs: 640 - 300, speechStartMs: 640 });
    const b = await run(seq([0, 3], [0.9, 4]), { prefixPaddingMs: 300 });
    expect(b.events[0]).toMatchObject({ audioStartMs: 0, speechStartMs: 96 });
  });

  it('ignores a burst shorter than the minimum speech duration (a click)', async () => {
    const click = seq([0, 5], [0.95, 1], [0, 5], [0.95, 2], [0, 5]);
    expect((await run(click, { minSpeechDurationMs: 96 })).events).toEqual([]);
    const withZero = await run(click, { minSpeechDurationMs: 0, prefixPaddingMs: 0, silenceDurationMs: 0 });
    expect(withZero.events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped', 'speech_started', 'speech_stopped']);
    expect(withZero.events[0]).toMatchObject({ speechStartMs: 160, detectedAtMs: 192 });
  });

  it('needs the threshold to start but only the exit threshold to continue (hysteresis)', async () => {
    // 0.4 is below the 0.5 threshold but above the default exit threshold 0.35.
    const neverStarts = await run(seq([0.4, 20]), {});
    expect(neverStarts.events).toEqual([]);
    const candidate = await run(seq([0, 2], [0.6, 1], [0.4, 1], [0, 30]), { minSpeechDurationMs: 64, prefixPaddingMs: 0, silenceDurationMs: 100 });
    expect(candidate.events).toEqual([
      { type: 'speech_started', audioStartMs: 64, audioStartSample: 1024, speechStartMs: 64, detectedAtMs: 128 },
      { type: 'speech_stopped', audioEndMs: 128, audioEndSample: 2048, detectedAtMs: 256 },
    ]);
    const dropsBelowExit = await run(seq([0, 2], [0.6, 1], [0.3, 1], [0, 30]), { minSpeechDurationMs: 64 });
    expect(dropsBelowExit.events).toEqual([]);
  });
});

describe('speech stop', () => {
  it('stops after the silence duration; audio_end_ms is the end of the last speech frame', async () => {
    // Speech in frames 2..9 (ends at 320 ms); 100 ms of silence needs 4 frames (128 ms).
    const { events } = await run(seq([0, 2], [0.9, 8], [0.1, 10]), { prefixPaddingMs: 0, silenceDurationMs: 100 });
    expect(events[1]).toEqual({ type: 'speech_stopped', audioEndMs: 320, audioEndSample: 5120, detectedAtMs: 320 + 128 });
  });

  it('restarts the silence count when speech resumes, and a weak frame keeps the turn open', async () => {
    const probs = seq([0.9, 4], [0, 3], [0.9, 2], [0, 3], [0.36, 1], [0, 20]);
    const { events } = await run(probs, { silenceDurationMs: 128, minSpeechDurationMs: 0 });
    expect(events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped']);
    // Last frame >= exit threshold is frame 12, ending at 13 * 32 = 416 ms; 128 ms later: 544.
    expect(events[1]).toMatchObject({ audioEndMs: 416, detectedAtMs: 544 });
  });

  it('with silence_duration_ms 0 stops at the first non-speech frame', async () => {
    const { events } = await run(seq([0.9, 3], [0, 2]), { silenceDurationMs: 0, minSpeechDurationMs: 0 });
    expect(events[1]).toMatchObject({ audioEndMs: 96, detectedAtMs: 128 });
  });

  it('keeps the next turn padding out of the previous turn', async () => {
    // Turn 1 (frames 0-4) stops at the end of frame 8 (288 ms); turn 2 starts at frame 12 (384 ms).
    const probs = seq([0.9, 5], [0, 4], [0, 3], [0.9, 3], [0, 10]);
    const { events } = await run(probs, { silenceDurationMs: 128, prefixPaddingMs: 300, minSpeechDurationMs: 0 });
    expect(events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped', 'speech_started', 'speech_stopped']);
    expect(events[1]).toMatchObject({ audioEndMs: 160, detectedAtMs: 288 });
    expect(events[2]).toMatchObject({ speechStartMs: 384, audioStartMs: 288 });
  });
});

describe('probabilities and reset', () => {
  it('exposes each frame probability and the speaking flag', async () => {
    const frames: [number, number, boolean][] = [];
    const d = new VoiceActivityDetector({
      inference: new Scripted([0.2, 0.8, 0.9, 0.1]),
      config: { minSpeechDurationMs: 64, silenceDurationMs: 1000 },
      onFrame: (f) => frames.push([f.startSample, f.probability, f.speaking]),
    });
    d.push(new Float32Array(4 * FRAME + 100));
    await d.drain();
    expect(frames).toEqual([
      [0, 0.2, false],
      [512, 0.8, false],
      [1024, 0.9, true],
      [1536, 0.1, true],
    ]);
    expect(d.lastProbability).toBe(0.1);
    expect(d.framesScored).toBe(4);
    expect(d.backlogSamples).toBe(100);
    expect(d.speaking).toBe(true);
  });

  it('reset forgets the turn, unscored audio and the model state, but keeps the timeline', async () => {
    const inference = new Scripted(seq([0.9, 4], [0.9, 4], [0, 20]));
    const events: VadEvent[] = [];
    const d = new VoiceActivityDetector({ inference, config: { minSpeechDurationMs: 0, prefixPaddingMs: 300, silenceDurationMs: 64 }, onEvent: (e) => events.push(e) });
    d.push(new Float32Array(4 * FRAME + 300));
    await d.drain();
    expect(d.speaking).toBe(true);
    const before = inference.states[0];
    d.reset();
    expect(d.speaking).toBe(false);
    expect(d.backlogSamples).toBe(0);
    d.push(new Float32Array(24 * FRAME));
    await d.drain();
    // No stop for the abandoned turn; the new one starts at the reset point (4 * 512 + 300
    // samples = 146.75 ms) and its padding does not reach back past it.
    expect(events.map((e) => e.type)).toEqual(['speech_started', 'speech_started', 'speech_stopped']);
    expect(events[1]).toMatchObject({ speechStartMs: 146.75, audioStartMs: 146.75, audioStartSample: 2348 });
    expect(events[2]).toMatchObject({ audioEndSample: 2348 + 4 * FRAME });
    expect(inference.states[4]).not.toBe(before);
    expect(Array.from(inference.states[4]!.h).every((v) => v === 0)).toBe(true);
    expect(d.samplesPushed).toBe(28 * FRAME + 300);
  });

  it('ignores a result that arrives after a reset', async () => {
    let release: ((p: number) => void) | undefined;
    const slow: VadInference = {
      infer: () =>
        new Promise<number>((r) => {
          release = r;
        }),
    };
    const events: VadEvent[] = [];
    const d = new VoiceActivityDetector({ inference: slow, config: { minSpeechDurationMs: 0 }, onEvent: (e) => events.push(e) });
    d.push(new Float32Array(FRAME));
    d.reset();
    release?.(0.99);
    await d.drain();
    expect(events).toEqual([]);
    expect(d.framesScored).toBe(0);
  });

  it('a scoring failure is reported once, then refuses audio until reset', async () => {
    const err = new Error('model gone');
    let fail = true;
    const flaky: VadInference = { infer: () => (fail ? Promise.reject(err) : Promise.resolve(0)) };
    const errors: unknown[] = [];
    const d = new VoiceActivityDetector({ inference: flaky, onError: (e) => errors.push(e) });
    d.push(new Float32Array(3 * FRAME));
    await expect(d.drain()).rejects.toBe(err);
    expect(errors).toEqual([err]);
    expect(() => d.push(new Float32Array(10))).toThrow(err);
    fail = false;
    d.reset();
    d.push(new Float32Array(2 * FRAME));
    await d.drain();
    expect(d.framesScored).toBe(2);
  });

  it('a throwing event listener fails the detector instead of being swallowed', async () => {
    const errors: unknown[] = [];
    const d = new VoiceActivityDetector({
      inference: new Scripted(seq([0.9, 5])),
      config: { minSpeechDurationMs: 0 },
      onEvent: () => {
        throw new Error('listener bug');
      },
      onError: (e) => errors.push(e),
    });
    d.push(new Float32Array(5 * FRAME));
    await expect(d.drain()).rejects.toThrow('listener bug');
    expect(errors).toHaveLength(1);
  });
});
