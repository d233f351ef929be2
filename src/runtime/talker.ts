// Reads the talker (Qwen3OmniMoeTalkerModel + codec_head) and the code predictor
// (Qwen3OmniMoeTalkerCodePredictorModel + lm_head.{g}) of a Qwen3-Omni checkpoint with audio output
// into load specs of the native decoder (the thinker's engine: same attention, RMSNorms, MoE /
// dense SwiGLU; the talker adds a sigmoid-gated shared expert, the predictor one embedding table
// and one head per residual code group). Every size and id comes from config.json's talker_config.
import { join, resolve } from 'node:path';

import {
  CheckpointError,
  checkpointFiles,
  configError,
  expectedTensors,
  isObject,
  parseThinkerConfig,
  readJson,
  resolveTensors,
  type ParsedConfig,
  type ThinkerLoadSpec,
} from './checkpoint.js';

export interface DecoderLoadSpecExtras {
  /** Keys (without the prefix) of the input embedding tables, `embed(ids, table)`. */
  embedTensors: string[];
  /** Keys of the output heads, selected by `head` in prefill/decode (predictor: one per group). */
  headTensors: string[];
  /** Width of the shared expert of every sparse layer (0: none). */
  sharedExpertIntermediateSize: number;
  /** Tensor-name prefix in the checkpoint (`talker.` / `talker.code_predictor.`). */
  prefix: string;
}

export interface TalkerLoadSpec extends ThinkerLoadSpec, DecoderLoadSpecExtras {
  numCodeGroups: number;
  thinkerHiddenSize: number;
  acceptHiddenLayer: number;
  spatialMergeSize: number;
  positionIdPerSeconds: number;
  /** Codec ids of talker_config (codecBosId, codecEosTokenId, codecPadId, codecNothinkId, ...). */
  codecIds: Record<string, number>;
  /** Speaker name (lower case) -> codec id. */
  speakerIds: Record<string, number>;
  /** text_projection, hidden_projection (thinker hidden -> talker hidden MLPs), in this order. */
  projectionTensors: string[];
  projectionInputSize: number;
  /** Thinker-vocabulary ids of the top-level config the talker prompt needs (imStartTokenId, userTokenId, assistantTokenId, ttsBosTokenId, ttsEosTokenId, ttsPadTokenId). */
  promptIds: Record<string, number>;
}

export interface CodePredictorLoadSpec extends ThinkerLoadSpec, DecoderLoadSpecExtras {
  numCodeGroups: number;
}

type Json = Record<string, unknown>;

/** The talker's input MLPs: text_projection (thinker token embeddings), hidden_projection (thinker hidden states of media). */
const PROJECTIONS = ['text_projection', 'hidden_projection'] as const;


function talkerConfig(config: unknown): Json {
  if (!isObject(config) || !isObject(config.talker_config)) {
    throw configError('talker_config', 'is missing: expected the config of a Qwen3OmniMoeForConditionalGeneration with audio output');
  }
  if (config.enable_audio_output === false) {
    throw configError('enable_audio_output', 'is false: the checkpoint has no talker / code predictor weights');
  }
  return config.talker_config;
}

