// G.711 kernels against an independent transcription of the ITU-T G.191 reference, over every
// 16-bit input and every code byte.
import { describe, expect, it } from 'vitest';
import { g711Decode, g711Encode } from '../src/codecs/audio/g711.js';

// ITU-T G.191 g711.c, written out again here so the test does not trust the kernel's tables.
function ulawCompress(lin: number): number {
  let absno = lin < 0 ? ~lin >> 2 : lin >> 2;
  absno += 33;
  if (absno > 0x1fff) absno = 0x1fff;
  let i = absno >> 6;
  let segno = 1;
  while (i !== 0) {
    segno++;
    i >>= 1;
  }
  const out = ((8 - segno) << 4) | (0x0f - ((absno >> segno) & 0x0f));
  return lin >= 0 ? out | 0x80 : out;
}

function alawCompress(lin: number): number {
  let ix = lin < 0 ? ~lin >> 4 : lin >> 4;
  if (ix > 15) {
    let iexp = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      iexp++;
    }
    ix -= 16;
    ix += iexp << 4;
  }
  if (lin >= 0) ix |= 0x80;
  return ix ^ 0x55;
}

// Decoders in the other classic formulation (Sun's g711.c), a second independent check.
function ulawExpand(code: number): number {
  const u = ~code & 0xff;
  let t = ((u & 0x0f) << 3) + 0x84;
  t <<= (u & 0x70) >> 4;
  return u & 0x80 ? 0x84 - t : t - 0x84;
}

function alawExpand(code: number): number {
  const a = code ^ 0x55;
  let t = (a & 0x0f) << 4;
  const seg = (a & 0x70) >> 4;
  if (seg === 0) t += 8;
  else if (seg === 1) t += 0x108;
  else t = (t + 0x108) << (seg - 1);
  return a & 0x80 ? t : -t;
}

const allSamples = Int16Array.from({ length: 65536 }, (_, i) => i - 32768);
const allCodes = Uint8Array.from({ length: 256 }, (_, i) => i);

describe('G.711 native kernels', () => {
  it('mu-law encodes every 16-bit sample exactly as G.191', () => {
    const got = g711Encode('mulaw', allSamples);
    const want = Uint8Array.from(allSamples, ulawCompress);
    expect(Buffer.compare(got, Buffer.from(want))).toBe(0);
  });

  it('A-law encodes every 16-bit sample exactly as G.191', () => {
    const got = g711Encode('alaw', allSamples);
    const want = Uint8Array.from(allSamples, alawCompress);
    expect(Buffer.compare(got, Buffer.from(want))).toBe(0);
  });

  it('decodes every mu-law and A-law code to the standard linear value', () => {
    expect(Array.from(g711Decode('mulaw', allCodes))).toEqual(Array.from(allCodes, ulawExpand));
    expect(Array.from(g711Decode('alaw', allCodes))).toEqual(Array.from(allCodes, alawExpand));
  });

  it('pins the well-known code points', () => {
    expect(Array.from(g711Decode('mulaw', Uint8Array.of(0xff, 0x7f, 0x00, 0x80)))).toEqual([0, 0, -32124, 32124]);
    expect(Array.from(g711Decode('alaw', Uint8Array.of(0xd5, 0x55, 0xaa, 0x2a)))).toEqual([8, -8, 32256, -32256]);
    expect(Array.from(g711Encode('mulaw', Int16Array.of(0, -1, 32767, -32768)))).toEqual([0xff, 0x7f, 0x80, 0x00]);
  });

  it('re-encodes every decoded code to itself (mu-law has two zeros; -0 re-encodes as +0)', () => {
    for (const law of ['mulaw', 'alaw'] as const) {
      const round = g711Encode(law, g711Decode(law, allCodes));
      for (let c = 0; c < 256; c++) {
        const expected = law === 'mulaw' && c === 0x7f ? 0xff : c;
        expect(round[c], `${law} code ${c}`).toBe(expected);
      }
    }
  });

  it('works on views into larger buffers and on empty input', () => {
    const backing = new Uint8Array(9);
    backing.set([0, 0xff, 0x00, 0x80], 5);
    expect(Array.from(g711Decode('mulaw', backing.subarray(5)))).toEqual([-32124, 0, -32124, 32124]);
    expect(g711Encode('alaw', new Int16Array(0)).length).toBe(0);
  });

  it('rejects the wrong array type with a TypeError', () => {
    expect(() => g711Decode('mulaw', new Int16Array(4) as unknown as Uint8Array)).toThrow(
      'expected a Uint8Array of G.711 bytes',
    );
    expect(() => g711Encode('alaw', new Float32Array(4) as unknown as Int16Array)).toThrow(TypeError);
  });
});
