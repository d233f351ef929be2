// Whole-file decoding to 16 kHz mono float32: WAV natively (every common coding, exact values),
// other containers through ffmpeg (files made at test time with ffmpeg's lavfi sources), and the
// failure modes: wrong kind of file, damage, no audio stream, too long, hung or missing ffmpeg.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import alawmulaw from 'alawmulaw';
import wavefile from 'wavefile';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { downmixInterleaved } from '../src/codecs/audio/downmix.js';
import { decodeAudioFile } from '../src/codecs/audio/file_decoder.js';
import type { DecodeAudioFileOptions, DecodedAudioFile } from '../src/codecs/audio/file_decoder.js';
import { MP4_MAX_BOX_DEPTH, moveMoovToFront } from '../src/codecs/audio/mp4_faststart.js';
import { float32ToPcm16le, pcm16leToFloat32 } from '../src/codecs/audio/pcm.js';
import { resample } from '../src/codecs/audio/resample.js';
import { sniffContainer } from '../src/codecs/audio/sniff.js';
import { encodeWav } from '../src/codecs/audio/wav.js';
import { CodecError } from '../src/codecs/errors.js';
import { childPids, ffmpegPath, randomBytes, rms, rng, runFfmpeg, sine, sineFrequency } from './helpers/audio_codec.js';

const { WaveFile } = wavefile;

let ffmpeg = '';
let dir = '';

beforeAll(async () => {
  ffmpeg = await ffmpegPath();
  dir = mkdtempSync(join(tmpdir(), 'audio-file-decode-'));
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A file made by ffmpeg from `inputArgs` with `outputArgs`, read back as bytes. */
async function make(name: string, inputArgs: string[], outputArgs: string[], input?: Uint8Array): Promise<Buffer> {
  const path = join(dir, name);
  await runFfmpeg(ffmpeg, ['-y', ...inputArgs, ...outputArgs, path], input);
  return readFileSync(path);
}

function tone(freq: number, rate: number, seconds: number): string[] {
  return ['-f', 'lavfi', '-i', `sine=frequency=${freq}:sample_rate=${rate}:duration=${seconds}`];
}

async function failure(bytes: Uint8Array, options?: DecodeAudioFileOptions): Promise<CodecError> {
  try {
    const r = await decodeAudioFile(bytes, options);
    throw new Error(`decoded ${r.samples.length} samples, expected a CodecError`);
  } catch (err) {
    if (err instanceof CodecError) return err;
    throw err;
  }
}

function wavOf(channels: number, rate: number, bitDepth: string, samples: ArrayLike<number>[] | ArrayLike<number>): Uint8Array {
  const w = new WaveFile();
  w.fromScratch(channels, rate, bitDepth, samples as number[]);
  return w.toBuffer();
}

function exactlyEqual(actual: Float32Array, expected: Float32Array): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    if (!Object.is(actual[i], expected[i])) throw new Error(`sample ${i}: got ${actual[i]}, expected ${expected[i]}`);
  }
}

