// Realtime input decoding: client audio chunks (PCM16 at any rate, G.711, bytes or base64) to
// 16 kHz float32, with exact counts and chunk-independent output.
import alawmulaw from 'alawmulaw';
import { describe, expect, it } from 'vitest';
import { decodeBase64Strict } from '../src/codecs/audio/base64.js';
import { AudioInputDecoder, DEFAULT_MAX_PUSH_BYTES } from '../src/codecs/audio/input_decoder.js';
import type { AudioInputFormat } from '../src/codecs/audio/input_decoder.js';
import { float32ToPcm16le, pcm16leToFloat32 } from '../src/codecs/audio/pcm.js';
import { resample } from '../src/codecs/audio/resample.js';
import { CodecError } from '../src/codecs/errors.js';
import { concatFloat, randomBytes, randomChunks, rng, sine, sineFrequency } from './helpers/audio_codec.js';

function decodeAll(
  format: AudioInputFormat,
  sampleRate: number,
  chunks: (Uint8Array | string)[],
  maxPushBytes?: number,
): { out: Float32Array; dec: AudioInputDecoder } {
  const dec = new AudioInputDecoder({ format, sampleRate, maxPushBytes });
  const parts = chunks.map((c) => dec.push(c));
  parts.push(dec.end());
  return { out: concatFloat(parts), dec };
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof CodecError) return err.code;
    throw err;
  }
  return undefined;
}

function pcmNoise(samples: number, seed: number): Buffer {
  const next = rng(seed);
  return float32ToPcm16le(Float32Array.from({ length: samples }, () => (next() * 2 - 1) * 0.8));
}

