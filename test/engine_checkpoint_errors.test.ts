// Reading a thinker checkpoint: the spec comes from config.json and the safetensors headers only;
// every missing or inconsistent piece is a CheckpointError whose code and message name the file,
// tensor or field. Sharded and fused-expert layouts load to the same model as the hub layout.
/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-assignment -- edits free-form config JSON */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { decodeSafetensors, encodeSafetensors, type Tensor } from '../src/codecs/safetensors.js';
import { nativeAddon } from '../src/native/addon.js';
import { CheckpointError, readThinkerCheckpoint } from '../src/runtime/checkpoint.js';

const TINY = join(import.meta.dirname, 'fixtures', 'engine', 'tiny');
const work = mkdtempSync(join(tmpdir(), 'omni-ckpt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let n = 0;
/** A copy of the tiny checkpoint, with config and tensors edited. */
function variant(edit: { config?: (c: Record<string, any>) => void; tensors?: (t: Record<string, Tensor>) => void } = {}): string {
  const dir = join(work, `v${n++}`);
  mkdirSync(dir);
  const config = JSON.parse(readFileSync(join(TINY, 'config.json'), 'utf8')) as Record<string, any>;
  edit.config?.(config);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  if (edit.tensors) {
    const { tensors } = decodeSafetensors(readFileSync(join(TINY, 'model.safetensors')));
    edit.tensors(tensors);
    writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(tensors));
  } else {
    copyFileSync(join(TINY, 'model.safetensors'), join(dir, 'model.safetensors'));
  }
  return dir;
}

async function failure(p: Promise<unknown>): Promise<CheckpointError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  return err as CheckpointError;
}

const PROMPT = { ids: Int32Array.from([2, 21, 23, 100, 200, 300, 3, 23, 2, 22, 23]), positions: new Float32Array(33) };
for (let r = 0; r < 3; r++) for (let i = 0; i < 11; i++) PROMPT.positions[r * 11 + i] = i;

async function logitsOf(dir: string): Promise<Float32Array> {
  const thinker = await nativeAddon().loadThinker(await readThinkerCheckpoint(dir));
  try {
    return await thinker.newSession(16).prefill(PROMPT);
  } finally {
    thinker.close();
  }
}

describe('thinker checkpoint spec', () => {
  it('takes every size, flag and token id from config.json, and lists the thinker tensors', async () => {
    const spec = await readThinkerCheckpoint(TINY);
    expect(spec).toMatchObject({
      vocabSize: 1024,
      hiddenSize: 64,
      numLayers: 2,
      numHeads: 4,
      numKvHeads: 2,
      headDim: 16,
      numExperts: 4,
      numExpertsPerTok: 2,
      moeIntermediateSize: 32,
      normTopkProb: true,
      sparseLayers: [true, true],
      rmsNormEps: 1e-6,
      ropeTheta: 1e6,
      mropeSection: [4, 2, 2],
      tieWordEmbeddings: false,
    });
    expect(spec.tokenIds).toMatchObject({ imStartTokenId: 2, imEndTokenId: 3, audioTokenId: 17, imageTokenId: 7, visionStartTokenId: 4 });
    expect(spec.files).toEqual([join(TINY, 'model.safetensors')]);
    // Thinker text tensors only: 3 + 2 layers x (8 + 1 router + 4 experts x 3).
    expect(spec.tensors).toHaveLength(3 + 2 * (8 + 1 + 12));
    const head = spec.tensors.find((t) => t.key === 'lm_head.weight')!;
    expect(head).toMatchObject({ name: 'thinker.lm_head.weight', dtype: 'F32', shape: [1024, 64], bytes: 1024 * 64 * 4 });
    expect(spec.tensors.some((t) => t.name.includes('audio_tower') || t.name.includes('visual'))).toBe(false);
  });

  it('mlp_only_layers makes a layer dense: its dense MLP tensors are then required', async () => {
    const dir = variant({ config: (c) => void (c.thinker_config.text_config.mlp_only_layers = [1]) });
    const err = await failure(readThinkerCheckpoint(dir));
    expect(err.code).toBe('checkpoint_tensor_missing');
    expect(err.message).toContain('thinker.model.layers.1.mlp.gate_proj.weight');
  });

  it('reads the released config layout (rope_scaling + rope_theta)', async () => {
    const dir = variant({
      config: (c) => {
        const t = c.thinker_config.text_config;
        t.rope_scaling = { ...t.rope_parameters };
        delete t.rope_scaling.rope_theta;
        t.rope_theta = 1e6;
        delete t.rope_parameters;
      },
    });
    expect((await readThinkerCheckpoint(dir)).mropeSection).toEqual([4, 2, 2]);
  });
});

