// The decoder's timeline is exact: every packet yields the duration its TOC states, lost packets
// are concealed for exactly their duration, over streams of any length and any mix of frame sizes.
import { describe, expect, it } from 'vitest';
import { OPUS_MAX_CONCEAL_MS, OPUS_PLC_MAX_MS, OpusEncoderStream, OpusPacketDecoder, parseOpusPacket } from '../src/codecs/audio/opus.js';
import { CodecError } from '../src/codecs/errors.js';
import { concatFloat, rms, seededRandom, sine, sineFit, speechLike } from './helpers/opus_signals.js';

function encodeAll(input: Float32Array, options: ConstructorParameters<typeof OpusEncoderStream>[0]): Buffer[] {
  const encoder = new OpusEncoderStream(options);
  return [...encoder.push(input), ...encoder.flush().packets];
}

describe('exact sample counts', () => {
  it('10 minutes of 20 ms packets give exactly 9 600 000 samples at 16 kHz', () => {
    // 30 s of distinct packets, replayed 20 times: a valid continuous stream for the decoder.
    const packets = encodeAll(speechLike(24000, 30), { complexity: 0 });
    expect(packets.length).toBe(1501);
    const loop = packets.slice(0, 1500);
    const decoder = new OpusPacketDecoder();
    let samples = 0;
    for (let pass = 0; pass < 20; pass++) {
      for (const packet of loop) {
        const out = decoder.decode(packet);
        if (out.length !== 320) throw new Error(`packet decoded to ${out.length} samples`);
        samples += out.length;
      }
    }
    expect(samples).toBe(600 * 16000);
    expect(decoder.stats).toMatchObject({ packets: 30000, samplesOut: 9_600_000, lostPackets: 0, concealedSamples: 0 });
  });

  it('a stream mixing 10, 20, 40 and 60 ms packets and 5% loss stays on its timeline', () => {
    const rnd = seededRandom(99);
    const streams = new Map<number, Buffer[]>();
    for (const frameMs of [10, 20, 40, 60]) streams.set(frameMs, encodeAll(speechLike(24000, 6, frameMs), { frameMs, complexity: 0 }));
    const decoder = new OpusPacketDecoder();
    let expected = 0;
    let lost = 0;
    let concealed = 0;
    let outSamples = 0;
    for (let i = 0; i < 2000; i++) {
      const frameMs = ([10, 20, 40, 60] as const)[Math.floor(rnd() * 4)]!;
      const list = streams.get(frameMs)!;
      const packet = list[i % list.length]!;
      expect(parseOpusPacket(packet).durationMs).toBe(frameMs);
      expected += frameMs * 16;
      if (rnd() < 0.05) {
        // The transport knows the gap from RTP timestamps.
        outSamples += decoder.decodeLost(frameMs).length;
        concealed += frameMs * 16;
        lost++;
      } else {
        outSamples += decoder.decode(packet).length;
      }
    }
    expect(outSamples).toBe(expected);
    expect(decoder.stats.samplesOut).toBe(expected);
    expect(decoder.stats.concealedSamples).toBe(concealed);
    expect(decoder.stats.packets).toBe(2000 - lost);
    expect(lost).toBeGreaterThan(50);
  });
});