describe('PCM16 stream decoding', () => {
  it('gives exactly ceil(N * 16000 / rate) samples over 10 minutes at 24 kHz, identical for random chunking and one piece', () => {
    const n = 24000 * 600;
    const bytes = pcmNoise(n, 1);
    const whole = decodeAll('pcm16', 24000, [bytes], bytes.length);
    const chunked = decodeAll('pcm16', 24000, randomChunks(bytes, 2, 9601));
    expect(whole.out.length).toBe(16000 * 600);
    expect(chunked.out.length).toBe(16000 * 600);
    expect(Buffer.from(chunked.out.buffer).equals(Buffer.from(whole.out.buffer))).toBe(true);
    // The same as resampling the converted clip in one go: the decoder adds nothing of its own.
    expect(Buffer.from(whole.out.buffer).equals(Buffer.from(resample(pcm16leToFloat32(bytes), 24000, 16000).buffer))).toBe(true);
    expect(chunked.dec.inputSamples).toBe(n);
    expect(chunked.dec.outputSamples).toBe(16000 * 600);
  });

  it.each([8000, 11025, 22050, 32000, 44100, 48000])('counts exactly at %i Hz with no drift, whatever the chunking', (rate) => {
    const n = rate * 7 + 3; // not a whole number of output periods
    const bytes = pcmNoise(n, rate);
    const whole = decodeAll('pcm16', rate, [bytes]);
    const chunked = decodeAll('pcm16', rate, randomChunks(bytes, rate + 1, 3001));
    expect(whole.out.length).toBe(Math.ceil((n * 16000) / rate));
    expect(Buffer.from(chunked.out.buffer).equals(Buffer.from(whole.out.buffer))).toBe(true);
    expect(chunked.dec.outputSamples).toBe(whole.out.length);
  });

  it('passes 16 kHz through untouched: every sample is exactly x / 32768', () => {
    const samples = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
    const bytes = new Uint8Array(samples.buffer);
    const { out } = decodeAll('pcm16', 16000, randomChunks(bytes, 3, 777));
    expect(out.length).toBe(65536);
    for (let i = 0; i < samples.length; i++) {
      if (out[i] !== samples[i]! / 32768) throw new Error(`sample ${i}: ${out[i]} != ${samples[i]! / 32768}`);
    }
  });

  it('keeps a 1 kHz tone at 1 kHz from 48 kHz input', () => {
    const { out } = decodeAll('pcm16', 48000, randomChunks(float32ToPcm16le(sine(1000, 48000, 48000)), 4, 4000));
    expect(sineFrequency(out, 16000)).toBeCloseTo(1000, 0);
  });

  it('carries an odd byte into the next chunk: one byte at a time equals one piece', () => {
    const bytes = pcmNoise(4801, 5);
    const one = decodeAll('pcm16', 24000, [bytes]);
    const dec = new AudioInputDecoder({ format: 'pcm16', sampleRate: 24000 });
    const parts: Float32Array[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const out = dec.push(bytes.subarray(i, i + 1));
      parts.push(out);
      expect(dec.inputSamples).toBe((i + 1) >> 1);
    }
    parts.push(dec.end());
    expect(Buffer.from(concatFloat(parts).buffer).equals(Buffer.from(one.out.buffer))).toBe(true);
  });

  it('rejects a stream that ends on a dangling byte with audio_odd_byte_count at end()', () => {
    const dec = new AudioInputDecoder({ format: 'pcm16', sampleRate: 16000 });
    expect(dec.push(new Uint8Array([1, 2, 3])).length).toBe(1); // odd chunk: fine mid-stream
    expect(() => dec.end()).toThrow(expect.objectContaining({ code: 'audio_odd_byte_count', param: 'audio' }));
    dec.reset();
    dec.push(new Uint8Array([1]));
    dec.push(new Uint8Array([2]));
    expect(dec.end().length).toBe(0);
    expect(dec.inputSamples).toBe(1);
  });

  it('takes base64 text and gives the same samples as the bytes', () => {
    const bytes = pcmNoise(24000, 6);
    // Standalone base64 per chunk, as in input_audio_buffer.append; odd chunk sizes included.
    const chunks = randomChunks(bytes, 7, 2001).map((c) => Buffer.from(c).toString('base64'));
    const fromText = decodeAll('pcm16', 24000, chunks);
    const fromBytes = decodeAll('pcm16', 24000, [bytes]);
    expect(Buffer.from(fromText.out.buffer).equals(Buffer.from(fromBytes.out.buffer))).toBe(true);
  });

  it('rejects a push above the byte bound, checked before decoding, leaving the stream intact', () => {
    const dec = new AudioInputDecoder({ format: 'pcm16', sampleRate: 16000, maxPushBytes: 1000 });
    dec.push(new Uint8Array(999)); // leaves an odd byte pending
    expect(() => dec.push(new Uint8Array(1001))).toThrow(expect.objectContaining({ code: 'audio_chunk_too_large', param: 'audio' }));
    // 1002 bytes as base64 (1336 chars): refused from the text length alone.
    expect(() => dec.push(Buffer.alloc(1002).toString('base64'))).toThrow(/1002 bytes is over the limit of 1000 bytes/);
    expect(dec.push(new Uint8Array(1000)).length).toBe(500);
    expect(dec.inputSamples).toBe(999);
    dec.push(new Uint8Array(1));
    expect(dec.end().length).toBe(0);
  });

  it('accepts exactly 15 MiB in one push by default and refuses one byte more', () => {
    expect(DEFAULT_MAX_PUSH_BYTES).toBe(15 * 1024 * 1024);
    const dec = new AudioInputDecoder({ format: 'pcm16', sampleRate: 16000 });
    expect(codeOf(() => dec.push(new Uint8Array(DEFAULT_MAX_PUSH_BYTES + 1)))).toBe('audio_chunk_too_large');
    expect(dec.push(new Uint8Array(DEFAULT_MAX_PUSH_BYTES)).length).toBe(DEFAULT_MAX_PUSH_BYTES / 2);
  });

  it('validates its options', () => {
    expect(codeOf(() => new AudioInputDecoder({ format: 'pcm16', sampleRate: 100 }))).toBe('audio_sample_rate_unsupported');
    expect(codeOf(() => new AudioInputDecoder({ format: 'pcm16', sampleRate: 16000.5 }))).toBe('audio_sample_rate_unsupported');
    expect(codeOf(() => new AudioInputDecoder({ format: 'g711_ulaw', sampleRate: 16000 }))).toBe('audio_sample_rate_unsupported');
    expect(codeOf(() => new AudioInputDecoder({ format: 'opus' as AudioInputFormat }))).toBe('audio_format_unsupported');
    expect(codeOf(() => new AudioInputDecoder({ format: 'pcm16', maxPushBytes: 0 }))).toBe('audio_option_invalid');
    expect(new AudioInputDecoder({ format: 'pcm16' }).sampleRate).toBe(24000);
    expect(new AudioInputDecoder({ format: 'g711_alaw' }).sampleRate).toBe(8000);
  });

  it('refuses push after end() until reset(), which zeroes the counters', () => {
    const dec = new AudioInputDecoder({ format: 'pcm16', sampleRate: 24000 });
    dec.push(pcmNoise(240, 8));
    dec.end();
    expect(() => dec.push(new Uint8Array(2))).toThrow(/after end/);
    expect(dec.outputSamples).toBe(160);
    dec.reset();
    expect([dec.inputSamples, dec.outputSamples]).toEqual([0, 0]);
    const again = concatFloat([dec.push(pcmNoise(240, 8)), dec.end()]);
    expect(again.length).toBe(160);
  });
});

