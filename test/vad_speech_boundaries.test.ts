// Turn detection on real synthesised speech through the Silero model:
// 1 s silence + utterance + 1.5 s silence + utterance + silence. Truth is where the utterances
// were placed, refined by an energy check; frames are 32 ms, so starts may lag by the frame and
// the model's onset (tolerance 100 ms) and ends land within two frames (64 ms).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VoiceActivityDetector, type VadConfig, type VadEvent, type VadSpeechStarted, type VadSpeechStopped } from '../src/codecs/audio/vad_detector.js';
import { SileroVad } from '../src/codecs/audio/vad_model.js';
import { buildStream, speech, type BuiltStream } from './helpers/vad_audio.js';

let model: SileroVad;
let stream: BuiltStream;

beforeAll(async () => {
  model = await SileroVad.load();
  stream = buildStream([
    { silenceMs: 1000 },
    { speech: speech('The quick brown fox jumps over the lazy dog.') },
    { silenceMs: 1500 },
    { speech: speech('Please call me back when you have a moment.') },
    { silenceMs: 1500 },
  ]);
});

afterAll(async () => {
  await model.close();
});

async function detect(samples: Float32Array, config: Partial<VadConfig> = {}): Promise<{ events: VadEvent[]; maxP: number }> {
  const events: VadEvent[] = [];
  let maxP = 0;
  const d = new VoiceActivityDetector({
    inference: model,
    config,
    onEvent: (e) => events.push(e),
    onFrame: (f) => (maxP = Math.max(maxP, f.probability)),
  });
  d.push(samples);
  await d.drain();
  return { events, maxP };
}

const starts = (ev: VadEvent[]) => ev.filter((e): e is VadSpeechStarted => e.type === 'speech_started');
const stops = (ev: VadEvent[]) => ev.filter((e): e is VadSpeechStopped => e.type === 'speech_stopped');

describe('speech boundaries on real speech', () => {
  it('finds both utterances, each started then stopped, near the true boundaries', async () => {
    const { events } = await detect(stream.samples);
    expect(events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped', 'speech_started', 'speech_stopped']);
    for (const [i, truth] of stream.truth.entries()) {
      const started = starts(events)[i]!;
      const stopped = stops(events)[i]!;
      expect(Math.abs(started.speechStartMs - truth.start / 16)).toBeLessThanOrEqual(100);
      expect(Math.abs(stopped.audioEndMs - truth.end / 16)).toBeLessThanOrEqual(64);
      // Defaults: 300 ms of padding; 500 ms of silence is 16 frames (512 ms) after the last speech frame.
      expect(started.audioStartMs).toBe(started.speechStartMs - 300);
      expect(stopped.detectedAtMs - stopped.audioEndMs).toBe(512);
      expect(started.audioStartSample).toBe(started.audioStartMs * 16);
    }
  });

  it('prefix_padding_ms moves audio_start_ms back by exactly its value and changes nothing else', async () => {
    const base = await detect(stream.samples, { prefixPaddingMs: 0 });
    for (const pad of [150, 300, 700]) {
      const padded = await detect(stream.samples, { prefixPaddingMs: pad });
      expect(stops(padded.events)).toEqual(stops(base.events));
      expect(starts(padded.events).map((e) => e.speechStartMs)).toEqual(starts(base.events).map((e) => e.speechStartMs));
      expect(starts(padded.events).map((e) => e.audioStartMs)).toEqual(starts(base.events).map((e) => e.audioStartMs - pad));
    }
  });

  it('prefix padding is clamped at the stream start', async () => {
    const early = buildStream([{ silenceMs: 100 }, { speech: speech('Hello there.') }, { silenceMs: 1000 }]);
    const { events } = await detect(early.samples, { prefixPaddingMs: 300 });
    const started = starts(events)[0]!;
    expect(started.speechStartMs).toBeLessThan(300);
    expect(started.audioStartMs).toBe(0);
  });

  it('silence_duration_ms delays speech_stopped by that much (rounded up to frames) without moving audio_end_ms', async () => {
    const base = await detect(stream.samples, { silenceDurationMs: 200 });
    for (const silence of [200, 500, 1000]) {
      const { events } = await detect(stream.samples, { silenceDurationMs: silence });
      expect(stops(events).map((e) => e.audioEndMs)).toEqual(stops(base.events).map((e) => e.audioEndMs));
      for (const stopped of stops(events)) expect(stopped.detectedAtMs - stopped.audioEndMs).toBe(Math.ceil(silence / 32) * 32);
      expect(starts(events)).toEqual(starts(base.events));
    }
  });

  it('a silence duration longer than the pause merges both utterances into one turn', async () => {
    const long = buildStream([
      { silenceMs: 1000 },
      { speech: speech('The quick brown fox jumps over the lazy dog.') },
      { silenceMs: 1500 },
      { speech: speech('Please call me back when you have a moment.') },
      { silenceMs: 3500 },
    ]);
    const { events } = await detect(long.samples, { silenceDurationMs: 3000 });
    expect(events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped']);
    expect(Math.abs(starts(events)[0]!.speechStartMs - long.truth[0]!.start / 16)).toBeLessThanOrEqual(100);
    expect(Math.abs(stops(events)[0]!.audioEndMs - long.truth[1]!.end / 16)).toBeLessThanOrEqual(64);
  });

  it('a stricter threshold never starts earlier', async () => {
    const loose = starts((await detect(stream.samples, { threshold: 0.3 })).events);
    const strict = starts((await detect(stream.samples, { threshold: 0.9 })).events);
    expect(strict).toHaveLength(2);
    for (const [i, s] of strict.entries()) expect(s.speechStartMs).toBeGreaterThanOrEqual(loose[i]!.speechStartMs);
  });
});

describe('no speech, no events', () => {
  it('digital silence, white noise at several levels and mains hum give no events', async () => {
    const signals: [string, Float32Array][] = [
      ['silence', new Float32Array(16000 * 5)],
      ...[0.01, 0.05, 0.1, 0.3].map((amp, i): [string, Float32Array] => [`noise ${amp}`, buildStream([{ silenceMs: 6000, noise: amp }], 11 + i).samples]),
      ['hum', Float32Array.from({ length: 16000 * 5 }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 50 * i) / 16000) + 0.1 * Math.sin((2 * Math.PI * 1000 * i) / 16000))],
    ];
    for (const [name, samples] of signals) {
      const { events, maxP } = await detect(samples);
      expect(events, name).toEqual([]);
      expect(maxP, name).toBeLessThan(0.5);
    }
  });

  it('speech over a noise bed is still found', async () => {
    const utterance = speech('Turn the lights off in the kitchen.');
    const noisy = buildStream([{ silenceMs: 1000, noise: 0.005 }, { speech: utterance }, { silenceMs: 1000, noise: 0.005 }], 3);
    // Add the same noise under the speech too.
    const bed = buildStream([{ silenceMs: (noisy.samples.length / 16000) * 1000, noise: 0.005 }], 5).samples;
    const mixed = noisy.samples.map((v, i) => v + (bed[i] ?? 0));
    const { events } = await detect(mixed);
    expect(events.map((e) => e.type)).toEqual(['speech_started', 'speech_stopped']);
    expect(Math.abs(starts(events)[0]!.speechStartMs - noisy.truth[0]!.start / 16)).toBeLessThanOrEqual(100);
  });
});
