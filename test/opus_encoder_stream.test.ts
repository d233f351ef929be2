// OpusEncoderStream: packets independent of chunking, partial frames carried across pushes, flush
// padding that keeps every pushed sample decodable, options validated and honoured, reset.
import { describe, expect, it } from 'vitest';
import { OpusEncoderStream, OpusPacketDecoder, parseOpusPacket } from '../src/codecs/audio/opus.js';
import type { OpusEncoderOptions } from '../src/codecs/audio/opus.js';
import { CodecError } from '../src/codecs/errors.js';
import { concatFloat, rms, seededRandom, sine, speechLike } from './helpers/opus_signals.js';

function encodeChunked(input: Float32Array, options: OpusEncoderOptions, chunkSizes: () => number): { packets: Buffer[]; padding: number } {
  const encoder = new OpusEncoderStream(options);
  const packets: Buffer[] = [];
  for (let at = 0; at < input.length; ) {
    const n = Math.min(chunkSizes(), input.length - at);
    packets.push(...encoder.push(input.subarray(at, at + n)));
    at += n;
    // Nothing beyond one frame is ever held back.
    expect(encoder.bufferedSamples).toBeLessThan(encoder.frameSamples);
  }
  const { packets: tail, paddingSamples } = encoder.flush();
  return { packets: [...packets, ...tail], padding: paddingSamples };
}

const hex = (packets: Buffer[]): string[] => packets.map((p) => p.toString('hex'));

describe('chunk-size invariance', () => {
  const input = speechLike(24000, 4.013); // not a whole number of frames at any rate

  it.each([
    [48000, 20],
    [48000, 10],
    [24000, 60],
    [16000, 40],
  ])('%i Hz / %i ms: one push and random chunks give identical packets', (sampleRate, frameMs) => {
    const whole = encodeChunked(input, { sampleRate, frameMs }, () => input.length);
    const rnd = seededRandom(sampleRate + frameMs);
    // Chunk sizes from 0 (empty pushes) to a few frames, with many single samples.
    const sizes = () => (rnd() < 0.2 ? Math.floor(rnd() * 2) : Math.floor(rnd() * 4000));
    const chunked = encodeChunked(input, { sampleRate, frameMs }, sizes);
    expect(hex(chunked.packets)).toEqual(hex(whole.packets));
    expect(chunked.padding).toBe(whole.padding);
    expect(whole.packets.every((p) => parseOpusPacket(p).durationMs === frameMs)).toBe(true);
  });
});

describe('flush', () => {
  it('pads the partial frame with silence and reports how much', () => {
    // At 24 kHz (no resampling): 10 300 samples = 21 frames of 480 + 220 left over.
    const encoder = new OpusEncoderStream({ sampleRate: 24000, frameMs: 20 });
    expect(encoder.push(sine(440, 24000, 10300)).length).toBe(21);
    expect(encoder.bufferedSamples).toBe(220);
    const { packets, paddingSamples } = encoder.flush();
    // 260 samples of silence complete the frame; that exceeds the 156-sample look-ahead, so no more.
    expect(packets.length).toBe(1);
    expect(paddingSamples).toBe(260);
    expect(encoder.bufferedSamples).toBe(0);
  });

  it('adds one silent frame when the padding is shorter than the look-ahead, so the tail is decodable', () => {
    for (const [inputSamples, expectedPadding, expectedPackets] of [
      [10000, 160 + 960, 22], // 20 000 at 48 kHz: 800 in the last frame, 160 + a frame of padding
      [9600, 960, 21], // exactly 20 frames: the look-ahead needs a whole frame
      [9700, 760, 21], // 19 400: 200 in the last frame, 760 of padding covers 312
    ] as const) {
      const encoder = new OpusEncoderStream({ sampleRate: 48000 });
      expect(encoder.lookaheadSamples).toBe(312);
      const input = sine(440, 24000, inputSamples);
      const packets = [...encoder.push(input), ...encoder.flush().packets];
      expect(packets.length).toBe(expectedPackets);
      expect(encoder.stats.paddingSamples).toBe(expectedPadding);
      expect(encoder.stats.samplesEncoded).toBe(2 * inputSamples + expectedPadding);
      // Decoded at 48 kHz the stream lags by 312 samples; the last 5 ms of tone must be there in full.
      const decoder = new OpusPacketDecoder({ sampleRate: 48000 });
      const out = concatFloat(packets.map((p) => decoder.decode(p)));
      const end = 2 * inputSamples + 312;
      expect(rms(out, end - 240, end)).toBeGreaterThan(0.8 * (0.5 / Math.SQRT2));
      // and what follows is the padding's silence.
      expect(rms(out, end + 240, Math.min(out.length, end + 480))).toBeLessThan(0.02);
    }
  });

  it('returns nothing when nothing was pushed since the last flush, and the stream goes on', () => {
    const encoder = new OpusEncoderStream({ sampleRate: 24000 });
    expect(encoder.flush()).toEqual({ packets: [], paddingSamples: 0 });
    encoder.push(sine(440, 24000, 1000));
    expect(encoder.flush().packets.length).toBeGreaterThan(0);
    expect(encoder.flush()).toEqual({ packets: [], paddingSamples: 0 });
    expect(encoder.push(sine(440, 24000, 480)).length).toBe(1);
    expect(encoder.stats.samplesIn).toBe(1480);
  });
});

