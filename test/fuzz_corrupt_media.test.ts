// Corrupt media through every codec: truncated files, flipped bits and random bytes given to the
// image decoder, the audio file decoder (ffmpeg), the streaming input decoders, the Opus packet
// decoder and the video planner. Each either succeeds or fails with a coded CodecError; none
// crashes the process, hangs, or throws an uncoded error.
import fc from 'fast-check';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeAudioFile } from '../src/codecs/audio/file_decoder.js';
import { AudioInputDecoder } from '../src/codecs/audio/input_decoder.js';
import { OpusPacketDecoder } from '../src/codecs/audio/opus.js';
import { CodecError } from '../src/codecs/errors.js';
import { imageToPatches } from '../src/codecs/image/patches.js';
import { planVideo } from '../src/codecs/video/patches.js';

const fixture = (p: string): Buffer => readFileSync(join(import.meta.dirname, 'fixtures', p));

/** A corruption of `bytes`: cut short, bits flipped in the body, or a random head spliced on. */
function corrupted(bytes: Buffer): fc.Arbitrary<Buffer> {
  return fc.oneof(
    fc.integer({ min: 0, max: bytes.length - 1 }).map((n) => bytes.subarray(0, n)),
    fc.array(fc.tuple(fc.integer({ min: 0, max: bytes.length - 1 }), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 16 }).map((flips) => {
      const out = Buffer.from(bytes);
      for (const [at, mask] of flips) out[at]! ^= mask;
      return out;
    }),
    fc.uint8Array({ minLength: 1, maxLength: 64 }).map((head) => Buffer.concat([Buffer.from(head), bytes.subarray(head.length)])),
  );
}

async function codedOrFine(work: () => Promise<unknown>): Promise<void> {
  try {
    await work();
  } catch (err) {
    expect(err, String(err)).toBeInstanceOf(CodecError);
    expect((err as CodecError).code).toMatch(/^[a-z0-9_]+$/);
  }
}

describe('corrupt media', () => {
  it('images: truncated, bit-flipped and random JPEG/PNG bytes give coded errors', async () => {
    const jpeg = fixture('image/exif2_240x320.jpg');
    const png = fixture('image/aspect_2x500.png');
    await fc.assert(
      fc.asyncProperty(fc.oneof(corrupted(jpeg), corrupted(png), fc.uint8Array({ maxLength: 256 }).map((b) => Buffer.from(b))), (bytes) =>
        codedOrFine(() => imageToPatches(bytes)),
      ),
      { numRuns: 60, seed: 11 },
    );
  }, 120_000);

  it('audio files through ffmpeg: truncated and bit-flipped WAV, random bytes', async () => {
    const wav = fixture('realtime/weather_16k.wav');
    await fc.assert(
      fc.asyncProperty(fc.oneof(corrupted(wav), fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b))), (bytes) =>
        codedOrFine(() => decodeAudioFile(bytes)),
      ),
      { numRuns: 20, seed: 12 },
    );
  }, 120_000);

  it('streaming input decoders take any bytes in any split without throwing uncoded errors', () => {
    fc.assert(
      fc.property(
        fc.constantFrom('pcm16', 'g711_ulaw', 'g711_alaw' as const),
        fc.array(fc.uint8Array({ maxLength: 97 }), { maxLength: 20 }),
        (format, chunks) => {
          const d = new AudioInputDecoder({ format: format });
          for (const c of chunks) {
            try {
              const out = d.push(c);
              for (const v of out) expect(Number.isFinite(v)).toBe(true);
            } catch (err) {
              expect(err).toBeInstanceOf(CodecError);
            }
          }
        },
      ),
      { numRuns: 300, seed: 13 },
    );
  });

  it('Opus: random packets are refused or concealed, never crash the decoder', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 200 }), { minLength: 1, maxLength: 12 }), (packets) => {
        const d = new OpusPacketDecoder();
        for (const p of packets) {
          try {
            d.decode(p);
          } catch (err) {
            expect(err).toBeInstanceOf(CodecError);
          }
        }
      }),
      { numRuns: 200, seed: 14 },
    );
  });

  it('video: truncated and bit-flipped MP4 files are planned or refused with a coded error', async () => {
    const mp4 = fixture('video/testsrc2_320x240.mp4');
    const dir = mkdtempSync(join(tmpdir(), 'omni-fuzz-video-'));
    let n = 0;
    await fc.assert(
      fc.asyncProperty(corrupted(mp4), async (bytes) => {
        const path = join(dir, `v${n++}.mp4`);
        writeFileSync(path, bytes);
        await codedOrFine(() => planVideo(path));
      }),
      { numRuns: 12, seed: 15 },
    );
  }, 120_000);
});
