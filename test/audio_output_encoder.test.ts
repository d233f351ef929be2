// Output encoding: the talker's 24 kHz floats to the client's PCM16 or G.711, chunk by chunk,
// optionally base64-aligned; and 16-bit WAV files.
import alawmulaw from 'alawmulaw';
import wavefile from 'wavefile';
import { describe, expect, it } from 'vitest';
import { AudioInputDecoder } from '../src/codecs/audio/input_decoder.js';
import { AudioOutputEncoder, encodeAudioOutput } from '../src/codecs/audio/output_encoder.js';
import type { AudioOutputFormat } from '../src/codecs/audio/output_encoder.js';
import { g711Encode } from '../src/codecs/audio/g711.js';
import { float32ToPcm16le } from '../src/codecs/audio/pcm.js';
import { resample } from '../src/codecs/audio/resample.js';
import { encodeWav } from '../src/codecs/audio/wav.js';
import { CodecError } from '../src/codecs/errors.js';
import { concatFloat, rng, sine, sineFrequency } from './helpers/audio_codec.js';

function noise(n: number, seed: number, amplitude = 0.9): Float32Array {
  const next = rng(seed);
  return Float32Array.from({ length: n }, () => (next() * 2 - 1) * amplitude);
}

/** Pushes `x` in random-sized pieces; returns every chunk emitted, the last one from end(). */
function encodeChunked(enc: AudioOutputEncoder, x: Float32Array, seed: number, maxPiece: number): Buffer[] {
  const next = rng(seed);
  const chunks: Buffer[] = [];
  for (let at = 0; at < x.length; ) {
    const n = Math.min(1 + Math.floor(next() * maxPiece), x.length - at);
    chunks.push(enc.push(x.subarray(at, at + n)));
    at += n;
  }
  chunks.push(enc.end());
  return chunks;
}

function int16(bytes: Buffer): Int16Array {
  return new Int16Array(new Uint8Array(bytes).buffer);
}

describe('PCM16 output', () => {
  it('at 24 kHz is float32ToPcm16le of the samples, whatever the chunking', () => {
    const x = noise(24000 * 5 + 1, 1);
    const enc = new AudioOutputEncoder({ format: 'pcm16' });
    const out = Buffer.concat(encodeChunked(enc, x, 2, 2500));
    expect(out.equals(float32ToPcm16le(x))).toBe(true);
    expect([enc.inputSamples, enc.outputSamples]).toEqual([x.length, x.length]);
  });

  it.each([8000, 16000, 22050, 44100, 48000])('at %i Hz has ceil(N * rate / 24000) samples and is chunking-independent', (rate) => {
    const x = noise(24000 * 3 + 5, rate);
    const once = encodeAudioOutput(x, 'pcm16', rate);
    const chunked = Buffer.concat(encodeChunked(new AudioOutputEncoder({ format: 'pcm16', sampleRate: rate }), x, rate, 1000));
    expect(once.length).toBe(2 * Math.ceil((x.length * rate) / 24000));
    expect(chunked.equals(once)).toBe(true);
    expect(once.equals(float32ToPcm16le(resample(x, 24000, rate)))).toBe(true);
  });

  it('with alignBase64 emits multiples of 6 bytes, so base64 deltas concatenate into valid base64', () => {
    const x = noise(24000 + 4, 3);
    const enc = new AudioOutputEncoder({ format: 'pcm16', alignBase64: true });
    expect(enc.chunkMultiple).toBe(6);
    const chunks = encodeChunked(enc, x, 4, 100);
    const last = chunks.pop()!;
    for (const c of chunks) expect(c.length % 6).toBe(0);
    expect(last.length).toBeLessThan(6 + 2); // only what was held back
    const joinedText = [...chunks, last].map((c) => c.toString('base64')).join('');
    // Standalone padded strings joined: only the last may carry '=' padding.
    expect(joinedText.slice(0, -4)).not.toContain('=');
    expect(Buffer.from(joinedText, 'base64').equals(float32ToPcm16le(x))).toBe(true);
  });

  it('holds back at most 2 samples and reports them as pending', () => {
    const enc = new AudioOutputEncoder({ format: 'pcm16', alignBase64: true });
    expect(enc.push(new Float32Array(5)).length).toBe(6);
    expect(enc.pendingBytes).toBe(4);
    expect(enc.outputSamples).toBe(3);
    expect(enc.push(new Float32Array(1)).length).toBe(6);
    expect(enc.pendingBytes).toBe(0);
    expect(enc.end().length).toBe(0);
  });
});