describe('base64 strictness', () => {
  const rule = (s: string): boolean => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;

  it.each([
    ['@@@@', 'outside the base64 alphabet'],
    ['AAA', 'not a multiple of 4'],
    ['AB-_', 'url-safe'],
    ['AA=A', 'padding'],
    ['A===', 'padding'],
    ['QUJD\nREVG', 'not a multiple of 4'],
    ['QUJD REV', 'outside the base64 alphabet'],
    ['QUJDREé=', 'outside the base64 alphabet'],
    ['AA==AAAA', 'padding'],
  ])('rejects %j (%s), which Node alone would accept', (text, why) => {
    expect(() => decodeBase64Strict(text)).toThrow(expect.objectContaining({ code: 'audio_invalid_base64', param: 'audio' }));
    expect(() => decodeBase64Strict(text)).toThrow(why);
  });

  it('accepts padded standard base64, and the empty string', () => {
    expect([...decodeBase64Strict('')]).toEqual([]);
    expect([...decodeBase64Strict('AAA=')]).toEqual([0, 0]);
    expect([...decodeBase64Strict('AA==')]).toEqual([0]);
    expect(decodeBase64Strict('+/+/').toString('base64')).toBe('+/+/');
  });

  it('accepts exactly the strings the spec rule accepts (random strings over a hostile alphabet)', () => {
    const alphabet = 'AQgw+/=-_ @\n.é';
    const next = rng(9);
    let accepted = 0;
    for (let i = 0; i < 20000; i++) {
      const len = 4 * Math.floor(next() * 3) + (next() < 0.2 ? Math.floor(next() * 4) : 0);
      let s = '';
      for (let j = 0; j < len; j++) s += alphabet[Math.floor(next() * (next() < 0.7 ? 4 : alphabet.length))];
      let ok = true;
      try {
        const bytes = decodeBase64Strict(s);
        expect(bytes.equals(Buffer.from(s, 'base64'))).toBe(true);
      } catch (err) {
        if (!(err instanceof CodecError)) throw err;
        ok = false;
      }
      if (ok !== rule(s)) throw new Error(`${JSON.stringify(s)}: decoder says ${ok}, rule says ${rule(s)}`);
      if (ok) accepted++;
    }
    expect(accepted).toBeGreaterThan(1000);
  });

  it('a rejected base64 push leaves the stream as it was', () => {
    const bytes = pcmNoise(480, 10);
    const ref = decodeAll('pcm16', 24000, [bytes]).out;
    const dec = new AudioInputDecoder({ format: 'pcm16', sampleRate: 24000 });
    const parts = [dec.push(bytes.subarray(0, 101))];
    expect(codeOf(() => dec.push('@@@@'))).toBe('audio_invalid_base64');
    parts.push(dec.push(Buffer.from(bytes.subarray(101)).toString('base64')), dec.end());
    expect(Buffer.from(concatFloat(parts).buffer).equals(Buffer.from(ref.buffer))).toBe(true);
  });
});

describe('G.711 stream decoding', () => {
  it.each([
    ['g711_ulaw', alawmulaw.mulaw.decode],
    ['g711_alaw', alawmulaw.alaw.decode],
  ] as const)('%s: 8 kHz codes to 16 kHz, 2 samples per byte, same for any chunking, matching an independent decoder', (format, reference) => {
    const codes = randomBytes(8000 * 30 + 7, 11);
    const whole = decodeAll(format, 8000, [codes]);
    const chunked = decodeAll(format, 8000, randomChunks(codes, 12, 333));
    expect(whole.out.length).toBe(2 * codes.length);
    expect(Buffer.from(chunked.out.buffer).equals(Buffer.from(whole.out.buffer))).toBe(true);
    const linear = Float32Array.from(reference(codes), (x) => x / 32768);
    expect(Buffer.from(whole.out.buffer).equals(Buffer.from(resample(linear, 8000, 16000).buffer))).toBe(true);
    expect(chunked.dec.inputSamples).toBe(codes.length);
    // base64 works for G.711 too
    const b64 = decodeAll(format, 8000, randomChunks(codes, 13, 300).map((c) => Buffer.from(c).toString('base64')));
    expect(Buffer.from(b64.out.buffer).equals(Buffer.from(whole.out.buffer))).toBe(true);
  });

  it('keeps a 440 Hz tone through mu-law', () => {
    const pcm = new Int16Array(float32ToPcm16le(sine(440, 8000, 8000)).buffer.slice(0));
    const codes = alawmulaw.mulaw.encode(pcm);
    const { out } = decodeAll('g711_ulaw', 8000, [codes]);
    expect(sineFrequency(out, 16000)).toBeCloseTo(440, 0);
  });
});