describe('WAV files, decoded natively', () => {
  const n = 4000;
  const next = rng(1);
  const ints = (bits: number): number[] =>
    Array.from({ length: n }, (_, i) => (i < 2 ? [-(2 ** (bits - 1)), 2 ** (bits - 1) - 1][i]! : Math.floor((next() * 2 - 1) * 2 ** (bits - 1))));

  it.each([
    ['8', () => Array.from({ length: n }, (_, i) => (i * 37) % 256), (x: number) => (x - 128) / 128],
    ['16', () => ints(16), (x: number) => x / 32768],
    ['24', () => ints(24), (x: number) => x / 2 ** 23],
    ['32', () => ints(32), (x: number) => x / 2 ** 31],
    ['32f', () => Array.from({ length: n }, () => Math.fround(next() * 2 - 1)), (x: number) => x],
    ['64', () => Array.from({ length: n }, () => next() * 2 - 1), (x: number) => x],
  ] as const)('%s-bit PCM at 16 kHz: every sample as libsndfile scales it', async (depth, make, scale) => {
    const samples = make();
    const r = await decodeAudioFile(wavOf(1, 16000, depth, samples));
    exactlyEqual(r.samples, Float32Array.from(samples, scale));
    expect([r.decoder, r.sourceFormat, r.sourceSampleRate, r.sourceChannels, r.sampleRate]).toEqual(['wav', 'wav', 16000, 1, 16000]);
    expect(r.durationMs).toBe(250);
  });

  it.each([
    ['8m', 'pcm_mulaw', alawmulaw.mulaw.decode],
    ['8a', 'pcm_alaw', alawmulaw.alaw.decode],
  ] as const)('G.711 WAV (%s) decodes through the 16-bit tables', async (depth, coding, reference) => {
    const codes = randomBytes(n, 2);
    const r = await decodeAudioFile(wavOf(1, 16000, depth, codes));
    exactlyEqual(r.samples, Float32Array.from(reference(codes), (x) => x / 32768));
    expect(r.sourceCodec).toBe(coding);
  });

  it('averages stereo channels, and 3-channel float (WAVE_FORMAT_EXTENSIBLE) in float32 like numpy', async () => {
    const left = ints(16);
    const right = ints(16);
    const stereo = await decodeAudioFile(wavOf(2, 16000, '16', [left, right]));
    exactlyEqual(stereo.samples, Float32Array.from(left, (l, i) => (l / 32768 + right[i]! / 32768) / 2));
    expect(stereo.sourceChannels).toBe(2);

    const ch = [0, 1, 2].map(() => Array.from({ length: n }, () => Math.fround(next() * 2 - 1)));
    const bytes = wavOf(3, 16000, '32f', ch);
    // wavefile writes the 40-byte extensible fmt layout with tag 3; make it a real
    // WAVE_FORMAT_EXTENSIBLE (tag 0xFFFE, float subformat GUID) as ffmpeg and others write it.
    // wavefile alone reads such floats as 32-bit integers.
    bytes[20] = 0xfe;
    bytes[21] = 0xff;
    bytes[44] = 3;
    const fmt = new WaveFile(bytes).fmt as { audioFormat: number; subformat: number[] };
    expect([fmt.audioFormat, fmt.subformat[0]]).toEqual([0xfffe, 3]);
    const three = await decodeAudioFile(bytes);
    exactlyEqual(three.samples, Float32Array.from(ch[0]!, (a, i) => Math.fround(Math.fround(a + ch[1]![i]!) + ch[2]![i]!) / 3));
  });

  it.each([8000, 22050, 44100, 48000])('resamples %i Hz to 16 kHz: ceil(N * 16000 / rate) samples, the tone kept', async (rate) => {
    const x = sine(440, rate, rate * 2 + 1);
    const r = await decodeAudioFile(wavOf(1, rate, '16', new Int16Array(new Uint8Array(float32ToPcm16le(x)).buffer)));
    expect(r.samples.length).toBe(Math.ceil(((rate * 2 + 1) * 16000) / rate));
    exactlyEqual(r.samples, resample(pcm16leToFloat32(float32ToPcm16le(x)), rate, 16000));
    expect(sineFrequency(r.samples, 16000)).toBeCloseTo(440, 0);
    expect(r.sourceSampleRate).toBe(rate);
  });

  it('decodes a long WAV in slices to the same result as the one-shot resampler', async () => {
    const x = sine(1000, 48000, 48000 * 20);
    const pcm = float32ToPcm16le(x);
    const r = await decodeAudioFile(wavOf(1, 48000, '16', new Int16Array(new Uint8Array(pcm).buffer)));
    exactlyEqual(r.samples, resample(pcm16leToFloat32(pcm), 48000, 16000));
  });

  it('refuses more than 64 channels (audio_channels_unsupported) and decodes 64 in slices of samples', async () => {
    const frames = 10_000; // 640 000 samples: several slices, though few frames
    const ch = Array.from({ length: 64 }, (_, c) => Int16Array.from({ length: frames }, (_, i) => ((i * 31 + c * 977) % 65536) - 32768));
    const bytes = wavOf(64, 16000, '16', ch);
    const interleaved = new Float32Array(frames * 64);
    for (let i = 0; i < frames; i++) for (let c = 0; c < 64; c++) interleaved[i * 64 + c] = ch[c]![i]! / 32768;
    const r = await decodeAudioFile(bytes);
    expect(r.sourceChannels).toBe(64);
    exactlyEqual(r.samples, downmixInterleaved(interleaved, 64));

    // The same file declaring 65 channels (fmt numChannels at byte 22).
    const many = Buffer.from(bytes);
    many.writeUInt16LE(65, 22);
    many.writeUInt16LE(65 * 2, 32);
    many.writeUInt32LE(65 * 2 * 16000, 28);
    const err = await failure(many);
    expect(err.code).toBe('audio_channels_unsupported');
    expect(err.message).toMatch(/65 channels/);
  });

  it('drops a truncated last frame, as libsndfile does', async () => {
    const bytes = wavOf(2, 16000, '16', [ints(16).slice(0, 10), ints(16).slice(0, 10)]);
    const r = await decodeAudioFile(bytes.subarray(0, bytes.length - 3));
    expect(r.samples.length).toBe(9);
  });

  it('round-trips encodeWav at 16 kHz exactly (16-bit values)', async () => {
    const x = Float32Array.from(ints(16), (v) => v / 32768);
    exactlyEqual((await decodeAudioFile(encodeWav(x, 16000))).samples, x);
  });

  it('rejects a WAV with no samples (audio_empty) and one over the duration limit (audio_too_long)', async () => {
    expect((await failure(wavOf(1, 16000, '16', []))).code).toBe('audio_empty');
    const err = await failure(wavOf(1, 8000, '16', new Array(8001).fill(0)), { maxDurationMs: 1000 });
    expect(err.code).toBe('audio_too_long');
    expect(err.message).toMatch(/1\.000 s/);
    expect((await decodeAudioFile(wavOf(1, 8000, '16', new Array(8000).fill(0)), { maxDurationMs: 1000 })).samples.length).toBe(16000);
  });

  it('hands codings it does not convert (IMA ADPCM) to ffmpeg', async () => {
    const bytes = await make('adpcm.wav', tone(440, 16000, 1), ['-c:a', 'adpcm_ima_wav']);
    expect(sniffContainer(bytes).format).toBe('wav');
    const r = await decodeAudioFile(bytes);
    expect(r.decoder).toBe('ffmpeg');
    expect(r.sourceCodec).toBe('adpcm_ima_wav');
    expect(Math.abs(r.samples.length - 16000)).toBeLessThan(600);
    expect(sineFrequency(r.samples, 16000)).toBeCloseTo(440, 0);
    const without = await failure(bytes, { ffmpegPath: join(dir, 'no-such-ffmpeg') });
    expect(without.code).toBe('ffmpeg_unavailable');
    expect(without.message).toMatch(/WAV sample format 0x11/);
  });

  it('reports a WAV whose header is damaged beyond reading as audio_decode_failed', async () => {
    const bytes = Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00WAVE', 'latin1'), Buffer.from(randomBytes(64, 3))]);
    expect((await failure(bytes)).code).toBe('audio_decode_failed');
  });
});

