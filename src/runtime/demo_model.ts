// The demo checkpoint: the real Qwen3-Omni architecture (thinker: audio encoder, vision encoder,
// MoE decoder; speech: talker with shared experts, code predictor, code-to-wave) at a small size
// with seeded random weights, written as a normal Hugging Face directory (config.json +
// model.safetensors, bf16). With no model configured the gateway serves this, so the whole path
// runs on any machine, spoken replies included; its words and its speech are noise.
//
// The vocabulary and special ids are the real checkpoint's (151 936 tokens), so the gateway's
// tokenizer and chat layout apply unchanged.
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SafetensorsFileWriter, type TensorSpec } from '../codecs/safetensors.js';
import { SPECIAL_IDS, ROLE_IDS } from '../codecs/text/special_tokens.js';
import { code2WavTensors, parseCode2WavConfig } from './code2wav.js';
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
  /** Talker and code predictor share this hidden size (transformers requires it). */
  talker: { hidden: number; layers: number; experts: number; moeIntermediate: number; shared: number; predictorLayers: number };
  code2wav: { hidden: number; layers: number; decoderDim: number };
}

const SIZES: Record<DemoSize, Sizes> = {
  tiny: {
    hidden: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 16, mrope: [4, 2, 2], experts: 4, topK: 2, moeIntermediate: 32,
    audio: { dModel: 32, layers: 2, heads: 2, ffn: 64, downsample: 16 },
    vision: { hidden: 32, depth: 2, heads: 2, ffn: 64, deepstack: [0, 1] },
    talker: { hidden: 64, layers: 2, experts: 4, moeIntermediate: 32, shared: 64, predictorLayers: 1 },
    code2wav: { hidden: 32, layers: 1, decoderDim: 32 },
  },
  small: {
    hidden: 256, layers: 4, heads: 4, kvHeads: 2, headDim: 64, mrope: [12, 10, 10], experts: 8, topK: 2, moeIntermediate: 128,
    audio: { dModel: 128, layers: 2, heads: 4, ffn: 256, downsample: 32 },
    vision: { hidden: 128, depth: 2, heads: 4, ffn: 256, deepstack: [0, 1] },
    talker: { hidden: 128, layers: 2, experts: 8, moeIntermediate: 64, shared: 128, predictorLayers: 2 },
    code2wav: { hidden: 64, layers: 2, decoderDim: 64 },
  },
};

/** The released checkpoint's codec layout: 2048 codes, special ids 2148-2157, voices 2301-2303, talker vocabulary 3072. */
const CODEC = {
  codebook: 2048,
  talkerVocab: 3072,
  ids: { codec_pad_id: 2148, codec_bos_id: 2149, codec_eos_token_id: 2150, codec_nothink_id: 2155, codec_think_bos_id: 2156, codec_think_eos_id: 2157 },
  speakers: { chelsie: 2301, ethan: 2302, aiden: 2303 },
};

export const DEMO_VOCAB_SIZE = 151_936;

/** config.json of a demo checkpoint (transformers' Qwen3OmniMoeForConditionalGeneration). */
export function demoModelConfig(size: DemoSize = 'tiny', vocabSize = DEMO_VOCAB_SIZE): Record<string, unknown> {
  const s = SIZES[size];
  return {
    architectures: ['Qwen3OmniMoeForConditionalGeneration'],
    model_type: 'qwen3_omni_moe',
    enable_audio_output: true,
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
    talker_config: {
      model_type: 'qwen3_omni_moe_talker',
      ...CODEC.ids,
      speaker_id: { ...CODEC.speakers },
      num_code_groups: 16,
      thinker_hidden_size: s.hidden,
      // The released model takes layer 24 of 48; here the last layer's output.
      accept_hidden_layer: s.layers,
      audio_token_id: SPECIAL_IDS.audioPad,
      image_token_id: SPECIAL_IDS.imagePad,
      video_token_id: SPECIAL_IDS.videoPad,
      audio_start_token_id: SPECIAL_IDS.audioStart,
      vision_start_token_id: SPECIAL_IDS.visionStart,
      position_id_per_seconds: 13,
      spatial_merge_size: 2,
      text_config: {
        model_type: 'qwen3_omni_moe_talker_text',
        vocab_size: CODEC.talkerVocab,
        hidden_size: s.talker.hidden,
        intermediate_size: s.talker.hidden,
        num_hidden_layers: s.talker.layers,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: s.talker.hidden / 4,
        hidden_act: 'silu',
        max_position_embeddings: 65_536,
        rms_norm_eps: 1e-6,
        attention_bias: false,
        decoder_sparse_step: 1,
        mlp_only_layers: [],
        moe_intermediate_size: s.talker.moeIntermediate,
        shared_expert_intermediate_size: s.talker.shared,
        num_experts: s.talker.experts,
        num_experts_per_tok: 2,
        norm_topk_prob: true,
        rope_parameters: { rope_type: 'default', rope_theta: 1_000_000, mrope_section: talkerMrope(s.talker.hidden / 4), interleaved: true, mrope_interleaved: true },
      },
      code_predictor_config: {
        model_type: 'qwen3_omni_moe_talker_code_predictor',
        vocab_size: CODEC.codebook,
        hidden_size: s.talker.hidden,
        intermediate_size: s.talker.hidden * 2,
        num_hidden_layers: s.talker.predictorLayers,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: s.talker.hidden / 4,
        hidden_act: 'silu',
        rms_norm_eps: 1e-6,
        num_code_groups: 16,
        attention_bias: false,
        rope_parameters: { rope_type: 'default', rope_theta: 1_000_000 },
      },
    },
    code2wav_config: {
      codebook_size: CODEC.codebook,
      hidden_size: s.code2wav.hidden,
      num_hidden_layers: s.code2wav.layers,
      num_attention_heads: 2,
      num_key_value_heads: 2,
      intermediate_size: s.code2wav.hidden * 2,
      hidden_act: 'silu',
      rms_norm_eps: 1e-5,
      sliding_window: 72,
      num_quantizers: 16,
      upsample_rates: [8, 5, 4, 3],
      upsampling_ratios: [2, 2],
      decoder_dim: s.code2wav.decoderDim,
      layer_scale_initial_scale: 0.01,
      attention_bias: false,
      rope_parameters: { rope_type: 'default', rope_theta: 10_000 },
    },
  };
}

