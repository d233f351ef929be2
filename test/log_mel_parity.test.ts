// Parity with the reference: golden fixtures written by scripts/audio_fixtures.py from transformers'
// WhisperFeatureExtractor configured as Qwen3-Omni uses it (test/fixtures/audio/manifest.json).
import { describe, expect, it } from 'vitest';
import { MelStream, audioTokenCount, logMelFeatures, melFilterBank, melFrameCount } from '../src/codecs/audio/mel.js';
import { CodecError } from '../src/codecs/errors.js';
import { int16ToFloat32, loadFixtureClip, loadManifest, loadMelFilters, synthClip } from './helpers/audio-clips.js';

const TOLERANCE = 1e-4;
const manifest = loadManifest();

describe('log-mel parity with transformers (golden fixtures)', () => {
  it('uses the reference mel filter bank', () => {
    const ours = melFilterBank();
    const ref = loadMelFilters();
    let d = 0;
    for (let i = 0; i < ref.length; i++) d = Math.max(d, Math.abs(ours[i]! - ref[i]!));
    expect(d).toBeLessThan(1e-8); // float32 rounding of the float64 bank
  });

  it.each(manifest.clips.map((c) => [c.name, c.num_samples] as const))(
    '%s (%i samples): frames, tokens and every stored value within 1e-4',
    async (name) => {
      const clip = loadFixtureClip(name);
      const { entry } = clip;
      const f = await logMelFeatures(clip.samples);
      expect(f.frames).toBe(entry.num_frames);
      expect(melFrameCount(entry.num_samples)).toBe(entry.num_frames);
      expect(audioTokenCount(f.frames)).toBe(entry.num_audio_tokens);
      expect(Math.abs(f.clipMax - entry.stats.clip_max_log10)).toBeLessThan(TOLERANCE);
      let worst = 0;
      clip.frameIndices.forEach((t, j) => {
        for (let m = 0; m < 128; m++) {
          worst = Math.max(worst, Math.abs(f.data[m * f.frames + t]! - clip.frames[j * 128 + m]!));
        }
      });
      expect(worst).toBeLessThan(TOLERANCE);
      if (clip.frameMeans) {
        // Long clips store every frame's mean over the mel bins: checks the frames not stored whole.
        for (let t = 0; t < f.frames; t++) {
          let sum = 0;
          for (let m = 0; m < 128; m++) sum += f.data[m * f.frames + t]!;
          if (Math.abs(sum / 128 - clip.frameMeans[t]!) >= TOLERANCE) throw new Error(`frame ${t} mean differs`);
        }
      }
    },
  );

  it('gives the same features streamed in 20 ms chunks as the reference for speech', () => {
    const clip = loadFixtureClip('speech_en');
    const stream = new MelStream();
    for (let p = 0; p < clip.samples.length; p += 320) stream.push(clip.samples.subarray(p, p + 320));
    const f = stream.finish();
    let worst = 0;
    for (let t = 0; t < f.frames; t++) {
      for (let m = 0; m < 128; m++) worst = Math.max(worst, Math.abs(f.data[m * f.frames + t]! - clip.frames[t * 128 + m]!));
    }
    expect(worst).toBeLessThan(TOLERANCE);
  });

  it.each(manifest.error_cases.map((c) => [c.name, c] as const))(
    'rejects %s like the reference does, with audio_too_short',
    async (_name, c) => {
      const samples = int16ToFloat32(synthClip(c.generator));
      await expect(logMelFeatures(samples)).rejects.toSatisfy(
        (e: unknown) => e instanceof CodecError && e.code === 'audio_too_short' && e.param === 'audio',
      );
    },
  );
});