describe('compressed containers, decoded by ffmpeg', () => {
  // Length tolerance is each codec's padding at the source rate, seen at 16 kHz: MP3 and AAC
  // frames (1152/1024) plus encoder delay that a pipe cannot always trim.
  it.each([
    ['mp3', 'mp3', 'mp3', ['-c:a', 'libmp3lame'], 44100, 1200],
    ['m4a', 'mp4', 'aac', ['-c:a', 'aac'], 44100, 1200],
    ['opus.ogg', 'ogg', 'opus', ['-c:a', 'libopus'], 48000, 400],
    ['vorbis.ogg', 'ogg', 'vorbis', ['-c:a', 'libvorbis'], 44100, 400],
    ['webm', 'webm', 'opus', ['-c:a', 'libopus'], 48000, 400],
    ['flac', 'flac', 'flac', ['-c:a', 'flac'], 44100, 0],
  ] as const)('%s: 2 s of 440 Hz comes back as ~32000 samples at 440 Hz', async (ext, format, codec, args, rate, tolerance) => {
    const bytes = await make(`tone.${ext}`, tone(440, rate, 2), [...args]);
    const r: DecodedAudioFile = await decodeAudioFile(bytes);
    expect(r.decoder).toBe('ffmpeg');
    expect([r.sourceFormat, r.sourceCodec, r.sourceSampleRate, r.sourceChannels]).toEqual([format, codec, rate, 1]);
    expect(Math.abs(r.samples.length - 32000)).toBeLessThanOrEqual(tolerance);
    expect(r.durationMs).toBe(r.samples.length / 16);
    expect(sineFrequency(r.samples, 16000)).toBeCloseTo(440, 0);
    expect(rms(r.samples)).toBeGreaterThan(0.08); // lavfi's sine is amplitude 1/8
  });

  it('FLAC at 16 kHz is lossless end to end: exactly the PCM16 values', async () => {
    const next = rng(4);
    const pcm = float32ToPcm16le(Float32Array.from({ length: 16000 }, () => (next() * 2 - 1) * 0.9));
    const flac = await make('exact.flac', ['-f', 's16le', '-ar', '16000', '-ac', '1', '-i', 'pipe:0'], ['-c:a', 'flac'], pcm);
    exactlyEqual((await decodeAudioFile(flac)).samples, pcm16leToFloat32(pcm));
  });

  it('averages all channels like librosa (5.1 with a tone only in the LFE channel gives 1/6 of it)', async () => {
    // ffmpeg's own `-ac 1` would drop the LFE channel entirely.
    const bytes = await make(
      'lfe.flac',
      ['-f', 'lavfi', '-i', 'aevalsrc=0|0|0|0.6*sin(2*PI*100*t)|0|0:c=5.1:s=16000:d=1'],
      ['-c:a', 'flac'],
    );
    const r = await decodeAudioFile(bytes);
    expect(r.sourceChannels).toBe(6);
    expect(rms(r.samples)).toBeCloseTo((0.6 / 6) * Math.SQRT1_2, 3);
    expect(sineFrequency(r.samples, 16000)).toBeCloseTo(100, 0);
  });

  it("ffmpeg's resampling (soxr where built in) agrees with the native resampler on lossless 48 kHz input", async () => {
    const pcm = float32ToPcm16le(sine(1000, 48000, 48000, 0.5));
    const flac = await make('48k.flac', ['-f', 's16le', '-ar', '48000', '-ac', '1', '-i', 'pipe:0'], ['-c:a', 'flac'], pcm);
    const viaFfmpeg = (await decodeAudioFile(flac)).samples;
    const native = resample(pcm16leToFloat32(pcm), 48000, 16000);
    expect(viaFfmpeg.length).toBe(native.length);
    let maxDiff = 0;
    for (let i = 200; i < native.length - 200; i++) maxDiff = Math.max(maxDiff, Math.abs(viaFfmpeg[i]! - native[i]!));
    expect(maxDiff).toBeLessThan(1e-3);
  });

  it('decodes an M4A with its index (moov) after the media, which a pipe alone cannot', async () => {
    const plain = await make('late-moov.m4a', tone(440, 44100, 90), ['-c:a', 'aac']);
    const fast = await make('faststart.m4a', tone(440, 44100, 90), ['-c:a', 'aac', '-movflags', '+faststart']);
    const order = (b: Uint8Array): string[] => {
      const types: string[] = [];
      for (let at = 0; at + 8 <= b.length; ) {
        types.push(Buffer.from(b.subarray(at + 4, at + 8)).toString('latin1'));
        at += new DataView(b.buffer, b.byteOffset + at).getUint32(0);
      }
      return types;
    };
    expect(order(plain).indexOf('moov')).toBeGreaterThan(order(plain).indexOf('mdat'));
    const before = Buffer.from(plain);
    const moved = moveMoovToFront(plain);
    expect(plain.equals(before)).toBe(true); // the caller's bytes are left alone
    expect(order(moved).indexOf('moov')).toBeLessThan(order(moved).indexOf('mdat'));
    expect(moved.length).toBe(plain.length);
    expect(moveMoovToFront(fast)).toBe(fast);
    const a = await decodeAudioFile(plain);
    const b = await decodeAudioFile(fast);
    expect(Math.abs(a.samples.length - 90 * 16000)).toBeLessThan(1200);
    exactlyEqual(a.samples, b.samples);
  });

  it('moves a moov with a 64-bit size header, patching its chunk offsets', () => {
    const box = (type: string, ...parts: Uint8Array[]): Buffer => {
      const body = Buffer.concat(parts);
      const head = Buffer.alloc(8);
      head.writeUInt32BE(8 + body.length, 0);
      head.write(type, 4, 'latin1');
      return Buffer.concat([head, body]);
    };
    const ftyp = box('ftyp', Buffer.from('M4A \0\0\0\0', 'latin1'));
    const media = Buffer.from('0123456789abcdef', 'latin1');
    const mdat = box('mdat', media);
    const chunk = ftyp.length + 8 + 4; // a chunk 4 bytes into the media
    const stco = box('stco', Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), Buffer.from([chunk >> 24, (chunk >> 16) & 255, (chunk >> 8) & 255, chunk & 255]));
    const inner = box('trak', box('mdia', box('minf', box('stbl', stco))));
    // moov with size 1 and the real size in the 64-bit field after the type.
    const moovHead = Buffer.alloc(16);
    moovHead.writeUInt32BE(1, 0);
    moovHead.write('moov', 4, 'latin1');
    moovHead.writeBigUInt64BE(BigInt(16 + inner.length), 8);
    const moov = Buffer.concat([moovHead, inner]);
    const file = Buffer.concat([ftyp, mdat, moov]);

    const moved = Buffer.from(moveMoovToFront(file));
    expect(moved.length).toBe(file.length);
    expect(moved.subarray(ftyp.length, ftyp.length + moov.length).subarray(4, 8).toString('latin1')).toBe('moov');
    expect(moved.subarray(ftyp.length + moov.length + 4, ftyp.length + moov.length + 8).toString('latin1')).toBe('mdat');
    const stcoAt = moved.indexOf('stco', ftyp.length, 'latin1') - 4;
    const patched = moved.readUInt32BE(stcoAt + 16);
    expect(patched).toBe(chunk + moov.length);
    expect(moved.subarray(patched, patched + 4).toString('latin1')).toBe('4567');
  });

  it('refuses boxes nested without bound inside moov with a coded error, and leaves malformed tables alone', () => {
    const box = (type: string, body: Buffer): Buffer => {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(8 + body.length, 0);
      head.write(type, 4, 'latin1');
      return Buffer.concat([head, body]);
    };
    const ftyp = box('ftyp', Buffer.from('M4A \0\0\0\0', 'latin1'));
    const mdat = box('mdat', Buffer.alloc(16));
    // 20 000 trak boxes, each holding the next: one header after another.
    const depth = 20_000;
    const deep = Buffer.alloc(depth * 8);
    for (let i = 0; i < depth; i++) {
      deep.writeUInt32BE((depth - i) * 8, i * 8);
      deep.write('trak', i * 8 + 4, 'latin1');
    }
    let caught: unknown;
    try {
      moveMoovToFront(Buffer.concat([ftyp, mdat, box('moov', deep)]));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CodecError);
    expect(caught).toMatchObject({ code: 'audio_decode_failed' });
    expect((caught as Error).message).toContain(String(MP4_MAX_BOX_DEPTH));
    // An stco too short for its own header at the end of moov: no RangeError, the file is moved as is.
    const shortStco = box('moov', box('trak', Buffer.from([0, 0, 0, 8, 0x73, 0x74, 0x63, 0x6f])));
    expect(() => moveMoovToFront(Buffer.concat([ftyp, mdat, shortStco]))).not.toThrow();
  });

  const installer = ((): string | undefined => {
    try {
      return (createRequire(import.meta.url)('@ffmpeg-installer/ffmpeg') as { path: string }).path;
    } catch {
      return undefined;
    }
  })();
  it.skipIf(installer === undefined)('also decodes with the @ffmpeg-installer fallback binary', async () => {
    const bytes = await make('fallback.mp3', tone(440, 44100, 2), ['-c:a', 'libmp3lame']);
    const r = await decodeAudioFile(bytes, { ffmpegPath: installer });
    expect(Math.abs(r.samples.length - 32000)).toBeLessThanOrEqual(1200);
    expect(sineFrequency(r.samples, 16000)).toBeCloseTo(440, 0);
  });

  it('runs several decodes at once', async () => {
    const bytes = await make('parallel.ogg', tone(440, 48000, 1), ['-c:a', 'libopus']);
    const results = await Promise.all(Array.from({ length: 6 }, () => decodeAudioFile(bytes)));
    for (const r of results) expect(r.samples.length).toBe(results[0]!.samples.length);
  });
});

