// Model speech out and back in: 24 kHz float -> OpusEncoderStream (48 kHz, 20 ms) -> packets ->
// OpusPacketDecoder at 16 kHz. Bounds were measured on libopus 1.3.1 and set with a margin of
// several dB: they catch a wrong rate, lost or duplicated frames, or misaligned buffering.
import opus from '@discordjs/opus';
import { describe, expect, it } from 'vitest';
import { OpusEncoderStream, OpusPacketDecoder, parseOpusPacket } from '../src/codecs/audio/opus.js';
import type { OpusEncoderOptions } from '../src/codecs/audio/opus.js';
import { float32ToPcm16le } from '../src/codecs/audio/pcm.js';
import { resample } from '../src/codecs/audio/resample.js';
import { alignedSnr, concatFloat, peakFrequency, rms, sine, sineFit, speechLike } from './helpers/opus_signals.js';

function roundTrip(input: Float32Array, options: OpusEncoderOptions): { decoded: Float32Array; packets: Buffer[] } {
  const encoder = new OpusEncoderStream(options);
  const packets = [...encoder.push(input), ...encoder.flush().packets];
  const decoder = new OpusPacketDecoder();
  return { decoded: concatFloat(packets.map((p) => decoder.decode(p))), packets };
}

describe('sine round trip (24 kHz -> Opus 48 kHz / 20 ms -> 16 kHz)', () => {
  // Measured: 39.5 dB at 32 kb/s, 49.6 dB at 64 kb/s (voip).
  it.each([
    [32000, 30],
    [64000, 40],
  ])('keeps 440 Hz at 440 Hz with SNR above the bound at %i b/s', (bitrate, minSnrDb) => {
    const { decoded, packets } = roundTrip(sine(440, 24000, 48000), { sampleRate: 48000, frameMs: 20, bitrate });
    expect(packets.every((p) => parseOpusPacket(p).durationMs === 20)).toBe(true);
    // 2 s in 100 frames, plus the flush frame that carries the look-ahead.
    expect(decoded.length).toBe(101 * 320);
    const from = 3200;
    const to = 28800;
    expect(peakFrequency(decoded, 16000, 400, 480, from, to)).toBeCloseTo(440, 0);
    const fit = sineFit(decoded, 440, 16000, from, to);
    expect(fit.snrDb).toBeGreaterThan(minSnrDb);
    expect(fit.amplitude).toBeGreaterThan(0.45);
    expect(fit.amplitude).toBeLessThan(0.55);
  });

  it('keeps a 3 kHz tone, which a decoder at the wrong rate would move', () => {
    const { decoded } = roundTrip(sine(3000, 24000, 24000, 0.3), { bitrate: 64000 });
    expect(peakFrequency(decoded, 16000, 2900, 3100, 1600, 14400)).toBeCloseTo(3000, 0);
    expect(sineFit(decoded, 3000, 16000, 1600, 14400).snrDb).toBeGreaterThan(25);
  });

  it('gets closer to the input as the bitrate rises', () => {
    const snr = [12000, 32000, 96000].map((bitrate) => sineFit(roundTrip(sine(440, 24000, 48000), { bitrate }).decoded, 440, 16000, 3200, 28800).snrDb);
    expect(snr[1]!).toBeGreaterThan(snr[0]!);
    expect(snr[2]!).toBeGreaterThan(snr[1]!);
  });
});

describe('speech-like round trip', () => {
  const input = speechLike(24000, 3);
  const reference = resample(input, 24000, 16000);

  // Measured at 32 kb/s: voip 13.9 dB, audio 18.6 dB; both 104 samples (6.5 ms) late.
  it.each([
    ['voip', 9],
    ['audio', 13],
  ] as const)('%s: waveform SNR above the bound, delayed by exactly the 6.5 ms look-ahead', (application, minSnrDb) => {
    const { decoded, packets } = roundTrip(input, { application, bitrate: 32000 });
    const { snrDb, lag } = alignedSnr(reference, decoded, 400, 1600);
    expect(lag).toBe(104);
    expect(snrDb).toBeGreaterThan(minSnrDb);
    // The bitrate option is honoured: 3 s at 32 kb/s is about 12 kB.
    const total = packets.reduce((n, p) => n + p.length, 0);
    expect(total).toBeGreaterThan(12000 * 0.8);
    expect(total).toBeLessThan(12000 * 1.2);
  });

  it('keeps the loudness contour (syllables stay where they were)', () => {
    const { decoded } = roundTrip(input, {});
    for (let frame = 0; frame < 140; frame++) {
      const at = frame * 320;
      const ref = rms(reference, at, at + 320);
      const got = rms(decoded, at + 104, at + 104 + 320);
      expect(Math.abs(got - ref)).toBeLessThan(0.25 * ref + 0.005);
    }
  });

  it('encodes at 24 and 16 kHz too, with the same timeline', () => {
    for (const sampleRate of [24000, 16000]) {
      const { decoded, packets } = roundTrip(input, { sampleRate });
      expect(packets.length).toBe(151);
      expect(decoded.length).toBe(151 * 320);
      expect(alignedSnr(reference, decoded, 400, 1600).snrDb).toBeGreaterThan(9);
    }
  });
});

describe('stereo streams', () => {
  it('downmixes inside libopus: a stereo packet decodes to mono holding both channels at half level', () => {
    // A browser may send stereo Opus; build such packets with the raw libopus binding.
    const left = sine(440, 48000, 96000);
    const right = sine(1000, 48000, 96000);
    const interleaved = new Float32Array(2 * left.length);
    for (let i = 0; i < left.length; i++) {
      interleaved[2 * i] = left[i]!;
      interleaved[2 * i + 1] = right[i]!;
    }
    const pcm = float32ToPcm16le(interleaved);
    const stereoEncoder = new opus.OpusEncoder(48000, 2);
    stereoEncoder.setBitrate(96000);
    const decoder = new OpusPacketDecoder();
    const parts: Float32Array[] = [];
    for (let at = 0; at < pcm.length; at += 960 * 4) {
      const packet = stereoEncoder.encode(pcm.subarray(at, at + 960 * 4));
      expect(parseOpusPacket(packet).stereo).toBe(true);
      parts.push(decoder.decode(packet));
    }
    const mono = concatFloat(parts);
    expect(mono.length).toBe(32000);
    for (const freq of [440, 1000]) {
      const { amplitude } = sineFit(mono, freq, 16000, 3200, 28800);
      expect(amplitude).toBeGreaterThan(0.2);
      expect(amplitude).toBeLessThan(0.3);
    }
  });
});
