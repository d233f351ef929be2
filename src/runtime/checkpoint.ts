// Reads a Hugging Face Qwen3-Omni checkpoint directory (config.json of a
// `Qwen3OmniMoeForConditionalGeneration`, one `model.safetensors` or shards listed in
// `model.safetensors.index.json`) into the load spec of the native thinker engine. Only the
// safetensors headers are read here (8-byte length + JSON); the engine maps the tensor bytes itself.
//
// Every size and token id comes from config.json: nothing about the released checkpoint is assumed.
import { open, readFile, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';

export const CHECKPOINT_ERROR_CODES = [
  'checkpoint_missing',
  'checkpoint_config_invalid',
  'checkpoint_file_invalid',
  'checkpoint_tensor_missing',
  'checkpoint_tensor_shape',
  'checkpoint_tensor_dtype',
] as const;
export type CheckpointErrorCode = (typeof CHECKPOINT_ERROR_CODES)[number];

export class CheckpointError extends Error {
  constructor(
    readonly code: CheckpointErrorCode,
    message: string,
    /** The file, tensor or config field at fault. */
    readonly subject?: string,
  ) {
    super(message);
    this.name = 'CheckpointError';
  }
}

export type ThinkerTensorDtype = 'F32' | 'BF16' | 'F16';

export interface ThinkerTensor {
  /** The name the engine looks it up by: the checkpoint name without the `thinker.` prefix. */
  key: string;
  /** The full name in the checkpoint (for messages). */
  name: string;
  /** Index into `ThinkerLoadSpec.files`. */
  file: number;
  dtype: ThinkerTensorDtype;
  shape: number[];
  /** Absolute byte offset of the data in its file. */
  offset: number;
  bytes: number;
}

export interface ThinkerLoadSpec {
  dir: string;
  /** Absolute paths of the safetensors files. */
  files: string[];
  vocabSize: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** Dense MLP width (layers that are not sparse). */
  intermediateSize: number;
  moeIntermediateSize: number;
  numExperts: number;
  numExpertsPerTok: number;
  normTopkProb: boolean;
  /** Per decoder layer: true where the MLP is the sparse MoE block. */
  sparseLayers: boolean[];
  rmsNormEps: number;
  ropeTheta: number;
  /** Frequencies per rotary row (t, h, w); they sum to headDim / 2. Applied interleaved. */
  mropeSection: [number, number, number];
  maxPositionEmbeddings: number;
  /** lm_head shares the token embedding matrix. */
  tieWordEmbeddings: boolean;
  /** Token ids named in the config (thinker and top level), e.g. imStartTokenId, audioTokenId. */
  tokenIds: Record<string, number>;
  /** Engine threads (default: one per core). */
  threads?: number;
  tensors: ThinkerTensor[];
}

const DTYPE_BYTES: Record<ThinkerTensorDtype, number> = { F32: 4, BF16: 2, F16: 2 };
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A checkpoint_config_invalid error naming the config.json field. */
export function configError(field: string, message: string): CheckpointError {
  return new CheckpointError('checkpoint_config_invalid', `config.json: ${field} ${message}`, field);
}

function int(obj: Json, field: string, path: string, opts: { min?: number; optional?: number } = {}): number {
  const v = obj[field];
  if (v === undefined || v === null) {
    if (opts.optional !== undefined) return opts.optional;
    throw configError(`${path}.${field}`, 'is missing');
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw configError(`${path}.${field}`, `must be an integer, got ${JSON.stringify(v)}`);
  if (v < (opts.min ?? 1)) throw configError(`${path}.${field}`, `must be at least ${opts.min ?? 1}, got ${v}`);
  return v;
}

function num(obj: Json, field: string, path: string, fallback?: number): number {
  const v = obj[field];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw configError(`${path}.${field}`, 'is missing');
  }
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw configError(`${path}.${field}`, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function bool(obj: Json, field: string, path: string, fallback: boolean): boolean {
  const v = obj[field];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'boolean') throw configError(`${path}.${field}`, `must be true or false, got ${JSON.stringify(v)}`);
  return v;
}

export interface ParsedConfig extends Omit<ThinkerLoadSpec, 'dir' | 'files' | 'tensors' | 'threads'> {
  /** Prefix of the thinker's tensors in the checkpoint. */
  prefix: string;
}

/** The thinker text model's configuration from a parsed config.json. */
export function parseThinkerConfig(config: unknown): ParsedConfig {
  if (!isObject(config)) throw configError('(root)', 'must be a JSON object');
  let thinker: Json;
  let prefix: string;
  if (isObject(config.thinker_config)) {
    thinker = config.thinker_config;
    prefix = 'thinker.';
  } else if (config.model_type === 'qwen3_omni_moe_thinker' && isObject(config.text_config)) {
    thinker = config; // a thinker-only checkpoint
    prefix = '';
  } else {
    throw configError('thinker_config', 'is missing: expected the config of a Qwen3OmniMoeForConditionalGeneration');
  }
  const text = thinker.text_config;
  if (!isObject(text)) throw configError('thinker_config.text_config', 'is missing');
  const p = 'thinker_config.text_config';
  const hiddenSize = int(text, 'hidden_size', p);
  const numHeads = int(text, 'num_attention_heads', p);
  const numKvHeads = int(text, 'num_key_value_heads', p, { optional: numHeads });
  if (numHeads % numKvHeads !== 0) throw configError(`${p}.num_key_value_heads`, `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const headDim = int(text, 'head_dim', p, { optional: Math.floor(hiddenSize / numHeads) });
  if (headDim % 2 !== 0) throw configError(`${p}.head_dim`, `must be even, got ${headDim}`);
  const numLayers = int(text, 'num_hidden_layers', p);
  const numExperts = int(text, 'num_experts', p, { min: 0, optional: 0 });
  const numExpertsPerTok = numExperts > 0 ? int(text, 'num_experts_per_tok', p) : 0;
  if (numExpertsPerTok > numExperts) throw configError(`${p}.num_experts_per_tok`, `(${numExpertsPerTok}) exceeds num_experts (${numExperts})`);
  const sparseStep = int(text, 'decoder_sparse_step', p, { optional: 1 });
  const mlpOnly = text.mlp_only_layers ?? [];
  if (!Array.isArray(mlpOnly) || !mlpOnly.every((v) => Number.isInteger(v))) throw configError(`${p}.mlp_only_layers`, 'must be a list of layer indices');
  const sparseLayers = Array.from(
    { length: numLayers },
    (_, i) => !(mlpOnly as number[]).includes(i) && numExperts > 0 && (i + 1) % sparseStep === 0,
  );
  const act = text.hidden_act ?? 'silu';
  if (act !== 'silu') throw configError(`${p}.hidden_act`, `must be "silu" (the only activation the engine implements), got ${JSON.stringify(act)}`);
  if (text.attention_bias === true) throw configError(`${p}.attention_bias`, 'is true: attention biases are not supported by the engine');

  // transformers 5 writes rope_parameters; released checkpoints carry rope_scaling + rope_theta.
  const rope = isObject(text.rope_parameters) ? text.rope_parameters : isObject(text.rope_scaling) ? text.rope_scaling : {};
  const ropeType = rope.rope_type ?? rope.type ?? 'default';
  if (ropeType !== 'default') throw configError(`${p}.rope_parameters.rope_type`, `must be "default", got ${JSON.stringify(ropeType)}`);
  const ropeTheta = num(rope, 'rope_theta', `${p}.rope_parameters`, typeof text.rope_theta === 'number' ? text.rope_theta : 1000000);
  const section = rope.mrope_section ?? [24, 20, 20];
  if (!Array.isArray(section) || section.length !== 3 || !section.every((v) => Number.isInteger(v) && (v as number) >= 0)) {
    throw configError(`${p}.rope_parameters.mrope_section`, `must be three non-negative integers, got ${JSON.stringify(section)}`);
  }
  const mropeSection = section as [number, number, number];
  if (mropeSection[0] + mropeSection[1] + mropeSection[2] !== headDim / 2) {
    throw configError(`${p}.rope_parameters.mrope_section`, `[${mropeSection.join(', ')}] must sum to head_dim / 2 = ${headDim / 2}`);
  }
  if (3 * Math.max(mropeSection[1], mropeSection[2]) > headDim / 2) {
    throw configError(`${p}.rope_parameters.mrope_section`, `[${mropeSection.join(', ')}] does not fit the interleaved layout over ${headDim / 2} frequencies`);
  }

  const tokenIds: Record<string, number> = {};
  const camel = (s: string) => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
  for (const src of [config, thinker]) {
    for (const [k, v] of Object.entries(src)) {
      if ((k.endsWith('_token_id') || k.endsWith('_token_index')) && typeof v === 'number' && Number.isInteger(v)) tokenIds[camel(k)] = v;
    }
  }
  const tie = thinker.tie_word_embeddings ?? text.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') throw configError('thinker_config.tie_word_embeddings', `must be true or false, got ${JSON.stringify(tie)}`);

  return {
    prefix,
    vocabSize: int(text, 'vocab_size', p),
    hiddenSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: sparseLayers.every(Boolean) ? int(text, 'intermediate_size', p, { optional: 0, min: 0 }) : int(text, 'intermediate_size', p),
    moeIntermediateSize: numExperts > 0 ? int(text, 'moe_intermediate_size', p) : 0,
    numExperts,
    numExpertsPerTok,
    normTopkProb: bool(text, 'norm_topk_prob', p, true),
    sparseLayers,
    rmsNormEps: num(text, 'rms_norm_eps', p, 1e-6),
    ropeTheta,
    mropeSection,
    maxPositionEmbeddings: int(text, 'max_position_embeddings', p, { optional: 32768 }),
    tieWordEmbeddings: tie,
    tokenIds,
  };
}

interface HeaderEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** Reads one safetensors header: name -> (dtype, shape, absolute byte range). */
export async function readSafetensorsHeader(path: string): Promise<Map<string, { dtype: string; shape: number[]; offset: number; bytes: number }>> {
  let size: number;
  try {
    size = (await stat(path)).size;
  } catch {
    throw new CheckpointError('checkpoint_missing', `checkpoint file ${path} is missing`, path);
  }
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(8);
    if (size < 8 || (await fh.read(head, 0, 8, 0)).bytesRead !== 8) {
      throw new CheckpointError('checkpoint_file_invalid', `${path} is not a safetensors file (shorter than 8 bytes)`, path);
    }
    const n = head.readBigUInt64LE(0);
    if (n > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
      throw new CheckpointError('checkpoint_file_invalid', `${path} is not a safetensors file (header length ${n} past the end or too large)`, path);
    }
    const json = Buffer.alloc(Number(n));
    await fh.read(json, 0, json.length, 8);
    let header: unknown;
    try {
      header = JSON.parse(json.toString('utf8'));
    } catch (err) {
      throw new CheckpointError('checkpoint_file_invalid', `${path}: safetensors header is not JSON (${(err as Error).message})`, path);
    }
    if (!isObject(header)) throw new CheckpointError('checkpoint_file_invalid', `${path}: safetensors header is not an object`, path);
    const base = 8 + Number(n);
    const out = new Map<string, { dtype: string; shape: number[]; offset: number; bytes: number }>();
    for (const [name, v] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const e = v as HeaderEntry;
      const ok =
        isObject(v) &&
        typeof e.dtype === 'string' &&
        Array.isArray(e.shape) &&
        e.shape.every((d) => Number.isSafeInteger(d) && d >= 0) &&
        Array.isArray(e.data_offsets) &&
        e.data_offsets.length === 2 &&
        e.data_offsets.every((d) => Number.isSafeInteger(d) && d >= 0) &&
        e.data_offsets[1] >= e.data_offsets[0] &&
        base + e.data_offsets[1] <= size;
      if (!ok) throw new CheckpointError('checkpoint_file_invalid', `${path}: tensor ${name} has an invalid header entry or lies past the end of the file`, name);
      out.set(name, { dtype: e.dtype, shape: e.shape, offset: base + e.data_offsets[0], bytes: e.data_offsets[1] - e.data_offsets[0] });
    }
    return out;
  } finally {
    await fh.close();
  }
}

/** The shapes the thinker text model needs, keyed by name without the `thinker.` prefix. */
export function expectedTensors(c: ParsedConfig, fusedExperts: (layer: number) => boolean): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const H = c.hiddenSize;
  m.set('model.embed_tokens.weight', [c.vocabSize, H]);
  m.set('model.norm.weight', [H]);
  if (!c.tieWordEmbeddings) m.set('lm_head.weight', [c.vocabSize, H]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    m.set(`${p}self_attn.q_proj.weight`, [c.numHeads * c.headDim, H]);
    m.set(`${p}self_attn.k_proj.weight`, [c.numKvHeads * c.headDim, H]);
    m.set(`${p}self_attn.v_proj.weight`, [c.numKvHeads * c.headDim, H]);
    m.set(`${p}self_attn.o_proj.weight`, [H, c.numHeads * c.headDim]);
    m.set(`${p}self_attn.q_norm.weight`, [c.headDim]);
    m.set(`${p}self_attn.k_norm.weight`, [c.headDim]);
    if (c.sparseLayers[l]) {
      const I = c.moeIntermediateSize;
      m.set(`${p}mlp.gate.weight`, [c.numExperts, H]);
      if (fusedExperts(l)) {
        m.set(`${p}mlp.experts.gate_up_proj`, [c.numExperts, 2 * I, H]);
        m.set(`${p}mlp.experts.down_proj`, [c.numExperts, H, I]);
      } else {
        for (let e = 0; e < c.numExperts; e++) {
          m.set(`${p}mlp.experts.${e}.gate_proj.weight`, [I, H]);
          m.set(`${p}mlp.experts.${e}.up_proj.weight`, [I, H]);
          m.set(`${p}mlp.experts.${e}.down_proj.weight`, [H, I]);
        }
      }
    } else {
      m.set(`${p}mlp.gate_proj.weight`, [c.intermediateSize, H]);
      m.set(`${p}mlp.up_proj.weight`, [c.intermediateSize, H]);
      m.set(`${p}mlp.down_proj.weight`, [H, c.intermediateSize]);
    }
  }
  return m;
}

/** Reads a JSON file of the checkpoint; missing -> checkpoint_missing, invalid -> *_invalid. */
export async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    throw new CheckpointError('checkpoint_missing', `${what} ${path} is missing`, path);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CheckpointError(what === 'config' ? 'checkpoint_config_invalid' : 'checkpoint_file_invalid', `${path} is not valid JSON (${(err as Error).message})`, path);
  }
}

/**
 * Finds each expected tensor (`key` without `prefix`) in the checkpoint's files and checks its
 * dtype, shape and byte size. `expected` may depend on the names present under the prefix (whether
 * experts are stored fused is known only from the headers). Throws CheckpointError.
 */
export async function resolveTensors(
  files: readonly string[],
  prefix: string,
  expected: Iterable<[string, number[]]> | ((present: ReadonlySet<string>) => Iterable<[string, number[]]>),
): Promise<ThinkerTensor[]> {
  const found = new Map<string, { file: number; dtype: string; shape: number[]; offset: number; bytes: number }>();
  for (const [i, f] of files.entries()) {
    for (const [name, t] of await readSafetensorsHeader(f)) if (name.startsWith(prefix)) found.set(name, { file: i, ...t });
  }
  const tensors: ThinkerTensor[] = [];
  for (const [key, shape] of typeof expected === 'function' ? expected(new Set(found.keys())) : expected) {
    const name = prefix + key;
    const t = found.get(name);
    if (!t) throw new CheckpointError('checkpoint_tensor_missing', `checkpoint tensor ${name} is missing (looked in ${files.join(', ')})`, name);
    if (t.dtype !== 'F32' && t.dtype !== 'BF16' && t.dtype !== 'F16') {
      throw new CheckpointError('checkpoint_tensor_dtype', `checkpoint tensor ${name} has dtype ${t.dtype}; the engine reads F32, BF16 or F16`, name);
    }
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new CheckpointError('checkpoint_tensor_shape', `checkpoint tensor ${name} has shape [${t.shape.join(', ')}], the config implies [${shape.join(', ')}]`, name);
    }
    const dtype = t.dtype;
    const expectBytes = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype];
    if (t.bytes !== expectBytes) {
      throw new CheckpointError('checkpoint_file_invalid', `checkpoint tensor ${name}: ${t.bytes} bytes for shape [${shape.join(', ')}] of ${dtype} (expected ${expectBytes})`, name);
    }
    tensors.push({ key, name, file: t.file, dtype, shape, offset: t.offset, bytes: t.bytes });
  }
  return tensors;
}

/** The checkpoint's safetensors files: those the shard index names, else model.safetensors. */
export async function checkpointFiles(root: string): Promise<string[]> {
  const indexPath = join(root, 'model.safetensors.index.json');
  const hasIndex = await stat(indexPath).then(
    () => true,
    () => false,
  );
  if (!hasIndex) return [join(root, 'model.safetensors')];
  const index = await readJson(indexPath, 'shard index');
  if (!isObject(index) || !isObject(index.weight_map)) {
    throw new CheckpointError('checkpoint_file_invalid', `${indexPath}: weight_map is missing`, indexPath);
  }
  const names = new Set<string>();
  for (const v of Object.values(index.weight_map)) {
    if (typeof v !== 'string' || v.includes('/') || v.includes('\\')) {
      throw new CheckpointError('checkpoint_file_invalid', `${indexPath}: weight_map holds an invalid file name ${JSON.stringify(v)}`, indexPath);
    }
    names.add(v);
  }
  return [...names].sort().map((f) => join(root, f));
}

/**
 * Reads config.json and the safetensors headers of a checkpoint directory and returns what the
 * native engine needs to map and check the thinker's text decoder. Throws CheckpointError.
 */
export async function readThinkerCheckpoint(dir: string, options: { threads?: number } = {}): Promise<ThinkerLoadSpec> {
  const root = resolve(dir);
  const config = parseThinkerConfig(await readJson(join(root, 'config.json'), 'config'));

  const files = await checkpointFiles(root);
  const tensors = await resolveTensors(files, config.prefix, (present) =>
    expectedTensors(config, (l) => present.has(`${config.prefix}model.layers.${l}.mlp.experts.gate_up_proj`)),
  );
  const { prefix: _prefix, ...rest } = config;
  return { dir: root, files, ...rest, ...(options.threads !== undefined ? { threads: options.threads } : {}), tensors };
}
