// `omni-gateway inspect --model DIR`: what a checkpoint holds and whether this engine can run it:
// architecture from config.json, parameters (total and active per token), weight dtypes, memory,
// and every tensor the engine would not load. Exit 2 when the checkpoint is unusable.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { CheckpointError, checkpointFiles, readSafetensorsHeader, readThinkerCheckpoint, type ThinkerLoadSpec } from '../runtime/checkpoint.js';
import { readCode2WavCheckpoint } from '../runtime/code2wav.js';
import { readAudioEncoderCheckpoint, readVisionEncoderCheckpoint } from '../runtime/encoders.js';
import { readCodePredictorCheckpoint, readTalkerCheckpoint } from '../runtime/talker.js';

export interface InspectReport {
  model: string;
  usable: boolean;
  problem?: string;
  architecture: Record<string, unknown>;
  parameters: { total: number; thinkerDecoder: number; activePerToken: number; audioEncoder: number; visionEncoder: number; speech: number; other: number };
  dtypes: Record<string, number>;
  memory: { weightsBytes: number; kvCacheBytesPerToken: number };
  specialIds: Record<string, number>;
  voices: string[];
  notLoaded: { prefix: string; tensors: number; parameters: number; why: string }[];
}

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export async function inspectCheckpoint(dir: string): Promise<InspectReport> {
  const root = resolve(dir);
  const config = JSON.parse(await readFile(join(root, 'config.json'), 'utf8').catch((err: Error) => {
    throw new CheckpointError('checkpoint_missing', `${join(root, 'config.json')}: ${err.message}`, 'config.json');
  })) as Record<string, unknown>;
  const all = new Map<string, { dtype: string; shape: number[]; bytes: number }>();
  for (const f of await checkpointFiles(root)) for (const [name, t] of await readSafetensorsHeader(f)) all.set(name, t);

  let spec: ThinkerLoadSpec | undefined;
  let problem: string | undefined;
  try {
    spec = await readThinkerCheckpoint(root);
  } catch (err) {
    problem = `${(err as CheckpointError).code ?? 'error'}: ${(err as Error).message}`;
  }
  const loaded = new Set<string>(spec?.tensors.map((t) => t.name) ?? []);
  const th = (config.thinker_config ?? {}) as Record<string, Record<string, unknown>>;
  let audioParams = 0;
  let visionParams = 0;
  for (const [present, read] of [
    [th.audio_config, readAudioEncoderCheckpoint],
    [th.vision_config, readVisionEncoderCheckpoint],
  ] as const) {
    if (!present) continue;
    try {
      const s = await read(root);
      for (const t of s.tensors) {
        loaded.add(t.name);
        if (read === readAudioEncoderCheckpoint) audioParams += numel(t.shape);
        else visionParams += numel(t.shape);
      }
    } catch (err) {
      problem ??= `${(err as CheckpointError).code ?? 'error'}: ${(err as Error).message}`;
    }
  }

  // Speech output: talker, code predictor and code-to-wave, when the checkpoint has them.
  let speechParams = 0;
  const tc = config.talker_config as Record<string, unknown> | undefined;
  if (config.enable_audio_output !== false && tc && config.code2wav_config) {
    for (const read of [readTalkerCheckpoint, readCodePredictorCheckpoint, readCode2WavCheckpoint]) {
      try {
        for (const t of (await read(root)).tensors) {
          loaded.add(t.name);
          speechParams += numel(t.shape);
        }
      } catch (err) {
        problem ??= `${(err as CheckpointError).code ?? 'error'}: ${(err as Error).message}`;
      }
    }
  }

  const dtypes: Record<string, number> = {};
  let total = 0;
  let weightsBytes = 0;
  const notLoaded = new Map<string, { tensors: number; parameters: number }>();
  for (const [name, t] of all) {
    const n = numel(t.shape);
    total += n;
    weightsBytes += t.bytes;
    dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + n;
    if (!loaded.has(name)) {
      const prefix = name.split('.').slice(0, name.startsWith('thinker.') ? 2 : 1).join('.');
      const e = notLoaded.get(prefix) ?? { tensors: 0, parameters: 0 };
      e.tensors++;
      e.parameters += n;
      notLoaded.set(prefix, e);
    }
  }
  let decoder = 0;
  let inactive = 0;
  if (spec) {
    for (const t of spec.tensors) {
      const n = numel(t.shape);
      decoder += n;
      // A token runs top-k of the experts of each sparse layer.
      if (/\.mlp\.experts\./.test(t.name)) inactive += n * (1 - spec.numExpertsPerTok / spec.numExperts);
    }
  }
  // A token reads one row of the embedding table, not all of it.
  const embedRows = spec ? spec.vocabSize * spec.hiddenSize : 0;
  const talker = (config.talker_config ?? {}) as { speaker_id?: Record<string, number> };
  const text = th.text_config ?? {};
  return {
    model: root,
    usable: problem === undefined,
    ...(problem ? { problem } : {}),
    architecture: {
      model_type: config.model_type,
      sub_models: ['thinker', ...(th.audio_config ? ['audio encoder'] : []), ...(th.vision_config ? ['vision encoder'] : []), ...(config.enable_audio_output ? ['talker', 'code2wav'] : [])],
      text: spec
        ? { layers: spec.numLayers, hidden: spec.hiddenSize, heads: spec.numHeads, kv_heads: spec.numKvHeads, head_dim: spec.headDim, experts: spec.numExperts, top_k: spec.numExpertsPerTok, moe_intermediate: spec.moeIntermediateSize, sparse_layers: spec.sparseLayers.filter(Boolean).length, vocab: spec.vocabSize, mrope_section: spec.mropeSection }
        : { layers: text.num_hidden_layers, hidden: text.hidden_size, experts: text.num_experts, top_k: text.num_experts_per_tok, vocab: text.vocab_size },
      audio: th.audio_config ? { layers: th.audio_config.encoder_layers, d_model: th.audio_config.d_model, output_dim: th.audio_config.output_dim } : null,
      vision: th.vision_config ? { depth: th.vision_config.depth, hidden: th.vision_config.hidden_size, deepstack: th.vision_config.deepstack_visual_indexes } : null,
    },
    parameters: {
      total,
      thinkerDecoder: decoder,
      activePerToken: Math.round(decoder - inactive - embedRows + (spec ? spec.hiddenSize : 0)),
      audioEncoder: audioParams,
      visionEncoder: visionParams,
      speech: speechParams,
      other: [...notLoaded.values()].reduce((a, b) => a + b.parameters, 0),
    },
    dtypes,
    memory: { weightsBytes, kvCacheBytesPerToken: spec ? spec.numLayers * 2 * spec.numKvHeads * spec.headDim * 4 : 0 },
    specialIds: spec?.tokenIds ?? {},
    // By codec id, transformers' default (ethan) first: the order the runtime reports.
    voices: voiceOrder(talker.speaker_id ?? {}),
    notLoaded: [...notLoaded].map(([prefix, v]) => ({
      prefix,
      ...v,
      why: 'not part of the architecture this engine runs',
    })),
  };
}

