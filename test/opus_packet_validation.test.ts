// Opus packet framing (RFC 6716 §3.1-3.2): TOC decoding for all 32 configurations and the four
// frame count codes, built by hand; malformed packets rejected with `opus_packet_invalid` before
// libopus sees them, agreeing with libopus's own parser; the decoder unharmed by them.
import opus from '@discordjs/opus';
import { describe, expect, it } from 'vitest';
import { OpusEncoderStream, OpusPacketDecoder, opusPacketSamples, parseOpusPacket, parseOpusToc } from '../src/codecs/audio/opus.js';
import { CodecError } from '../src/codecs/errors.js';
import { seededRandom, sine } from './helpers/opus_signals.js';

// RFC 6716 Table 2, row by row: configurations, mode, bandwidth, frame sizes in ms.
const TABLE_2 = [
  { configs: [0, 1, 2, 3], mode: 'silk', bandwidth: 'narrowband', ms: [10, 20, 40, 60] },
  { configs: [4, 5, 6, 7], mode: 'silk', bandwidth: 'mediumband', ms: [10, 20, 40, 60] },
  { configs: [8, 9, 10, 11], mode: 'silk', bandwidth: 'wideband', ms: [10, 20, 40, 60] },
  { configs: [12, 13], mode: 'hybrid', bandwidth: 'superwideband', ms: [10, 20] },
  { configs: [14, 15], mode: 'hybrid', bandwidth: 'fullband', ms: [10, 20] },
  { configs: [16, 17, 18, 19], mode: 'celt', bandwidth: 'narrowband', ms: [2.5, 5, 10, 20] },
  { configs: [20, 21, 22, 23], mode: 'celt', bandwidth: 'wideband', ms: [2.5, 5, 10, 20] },
  { configs: [24, 25, 26, 27], mode: 'celt', bandwidth: 'superwideband', ms: [2.5, 5, 10, 20] },
  { configs: [28, 29, 30, 31], mode: 'celt', bandwidth: 'fullband', ms: [2.5, 5, 10, 20] },
] as const;

function expectedRow(config: number): { mode: string; bandwidth: string; ms: number } {
  for (const row of TABLE_2) {
    const i = (row.configs as readonly number[]).indexOf(config);
    if (i >= 0) return { mode: row.mode, bandwidth: row.bandwidth, ms: row.ms[i]! };
  }
  throw new Error(`no row for config ${config}`);
}

const toc = (config: number, stereo: boolean, code: number): number => (config << 3) | (stereo ? 4 : 0) | code;
const bytes = (...parts: (number | number[])[]): Buffer => Buffer.from(parts.flat());
const fill = (n: number, v = 0x55): number[] => new Array<number>(n).fill(v);

/** libopus's verdict on a packet: does `opus_decode` accept it? */
function libopusAccepts(packet: Buffer): boolean {
  try {
    new opus.OpusEncoder(48000, 1).decode(packet);
    return true;
  } catch {
    return false;
  }
}

