// The C reference client (examples/c-client) built with `cc` and run against a real gateway: it
// streams an espeak-ng WAV over `/v1/device` in manual turn mode (commit + response.create with a
// small max_output_tokens) and writes the reply to a WAV file. Text replies always; speech and
// Opus (built against libopus when one is at hand) once the model speaks.
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SettingKey } from '../src/config/settings.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const run = promisify(execFile);
const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
const KEY = 'sk-device-c';
const CLIENT_DIR = join(import.meta.dirname, '..', 'examples', 'c-client');
// libopus as built for @discordjs/opus (headers and static library), when present.
const BUNDLED_OPUS = join(import.meta.dirname, '..', 'node_modules', '@discordjs', 'opus');
const OPUS_LIB = join(BUNDLED_OPUS, 'build-tmp-napi-v3', 'Release', 'opus.a');
const OPUS_INCLUDE = join(BUNDLED_OPUS, 'deps', 'opus', 'include');

async function startDeviceGateway(): Promise<TestGateway> {
  const flags: Partial<Record<SettingKey, string>> = { modelCache: DEMO_CACHE, apiKeys: KEY };
  // The gateway serves /v1/device itself.
  return startTestGateway(flags);
}

interface Wav {
  format: number;
  channels: number;
  rate: number;
  bits: number;
  samples: Int16Array;
}

/** Reads a canonical 44-byte-header PCM WAV strictly (what the client writes). */
function readWav(path: string): Wav {
  const b = readFileSync(path);
  expect(b.subarray(0, 4).toString('latin1')).toBe('RIFF');
  expect(b.readUInt32LE(4)).toBe(b.length - 8);
  expect(b.subarray(8, 16).toString('latin1')).toBe('WAVEfmt ');
  expect(b.readUInt32LE(16)).toBe(16);
  expect(b.subarray(36, 40).toString('latin1')).toBe('data');
  const dataBytes = b.readUInt32LE(40);
  expect(dataBytes).toBe(b.length - 44);
  const samples = new Int16Array(dataBytes / 2);
  for (let i = 0; i < samples.length; i++) samples[i] = b.readInt16LE(44 + 2 * i);
  return { format: b.readUInt16LE(20), channels: b.readUInt16LE(22), rate: b.readUInt32LE(24), bits: b.readUInt16LE(34), samples };
}

const lines = (stdout: string, prefix: string): string[] => stdout.split('\n').filter((l) => l.startsWith(prefix));

let gw: TestGateway;
let speechOut = false;
let dir: string;
let bin: string;
let opusBin: string | undefined;
let inWav: string;