function voiceOrder(given: Record<string, number>): string[] {
  const ids: Record<string, number> = {};
  for (const [k, v] of Object.entries(given)) ids[k.toLowerCase()] = v;
  const names = Object.keys(ids).sort((a, b) => ids[a]! - ids[b]! || (a < b ? -1 : 1));
  const i = names.indexOf('ethan');
  return i > 0 ? [names[i]!, ...names.slice(0, i), ...names.slice(i + 1)] : names;
}

function human(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} K` : String(n);
}

export function formatReport(r: InspectReport): string {
  const a = r.architecture;
  const lines = [
    `checkpoint ${r.model}: ${r.usable ? 'usable by the native engine' : `NOT usable: ${r.problem}`}`,
    `sub-models: ${(a.sub_models as string[]).join(', ')}`,
    `text decoder: ${JSON.stringify(a.text)}`,
    ...(a.audio ? [`audio encoder: ${JSON.stringify(a.audio)}`] : []),
    ...(a.vision ? [`vision encoder: ${JSON.stringify(a.vision)}`] : []),
    `parameters: ${human(r.parameters.total)} total; thinker decoder ${human(r.parameters.thinkerDecoder)}, active per token ${human(r.parameters.activePerToken)}; audio encoder ${human(r.parameters.audioEncoder)}; vision encoder ${human(r.parameters.visionEncoder)}; speech (talker, code predictor, code-to-wave) ${human(r.parameters.speech)}; not loaded ${human(r.parameters.other)}`,
    `weights: ${Object.entries(r.dtypes).map(([d, n]) => `${d} ${human(n)}`).join(', ')}; ${(r.memory.weightsBytes / 2 ** 20).toFixed(1)} MiB on disk (mapped); KV cache ${r.memory.kvCacheBytesPerToken} bytes per token`,
    `special ids: ${Object.entries(r.specialIds).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `voices: ${r.voices.length ? r.voices.join(', ') : 'none'}`,
    ...r.notLoaded.map((n) => `not loaded: ${n.prefix}.* (${n.tensors} tensors, ${human(n.parameters)} parameters): ${n.why}`),
  ];
  return `${lines.join('\n')}\n`;
}