describe('thinker checkpoint errors', () => {
  it('a missing directory or config.json: checkpoint_missing naming the file', async () => {
    const err = await failure(readThinkerCheckpoint(join(work, 'nope')));
    expect(err.code).toBe('checkpoint_missing');
    expect(err.message).toContain('config.json');
  });

  it('a missing model.safetensors: checkpoint_missing naming it', async () => {
    const dir = variant();
    rmSync(join(dir, 'model.safetensors'));
    const err = await failure(readThinkerCheckpoint(dir));
    expect(err.code).toBe('checkpoint_missing');
    expect(err.subject).toBe(join(dir, 'model.safetensors'));
  });

  it('a missing shard named by the index: checkpoint_missing', async () => {
    const dir = variant();
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors' } }));
    const err = await failure(readThinkerCheckpoint(dir));
    expect(err.code).toBe('checkpoint_missing');
    expect(err.message).toContain('model-00001-of-00002.safetensors');
  });

  it('a missing expert tensor: checkpoint_tensor_missing naming it', async () => {
    const name = 'thinker.model.layers.1.mlp.experts.3.up_proj.weight';
    const dir = variant({ tensors: (t) => void delete t[name] });
    const err = await failure(readThinkerCheckpoint(dir));
    expect(err.code).toBe('checkpoint_tensor_missing');
    expect(err.subject).toBe(name);
  });

  it('a tensor of the wrong shape: checkpoint_tensor_shape with both shapes', async () => {
    const name = 'thinker.model.layers.0.self_attn.k_proj.weight';
    const dir = variant({
      tensors: (t) => {
        t[name] = { dtype: 'F32', shape: [16, 64], data: new Uint8Array(16 * 64 * 4) };
      },
    });
    const err = await failure(readThinkerCheckpoint(dir));
    expect(err.code).toBe('checkpoint_tensor_shape');
    expect(err.message).toContain(name);
    expect(err.message).toContain('[16, 64]');
    expect(err.message).toContain('[32, 64]');
  });

  it('a tensor of an unsupported dtype: checkpoint_tensor_dtype', async () => {
    const name = 'thinker.model.norm.weight';
    const dir = variant({ tensors: (t) => void (t[name] = { dtype: 'I32', shape: [64], data: new Uint8Array(256) }) });
    expect((await failure(readThinkerCheckpoint(dir))).code).toBe('checkpoint_tensor_dtype');
  });

  it.each([
    ['a missing hidden_size', (c: Record<string, any>) => void delete c.thinker_config.text_config.hidden_size, 'hidden_size'],
    ['an mrope_section that does not sum to head_dim / 2', (c: Record<string, any>) => void (c.thinker_config.text_config.rope_parameters.mrope_section = [4, 2, 1]), 'mrope_section'],
    ['heads not divisible by KV heads', (c: Record<string, any>) => void (c.thinker_config.text_config.num_key_value_heads = 3), 'num_key_value_heads'],
    ['an unsupported activation', (c: Record<string, any>) => void (c.thinker_config.text_config.hidden_act = 'gelu'), 'hidden_act'],
    ['no thinker_config', (c: Record<string, any>) => void delete c.thinker_config, 'thinker_config'],
  ])('%s: checkpoint_config_invalid naming the field', async (_what, edit, field) => {
    const err = await failure(readThinkerCheckpoint(variant({ config: edit })));
    expect(err.code).toBe('checkpoint_config_invalid');
    expect(err.message).toContain(field);
  });

  it('config.json that is not JSON: checkpoint_config_invalid', async () => {
    const dir = variant();
    writeFileSync(join(dir, 'config.json'), '{ nope');
    expect((await failure(readThinkerCheckpoint(dir))).code).toBe('checkpoint_config_invalid');
  });

  it('a truncated safetensors file: checkpoint_file_invalid', async () => {
    const dir = variant();
    const bytes = readFileSync(join(dir, 'model.safetensors'));
    writeFileSync(join(dir, 'model.safetensors'), bytes.subarray(0, bytes.length - 1000));
    expect((await failure(readThinkerCheckpoint(dir))).code).toBe('checkpoint_file_invalid');
  });

  it('the engine re-checks a spec it is handed (a tensor past the end of its file)', async () => {
    const spec = await readThinkerCheckpoint(TINY);
    spec.tensors[0] = { ...spec.tensors[0]!, offset: 10_000_000 };
    await expect(nativeAddon().loadThinker(spec)).rejects.toMatchObject({ code: 'checkpoint_file_invalid' });
    const shape = await readThinkerCheckpoint(TINY);
    shape.tensors = shape.tensors.filter((t) => t.key !== 'model.norm.weight');
    await expect(nativeAddon().loadThinker(shape)).rejects.toMatchObject({ code: 'checkpoint_tensor_missing', message: expect.stringContaining('model.norm.weight') });
  });
});

