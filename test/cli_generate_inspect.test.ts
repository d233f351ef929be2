// `omni-gateway generate` and `inspect` on the committed tiny checkpoint: greedy replies equal
// transformers' (engine goldens) for a model-input file holding the reference processor's
// tensors, deterministic across thread counts; inspect's summary and its exit codes.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bytesOf, encodeSafetensors, type Tensor } from '../src/codecs/safetensors.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'omni-gateway.js');
const FIX = join(import.meta.dirname, 'fixtures', 'engine');
const TINY = join(FIX, 'tiny');
interface Entry { file: string; shape: number[] }
const manifest = JSON.parse(readFileSync(join(FIX, 'goldens', 'manifest.json'), 'utf8')) as {
  cases: Record<string, { tensors: Record<string, Entry>; greedy: Record<string, { tokens: number[] }> }>;
};

/** The golden case's inputs as a model-input safetensors file with the reference's names. */
function modelInput(name: string): string {
  const t = manifest.cases[name]!.tensors;
  const raw = (e: Entry): Buffer => readFileSync(join(FIX, 'goldens', e.file));
  const i64 = (e: Entry): Uint8Array => bytesOf(BigInt64Array.from(new Int32Array(new Uint8Array(raw(e)).buffer), (v) => BigInt(v)));
  const tensors: Record<string, Tensor> = {
    input_ids: { dtype: 'I64', shape: t.input_ids!.shape, data: i64(t.input_ids!) },
    position_ids: { dtype: 'F32', shape: [3, 1, t.input_ids!.shape[1]!], data: raw(t.position_ids!) },
  };
  if (t.input_features) {
    tensors.input_features = { dtype: 'F32', shape: t.input_features.shape, data: raw(t.input_features) };
    tensors.feature_attention_mask = { dtype: 'I32', shape: t.feature_attention_mask!.shape, data: raw(t.feature_attention_mask!) };
  }
  if (t.pixel_values) {
    tensors.pixel_values = { dtype: 'F32', shape: t.pixel_values.shape, data: raw(t.pixel_values) };
    tensors.image_grid_thw = { dtype: 'I64', shape: t.image_grid_thw!.shape, data: i64(t.image_grid_thw!) };
  }
  if (t.pixel_values_videos) {
    tensors.pixel_values_videos = { dtype: 'F32', shape: t.pixel_values_videos.shape, data: raw(t.pixel_values_videos) };
    tensors.video_grid_thw = { dtype: 'I64', shape: t.video_grid_thw!.shape, data: i64(t.video_grid_thw!) };
  }
  const path = join(mkdtempSync(join(tmpdir(), 'omni-gen-')), `${name}.safetensors`);
  writeFileSync(path, encodeSafetensors(tensors));
  return path;
}

interface GenerateJson { output_token_ids: number[]; prompt_tokens: number; text: string | null }
function generate(args: string[]): { status: number | null; json: GenerateJson; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, 'generate', '--model', TINY, ...args, '--json'], { encoding: 'utf8' });
  return { status: r.status, json: (r.status === 0 ? JSON.parse(r.stdout) : {}) as GenerateJson, stderr: r.stderr };
}