beforeAll(async () => {
  gw = await startDeviceGateway();
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
  dir = mkdtempSync(join(tmpdir(), 'omni-c-client-'));
  bin = join(dir, 'device_client');
  execFileSync('make', ['-s', '-C', CLIENT_DIR, `BIN=${bin}`]);
  if (existsSync(OPUS_LIB) && existsSync(join(OPUS_INCLUDE, 'opus.h'))) {
    opusBin = join(dir, 'device_client_opus');
    execFileSync('make', ['-s', '-C', CLIENT_DIR, `BIN=${opusBin}`, 'OPUS=1', `OPUS_CFLAGS=-I${OPUS_INCLUDE}`, `OPUS_LIBS=${OPUS_LIB}`]);
  }
  const raw = join(dir, 'espeak.wav');
  inWav = join(dir, 'question.wav');
  execFileSync('espeak-ng', ['-w', raw, 'What time is it in Tokyo?']);
  execFileSync('sox', [raw, '-r', '16000', '-c', '1', '-b', '16', '-e', 'signed-integer', inWav]);
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

const url = (): string => `${gw.wsUrl}/v1/device`;

describe('C reference client', () => {
  it('builds warning-free with cc (-Wall -Wextra -Wpedantic)', () => {
    const out = execFileSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Wpedantic', '-Werror', '-fsyntax-only', join(CLIENT_DIR, 'device_client.c')], { encoding: 'utf8', stdio: 'pipe' });
    expect(out).toBe('');
  });

  it('streams a WAV, commits, gets a text reply (key in the hello); the output WAV is valid and empty', async () => {
    const outWav = join(dir, 'text.wav');
    const { stdout } = await run(bin, ['-u', url(), '-k', KEY, '--key-in-hello', '-i', inWav, '-o', outWav, '--text', '--max-tokens', '8'], { timeout: 90_000 });
    expect(lines(stdout, 'welcome ')[0]).toContain('"audio_in":{"type":"audio/pcm","rate":16000}');
    const events = lines(stdout, 'event ').map((l) => l.slice(6));
    for (const t of ['session.created', 'session.updated', 'input_audio_buffer.committed', 'response.created', 'response.output_text.done', 'response.done']) expect(events).toContain(t);
    expect(lines(stdout, 'error ')).toEqual([]);
    expect(lines(stdout, 'done ')[0]).toMatch(/^done (completed|incomplete)$/);
    expect(events.filter((t) => t === 'response.output_text.delta').length).toBeGreaterThan(0);
    expect(lines(stdout, 'text ')[0]!.length).toBeGreaterThan(5);
    const wav = readWav(outWav);
    expect(wav).toMatchObject({ format: 1, channels: 1, rate: 24000, bits: 16 });
    expect(wav.samples.length).toBe(0);
  }, 120_000);

  it('a wrong key: the gateway closes 3000 and the client exits non-zero', async () => {
    const outWav = join(dir, 'nokey.wav');
    const failed = await run(bin, ['-u', url(), '-k', 'sk-wrong', '-i', inWav, '-o', outWav, '--text', '--timeout', '10'], { timeout: 30_000 }).catch((e: { code: number; stdout: string; stderr: string }) => e);
    expect('code' in failed && failed.code).not.toBe(0);
    expect(failed.stdout + failed.stderr).toMatch(/invalid_api_key/);
  }, 60_000);

  it('a spoken turn, mic audio at real-time pace: the reply is written as a 16 kHz PCM16 WAV with samples (when the model speaks)', async (ctx) => {
    if (!speechOut) ctx.skip();
    const outWav = join(dir, 'spoken.wav');
    const { stdout } = await run(bin, ['-u', url(), '-k', KEY, '-i', inWav, '-o', outWav, '-r', '16000', '--max-tokens', '16', '--realtime'], { timeout: 120_000 });
    expect(lines(stdout, 'error ')).toEqual([]);
    expect(lines(stdout, 'done ')[0]).toMatch(/^done (completed|incomplete)$/);
    const events = lines(stdout, 'event ').map((l) => l.slice(6));
    expect(events).toContain('response.output_audio.done');
    expect(events).not.toContain('response.output_audio.delta'); // audio travels as AUDIO_OUT frames
    const wav = readWav(outWav);
    expect(wav).toMatchObject({ format: 1, channels: 1, rate: 16000, bits: 16 });
    expect(wav.samples.length).toBeGreaterThan(0);
    expect(lines(stdout, 'audio ')[0]).toBe(`audio ${wav.samples.length} 16000`);
    expect(wav.samples.some((s) => s !== 0)).toBe(true);
  }, 150_000);

  it('Opus both ways (client built with libopus): the decoded reply is a 48 kHz WAV with samples', async (ctx) => {
    if (!speechOut || !opusBin) ctx.skip();
    const outWav = join(dir, 'opus.wav');
    const { stdout } = await run(opusBin!, ['-u', url(), '-k', KEY, '-i', inWav, '-o', outWav, '--opus', '--max-tokens', '12'], { timeout: 120_000 });
    expect(lines(stdout, 'welcome ')[0]).toContain('"audio_out":{"type":"audio/opus","rate":48000,"frame_ms":20');
    expect(lines(stdout, 'error ')).toEqual([]);
    const wav = readWav(outWav);
    expect(wav).toMatchObject({ channels: 1, rate: 48000, bits: 16 });
    expect(wav.samples.length).toBeGreaterThan(0);
    expect(wav.samples.length % 960).toBe(0); // whole 20 ms packets
  }, 150_000);
});
