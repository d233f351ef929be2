// Packets from another encoder: ffmpeg encodes Ogg Opus (its libopus wrapper, its own settings),
// the packets are taken out of the container with ffmpeg itself (`framecrc` for their sizes and
// durations, the `data` muxer for their bytes), and OpusPacketDecoder must agree with ffmpeg on
// every packet's duration and, within resampling differences, on the decoded audio.
// Needs the `ffmpeg` binary (Debian package ffmpeg); skipped where it is missing.
import { execFileSync, spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { OpusPacketDecoder, parseOpusPacket } from '../src/codecs/audio/opus.js';
import { pcm16leToFloat32 } from '../src/codecs/audio/pcm.js';
import { alignedSnr, concatFloat, sineFit } from './helpers/opus_signals.js';

const hasFfmpeg = spawnSync('ffmpeg', ['-hide_banner', '-version'], { stdio: 'ignore' }).status === 0;

function ffmpeg(args: string[], input?: Buffer): Buffer {
  return execFileSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...args], { input, maxBuffer: 64 << 20 });
}

interface FfmpegOpus {
  packets: Buffer[];
  /** Each packet's duration in 48 kHz samples as ffmpeg's demuxer reports it. */
  durations: number[];
  /** ffmpeg's own decode at 16 kHz mono (pre-skip and end trimming applied). */
  decoded: Float32Array;
}

function ffmpegOpus(source: string, encodeArgs: string[]): FfmpegOpus {
  const ogg = ffmpeg(['-f', 'lavfi', '-i', source, '-c:a', 'libopus', ...encodeArgs, '-f', 'ogg', '-']);
  const crc = ffmpeg(['-i', '-', '-map', '0:a', '-c', 'copy', '-f', 'framecrc', '-'], ogg).toString('utf8');
  const rows = crc
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'))
    .map((line) => line.split(',').map((field) => field.trim()));
  const data = ffmpeg(['-i', '-', '-map', '0:a', '-c', 'copy', '-f', 'data', '-'], ogg);
  const packets: Buffer[] = [];
  let at = 0;
  for (const row of rows) {
    const size = Number(row[4]);
    packets.push(data.subarray(at, at + size));
    at += size;
  }
  expect(at).toBe(data.length);
  const decoded = pcm16leToFloat32(ffmpeg(['-i', '-', '-f', 's16le', '-ac', '1', '-ar', '16000', '-'], ogg));
  return { packets, durations: rows.map((row) => Number(row[3])), decoded };
}

describe.skipIf(!hasFfmpeg)('ffmpeg-made Opus', () => {
  it.each([
    ['20 ms', '20', 101],
    ['60 ms', '60', 34],
    ['10 ms', '10', 201],
  ])('decodes a libopus stream of %s frames like ffmpeg does', (_name, frameDuration, packetCount) => {
    const { packets, durations, decoded } = ffmpegOpus('sine=f=440:d=2:sample_rate=48000', ['-b:a', '32k', '-ac', '1', '-frame_duration', frameDuration]);
    expect(packets.length).toBe(packetCount);
    // Every packet's TOC duration equals ffmpeg's packet duration (its last one is end-trimmed).
    packets.slice(0, -1).forEach((p, i) => expect(parseOpusPacket(p).samples48k).toBe(durations[i]));
    const decoder = new OpusPacketDecoder();
    const ours = concatFloat(packets.map((p) => decoder.decode(p)));
    expect(ours.length).toBe(packetCount * Number(frameDuration) * 16);
    // ffmpeg drops the 312-sample (48 kHz) pre-skip that a raw packet stream keeps: 104 at 16 kHz.
    expect(decoded.length).toBe(32000);
    const { snrDb, lag } = alignedSnr(decoded, ours, 200, 1600);
    expect(lag).toBe(104);
    // Measured 58-82 dB: the two paths differ only in where 48 kHz becomes 16 kHz.
    expect(snrDb).toBeGreaterThan(45);
    expect(sineFit(ours, 440, 16000, 3200, 28800).amplitude).toBeCloseTo(0.125, 1);
  });

  it('decodes a stereo stream to the mono mix', () => {
    const { packets, decoded } = ffmpegOpus('aevalsrc=0.3*sin(2*PI*440*t)|0.3*sin(2*PI*1000*t):s=48000:d=2', ['-b:a', '96k', '-ac', '2']);
    expect(packets.every((p) => parseOpusPacket(p).stereo)).toBe(true);
    const decoder = new OpusPacketDecoder();
    const ours = concatFloat(packets.map((p) => decoder.decode(p)));
    for (const freq of [440, 1000]) expect(sineFit(ours, freq, 16000, 3200, 28800).amplitude).toBeCloseTo(0.15, 1);
    const { snrDb, lag } = alignedSnr(decoded, ours, 200, 1600);
    expect(lag).toBe(104);
    expect(snrDb).toBeGreaterThan(60); // measured 86 dB
  });
});