function expectInvalid(packet: Uint8Array, message: RegExp): void {
  let caught: unknown;
  try {
    parseOpusPacket(packet);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(CodecError);
  expect((caught as CodecError).code).toBe('opus_packet_invalid');
  expect((caught as CodecError).param).toBe('packet');
  expect((caught as CodecError).message).toMatch(message);
}

describe('TOC byte', () => {
  it('decodes mode, bandwidth, frame size, stereo flag and code for all 256 values per RFC 6716 Table 2', () => {
    for (let byte = 0; byte < 256; byte++) {
      const row = expectedRow(byte >> 3);
      const t = parseOpusToc(byte);
      expect(t).toEqual({
        config: byte >> 3,
        mode: row.mode,
        bandwidth: row.bandwidth,
        stereo: (byte & 4) !== 0,
        code: byte & 3,
        frameSamples48k: row.ms * 48,
      });
    }
  });

  it('gives every configuration its duration at 16 kHz, and libopus decodes exactly that many samples', () => {
    const decoder = new OpusPacketDecoder();
    for (let config = 0; config < 32; config++) {
      for (const stereo of [false, true]) {
        const { ms } = expectedRow(config);
        const packet = bytes(toc(config, stereo, 0), 0x5a, 0x3c, 0x99, 0x10);
        expect(opusPacketSamples(packet, 16000)).toBe(ms * 16);
        expect(decoder.decode(packet).length).toBe(ms * 16);
      }
    }
    expect(decoder.stats.packets).toBe(64);
    expect(decoder.stats.samplesOut).toBe(2 * 16 * TABLE_2.reduce((n, r) => n + r.ms.reduce((a, b) => a + b, 0), 0));
  });

  it('scales durations to every libopus decoder rate', () => {
    const packet = bytes(toc(16, false, 0), 1, 2, 3); // CELT 2.5 ms
    for (const rate of [8000, 12000, 16000, 24000, 48000]) {
      expect(opusPacketSamples(packet, rate)).toBe(rate / 400);
      expect(new OpusPacketDecoder({ sampleRate: rate }).decode(packet).length).toBe(rate / 400);
    }
  });
  it('takes packets as plain Uint8Array views at an offset, decoding them like Buffers', () => {
    const packets = new OpusEncoderStream().push(sine(440, 24000, 4800));
    const viaBuffer = new OpusPacketDecoder();
    const viaView = new OpusPacketDecoder();
    for (const packet of packets) {
      const backing = new Uint8Array(packet.length + 7);
      backing.set(packet, 7);
      expect(viaView.decode(backing.subarray(7))).toEqual(viaBuffer.decode(packet));
    }
  });
});

describe('frame packing', () => {
  it('code 0: one frame of the remaining bytes; a TOC alone is one 0-byte (concealed) frame', () => {
    expect(parseOpusPacket(bytes(toc(1, false, 0), fill(40)))).toMatchObject({ frameCount: 1, frameBytes: [40], samples48k: 960, durationMs: 20 });
    expect(parseOpusPacket(bytes(toc(1, false, 0)))).toMatchObject({ frameCount: 1, frameBytes: [0] });
    expect(parseOpusPacket(bytes(toc(0, false, 0), fill(1275))).frameBytes).toEqual([1275]);
  });

  it('code 1: two frames of equal size', () => {
    expect(parseOpusPacket(bytes(toc(3, false, 1), fill(20)))).toMatchObject({ frameCount: 2, frameBytes: [10, 10], durationMs: 120 });
  });

  it('code 2: two frames, the first length in one byte or two (first + 4 * second)', () => {
    expect(parseOpusPacket(bytes(toc(9, true, 2), 7, fill(7 + 12)))).toMatchObject({ frameBytes: [7, 12], stereo: true, durationMs: 40 });
    expect(parseOpusPacket(bytes(toc(9, false, 2), 0, fill(5))).frameBytes).toEqual([0, 5]);
    // 253 + 4 * 1 = 257 bytes in frame 1
    expect(parseOpusPacket(bytes(toc(9, false, 2), 253, 1, fill(257 + 3))).frameBytes).toEqual([257, 3]);
    expect(parseOpusPacket(bytes(toc(9, false, 2), 251, fill(251))).frameBytes).toEqual([251, 0]);
  });

  it('code 3 CBR: M equal frames', () => {
    expect(parseOpusPacket(bytes(toc(1, false, 3), 3, fill(9)))).toMatchObject({ frameCount: 3, frameBytes: [3, 3, 3], vbr: false, durationMs: 60 });
    expect(parseOpusPacket(bytes(toc(1, false, 3), 3))).toMatchObject({ frameCount: 3, frameBytes: [0, 0, 0] });
  });

  it('code 3 VBR with padding: lengths for M-1 frames, padding lengths chained by 255', () => {
    // v=1 p=1 M=3; padding 254 + 10 = 264 bytes; frame lengths 5 and 300 (= 252 + 4 * 12), last 7.
    const packet = bytes(toc(17, false, 3), 0xc3, 255, 10, 5, 252, 12, fill(5), fill(300), fill(7), fill(264, 0));
    expect(parseOpusPacket(packet)).toMatchObject({ frameCount: 3, frameBytes: [5, 300, 7], vbr: true, paddingBytes: 264, durationMs: 15 });
    expect(libopusAccepts(packet)).toBe(true);
  });

  it('code 3 accepts exactly 120 ms and no more', () => {
    expect(parseOpusPacket(bytes(toc(16, false, 3), 48)).durationMs).toBe(120); // 48 x 2.5 ms
    expect(parseOpusPacket(bytes(toc(31, false, 3), 6)).durationMs).toBe(120); // 6 x 20 ms
    expect(parseOpusPacket(bytes(toc(3, false, 3), 2)).durationMs).toBe(120); // 2 x 60 ms
    expectInvalid(bytes(toc(16, false, 3), 49), /longer than 120 ms/);
    expectInvalid(bytes(toc(31, false, 3), 7), /longer than 120 ms/);
    expectInvalid(bytes(toc(3, false, 3), 3), /longer than 120 ms/);
  });
});

// Each malformed packet, the rule it breaks, and the message that names it.
const MALFORMED: [string, Buffer, RegExp][] = [
  ['empty', bytes(), /empty/],
  ['code 1 with an odd payload', bytes(toc(1, false, 1), fill(5)), /even payload/],
  ['code 2 without its length byte', bytes(toc(1, false, 2)), /before the length of frame 1/],
  ['code 2 cut inside a two-byte length', bytes(toc(1, false, 2), 252), /two-byte length/],
  ['code 2 whose frame 1 overruns the packet', bytes(toc(1, false, 2), 10, fill(9)), /exceeds/],
  ['code 3 without its count byte', bytes(toc(1, false, 3)), /frame count byte/],
  ['code 3 with 0 frames', bytes(toc(1, false, 3), 0x00, fill(4)), /0 frames/],
  ['code 3 over 120 ms', bytes(toc(2, false, 3), 4, fill(8)), /longer than 120 ms/],
  ['code 3 cut inside its padding length', bytes(toc(1, false, 3), 0x41, 255), /padding length/],
  ['code 3 padding longer than the packet', bytes(toc(1, false, 3), 0x41, 20, fill(10)), /padding/],
  ['code 3 CBR bytes not divisible by M', bytes(toc(1, false, 3), 0x03, fill(10)), /equal frames/],
  ['code 3 VBR frame length overrunning', bytes(toc(1, false, 3), 0x82, 30, fill(10)), /exceeds/],
  ['code 3 VBR cut before a length', bytes(toc(1, false, 3), 0x83, 0), /before the length of frame 2/],
  ['code 0 frame over 1275 bytes', bytes(toc(1, false, 0), fill(1276)), /1275/],
  ['code 1 frames over 1275 bytes', bytes(toc(1, false, 1), fill(2 * 1276)), /1275/],
  ['code 2 second frame over 1275 bytes', bytes(toc(1, false, 2), 1, fill(1 + 1276)), /1275/],
  ['code 3 CBR frames over 1275 bytes', bytes(toc(1, false, 3), 0x02, fill(2 * 1276)), /1275/],
];

describe('malformed packets', () => {
  it.each(MALFORMED)('rejects %s with opus_packet_invalid, as libopus would', (_name, packet, message) => {
    expectInvalid(packet, message);
    if (packet.length > 0) expect(libopusAccepts(packet)).toBe(false);
  });

  it('rejects a non-byte packet', () => {
    expectInvalid([1, 2, 3] as unknown as Uint8Array, /Uint8Array/);
  });

  it('agrees with libopus on 30000 random packets', () => {
    const rnd = seededRandom(2024);
    const decoder = new opus.OpusEncoder(48000, 1);
    let accepted = 0;
    for (let t = 0; t < 30000; t++) {
      // Mostly short packets, some near the 1275-byte frame limit, with structured first bytes.
      const n = rnd() < 0.1 ? 1200 + Math.floor(rnd() * 1500) : 1 + Math.floor(rnd() * 40);
      const packet = Buffer.alloc(n);
      for (let i = 0; i < n; i++) packet[i] = Math.floor(rnd() * 256);
      if (n > 1 && (packet[0]! & 3) === 3) packet[1] = (packet[1]! & 0xc0) | Math.floor(rnd() * 8);
      let ours = true;
      try {
        parseOpusPacket(packet);
      } catch {
        ours = false;
      }
      let theirs = true;
      try {
        decoder.decode(packet);
      } catch {
        theirs = false;
      }
      if (ours !== theirs) throw new Error(`disagreement on ${packet.toString('hex')}: ours ${ours}, libopus ${theirs}`);
      if (ours) accepted++;
    }
    // Both outcomes must be well represented for the agreement to mean anything.
    expect(accepted).toBeGreaterThan(5000);
    expect(accepted).toBeLessThan(25000);
  });

  it('leaves the decoder untouched: a stream with malformed packets in between decodes identically', () => {
    const encoder = new OpusEncoderStream({ sampleRate: 48000 });
    const packets = [...encoder.push(sine(440, 24000, 24000)), ...encoder.flush().packets];
    const clean = new OpusPacketDecoder();
    const dirty = new OpusPacketDecoder();
    let rejected = 0;
    packets.forEach((packet, i) => {
      const expected = clean.decode(packet);
      const [, bad] = MALFORMED[i % MALFORMED.length]!;
      expect(() => dirty.decode(bad)).toThrow(CodecError);
      rejected++;
      expect(dirty.decode(packet)).toEqual(expected);
    });
    expect(dirty.stats).toMatchObject({ packets: packets.length, invalidPackets: rejected, samplesOut: clean.stats.samplesOut });
  });
});
