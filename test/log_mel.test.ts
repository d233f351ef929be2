import { describe, expect, it } from 'vitest';
import {
  MEL_BINS,
  MelStream,
  audioTokenCount,
  logMelFeatures,
  melFilterBank,
  melFrameCount,
} from '../src/codecs/audio/mel.js';
import { CodecError } from '../src/codecs/errors.js';
import { countAsyncWork } from './helpers/async-work.js';
import { maxAbsDiff, referenceFilterBank, referenceLogMel, testSignal } from './helpers/mel-reference.js';

function feedInChunks(stream: MelStream, x: Float32Array, sizes: () => number): void {
  for (let p = 0; p < x.length; ) {
    const n = Math.min(x.length - p, Math.max(1, sizes()));
    stream.push(x.subarray(p, p + n));
    p += n;
  }
}

async function codecError(p: Promise<unknown> | (() => unknown)): Promise<CodecError> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    if (err instanceof CodecError) return err;
    throw err;
  }
  throw new Error('expected a CodecError');
}

describe('log-mel features', () => {
  it.each([201, 250, 399, 400, 1000, 4000, 16_000])(
    'matches an independent float64 reference for %i samples within 1e-4',
    async (n) => {
      const x = testSignal(n);
      const f = await logMelFeatures(x);
      expect(f.frames).toBe(melFrameCount(n));
      expect(f.data.length).toBe(MEL_BINS * f.frames);
      expect(maxAbsDiff(f.data, referenceLogMel(x))).toBeLessThan(1e-4);
    },
  );

  it('builds the Slaney filter bank of the reference', () => {
    expect(maxAbsDiff(melFilterBank(), referenceFilterBank())).toBeLessThan(1e-7);
  });

  it('floors the whole clip at its loudest frame minus 8 (a later loud part changes earlier frames)', async () => {
    const quiet = new Float32Array(8000).map((_, i) => 1e-4 * Math.sin(i * 0.3));
    const both = new Float32Array(16_000);
    both.set(quiet);
    both.set(new Float32Array(8000).map((_, i) => 0.9 * Math.sin(i * 0.3)), 8000);
    const alone = await logMelFeatures(quiet);
    const whole = await logMelFeatures(both);
    const min = (f: { data: Float32Array }) => f.data.reduce((a, b) => Math.min(a, b), Infinity);
    expect(min(whole)).toBeCloseTo((whole.clipMax - 8 + 4) / 4, 5);
    expect(min(alone)).not.toBeCloseTo(min(whole), 2);
  });

  it('gives the same bits streamed in random chunks, 20 ms chunks, or in one piece', async () => {
    const x = testSignal(16_000 * 3 + 77, 7);
    const exact = await logMelFeatures(x);
    let seed = 3;
    const random = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % 1200;
    };
    for (const sizes of [random, () => 320, () => 1, () => x.length]) {
      const stream = new MelStream();
      if (sizes() === 1) feedInChunks(stream, x.subarray(0, 5000), sizes);
      feedInChunks(stream, sizes() === 1 ? x.subarray(5000) : x, sizes);
      const f = stream.finish();
      expect(f.frames).toBe(exact.frames);
      expect(Buffer.compare(Buffer.from(f.data.buffer), Buffer.from(exact.data.buffer))).toBe(0);
    }
  });

  it('computes frames while audio arrives, leaving at most two for the turn end', () => {
    const stream = new MelStream();
    const x = testSignal(16_000 * 2);
    feedInChunks(stream, x, () => 320);
    expect(stream.frames).toBeGreaterThanOrEqual(melFrameCount(x.length) - 2);
    expect(stream.samples).toBe(x.length);
    expect(stream.finish().frames).toBe(melFrameCount(x.length));
  });

  it('keeps going after finish and starts over after reset', async () => {
    const x = testSignal(9000, 5);
    const stream = new MelStream();
    stream.push(x.subarray(0, 4000));
    expect(stream.finish().frames).toBe(25);
    stream.push(x.subarray(4000));
    const later = stream.finish();
    expect(maxAbsDiff(later.data, (await logMelFeatures(x)).data)).toBe(0);
    stream.reset();
    expect(stream.samples).toBe(0);
    stream.push(x.subarray(0, 4000));
    expect(stream.finish().frames).toBe(25);
  });

  it('is identical whatever the thread count, for long clips split across threads', async () => {
    const x = testSignal(16_000 * 60, 11);
    const one = await logMelFeatures(x, { threads: 1 });
    const four = await logMelFeatures(x, { threads: 4 });
    expect(four.frames).toBe(6000);
    expect(Buffer.compare(Buffer.from(one.data.buffer), Buffer.from(four.data.buffer))).toBe(0);
  });

  it('computes on the libuv pool, not on the event loop', async () => {
    const x = testSignal(16_000 * 30, 13);
    const { result, queued } = await countAsyncWork('omni.logMel', () => logMelFeatures(x));
    expect(result.frames).toBe(3000);
    expect(queued).toBe(1);
  });

  it('is not affected by the caller reusing its input buffer while the work is queued', async () => {
    const x = testSignal(16_000 * 5, 17);
    const expected = await logMelFeatures(x);
    const pending = logMelFeatures(x);
    x.fill(0); // the native side copied the samples before queueing
    const f = await pending;
    expect(Buffer.compare(Buffer.from(f.data.buffer), Buffer.from(expected.data.buffer))).toBe(0);
  });

  it('rejects clips under 201 samples, empty audio and non-finite samples with specific errors', async () => {
    let e = await codecError(logMelFeatures(new Float32Array(200)));
    expect(e.code).toBe('audio_too_short');
    expect(e.message).toContain('need at least 201 samples');
    expect(e.param).toBe('audio');
    e = await codecError(logMelFeatures(new Float32Array(0)));
    expect(e.code).toBe('audio_empty');
    const bad = testSignal(1000);
    bad[517] = Number.NaN;
    e = await codecError(logMelFeatures(bad));
    expect(e).toMatchObject({ code: 'audio_invalid_samples', message: 'audio sample 517 is not a finite number' });
    const stream = new MelStream();
    stream.push(testSignal(150));
    expect((await codecError(() => stream.finish())).code).toBe('audio_too_short');
    e = await codecError(() => stream.push(Float32Array.of(0, Infinity)));
    expect(e.message).toBe('audio sample 151 is not a finite number');
  });

  it('bounds an utterance and says so when it is exceeded', async () => {
    const stream = new MelStream({ maxSeconds: 1 });
    stream.push(new Float32Array(16_000));
    const e = await codecError(() => stream.push(new Float32Array(1)));
    expect(e.code).toBe('audio_too_long');
    expect(e.message).toContain('limit is 16000 samples');
    expect(stream.samples).toBe(16_000); // the rejected chunk was not half-applied
  });
});

describe('frame and token arithmetic', () => {
  it('counts floor(samples / 160) frames', () => {
    expect([201, 320, 16_000, 16_050, 127_840].map(melFrameCount)).toEqual([1, 2, 100, 100, 799]);
  });

  it.each([
    [1, 1], [8, 1], [9, 2], [17, 3], [50, 7], [99, 13], [100, 13], [101, 14], [250, 33], [337, 44],
    [400, 52], [1000, 130], [3000, 390],
  ])('gives %i frames %i audio tokens', (frames, tokens) => {
    expect(audioTokenCount(frames)).toBe(tokens);
  });

  it('agrees with the encoder length formula of the reference for every frame count to 5 minutes', () => {
    const floorDiv = (a: number, b: number) => Math.floor(a / b);
    for (let f = 1; f <= 30_000; f++) {
      const r = f % 100;
      const a = floorDiv(r - 1, 2) + 1;
      const b = floorDiv(a - 1, 2) + 1;
      const c = floorDiv(b - 1, 2) + 1;
      const reference = c + 13 * floorDiv(f, 100);
      if (audioTokenCount(f) !== reference) throw new Error(`frames ${f}: ${audioTokenCount(f)} != ${reference}`);
    }
  });
});
