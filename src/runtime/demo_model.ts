// The demo checkpoint: the real Qwen3-Omni thinker architecture (audio encoder, vision encoder,
// MoE decoder) at a small size with seeded random weights, written as a normal Hugging Face
// directory (config.json + model.safetensors, bf16). With no model configured the gateway serves
// this, so the whole path runs on any machine; its words are noise.
//
// The vocabulary and special ids are the real checkpoint's (151 936 tokens), so the gateway's
// tokenizer and chat layout apply unchanged.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFileWriter, type TensorSpec } from '../codecs/safetensors.js';
import { SPECIAL_IDS, ROLE_IDS } from '../codecs/text/special_tokens.js';
import { Prng } from './sampling.js';

export type DemoSize = 'tiny' | 'small';

interface Sizes {
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  mrope: [number, number, number];
  experts: number;
  topK: number;
  moeIntermediate: number;
  audio: { dModel: number; layers: number; heads: number; ffn: number; downsample: number };
  vision: { hidden: number; depth: number; heads: number; ffn: number; deepstack: number[] };
}

const SIZES: Record<DemoSize, Sizes> = {
  tiny: {
    hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, mrope: [4, 2, 2], experts: 4, topK: 2, moeIntermediate: 32,
    audio: { dModel: 32, layers: 2, heads: 2, ffn: 64, downsample: 16 },
    vision: { hidden: 32, depth: 2, heads: 2, ffn: 64, deepstack: [0, 1] },
  },
  small: {
    hidden: 256, layers: 4, heads: 4, kvHeads: 2, headDim: 64, mrope: [12, 10, 10], experts: 8, topK: 2, moeIntermediate: 128,
    audio: { dModel: 128, layers: 2, heads: 4, ffn: 256, downsample: 32 },
    vision: { hidden: 128, depth: 2, heads: 4, ffn: 256, deepstack: [0, 1] },
  },
};

export const DEMO_VOCAB_SIZE = 151_936;

/** config.json of a demo checkpoint (transformers' Qwen3OmniMoeForConditionalGeneration). */
export function demoModelConfig(size: DemoSize = 'tiny', vocabSize = DEMO_VOCAB_SIZE): Record<string, unknown> {
  const s = SIZES[size];
  return {
    architectures: ['Qwen3OmniMoeForConditionalGeneration'],
    model_type: 'qwen3_omni_moe',
    enable_audio_output: false,
    im_start_token_id: SPECIAL_IDS.imStart,
    im_end_token_id: SPECIAL_IDS.imEnd,
    system_token_id: ROLE_IDS.system,
    user_token_id: ROLE_IDS.user,
    assistant_token_id: ROLE_IDS.assistant,
    tts_pad_token_id: SPECIAL_IDS.ttsPad,
    tts_bos_token_id: SPECIAL_IDS.ttsTextBos,
    tts_eos_token_id: SPECIAL_IDS.ttsTextEod,
    omni_gateway_demo: { size, note: 'random weights: the words and speech of this model are noise' },
    thinker_config: {
      model_type: 'qwen3_omni_moe_thinker',
      audio_token_id: SPECIAL_IDS.audioPad,
      image_token_id: SPECIAL_IDS.imagePad,
      video_token_id: SPECIAL_IDS.videoPad,
      audio_start_token_id: SPECIAL_IDS.audioStart,
      audio_end_token_id: SPECIAL_IDS.audioEnd,
      vision_start_token_id: SPECIAL_IDS.visionStart,
      vision_end_token_id: SPECIAL_IDS.visionEnd,
      user_token_id: ROLE_IDS.user,
      position_id_per_seconds: 13,
      seconds_per_chunk: 2,
      tie_word_embeddings: false,
      text_config: {
        model_type: 'qwen3_omni_moe_text',
        vocab_size: vocabSize,
        hidden_size: s.hidden,
        intermediate_size: s.hidden * 2,
        num_hidden_layers: s.layers,
        num_attention_heads: s.heads,
        num_key_value_heads: s.kvHeads,
        head_dim: s.headDim,
        hidden_act: 'silu',
        max_position_embeddings: 65_536,
        rms_norm_eps: 1e-6,
        attention_bias: false,
        decoder_sparse_step: 1,
        mlp_only_layers: [],
        moe_intermediate_size: s.moeIntermediate,
        num_experts: s.experts,
        num_experts_per_tok: s.topK,
        norm_topk_prob: true,
        rope_parameters: { rope_type: 'default', rope_theta: 1_000_000, mrope_section: s.mrope, interleaved: true, mrope_interleaved: true },
        eos_token_id: SPECIAL_IDS.imEnd,
        pad_token_id: SPECIAL_IDS.endoftext,
      },
      audio_config: {
        model_type: 'qwen3_omni_moe_audio_encoder',
        num_mel_bins: 128,
        d_model: s.audio.dModel,
        encoder_layers: s.audio.layers,
        encoder_attention_heads: s.audio.heads,
        encoder_ffn_dim: s.audio.ffn,
        downsample_hidden_size: s.audio.downsample,
        output_dim: s.hidden,
        activation_function: 'gelu',
        max_source_positions: 1500,
        n_window: 50,
        n_window_infer: 800,
        conv_chunksize: 500,
        scale_embedding: false,
      },
      vision_config: {
        model_type: 'qwen3_omni_moe_vision_encoder',
        depth: s.vision.depth,
        hidden_size: s.vision.hidden,
        num_heads: s.vision.heads,
        intermediate_size: s.vision.ffn,
        hidden_act: 'gelu_pytorch_tanh',
        in_channels: 3,
        patch_size: 16,
        temporal_patch_size: 2,
        spatial_merge_size: 2,
        num_position_embeddings: 2304,
        out_hidden_size: s.hidden,
        deepstack_visual_indexes: s.vision.deepstack,
      },
    },
  };
}

