// Errors libopus itself reports (a corrupt payload that passes the framing checks) come back as
// CodecError `opus_packet_invalid` with the libopus message and cause, and leave the decoder usable.
// libopus 1.3.1 rejects almost nothing that passes RFC 6716 framing, so the binding is wrapped here
// to fail on one marked packet the way `opus_decode` failures surface (a thrown TypeError).
import type OpusModule from '@discordjs/opus';
import { describe, expect, it, vi } from 'vitest';

const MARK = 0xee;

vi.mock('@discordjs/opus', async (importOriginal) => {
  const real = (await importOriginal<{ default: typeof OpusModule }>()).default;
  class FailingOnMark extends real.OpusEncoder {
    override decode(buf: Buffer): Buffer {
      if (buf.length > 1 && buf[1] === MARK) throw new TypeError('The compressed data passed is corrupted');
      return super.decode(buf);
    }
  }
  return { default: { ...real, OpusEncoder: FailingOnMark } };
});

const { OpusEncoderStream, OpusPacketDecoder } = await import('../src/codecs/audio/opus.js');
const { CodecError } = await import('../src/codecs/errors.js');
const { sine } = await import('./helpers/opus_signals.js');

describe('libopus decode errors', () => {
  it('map to opus_packet_invalid with the libopus message and cause; decoding goes on', () => {
    const packets = new OpusEncoderStream().push(sine(440, 24000, 4800));
    const corrupt = Buffer.from([packets[0]![0]!, MARK, 1, 2, 3]);
    const decoder = new OpusPacketDecoder();
    const reference = new OpusPacketDecoder();
    let caught: unknown;
    for (const packet of packets) {
      try {
        decoder.decode(corrupt);
      } catch (err) {
        caught = err;
      }
      expect(decoder.decode(packet)).toEqual(reference.decode(packet));
    }
    expect(caught).toBeInstanceOf(CodecError);
    expect(caught).toMatchObject({ code: 'opus_packet_invalid', param: 'packet' });
    expect((caught as Error).message).toMatch(/libopus rejected the packet: The compressed data passed is corrupted/);
    expect((caught as Error).cause).toBeInstanceOf(TypeError);
    expect(decoder.stats).toMatchObject({ packets: packets.length, invalidPackets: packets.length, bytesIn: reference.stats.bytesIn });
  });
});