describe('decode failures', () => {
  it('rejects empty input and non-audio files by their magic bytes, without running ffmpeg', async () => {
    expect((await failure(new Uint8Array(0))).code).toBe('audio_empty');
    const png = await failure(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0]), { ffmpegPath: join(dir, 'none') });
    expect([png.code, png.message]).toEqual(['audio_format_unsupported', 'expected an audio file, got a PNG image']);
    expect((await failure(Buffer.from('{"type":"input_audio_buffer.append"}'), { ffmpegPath: join(dir, 'none') })).message).toMatch(/text/);
  });

  it('rejects random bytes as an unrecognised format', async () => {
    const bytes = randomBytes(40000, 5);
    expect(sniffContainer(bytes).format).toBe('unknown');
    const err = await failure(bytes);
    expect(err.code).toBe('audio_format_unsupported');
    expect(err.message).toMatch(/not a recognised audio format \(ffmpeg: .*Invalid data/);
  });

  it('reports damaged containers as audio_decode_failed with ffmpeg\'s words', async () => {
    const m4a = await make('cut.m4a', tone(440, 44100, 30), ['-c:a', 'aac']);
    const cut = await failure(m4a.subarray(0, m4a.length >> 1));
    expect(cut.code).toBe('audio_decode_failed');
    expect(cut.message).toMatch(/^could not decode MP4\/M4A \(brand M4A\) audio: .+/);
    const ogg = await make('head.ogg', tone(440, 48000, 1), ['-c:a', 'libvorbis']);
    expect((await failure(ogg.subarray(0, 64))).code).toBe('audio_decode_failed');
    const mp3 = Buffer.concat([Buffer.from('ID3\x03\x00\x00\x00\x00\x00\x00', 'latin1'), Buffer.from(randomBytes(5000, 6))]);
    expect((await failure(mp3)).code).toBe('audio_decode_failed');
  });

  it('decodes what survives of a truncated MP3 (like librosa via ffmpeg), listing no silent success', async () => {
    const mp3 = await make('half.mp3', tone(440, 44100, 4), ['-c:a', 'libmp3lame']);
    const r = await decodeAudioFile(mp3.subarray(0, mp3.length >> 1));
    expect(r.samples.length).toBeGreaterThan(0.4 * 64000);
    expect(r.samples.length).toBeLessThan(0.6 * 64000);
  });

  it('rejects a video file with no audio stream as audio_format_unsupported', async () => {
    const mp4 = await make('video-only.mp4', ['-f', 'lavfi', '-i', 'testsrc=size=64x64:rate=5:duration=1'], ['-c:v', 'mpeg4']);
    const err = await failure(mp4);
    expect(err.code).toBe('audio_format_unsupported');
    expect(err.message).toMatch(/no audio stream/);
  });

  it('rejects a container with zero samples as audio_empty', async () => {
    const flac = await make('empty.flac', ['-f', 's16le', '-ar', '16000', '-ac', '1', '-i', 'pipe:0'], ['-c:a', 'flac'], new Uint8Array(0));
    expect((await failure(flac)).code).toBe('audio_empty');
  });

  it('stops ffmpeg at the duration limit (audio_too_long) and leaves no process behind', async () => {
    const ogg = await make('long.ogg', tone(440, 48000, 30), ['-c:a', 'libopus']);
    const err = await failure(ogg, { maxDurationMs: 1000 });
    expect(err.code).toBe('audio_too_long');
    expect(childPids('ffmpeg')).toEqual([]);
    const ok = await decodeAudioFile(ogg, { maxDurationMs: 30_000 });
    expect(ok.samples.length).toBe(30 * 16000);
  });

  describe('with an ffmpeg that hangs', () => {
    let hanging = '';
    beforeAll(() => {
      // Answers the version and capability probes like ffmpeg, then never decodes.
      hanging = join(dir, 'hanging-ffmpeg');
      writeFileSync(
        hanging,
        `#!/bin/sh\nfor a in "$@"; do case "$a" in -version|-formats|-encoders|-codecs|-filters) exec '${ffmpeg}' "$@";; esac; done\nexec sleep 60\n`,
      );
      chmodSync(hanging, 0o755);
    });

    /** Polls (bounded) until the stand-in's `sleep` runs, or `settled` says the decode is over. */
    async function standInStarted(settled: () => boolean): Promise<void> {
      for (let i = 0; i < 500 && !settled() && childPids('sleep').length === 0; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }

    it('kills it at the timeout (ffmpeg_timeout) and leaves no process behind', async () => {
      const mp3 = await make('timeout.mp3', tone(440, 44100, 1), ['-c:a', 'libmp3lame']);
      let settled = false;
      const pending = failure(mp3, { ffmpegPath: hanging, timeoutMs: 2500 }).finally(() => {
        settled = true;
      });
      await standInStarted(() => settled);
      expect(childPids('sleep')).toHaveLength(1); // the stand-in is running, stuck
      const err = await pending;
      expect(err.code).toBe('ffmpeg_timeout');
      expect(err.message).toMatch(/within 2500 ms/);
      expect(childPids('sleep')).toEqual([]);
    });

    it('kills it on abort and rejects with the signal reason', async () => {
      const mp3 = await make('abort.mp3', tone(440, 44100, 1), ['-c:a', 'libmp3lame']);
      const controller = new AbortController();
      const pending = decodeAudioFile(mp3, { ffmpegPath: hanging, signal: controller.signal });
      // Nothing settles this decode but the abort below.
      await standInStarted(() => false);
      expect(childPids('sleep')).toHaveLength(1);
      controller.abort(new Error('client went away'));
      await expect(pending).rejects.toThrow('client went away');
      expect(childPids('sleep')).toEqual([]);
    });
  });

  it('reports a missing ffmpeg as ffmpeg_unavailable', async () => {
    const mp3 = await make('missing.mp3', tone(440, 44100, 1), ['-c:a', 'libmp3lame']);
    const err = await failure(mp3, { ffmpegPath: join(dir, 'no-such-ffmpeg') });
    expect(err.code).toBe('ffmpeg_unavailable');
    expect(err.message).toMatch(/no-such-ffmpeg/);
  });

  it('validates its options', async () => {
    expect((await failure(new Uint8Array(4), { maxDurationMs: 0 })).code).toBe('audio_option_invalid');
    expect((await failure(new Uint8Array(4), { timeoutMs: Number.NaN })).code).toBe('audio_option_invalid');
  });
});