describe('packet loss concealment', () => {
  const packets = encodeAll(sine(440, 24000, 48000), { bitrate: 32000 });

  it('a null packet conceals the last packet duration with libopus PLC, not silence', () => {
    const decoder = new OpusPacketDecoder();
    const parts: Float32Array[] = [];
    const lostAt: number[] = [];
    packets.forEach((packet, i) => {
      if (i > 10 && i % 10 === 0) {
        lostAt.push(parts.length);
        parts.push(decoder.decode(null));
      } else {
        parts.push(decoder.decode(packet));
      }
    });
    expect(parts.every((p) => p.length === 320)).toBe(true);
    expect(decoder.stats).toMatchObject({ packets: packets.length - lostAt.length, lostPackets: lostAt.length, concealedSamples: 320 * lostAt.length });
    const out = concatFloat(parts);
    expect(out.length).toBe(packets.length * 320);
    for (const index of lostAt.filter((i) => i < 95)) {
      // PLC continues the periodic signal (measured: 37 dB, full level); silence would fail both.
      const concealed = parts[index]!;
      expect(rms(concealed)).toBeGreaterThan(0.8 * (0.5 / Math.SQRT2));
      expect(sineFit(concealed, 440, 16000, 0, 320).snrDb).toBeGreaterThan(20);
      // ... and the packet after the gap is decoded normally again (measured: 29 dB).
      expect(sineFit(parts[index + 1]!, 440, 16000, 0, 320).snrDb).toBeGreaterThan(20);
    }
  });

  it('decodeLost conceals any multiple of 2.5 ms exactly, in CELT and in SILK mode', () => {
    const silk = encodeAll(sine(440, 24000, 24000), { sampleRate: 16000, bitrate: 16000 });
    expect(parseOpusPacket(silk[3]!).mode).toBe('silk');
    const celt = encodeAll(sine(440, 24000, 24000), { bitrate: 96000, application: 'audio' });
    expect(parseOpusPacket(celt[3]!).mode).toBe('celt');
    for (const stream of [silk, celt]) {
      const decoder = new OpusPacketDecoder();
      let total = 0;
      let expected = 0;
      for (const [i, packet] of stream.entries()) {
        total += decoder.decode(packet).length;
        expected += 320;
        if (i % 7 === 3) {
          const ms = [2.5, 5, 7.5, 12.5, 20, 37.5, 120, 132.5][i % 8]!;
          const out = decoder.decodeLost(ms);
          expect(out.length).toBe(ms * 16);
          expect(out.every(Number.isFinite)).toBe(true);
          total += out.length;
          expected += ms * 16;
        }
      }
      expect(total).toBe(expected);
      expect(decoder.stats.samplesOut).toBe(expected);
    }
  });

  it('conceals long gaps in one call and at other output rates', () => {
    const decoder = new OpusPacketDecoder({ sampleRate: 48000 });
    decoder.decode(packets[0]!);
    const gap = decoder.decodeLost(3000);
    expect(gap.length).toBe(144000);
    // Concealment runs for the first OPUS_PLC_MAX_MS only; the rest of the gap is silence.
    expect(gap.subarray((OPUS_PLC_MAX_MS * 48000) / 1000).every((v) => v === 0)).toBe(true);
    expect(decoder.stats.lostPackets).toBe(150);
    expect(decoder.stats.concealedSamples).toBe(144000);
    expect(decoder.decode(packets[1]!).length).toBe(960);
  });

  it('before any packet, loss is silence of the right length (libopus has nothing to extrapolate)', () => {
    const decoder = new OpusPacketDecoder();
    const first = decoder.decode(null);
    expect(first.length).toBe(320);
    expect(first.every((v) => v === 0)).toBe(true);
    expect(decoder.decodeLost(5).length).toBe(80);
  });

  it('a null packet after 60 ms packets conceals 60 ms', () => {
    const long = encodeAll(sine(440, 24000, 24000), { frameMs: 60 });
    const decoder = new OpusPacketDecoder();
    decoder.decode(long[0]!);
    expect(decoder.decode(null).length).toBe(960);
  });

  it.each([0, -20, 3, 1.25, Number.NaN, Number.POSITIVE_INFINITY, OPUS_MAX_CONCEAL_MS + 2.5])(
    'rejects a lost duration of %s ms',
    (ms) => {
      const decoder = new OpusPacketDecoder();
      let caught: unknown;
      try {
        decoder.decodeLost(ms);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(CodecError);
      expect(caught).toMatchObject({ code: 'audio_option_invalid', param: 'durationMs' });
      expect(decoder.stats.samplesOut).toBe(0);
    },
  );
});

describe('decoder options and reset', () => {
  it.each([44100, 32000, 0, 16000.5])('rejects an output rate of %s Hz', (sampleRate) => {
    expect(() => new OpusPacketDecoder({ sampleRate })).toThrow(expect.objectContaining({ code: 'audio_sample_rate_unsupported', param: 'sampleRate' }));
  });

  it('reset forgets the stream: what follows decodes as on a fresh decoder', () => {
    const packets = encodeAll(speechLike(24000, 1), {});
    const used = new OpusPacketDecoder();
    for (const p of packets.slice(0, 20)) used.decode(p);
    used.reset();
    const fresh = new OpusPacketDecoder();
    for (const p of packets.slice(20)) expect(used.decode(p)).toEqual(fresh.decode(p));
  });
});