describe('thinker checkpoint layouts', () => {
  it('sharded (model-0000x-of-0000y + index) loads to the same logits as one file', async () => {
    const dir = variant();
    rmSync(join(dir, 'model.safetensors'));
    const { tensors } = decodeSafetensors(readFileSync(join(TINY, 'model.safetensors')));
    const names = Object.keys(tensors);
    const shards = [names.filter((k) => k.includes('.layers.0.')), names.filter((k) => !k.includes('.layers.0.'))];
    const weightMap: Record<string, string> = {};
    shards.forEach((group, i) => {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      writeFileSync(join(dir, file), encodeSafetensors(Object.fromEntries(group.map((k) => [k, tensors[k]!]))));
      for (const k of group) weightMap[k] = file;
    });
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const spec = await readThinkerCheckpoint(dir);
    expect(spec.files).toHaveLength(2);
    expect(new Set(spec.tensors.map((t) => t.file))).toEqual(new Set([0, 1]));
    expect(await logitsOf(dir)).toEqual(await logitsOf(TINY));
  });

  it('fused experts (gate_up_proj [E, 2I, H], down_proj [E, H, I]) load to the same logits', async () => {
    const dir = variant({
      tensors: (t) => {
        for (let l = 0; l < 2; l++) {
          const p = `thinker.model.layers.${l}.mlp.experts.`;
          const parts: Uint8Array[] = [];
          const downs: Uint8Array[] = [];
          for (let e = 0; e < 4; e++) {
            parts.push(t[`${p}${e}.gate_proj.weight`]!.data, t[`${p}${e}.up_proj.weight`]!.data);
            downs.push(t[`${p}${e}.down_proj.weight`]!.data);
            for (const w of ['gate', 'up', 'down']) delete t[`${p}${e}.${w}_proj.weight`];
          }
          t[`${p}gate_up_proj`] = { dtype: 'F32', shape: [4, 64, 64], data: Buffer.concat(parts) };
          t[`${p}down_proj`] = { dtype: 'F32', shape: [4, 64, 32], data: Buffer.concat(downs) };
        }
      },
    });
    const spec = await readThinkerCheckpoint(dir);
    expect(spec.tensors.some((t) => t.key === 'model.layers.0.mlp.experts.gate_up_proj')).toBe(true);
    expect(await logitsOf(dir)).toEqual(await logitsOf(TINY));
  });

  // Half-precision weights are widened exactly: an F32 checkpoint holding the widened values must
  // give the same logits bit for bit (AVX2 and scalar conversion paths, f16 subnormals included).
  function widened(dir: string, to: 'BF16' | 'F16'): [string, string] {
    const half = join(work, `v${n++}`);
    const wide = join(work, `v${n++}`);
    for (const d of [half, wide]) {
      mkdirSync(d);
      copyFileSync(join(dir, 'config.json'), join(d, 'config.json'));
    }
    const { tensors } = decodeSafetensors(readFileSync(join(dir, 'model.safetensors')));
    const halfT: Record<string, Tensor> = {};
    const wideT: Record<string, Tensor> = {};
    for (const [name, t] of Object.entries(tensors)) {
      if (!name.startsWith('thinker.model.') && name !== 'thinker.lm_head.weight') continue;
      const src = new Float32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + t.data.byteLength));
      const bits = new Uint16Array(src.length);
      const back = new Float32Array(src.length);
      const u32 = new Uint32Array(src.buffer);
      for (let i = 0; i < src.length; i++) {
        if (to === 'BF16') {
          bits[i] = (u32[i]! + 0x7fff + ((u32[i]! >>> 16) & 1)) >>> 16;
          back[i] = new Float32Array(new Uint32Array([bits[i]! << 16]).buffer)[0]!;
        } else {
          bits[i] = toF16(src[i]!);
          back[i] = fromF16(bits[i]!);
        }
      }
      halfT[name] = { dtype: to, shape: t.shape, data: new Uint8Array(bits.buffer) };
      wideT[name] = { dtype: 'F32', shape: t.shape, data: new Uint8Array(back.buffer) };
    }
    writeFileSync(join(half, 'model.safetensors'), encodeSafetensors(halfT));
    writeFileSync(join(wide, 'model.safetensors'), encodeSafetensors(wideT));
    return [half, wide];
  }

  it.each(['BF16', 'F16'] as const)('%s weights give, bit for bit, the logits of their exact F32 widening', async (to) => {
    const [half, wide] = widened(TINY, to);
    const spec = await readThinkerCheckpoint(half);
    expect(new Set(spec.tensors.map((t) => t.dtype))).toEqual(new Set([to]));
    const a = await logitsOf(half);
    expect(a).toEqual(await logitsOf(wide));
    expect(a.every(Number.isFinite)).toBe(true);
  });
});

/** float -> IEEE half (round to nearest; subnormals kept), for test data. */
function toF16(x: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a < 2 ** -25) return sign;
  if (a < 2 ** -14) return sign | Math.min(0x3ff, Math.round(a / 2 ** -24));
  let e = Math.floor(Math.log2(a));
  let m = Math.round((a / 2 ** e - 1) * 1024);
  if (m === 1024) {
    m = 0;
    e++;
  }
  if (e > 15) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | m;
}

function fromF16(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