/** The released talker's rotary split [24, 20, 20] of 64 frequencies, scaled to head_dim / 2. */
function talkerMrope(headDim: number): [number, number, number] {
  const half = headDim / 2;
  const h = Math.floor((half * 20) / 64);
  return [half - 2 * h, h, h];
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
  // Speech stages only with audio output (a checkpoint without it still carries a default talker_config).
  const speaks = config.enable_audio_output === true;
  const talker = config.talker_config as Record<string, unknown> | undefined;
  if (talker && speaks) {
    const tt = talker.text_config as Record<string, number>;
    const cp = talker.code_predictor_config as Record<string, number>;
    const decoder = (p: string, c: Record<string, number>, layer: (p: string) => void): void => {
      for (let l = 0; l < c.num_hidden_layers!; l++) {
        const q = `${p}.layers.${l}`;
        add(`${q}.input_layernorm.weight`, [c.hidden_size!]);
        add(`${q}.post_attention_layernorm.weight`, [c.hidden_size!]);
        linear(`${q}.self_attn.q_proj`, c.num_attention_heads! * c.head_dim!, c.hidden_size!, false);
        linear(`${q}.self_attn.k_proj`, c.num_key_value_heads! * c.head_dim!, c.hidden_size!, false);
        linear(`${q}.self_attn.v_proj`, c.num_key_value_heads! * c.head_dim!, c.hidden_size!, false);
        linear(`${q}.self_attn.o_proj`, c.hidden_size!, c.num_attention_heads! * c.head_dim!, false);
        add(`${q}.self_attn.q_norm.weight`, [c.head_dim!]);
        add(`${q}.self_attn.k_norm.weight`, [c.head_dim!]);
        layer(`${q}.mlp`);
      }
      add(`${p}.norm.weight`, [c.hidden_size!]);
    };
    const th = tt.hidden_size!;
    const experts = tt.num_experts ?? tt.num_local_experts!; // transformers saves num_local_experts
    add('talker.model.codec_embedding.weight', [tt.vocab_size!, th]);
    decoder('talker.model', tt, (p) => {
      linear(`${p}.gate`, experts, th, false);
      for (let e = 0; e < experts; e++) {
        linear(`${p}.experts.${e}.gate_proj`, tt.moe_intermediate_size!, th, false);
        linear(`${p}.experts.${e}.up_proj`, tt.moe_intermediate_size!, th, false);
        linear(`${p}.experts.${e}.down_proj`, th, tt.moe_intermediate_size!, false);
      }
      linear(`${p}.shared_expert.gate_proj`, tt.shared_expert_intermediate_size!, th, false);
      linear(`${p}.shared_expert.up_proj`, tt.shared_expert_intermediate_size!, th, false);
      linear(`${p}.shared_expert.down_proj`, th, tt.shared_expert_intermediate_size!, false);
      linear(`${p}.shared_expert_gate`, 1, th, false);
    });
    linear('talker.codec_head', tt.vocab_size!, th, false);
    for (const p of ['talker.text_projection', 'talker.hidden_projection']) {
      linear(`${p}.linear_fc1`, tt.intermediate_size!, talker.thinker_hidden_size as number);
      linear(`${p}.linear_fc2`, th, tt.intermediate_size!);
    }
    for (let g = 0; g < 15; g++) add(`talker.code_predictor.model.codec_embedding.${g}.weight`, [cp.vocab_size!, cp.hidden_size!]);
    decoder('talker.code_predictor.model', cp, (p) => {
      linear(`${p}.gate_proj`, cp.intermediate_size!, cp.hidden_size!, false);
      linear(`${p}.up_proj`, cp.intermediate_size!, cp.hidden_size!, false);
      linear(`${p}.down_proj`, cp.hidden_size!, cp.intermediate_size!, false);
    });
    for (let g = 0; g < 15; g++) add(`talker.code_predictor.lm_head.${g}.weight`, [cp.vocab_size!, cp.hidden_size!]);
  }
  if (config.code2wav_config && speaks) {
    const { prefix: _p, ...sizes } = parseCode2WavConfig(config);
    for (const [name, shape] of code2WavTensors(sizes)) add(`code2wav.${name}`, shape);
  }
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
      // Biases 0; SnakeBeta's log-scale alpha / beta 0 (exp = 1), so the vocoder stays bounded.
      const isBias = name.endsWith('.bias') || name.endsWith('.alpha') || name.endsWith('.beta');
      const fanIn = shape.length > 1 ? shape.slice(1).reduce((x, y) => x * y, 1) : 1;
      // code2wav's layer scales and ConvNeXt gammas small (as their init), its last conv quiet:
      // random residual units would otherwise drive the waveform into the [-1, 1] clamp.
      const damp = /layer_scale\.scale$|\.gamma$/.test(name) ? 0.01 : /^code2wav\.decoder\.\d+\.block\.\d+\.conv2\./.test(name) ? 0.3 : 1;
      const scale = (damp * Math.sqrt(3 / fanIn)) * (/^code2wav\.decoder\.\d+\.conv\.weight$/.test(name) && !name.startsWith('code2wav.decoder.0.') ? 0.15 : 1);
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