/** Every tensor of the thinker, with the hub's names (experts stored one by one) and shapes. */
export function demoModelTensors(config: Record<string, unknown>): [string, number[]][] {
  const th = config.thinker_config as Record<string, Record<string, number | number[]>>;
  const t = th.text_config!;
  const a = th.audio_config!;
  const v = th.vision_config!;
  const n = (x: unknown): number => x as number;
  const out: [string, number[]][] = [];
  const add = (name: string, shape: number[]): void => void out.push([name, shape]);
  const linear = (name: string, o: number, i: number, bias = true): void => {
    add(`${name}.weight`, [o, i]);
    if (bias) add(`${name}.bias`, [o]);
  };
  const norm = (name: string, d: number, bias = true): void => {
    add(`${name}.weight`, [d]);
    if (bias) add(`${name}.bias`, [d]);
  };
  // audio tower
  const ds = n(a.downsample_hidden_size);
  const dm = n(a.d_model);
  add('thinker.audio_tower.conv2d1.weight', [ds, 1, 3, 3]);
  add('thinker.audio_tower.conv2d1.bias', [ds]);
  for (const k of [2, 3]) {
    add(`thinker.audio_tower.conv2d${k}.weight`, [ds, ds, 3, 3]);
    add(`thinker.audio_tower.conv2d${k}.bias`, [ds]);
  }
  linear('thinker.audio_tower.conv_out', dm, ds * Math.ceil(Math.ceil(Math.ceil(n(a.num_mel_bins) / 2) / 2) / 2), false);
  for (let l = 0; l < n(a.encoder_layers); l++) {
    const p = `thinker.audio_tower.layers.${l}`;
    for (const q of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(`${p}.self_attn.${q}`, dm, dm);
    norm(`${p}.self_attn_layer_norm`, dm);
    linear(`${p}.fc1`, n(a.encoder_ffn_dim), dm);
    linear(`${p}.fc2`, dm, n(a.encoder_ffn_dim));
    norm(`${p}.final_layer_norm`, dm);
  }
  norm('thinker.audio_tower.ln_post', dm);
  linear('thinker.audio_tower.proj1', dm, dm);
  linear('thinker.audio_tower.proj2', n(a.output_dim), dm);
  // text decoder
  const h = n(t.hidden_size);
  const hd = n(t.head_dim);
  add('thinker.model.embed_tokens.weight', [n(t.vocab_size), h]);
  for (let l = 0; l < n(t.num_hidden_layers); l++) {
    const p = `thinker.model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [h]);
    add(`${p}.post_attention_layernorm.weight`, [h]);
    linear(`${p}.self_attn.q_proj`, n(t.num_attention_heads) * hd, h, false);
    linear(`${p}.self_attn.k_proj`, n(t.num_key_value_heads) * hd, h, false);
    linear(`${p}.self_attn.v_proj`, n(t.num_key_value_heads) * hd, h, false);
    linear(`${p}.self_attn.o_proj`, h, n(t.num_attention_heads) * hd, false);
    add(`${p}.self_attn.q_norm.weight`, [hd]);
    add(`${p}.self_attn.k_norm.weight`, [hd]);
    linear(`${p}.mlp.gate`, n(t.num_experts), h, false);
    for (let e = 0; e < n(t.num_experts); e++) {
      linear(`${p}.mlp.experts.${e}.gate_proj`, n(t.moe_intermediate_size), h, false);
      linear(`${p}.mlp.experts.${e}.up_proj`, n(t.moe_intermediate_size), h, false);
      linear(`${p}.mlp.experts.${e}.down_proj`, h, n(t.moe_intermediate_size), false);
    }
  }
  add('thinker.model.norm.weight', [h]);
  add('thinker.lm_head.weight', [n(t.vocab_size), h]);
  // vision encoder
  const vh = n(v.hidden_size);
  const merged = vh * n(v.spatial_merge_size) ** 2;
  add('thinker.visual.patch_embed.proj.weight', [vh, n(v.in_channels), n(v.temporal_patch_size), n(v.patch_size), n(v.patch_size)]);
  add('thinker.visual.patch_embed.proj.bias', [vh]);
  add('thinker.visual.pos_embed.weight', [n(v.num_position_embeddings), vh]);
  for (let l = 0; l < n(v.depth); l++) {
    const p = `thinker.visual.blocks.${l}`;
    norm(`${p}.norm1`, vh);
    norm(`${p}.norm2`, vh);
    linear(`${p}.attn.qkv`, 3 * vh, vh);
    linear(`${p}.attn.proj`, vh, vh);
    linear(`${p}.mlp.linear_fc1`, n(v.intermediate_size), vh);
    linear(`${p}.mlp.linear_fc2`, vh, n(v.intermediate_size));
  }
  const merger = (p: string, lnDim: number): void => {
    norm(`${p}.ln_q`, lnDim);
    linear(`${p}.mlp.0`, merged, merged);
    linear(`${p}.mlp.2`, n(v.out_hidden_size), merged);
  };
  merger('thinker.visual.merger', vh);
  (v.deepstack_visual_indexes as number[]).forEach((_, k) => merger(`thinker.visual.merger_list.${k}`, merged));
  return out;
}

/** bfloat16 bits of a float (round to nearest even). */
function bf16(x: number, scratch: Float32Array, bits: Uint32Array): number {
  scratch[0] = x;
  const b = bits[0]!;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Writes a demo checkpoint into `dir` (created): config.json and model.safetensors in bf16.
 * Norm weights are 1, biases 0, other weights uniform with variance 1 / fan_in, from `seed`.
 */
export async function writeDemoModel(dir: string, options: { size?: DemoSize; seed?: number } = {}): Promise<{ tensors: number; bytes: number }> {
  const config = demoModelConfig(options.size ?? 'tiny');
  const tensors = demoModelTensors(config);
  await mkdir(dir, { recursive: true });
  const rng = new Prng(options.seed ?? 0);
  const specs: [string, TensorSpec][] = tensors.map(([name, shape]) => [name, { dtype: 'BF16', shape }]);
  // Written under a name of its own and renamed, so a half-written checkpoint is never picked up
  // and two processes making it at once do not write into each other's file.
  const tmp = join(dir, `model.safetensors.${process.pid}.${randomBytes(4).toString('hex')}.partial`);
  const writer = await SafetensorsFileWriter.create(tmp, specs, { format: 'pt', producer: 'omni-gateway demo-model' });
  const scratch = new Float32Array(1);
  const bits = new Uint32Array(scratch.buffer);
  let bytes = 0;
  try {
    for (const [name, shape] of tensors) {
      const count = shape.reduce((x, y) => x * y, 1);
      const isNorm = /norm|ln_q|ln_post|layer_norm/.test(name) && name.endsWith('.weight');
      const isBias = name.endsWith('.bias');
      const fanIn = shape.length > 1 ? shape.slice(1).reduce((x, y) => x * y, 1) : 1;
      const scale = Math.sqrt(3 / fanIn);
      const one = bf16(1, scratch, bits);
      // In slices, so a large embedding never needs a second full-size buffer.
      const slice = 1 << 20;
      for (let at = 0; at < count; at += slice) {
        const m = Math.min(slice, count - at);
        const out = new Uint16Array(m);
        if (isNorm) out.fill(one);
        else if (!isBias) for (let i = 0; i < m; i++) out[i] = bf16((rng.next() * 2 - 1) * scale, scratch, bits);
        await writer.append(name, new Uint8Array(out.buffer));
        bytes += out.byteLength;
      }
    }
  } catch (err) {
    await writer.abort();
    await rm(tmp, { force: true });
    throw err;
  }
  await writer.close();
  // config.json first (same bytes from every writer), then the weights appear atomically; a
  // rename over another writer's identical result is harmless.
  const configTmp = `${tmp}.json`;
  await writeFile(configTmp, `${JSON.stringify(config, null, 2)}\n`);
  await rename(configTmp, join(dir, 'config.json'));
  await rename(tmp, join(dir, 'model.safetensors'));
  return { tensors: tensors.length, bytes };
}
