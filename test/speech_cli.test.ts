// `omni-gateway generate --voice NAME --speech-out reply.wav` on the tiny speech checkpoint: the
// reply is spoken with transformers' codes (goldens of scripts/speech_chain_fixtures.py), the WAV is
// 24 kHz 16-bit mono, --json carries the codec codes and the first-audio timing, and speech errors
// exit 2 with one line.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesOf, encodeSafetensors, type Tensor } from '../src/codecs/safetensors.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'omni-gateway.js');
const ROOT = join(import.meta.dirname, 'fixtures', 'speech');
const TINY = join(ROOT, 'tiny');
const CHAIN = join(ROOT, 'chain');
interface Entry { file: string; shape: number[] }
const manifest = JSON.parse(readFileSync(join(CHAIN, 'manifest.json'), 'utf8')) as {
  cases: Record<string, { reply: number[]; frames: number; codes_frames_x16: number[][]; tensors: Record<string, Entry> }>;
};

/** The image case as a model-input safetensors file with the reference's tensor names. */
function modelInput(): string {
  const t = manifest.cases.image!.tensors;
  const raw = (e: Entry): Buffer => readFileSync(join(CHAIN, e.file));
  const i64 = (e: Entry): Uint8Array => bytesOf(BigInt64Array.from(new Int32Array(new Uint8Array(raw(e)).buffer), (v) => BigInt(v)));
  const S = t.input_ids!.shape[0]!;
  const tensors: Record<string, Tensor> = {
    input_ids: { dtype: 'I64', shape: [1, S], data: i64(t.input_ids!) },
    position_ids: { dtype: 'F32', shape: [3, 1, S], data: raw(t.positions!) },
    pixel_values: { dtype: 'F32', shape: t.pixel_values!.shape, data: raw(t.pixel_values!) },
    image_grid_thw: { dtype: 'I64', shape: t.image_grid_thw!.shape, data: i64(t.image_grid_thw!) },
  };
  const path = join(mkdtempSync(join(tmpdir(), 'omni-speech-')), 'image.safetensors');
  writeFileSync(path, encodeSafetensors(tensors));
  return path;
}

interface Result {
  output_token_ids: number[];
  codec_codes: number[][] | null;
  audio_samples: number;
  voice: string | null;
  finish_reason: string;
  timings: { first_audio_ms: number | null; first_audio_after_first_token_ms: number | null; real_time_factor: number | null };
}

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  return spawnSync(process.execPath, [BIN, 'generate', '--model', TINY, ...args], { encoding: 'utf8' });
}

describe('omni-gateway generate with speech', () => {
  const input = modelInput();
  const golden = manifest.cases.image!;

  it('writes a 24 kHz WAV of the spoken reply; --json has the codec codes; codes equal transformers', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-speech-'));
    const wavPath = join(dir, 'reply.wav');
    // 7 tokens then the length stop: the talker hears the same text as transformers' EOS-terminated reply.
    const r = run(['--input', input, '--voice', 'Chelsie', '--speech-out', wavPath, '--json', '--max-tokens', String(golden.reply.length), '--threads', '2']);
    expect(r.status, r.stderr).toBe(0);
    const res = JSON.parse(r.stdout) as Result;
    expect(res.output_token_ids).toEqual(golden.reply);
    expect(res.voice).toBe('chelsie');
    const codes = res.codec_codes!;
    expect(codes.length).toBeGreaterThanOrEqual(golden.frames);
    expect(codes.slice(0, golden.frames)).toEqual(golden.codes_frames_x16);
    for (const f of codes) expect(f).toHaveLength(16);
    expect(res.audio_samples).toBe(1920 * codes.length - 555);
    expect(res.timings.first_audio_ms).toBeGreaterThan(0);
    expect(res.timings.first_audio_after_first_token_ms).not.toBeNull();
    expect(res.timings.real_time_factor).toBeGreaterThan(0);

    const wav = readFileSync(wavPath);
    expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
    expect(wav.toString('ascii', 8, 12)).toBe('WAVE');
    expect(wav.readUInt16LE(22)).toBe(1); // mono
    expect(wav.readUInt32LE(24)).toBe(24_000);
    expect(wav.readUInt16LE(34)).toBe(16);
    const dataAt = wav.indexOf('data', 12, 'ascii');
    expect(wav.readUInt32LE(dataAt + 4)).toBe(2 * res.audio_samples);
    // The first frames' samples equal transformers' waveform (16-bit quantisation on top of 1e-4).
    const gold = new Float32Array(new Uint8Array(readFileSync(join(CHAIN, golden.tensors.wav!.file))).buffer);
    let worst = 0;
    for (let i = 0; i < gold.length; i++) worst = Math.max(worst, Math.abs(wav.readInt16LE(dataAt + 8 + 2 * i) / 32768 - gold[i]!));
    expect(worst).toBeLessThan(1e-4 + 2 / 32768);
  });

  it('the same codes on 1 and 2 threads', () => {
    const a = JSON.parse(run(['--input', input, '--voice', 'aiden', '--json', '--max-tokens', '4', '--threads', '1']).stdout) as Result;
    const b = JSON.parse(run(['--input', input, '--voice', 'aiden', '--json', '--max-tokens', '4', '--threads', '2']).stdout) as Result;
    expect(a.codec_codes!.length).toBeGreaterThan(0);
    expect(b.codec_codes).toEqual(a.codec_codes);
    expect(b.audio_samples).toBe(a.audio_samples);
  });

  it('an unknown voice exits 2 with one line listing the voices; without speech flags no codes', () => {
    const bad = run(['--input', input, '--voice', 'Bob', '--max-tokens', '2']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/unknown voice "Bob".*ethan, chelsie, aiden/);
    const plain = JSON.parse(run(['--input', input, '--json', '--max-tokens', '2']).stdout) as Result;
    expect(plain).toMatchObject({ codec_codes: null, audio_samples: 0, voice: null });
    expect(plain.timings.first_audio_ms).toBeNull();
  });
});
