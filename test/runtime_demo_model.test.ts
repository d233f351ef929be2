// The demo checkpoint has the real architecture: for the tiny fixture's config, our tensor list is
// exactly what transformers' save_pretrained wrote (test/fixtures/engine, scripts/engine_fixtures.py).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeSafetensors } from '../src/codecs/safetensors.js';
import { demoModelTensors, writeDemoModel } from '../src/runtime/demo_model.js';

const FIX = join(import.meta.dirname, 'fixtures', 'engine');

describe('demo model', () => {
  it('names and shapes every thinker tensor as transformers does', () => {
    const config = JSON.parse(readFileSync(join(FIX, 'tiny', 'config.json'), 'utf8')) as Record<string, unknown>;
    const ref = decodeSafetensors(readFileSync(join(FIX, 'tiny', 'model.safetensors'))).tensors;
    const ours = Object.fromEntries(demoModelTensors(config));
    expect(Object.keys(ours).sort()).toEqual(Object.keys(ref).sort());
    for (const [name, t] of Object.entries(ref)) expect(ours[name], name).toEqual([...t.shape]);
  });

  it('names and shapes every talker, code predictor and code2wav tensor as transformers does', () => {
    const speech = join(import.meta.dirname, 'fixtures', 'speech', 'tiny');
    const config = JSON.parse(readFileSync(join(speech, 'config.json'), 'utf8')) as Record<string, unknown>;
    const ref = decodeSafetensors(readFileSync(join(speech, 'model.safetensors'))).tensors;
    const ours = Object.fromEntries(demoModelTensors(config));
    expect(Object.keys(ours).sort()).toEqual(Object.keys(ref).sort());
    for (const [name, t] of Object.entries(ref)) expect(ours[name], name).toEqual([...t.shape]);
  });

  it('writes a seeded bf16 checkpoint: same seed, same bytes', async () => {
    const a = mkdtempSync(join(tmpdir(), 'omni-demo-'));
    const b = mkdtempSync(join(tmpdir(), 'omni-demo-'));
    await writeDemoModel(a, { seed: 3 });
    await writeDemoModel(b, { seed: 3 });
    const fa = readFileSync(join(a, 'model.safetensors'));
    expect(Buffer.compare(fa, readFileSync(join(b, 'model.safetensors')))).toBe(0);
    const { tensors } = decodeSafetensors(fa);
    expect(tensors['thinker.model.embed_tokens.weight']!.shape).toEqual([151_936, 64]);
    expect(tensors['thinker.model.norm.weight']!.dtype).toBe('BF16');
    const config = JSON.parse(readFileSync(join(a, 'config.json'), 'utf8')) as { thinker_config: { text_config: { vocab_size: number } } };
    expect(config.thinker_config.text_config.vocab_size).toBe(151_936);
  });

  it('omni-gateway demo-model writes the directory; bad options exit 2 with one line', () => {
    const bin = join(import.meta.dirname, '..', 'bin', 'omni-gateway.js');
    const out = join(mkdtempSync(join(tmpdir(), 'omni-demo-')), 'model');
    const ok = spawnSync(process.execPath, [bin, 'demo-model', '--out', out, '--seed', '7'], { encoding: 'utf8' });
    expect(ok.status).toBe(0);
    expect(ok.stderr).toMatch(/random weights/);
    expect(existsSync(join(out, 'config.json')) && existsSync(join(out, 'model.safetensors'))).toBe(true);
    const bad = spawnSync(process.execPath, [bin, 'demo-model', '--out', out, '--size', 'huge'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(spawnSync(process.execPath, [bin, 'demo-model'], { encoding: 'utf8' }).stderr).toMatch(/demo-model needs --out DIR/);
  });
});