describe('options', () => {
  it.each<[OpusEncoderOptions, string, string]>([
    [{ sampleRate: 44100 }, 'audio_sample_rate_unsupported', 'sampleRate'],
    [{ sampleRate: 8000 }, 'audio_sample_rate_unsupported', 'sampleRate'],
    [{ inputSampleRate: 0 }, 'audio_sample_rate_unsupported', 'inputSampleRate'],
    // A positive rate the resampler cannot take is the same error, not the resampler's own.
    [{ inputSampleRate: 500 }, 'audio_sample_rate_unsupported', 'inputSampleRate'],
    [{ inputSampleRate: 1_000_000 }, 'audio_sample_rate_unsupported', 'inputSampleRate'],
    [{ frameMs: 30 }, 'audio_option_invalid', 'frameMs'],
    [{ frameMs: 2.5 }, 'audio_option_invalid', 'frameMs'],
    [{ bitrate: 5999 }, 'audio_option_invalid', 'bitrate'],
    [{ bitrate: 600000 }, 'audio_option_invalid', 'bitrate'],
    [{ application: 'music' as 'audio' }, 'audio_option_invalid', 'application'],
    [{ complexity: 11 }, 'audio_option_invalid', 'complexity'],
  ])('rejects %o', (options, code, param) => {
    let caught: unknown;
    try {
      new OpusEncoderStream(options);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CodecError);
    expect(caught).toMatchObject({ code, param });
  });

  it('rejects samples that are not a Float32Array', () => {
    const encoder = new OpusEncoderStream();
    expect(() => encoder.push(new Int16Array(480) as unknown as Float32Array)).toThrow(expect.objectContaining({ code: 'audio_invalid_samples' }));
  });

  it('honours the bitrate: bytes per packet follow it', () => {
    const input = speechLike(24000, 2);
    for (const bitrate of [16000, 32000, 64000]) {
      const encoder = new OpusEncoderStream({ bitrate });
      const packets = encoder.push(input);
      const bytesPerPacket = packets.reduce((n, p) => n + p.length, 0) / packets.length;
      const target = (bitrate / 8) * 0.02;
      expect(bytesPerPacket).toBeGreaterThan(target * 0.8);
      expect(bytesPerPacket).toBeLessThan(target * 1.2);
    }
  });

  it('applies the application and complexity settings (they change the packets)', () => {
    const input = speechLike(24000, 1);
    const packetsOf = (options: OpusEncoderOptions) => hex(new OpusEncoderStream(options).push(input));
    const voip = packetsOf({ application: 'voip' });
    expect(packetsOf({ application: 'voip' })).toEqual(voip);
    expect(packetsOf({ application: 'audio' })).not.toEqual(voip);
    expect(packetsOf({ complexity: 0 })).not.toEqual(voip);
  });

  it('encodes 24 kHz input at 24 kHz without resampling and other input rates with it', () => {
    const at24 = new OpusEncoderStream({ sampleRate: 24000 });
    expect(at24.push(sine(440, 24000, 4800)).length).toBe(10);
    // 3200 at 16 kHz is 9600 at 48 kHz: 10 frames (the resampler holds its look-ahead until flush),
    // then a silent frame for the encoder look-ahead.
    const from16 = new OpusEncoderStream({ inputSampleRate: 16000, sampleRate: 48000 });
    const packets = [...from16.push(sine(440, 16000, 3200)), ...from16.flush().packets];
    expect(packets.length).toBe(11);
    expect(from16.stats).toMatchObject({ samplesIn: 3200, samplesEncoded: 11 * 960, paddingSamples: 960 });
  });
});

describe('reset', () => {
  it('drops the partial frame and restarts: what follows matches a fresh encoder', () => {
    const input = speechLike(24000, 1);
    const used = new OpusEncoderStream();
    used.push(speechLike(24000, 0.517, 3));
    expect(used.bufferedSamples).toBeGreaterThan(0);
    used.reset();
    expect(used.bufferedSamples).toBe(0);
    expect(hex(used.push(input))).toEqual(hex(new OpusEncoderStream().push(input)));
  });
});