describe('omni-gateway generate', () => {
  it.each(['text', 'audio', 'image', 'video', 'audio_in_video'])('%s: --greedy gives the reference tokens', (name) => {
    const r = generate(['--input', modelInput(name), '--greedy', '--max-tokens', '8']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.json.output_token_ids).toEqual(manifest.cases[name]!.greedy.full!.tokens);
    expect(r.json.prompt_tokens).toBe(manifest.cases[name]!.tensors.input_ids!.shape[1]);
    expect(r.json.text).toBeNull(); // the tiny vocabulary is not Qwen3's
  });

  it('greedy output is the same on 1 and 2 threads', () => {
    const input = modelInput('image');
    const a = generate(['--input', input, '--threads', '1', '--max-tokens', '16']);
    const b = generate(['--input', input, '--threads', '2', '--max-tokens', '16']);
    expect(a.json.output_token_ids).toHaveLength(16);
    expect(b.json.output_token_ids).toEqual(a.json.output_token_ids);
  });

  it('errors get one line and exit 2: conversation for a non-Qwen3 vocabulary, speech, bad flags, missing model', () => {
    const conv = join(mkdtempSync(join(tmpdir(), 'omni-gen-')), 'c.json');
    writeFileSync(conv, '[{"role":"user","content":"hi"}]');
    for (const [args, message] of [
      [['--input', conv], /vocabulary \(1024 tokens\) is not Qwen3's/],
      [['--input', modelInput('text'), '--voice', 'ethan'], /needs the talker/],
      [['--input', conv, '--greedy', '--temperature', '0.7'], /--greedy cannot be combined/],
      [['--input', conv, '--thinking', 'maybe'], /--thinking must be on or off/],
    ] as const) {
      const r = spawnSync(process.execPath, [BIN, 'generate', '--model', TINY, ...args], { encoding: 'utf8' });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    const bad = join(mkdtempSync(join(tmpdir(), 'omni-gen-')), 'bad.json');
    writeFileSync(bad, '[{"role":"robot","content":"hi"}]');
    const badConv = spawnSync(process.execPath, [BIN, 'generate', '--model', TINY, '--input', bad], { encoding: 'utf8' });
    expect(badConv.status).toBe(2);
    expect(badConv.stderr).toMatch(/messages\[0\]\.role must be/);
    const sampling = spawnSync(process.execPath, [BIN, 'generate', '--model', TINY, '--input', conv, '--top-p', '0.9'], { encoding: 'utf8' });
    expect(sampling.status).toBe(2);
    expect(sampling.stderr).toMatch(/give --temperature above 0/);
    const missing = spawnSync(process.execPath, [BIN, 'generate', '--model', join(tmpdir(), 'nope'), '--input', conv], { encoding: 'utf8' });
    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/checkpoint_missing/);
  });
});

describe('generate on the demo checkpoint (real vocabulary) from a conversation', () => {
  it('builds the input as preprocess does, streams text, and repeats itself exactly', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-demo-gen-'));
    expect(spawnSync(process.execPath, [BIN, 'demo-model', '--out', join(dir, 'm')], { encoding: 'utf8' }).status).toBe(0);
    copyFileSync(join(import.meta.dirname, 'fixtures', 'preprocess', 'image.png'), join(dir, 'image.png'));
    writeFileSync(join(dir, 'c.json'), JSON.stringify([{ role: 'user', content: [{ type: 'image', path: 'image.png' }, { type: 'text', text: 'What is this?' }] }]));
    const run = (): { output_token_ids: number[]; text: string; prompt_tokens: number } => {
      const r = spawnSync(process.execPath, [BIN, 'generate', '--model', join(dir, 'm'), '--input', join(dir, 'c.json'), '--max-tokens', '6', '--thinking', 'off', '--json'], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as never;
    };
    const a = run();
    expect(a.output_token_ids).toHaveLength(6);
    expect(typeof a.text).toBe('string');
    expect(a.prompt_tokens).toBeGreaterThan(10);
    expect(run()).toEqual(expect.objectContaining({ output_token_ids: a.output_token_ids, text: a.text }));
  });
});

describe('omni-gateway inspect', () => {
  it('summarises the architecture, parameters and ids; --json has the numbers', () => {
    const text = spawnSync(process.execPath, [BIN, 'inspect', '--model', TINY], { encoding: 'utf8' });
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/usable by the native engine/);
    expect(text.stdout).toMatch(/"experts":4,"top_k":2/);
    const r = spawnSync(process.execPath, [BIN, 'inspect', '--model', TINY, '--json'], { encoding: 'utf8' });
    const report = JSON.parse(r.stdout) as { parameters: { total: number; activePerToken: number }; specialIds: Record<string, number>; dtypes: Record<string, number> };
    expect(report.parameters.activePerToken).toBeLessThan(report.parameters.total);
    expect(report.specialIds.audioTokenId).toBe(17);
    expect(Object.keys(report.dtypes)).toEqual(['F32']);
  });

  it('exits 2 naming the problem when a tensor is missing', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-inspect-'));
    mkdirSync(join(dir, 'm'));
    copyFileSync(join(TINY, 'config.json'), join(dir, 'm', 'config.json'));
    const config = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')) as { thinker_config: { text_config: { num_hidden_layers: number } } };
    config.thinker_config.text_config.num_hidden_layers = 3; // the file has 2 layers
    writeFileSync(join(dir, 'm', 'config.json'), JSON.stringify(config));
    copyFileSync(join(TINY, 'model.safetensors'), join(dir, 'm', 'model.safetensors'));
    const r = spawnSync(process.execPath, [BIN, 'inspect', '--model', join(dir, 'm')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stdout).toMatch(/NOT usable: checkpoint_tensor_missing: .*layers\.2\./);
  });
});
