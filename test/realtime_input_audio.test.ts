// Turns cut from the input audio buffer hold exactly the audio appended (ranges, partial drops,
// clears), and output audio is encoded only when the playback clock sends it, giving the bytes
// eager encoding would.
import { describe, expect, it } from 'vitest';
import { AudioOutputEncoder } from '../src/codecs/audio/output_encoder.js';
import { InputAudio } from '../src/gateway/realtime/input_audio.js';
import { PlaybackClock, type SentChunk } from '../src/gateway/realtime/playback.js';

function pcm16(samples: Float32Array): Buffer {
  const b = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) b.writeInt16LE(Math.round(samples[i]! * 32767), i * 2);
  return b;
}

describe('input audio buffer', () => {
  it('turns cut by range, takes and clears hold exactly the audio appended', () => {
    const input = new InputAudio({ format: { encoding: 'pcm16', rate: 16_000 }, turnDetection: null, onVad: () => undefined, onVadError: () => undefined });
    // 16 kHz in: no resampling, so samples come back as appended (PCM16-quantised).
    const all: number[] = [];
    let seed = 7;
    const append = (n: number) => {
      const s = new Float32Array(n).map(() => {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        return Math.round(((seed / 2 ** 32) * 2 - 1) * 30000) / 32767;
      });
      input.append(pcm16(s));
      for (const v of s) all.push(Math.round(v * 32767) / 32768);
    };
    const expectRange = (got: Float32Array, from: number, to: number) => {
      expect(got.length).toBe(to - from);
      for (let i = 0; i < got.length; i += 97) expect(got[i]).toBeCloseTo(all[from + i]!, 6);
      if (got.length > 0) expect(got[got.length - 1]).toBeCloseTo(all[to - 1]!, 6);
    };
    // 5 s in 20 ms appends.
    for (let i = 0; i < 250; i++) append(320);
    expect(input.bufferedMs).toBe(5000);
    expectRange(input.commitRange(8000, 40_000), 8000, 40_000);
    expect(input.bufferedMs).toBe(2500);
    // More audio; a range starting before the buffer is clamped to it.
    for (let i = 0; i < 400; i++) append(320);
    expectRange(input.commitRange(30_000, 100_000), 40_000, 100_000);
    expectRange(input.takeBuffered(), 100_000, 208_000);
    expect(input.bufferedMs).toBe(0);
    // A long turn (20 s), then a clear: later audio is still exact.
    for (let i = 0; i < 1000; i++) append(320);
    input.clear();
    expect(input.bufferedMs).toBe(0);
    const start = all.length;
    for (let i = 0; i < 10; i++) append(1600);
    expectRange(input.commitAll(), start, start + 16_000);
  });
});

describe('playback clock', () => {
  it('encodes a chunk when it leaves, in order, and never a chunk stopped before it left', () => {
    let now = 0;
    const sent: SentChunk[] = [];
    const clock = new PlaybackClock({ leadMs: 300, now: () => now, send: (c) => sent.push(c) });
    const lazy = new AudioOutputEncoder({ format: 'pcm16', sampleRate: 24_000, alignBase64: true });
    const eager = new AudioOutputEncoder({ format: 'pcm16', sampleRate: 24_000, alignBase64: true });
    let encoded = 0;
    const chunks = Array.from({ length: 10 }, (_, k) => new Float32Array(2400).map((_, i) => 0.3 * Math.sin((k * 2400 + i) / 9)));
    for (const samples of chunks) {
      clock.push({
        encode: () => {
          encoded++;
          return lazy.push(samples);
        },
        ms: (samples.length / 24_000) * 1000,
        textEnd: 0,
        samples,
      });
    }
    // 300 ms lead: four 100 ms chunks leave at once (the fourth starts within the lead).
    expect(sent).toHaveLength(4);
    expect(encoded).toBe(4);
    for (const [i, c] of sent.entries()) expect(c.bytes.equals(eager.push(chunks[i]!))).toBe(true);
    now = 200;
    (clock as unknown as { pump(): void }).pump();
    expect(encoded).toBe(sent.length);
    clock.stop();
    expect(encoded).toBe(sent.length);
    expect(encoded).toBeLessThan(10);
  });

  it('an encoder that fails in a timer tick stops the clock and rejects drained(), it does not throw there', async () => {
    let now = 0;
    const sent: SentChunk[] = [];
    const clock = new PlaybackClock({ leadMs: 0, now: () => now, send: (c) => sent.push(c) });
    const samples = new Float32Array(2400);
    clock.push({ encode: () => Buffer.alloc(4800), ms: 100, textEnd: 0, samples });
    // The second chunk waits for its time: it is encoded in a timer tick.
    clock.push({ encode: () => { throw new Error('encoder closed'); }, ms: 100, textEnd: 0, samples });
    const drained = clock.drained().then(
      () => 'resolved',
      (err: Error) => err.message,
    );
    now = 150;
    await new Promise((r) => setTimeout(r, 120));
    expect(await drained).toBe('encoder closed');
    expect(sent).toHaveLength(1);
    await expect(clock.drained()).rejects.toThrow('encoder closed');
  });
});