function posInt(obj: Json, field: string, path: string, fallback?: number): number {
  const v = obj[field] ?? fallback;
  if (v === undefined || v === null) throw configError(`${path}.${field}`, 'is missing');
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw configError(`${path}.${field}`, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** Parses a decoder text config with the thinker's rules, reporting fields under `path`. */
function parseDecoder(text: Json, path: string, oneDimRope: boolean): ParsedConfig {
  const t: Json = { ...text };
  if (t.num_experts === undefined && t.num_local_experts !== undefined) t.num_experts = t.num_local_experts;
  if (oneDimRope) {
    // 1-D rotary = the interleaved 3-D rotary with every frequency on the t row (positions equal on all rows).
    const hidden = typeof t.hidden_size === 'number' ? t.hidden_size : 0;
    const heads = typeof t.num_attention_heads === 'number' ? t.num_attention_heads : 1;
    const headDim = typeof t.head_dim === 'number' ? t.head_dim : Math.floor(hidden / heads);
    const rope = isObject(t.rope_parameters) ? t.rope_parameters : isObject(t.rope_scaling) ? t.rope_scaling : {};
    t.rope_parameters = { ...rope, mrope_section: [headDim / 2, 0, 0] };
  }
  try {
    return parseThinkerConfig({ thinker_config: { text_config: t } });
  } catch (err) {
    if (err instanceof CheckpointError) {
      const fix = (s: string) => s.split('thinker_config.text_config').join(path);
      throw new CheckpointError(err.code, fix(err.message), err.subject ? fix(err.subject) : undefined);
    }
    throw err;
  }
}


/** The talker's load spec: MoE decoder with shared experts, codec_embedding in, codec_head out. */
export async function readTalkerCheckpoint(dir: string, options: { threads?: number } = {}): Promise<TalkerLoadSpec> {
  const root = resolve(dir);
  const full = await readJson(join(root, 'config.json'), 'config');
  const talker = talkerConfig(full);
  if (!isObject(talker.text_config)) throw configError('talker_config.text_config', 'is missing');
  const text = talker.text_config;
  const path = 'talker_config.text_config';
  const c = parseDecoder(text, path, false);
  const sharedExpertIntermediateSize = c.numExperts > 0 ? posInt(text, 'shared_expert_intermediate_size', path) : 0;
  const prefix = 'talker.';
  const H = c.hiddenSize;
  const thinkerHiddenSize = posInt(talker, 'thinker_hidden_size', 'talker_config');
  if (c.intermediateSize < 1) throw configError(`${path}.intermediate_size`, 'must be a positive integer (the width of text_projection / hidden_projection)');
  const act = text.hidden_act ?? 'silu';
  if (act !== 'silu') throw configError(`${path}.hidden_act`, `must be "silu" (the projections' activation implemented), got ${JSON.stringify(act)}`);
  const promptIds: Record<string, number> = {};
  for (const k of ['im_start_token_id', 'im_end_token_id', 'user_token_id', 'assistant_token_id', 'system_token_id', 'tts_bos_token_id', 'tts_eos_token_id', 'tts_pad_token_id']) {
    const v = (full as Json)[k];
    if (typeof v === 'number' && Number.isInteger(v)) promptIds[k.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase())] = v;
  }
  // Whether experts are stored fused is known only from the headers: `present` says.
  const expected = (present: ReadonlySet<string>) => {
    const m = expectedTensors(c, (l) => present.has(`${prefix}model.layers.${l}.mlp.experts.gate_up_proj`));
    m.delete('model.embed_tokens.weight');
    m.delete('lm_head.weight');
    m.set('model.codec_embedding.weight', [c.vocabSize, H]);
    m.set('codec_head.weight', [c.vocabSize, H]);
    for (const p of PROJECTIONS) {
      m.set(`${p}.linear_fc1.weight`, [c.intermediateSize, thinkerHiddenSize]);
      m.set(`${p}.linear_fc1.bias`, [c.intermediateSize]);
      m.set(`${p}.linear_fc2.weight`, [H, c.intermediateSize]);
      m.set(`${p}.linear_fc2.bias`, [H]);
    }
    for (let l = 0; l < c.numLayers; l++) {
      if (!c.sparseLayers[l] || sharedExpertIntermediateSize === 0) continue;
      const p = `model.layers.${l}.mlp.`;
      m.set(`${p}shared_expert.gate_proj.weight`, [sharedExpertIntermediateSize, H]);
      m.set(`${p}shared_expert.up_proj.weight`, [sharedExpertIntermediateSize, H]);
      m.set(`${p}shared_expert.down_proj.weight`, [H, sharedExpertIntermediateSize]);
      m.set(`${p}shared_expert_gate.weight`, [1, H]);
    }
    return m;
  };
  const files = await checkpointFiles(root);
  const tensors = await resolveTensors(files, prefix, expected);
  const codecIds: Record<string, number> = {};
  const camel = (s: string) => s.replace(/_([a-z])/g, (_, ch: string) => ch.toUpperCase());
  for (const [k, v] of Object.entries(talker)) {
    if ((k.startsWith('codec_') || k.endsWith('_token_id')) && typeof v === 'number' && Number.isInteger(v)) codecIds[camel(k)] = v;
  }
  const speakerIds: Record<string, number> = {};
  if (isObject(talker.speaker_id)) {
    for (const [k, v] of Object.entries(talker.speaker_id)) if (typeof v === 'number' && Number.isInteger(v)) speakerIds[k.toLowerCase()] = v;
  }
  const { prefix: _p, tokenIds, ...rest } = c;
  return {
    dir: root,
    files,
    ...rest,
    tokenIds: { ...tokenIds, ...codecIds },
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    tensors,
    prefix,
    embedTensors: ['model.codec_embedding.weight'],
    headTensors: ['codec_head.weight'],
    sharedExpertIntermediateSize,
    numCodeGroups: posInt(talker, 'num_code_groups', 'talker_config'),
    thinkerHiddenSize,
    projectionTensors: [...PROJECTIONS],
    projectionInputSize: thinkerHiddenSize,
    promptIds,
    acceptHiddenLayer: posInt(talker, 'accept_hidden_layer', 'talker_config'),
    spatialMergeSize: posInt(talker, 'spatial_merge_size', 'talker_config', 2),
    positionIdPerSeconds: posInt(talker, 'position_id_per_seconds', 'talker_config', 25),
    codecIds,
    speakerIds,
  };
}

/** The code predictor's load spec: dense decoder, codec_embedding.{g} in, lm_head.{g} out (g < groups - 1). */
export async function readCodePredictorCheckpoint(dir: string, options: { threads?: number } = {}): Promise<CodePredictorLoadSpec> {
  const root = resolve(dir);
  const talker = talkerConfig(await readJson(join(root, 'config.json'), 'config'));
  if (!isObject(talker.code_predictor_config)) throw configError('talker_config.code_predictor_config', 'is missing');
  const cp = talker.code_predictor_config;
  const path = 'talker_config.code_predictor_config';
  const c = parseDecoder(cp, path, true);
  const numCodeGroups = posInt(cp, 'num_code_groups', path, posInt(talker, 'num_code_groups', 'talker_config'));
  if (numCodeGroups < 2) throw configError(`${path}.num_code_groups`, `must be at least 2, got ${numCodeGroups}`);
  const talkerText = isObject(talker.text_config) ? talker.text_config : {};
  if (typeof talkerText.hidden_size === 'number' && talkerText.hidden_size !== c.hiddenSize) {
    throw configError(`${path}.hidden_size`, `(${c.hiddenSize}) must equal the talker's hidden_size (${talkerText.hidden_size})`);
  }
  const H = c.hiddenSize;
  const m = expectedTensors(c, () => false);
  m.delete('model.embed_tokens.weight');
  m.delete('lm_head.weight');
  const embedTensors: string[] = [];
  const headTensors: string[] = [];
  for (let g = 0; g < numCodeGroups - 1; g++) {
    embedTensors.push(`model.codec_embedding.${g}.weight`);
    headTensors.push(`lm_head.${g}.weight`);
    m.set(`model.codec_embedding.${g}.weight`, [c.vocabSize, H]);
    m.set(`lm_head.${g}.weight`, [c.vocabSize, H]);
  }
  const prefix = 'talker.code_predictor.';
  const files = await checkpointFiles(root);
  const tensors = await resolveTensors(files, prefix, m);
  const { prefix: _p, ...rest } = c;
  return {
    dir: root,
    files,
    ...rest,
    ...(options.threads !== undefined ? { threads: options.threads } : {}),
    tensors,
    prefix,
    embedTensors,
    headTensors,
    sharedExpertIntermediateSize: 0,
    numCodeGroups,
  };
}