describe('G.711 output', () => {
  it.each([
    ['g711_ulaw', 'mulaw', alawmulaw.mulaw.decode],
    ['g711_alaw', 'alaw', alawmulaw.alaw.decode],
  ] as const)('%s: 24 kHz to 8 kHz codes, chunking-independent, decodable by an independent decoder', (format, law, otherDecode) => {
    const x = noise(24000 * 2 + 2, 5, 0.99);
    const once = encodeAudioOutput(x, format);
    const chunked = Buffer.concat(encodeChunked(new AudioOutputEncoder({ format }), x, 6, 700));
    expect(once.length).toBe(Math.ceil(x.length / 3));
    expect(chunked.equals(once)).toBe(true);
    // Composition: resample, round to 16 bits, then the G.191-exact kernel (tested on its own).
    const linear = int16(float32ToPcm16le(resample(x, 24000, 8000)));
    expect(once.equals(g711Encode(law, linear))).toBe(true);
    // alawmulaw's encoder rounds differently from G.191, its decoder is the standard table: the
    // codes decode to the signal at G.711's ~38 dB SNR.
    const back = otherDecode(new Uint8Array(once));
    let signal = 0;
    let error = 0;
    for (let i = 0; i < linear.length; i++) {
      signal += linear[i]! ** 2;
      error += (back[i]! - linear[i]!) ** 2;
    }
    expect(10 * Math.log10(signal / error)).toBeGreaterThan(30);
  });

  it('with alignBase64 emits multiples of 3 bytes', () => {
    const enc = new AudioOutputEncoder({ format: 'g711_alaw', alignBase64: true });
    const chunks = encodeChunked(enc, noise(24000, 7), 8, 50);
    chunks.pop();
    for (const c of chunks) expect(c.length % 3).toBe(0);
  });

  it('refuses G.711 at any rate but 8000 Hz', () => {
    expect(() => new AudioOutputEncoder({ format: 'g711_ulaw', sampleRate: 16000 })).toThrow(
      expect.objectContaining({ code: 'audio_sample_rate_unsupported', param: 'sampleRate' }),
    );
  });
});

describe('encoder lifecycle', () => {
  it('reset() drops held-back bytes and resampler state (barge-in), then encodes a fresh stream identically', () => {
    const x = noise(2400, 9);
    const fresh = encodeAudioOutput(x, 'pcm16', 16000);
    const enc = new AudioOutputEncoder({ format: 'pcm16', sampleRate: 16000, alignBase64: true });
    enc.push(noise(1001, 10));
    enc.reset();
    expect([enc.inputSamples, enc.outputSamples, enc.pendingBytes]).toEqual([0, 0, 0]);
    const again = Buffer.concat([enc.push(x), enc.end()]);
    expect(again.equals(fresh)).toBe(true);
    expect(() => enc.push(x)).toThrow(/after end/);
  });

  it('rejects unknown formats and bad rates with CodecErrors', () => {
    expect(() => new AudioOutputEncoder({ format: 'opus' as AudioOutputFormat })).toThrow(CodecError);
    expect(() => new AudioOutputEncoder({ format: 'pcm16', sampleRate: 12.5 })).toThrow(/positive integer/);
    expect(() => new AudioOutputEncoder({ format: 'pcm16', sampleRate: 999 })).toThrow(
      expect.objectContaining({ code: 'audio_sample_rate_unsupported' }),
    );
  });

  it('round trip: 24 kHz tone out as PCM16, back in through the input decoder, keeps its pitch', () => {
    const bytes = encodeAudioOutput(sine(523.25, 24000, 24000), 'pcm16');
    const dec = new AudioInputDecoder({ format: 'pcm16', sampleRate: 24000 });
    const back = concatFloat([dec.push(bytes), dec.end()]);
    expect(back.length).toBe(16000);
    expect(sineFrequency(back, 16000)).toBeCloseTo(523.25, 0);
  });
});

describe('encodeWav', () => {
  it('writes a 16-bit mono PCM WAV whose samples are the rounded, clamped floats', () => {
    const x = Float32Array.of(0, 0.5, -0.5, 1, -1, 2, NaN, 1.5 / 32768);
    const wav = encodeWav(x, 24000);
    const parsed = new wavefile.WaveFile(wav);
    const fmt = parsed.fmt as { audioFormat: number; numChannels: number; sampleRate: number; bitsPerSample: number };
    expect([fmt.audioFormat, fmt.numChannels, fmt.sampleRate, fmt.bitsPerSample]).toEqual([1, 1, 24000, 16]);
    expect(Array.from(parsed.getSamples(true))).toEqual([0, 16384, -16384, 32767, -32768, 32767, 0, 2]);
    expect(wav.length).toBe(44 + 2 * x.length);
    expect(wav.subarray(0, 4).toString('latin1')).toBe('RIFF');
  });

  it('rejects a bad sample rate', () => {
    expect(() => encodeWav(new Float32Array(1), 0)).toThrow(expect.objectContaining({ code: 'audio_sample_rate_unsupported' }));
  });
});
