// examples/node-openai-client.mjs (the official `openai` package's GA realtime client) run as a
// user would, against a real gateway on the demo model: an espeak-ng WAV in, the reply out.
import { execFile, execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const run = promisify(execFile);
const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
const KEY = 'sk-example';
const EXAMPLE = join(import.meta.dirname, '..', 'examples', 'node-openai-client.mjs');

let gw: TestGateway;
let speechOut = false;
let dir: string;
let question: string;

beforeAll(async () => {
  gw = await startTestGateway({ modelCache: DEMO_CACHE, apiKeys: KEY });
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
  dir = mkdtempSync(join(tmpdir(), 'omni-example-'));
  question = join(dir, 'question.wav');
  execFileSync('espeak-ng', ['-w', question, 'Please tell me a short story.']); // 22.05 kHz: the example resamples
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

function wavInfo(path: string): { rate: number; channels: number; bits: number; samples: number } {
  const b = readFileSync(path);
  expect(b.toString('latin1', 0, 4)).toBe('RIFF');
  expect(b.toString('latin1', 8, 16)).toBe('WAVEfmt ');
  expect(b.toString('latin1', 36, 40)).toBe('data');
  expect(b.readUInt32LE(40)).toBe(b.length - 44);
  return { rate: b.readUInt32LE(24), channels: b.readUInt16LE(22), bits: b.readUInt16LE(34), samples: (b.length - 44) / 2 };
}

describe('examples/node-openai-client.mjs', () => {
  it('manual turn, text reply', async () => {
    const out = join(dir, 'text.wav');
    const { stdout } = await run(process.execPath, [EXAMPLE, '--url', `${gw.url}/v1`, '--key', KEY, '--in', question, '--out', out, '--text', '--max-tokens', '8'], { timeout: 90_000 });
    expect(stdout).toMatch(/^session sess_/m);
    expect(stdout).toMatch(/^input_audio_buffer\.committed$/m);
    expect(stdout).toMatch(/^response resp_\S+: (completed|incomplete)/m);
    expect(wavInfo(out).samples).toBe(0);
  }, 120_000);

  it('works unchanged with openai 6.x (the last line without an engines field, what Node 20 resolves)', async () => {
    // The example copied next to a node_modules whose `openai` is the 6.49 package.
    const app = join(dir, 'openai6-app');
    mkdirSync(join(app, 'node_modules'), { recursive: true });
    symlinkSync(join(import.meta.dirname, '..', 'node_modules', 'openai6'), join(app, 'node_modules', 'openai'), 'dir');
    copyFileSync(EXAMPLE, join(app, 'client.mjs'));
    const version = JSON.parse(readFileSync(join(app, 'node_modules', 'openai', 'package.json'), 'utf8')) as { version: string };
    expect(version.version).toMatch(/^6\./);
    const out = join(dir, 'text6.wav');
    const { stdout } = await run(process.execPath, [join(app, 'client.mjs'), '--url', `${gw.url}/v1`, '--key', KEY, '--in', question, '--out', out, '--text', '--max-tokens', '8'], { timeout: 90_000 });
    expect(stdout).toMatch(/^response resp_\S+: (completed|incomplete)/m);
  }, 120_000);

  it('server VAD turn, spoken reply saved as a 24 kHz WAV (when the model speaks)', async (ctx) => {
    if (!speechOut) ctx.skip();
    const out = join(dir, 'spoken.wav');
    const { stdout } = await run(process.execPath, [EXAMPLE, '--url', `${gw.url}/v1`, '--key', KEY, '--in', question, '--out', out, '--vad', '--max-tokens', '12'], { timeout: 120_000 });
    expect(stdout).toMatch(/^input_audio_buffer\.speech_started$/m);
    expect(stdout).toMatch(/^response resp_\S+: (completed|incomplete)/m);
    const info = wavInfo(out);
    expect(info).toMatchObject({ rate: 24000, channels: 1, bits: 16 });
    expect(info.samples).toBeGreaterThan(0);
  }, 150_000);
});
