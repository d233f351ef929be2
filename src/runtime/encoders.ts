// The thinker's audio encoder (AuT) and vision encoder of a Qwen3-Omni checkpoint, run natively on
// CPU (native/src/engine/audio_encoder.*, vision_encoder.*). This module reads config.json and the
// safetensors headers into the encoders' load specs (every size from the config, every tensor
// checked against it), loads them, and validates inputs before they reach native code.
//
//   const audio = await AudioEncoder.load(dir);
//   const embeds = await audio.encode(features, frames);           // tokens x outputDim
//   const vision = await VisionEncoder.load(dir);
//   const { embeds, deepstack } = await vision.encode(pixelValues, [[1, 4, 6]]);
//
// Encodes run on the libuv pool (and the encoder's own threads), never on the event loop.
import { join, resolve } from 'node:path';
import { NativeAddonError, nativeAddon } from '../native/addon.js';
import type { NativeAudioEncoder, NativeAudioEncoderSpec, NativeVisionEncoder, NativeVisionEncoderSpec } from '../native/addon.js';
import { CheckpointError, checkpointFiles, configError, isObject, readJson, resolveTensors } from './checkpoint.js';
import type { CheckpointErrorCode, ThinkerTensor } from './checkpoint.js';

export const ENCODER_ERROR_CODES = [
  /** Features are not a Float32Array of numMelBins x frames finite values, or frames is not a positive integer. */
  'encoder_features_invalid',
  /** Pixel values are not whole rows of rowWidth finite floats. */
  'encoder_pixels_invalid',
  /** A grid is not [t, h, w] of positive integers with h and w multiples of the merge size. */
  'encoder_grid_invalid',
  /** The grids cover a different number of patches than there are pixel rows. */
  'encoder_grid_mismatch',
  /** The encoder was closed. */
  'encoder_closed',
  /** Anything else the native encoder reported (out of memory, internal error). */
  'encoder_failed',
] as const;
export type EncoderErrorCode = (typeof ENCODER_ERROR_CODES)[number];

export class EncoderError extends Error {
  constructor(
    readonly code: EncoderErrorCode,
    message: string,
    /** The offending argument: features, frames, pixelValues, grids. */
    readonly param?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'EncoderError';
  }
}

/** Tensor entry of an encoder load spec (same layout as the thinker's). */
export type EncoderTensor = ThinkerTensor;

/** What the native audio encoder maps and checks: the config's sizes and the tensor list. */
export interface AudioEncoderLoadSpec extends NativeAudioEncoderSpec {
  dir: string;
  tensors: EncoderTensor[];
}

/** The same for the vision encoder (deepstack blocks go through merger_list.K, K = list position). */
export interface VisionEncoderLoadSpec extends NativeVisionEncoderSpec {
  dir: string;
  tensors: EncoderTensor[];
}

type Json = Record<string, unknown>;



function int(obj: Json, field: string, path: string, fallback?: number): number {
  const v = obj[field];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw configError(`${path}.${field}`, 'is missing');
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) throw configError(`${path}.${field}`, `must be a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

/** The thinker section of config.json and the prefix of its tensors. */
function thinkerSection(config: unknown): { thinker: Json; prefix: string } {
  if (!isObject(config)) throw configError('(root)', 'must be a JSON object');
  if (isObject(config.thinker_config)) return { thinker: config.thinker_config, prefix: 'thinker.' };
  if (config.model_type === 'qwen3_omni_moe_thinker') return { thinker: config, prefix: '' };
  throw configError('thinker_config', 'is missing: expected the config of a Qwen3OmniMoeForConditionalGeneration');
}


const convLen = (n: number) => Math.floor((n - 1) / 2) + 1;

type AudioSizes = Omit<AudioEncoderLoadSpec, 'dir' | 'files' | 'tensors' | 'threads'>;

/** The audio encoder's sizes from a parsed config.json (thinker_config.audio_config). */
export function parseAudioEncoderConfig(config: unknown): AudioSizes & { prefix: string } {
  const { thinker, prefix } = thinkerSection(config);
  const a = thinker.audio_config;
  const p = 'thinker_config.audio_config';
  if (!isObject(a)) throw configError(p, 'is missing');
  const act = a.activation_function ?? 'gelu';
  if (act !== 'gelu') throw configError(`${p}.activation_function`, `must be "gelu" (the only activation the encoder implements), got ${JSON.stringify(act)}`);
  const sizes: AudioSizes = {
    numMelBins: int(a, 'num_mel_bins', p),
    dModel: int(a, 'd_model', p),
    numLayers: int(a, 'encoder_layers', p),
    numHeads: int(a, 'encoder_attention_heads', p),
    ffnDim: int(a, 'encoder_ffn_dim', p),
    downsampleHiddenSize: int(a, 'downsample_hidden_size', p),
    outputDim: int(a, 'output_dim', p),
    nWindow: int(a, 'n_window', p),
    nWindowInfer: int(a, 'n_window_infer', p),
    maxSourcePositions: int(a, 'max_source_positions', p),
  };
  if (sizes.dModel % sizes.numHeads !== 0) throw configError(`${p}.encoder_attention_heads`, `(${sizes.numHeads}) must divide d_model (${sizes.dModel})`);
  if (sizes.dModel % 2 !== 0 || sizes.dModel < 4) throw configError(`${p}.d_model`, `must be even and at least 4, got ${sizes.dModel}`);
  if (sizes.nWindowInfer < 2 * sizes.nWindow) throw configError(`${p}.n_window_infer`, `(${sizes.nWindowInfer}) must be at least 2 * n_window (${2 * sizes.nWindow})`);
  if (convLen(convLen(convLen(2 * sizes.nWindow))) > sizes.maxSourcePositions) {
    throw configError(`${p}.max_source_positions`, `(${sizes.maxSourcePositions}) is below the tokens of one ${2 * sizes.nWindow}-frame chunk`);
  }
  return { prefix, ...sizes };
}

function audioTensors(c: AudioSizes): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const p = 'audio_tower.';
  const D = c.downsampleHiddenSize;
  const d = c.dModel;
  const linear = (name: string, out: number, inp: number, bias = true) => {
    m.set(`${name}.weight`, [out, inp]);
    if (bias) m.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, n: number) => {
    m.set(`${name}.weight`, [n]);
    m.set(`${name}.bias`, [n]);
  };
  for (let i = 1; i <= 3; i++) {
    m.set(`${p}conv2d${i}.weight`, [D, i === 1 ? 1 : D, 3, 3]);
    m.set(`${p}conv2d${i}.bias`, [D]);
  }
  linear(`${p}conv_out`, d, D * convLen(convLen(convLen(c.numMelBins))), false);
  for (let l = 0; l < c.numLayers; l++) {
    const lp = `${p}layers.${l}.`;
    for (const proj of ['q_proj', 'k_proj', 'v_proj', 'out_proj']) linear(`${lp}self_attn.${proj}`, d, d);
    norm(`${lp}self_attn_layer_norm`, d);
    linear(`${lp}fc1`, c.ffnDim, d);
    linear(`${lp}fc2`, d, c.ffnDim);
    norm(`${lp}final_layer_norm`, d);
  }
  norm(`${p}ln_post`, d);
  linear(`${p}proj1`, d, d);
  linear(`${p}proj2`, c.outputDim, d);
  return m;
}

type VisionSizes = Omit<VisionEncoderLoadSpec, 'dir' | 'files' | 'tensors' | 'threads'>;

/** The vision encoder's sizes from a parsed config.json (thinker_config.vision_config). */
export function parseVisionEncoderConfig(config: unknown): VisionSizes & { prefix: string } {
  const { thinker, prefix } = thinkerSection(config);
  const v = thinker.vision_config;
  const p = 'thinker_config.vision_config';
  if (!isObject(v)) throw configError(p, 'is missing');
  const act = v.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu') throw configError(`${p}.hidden_act`, `must be "gelu_pytorch_tanh" or "gelu", got ${JSON.stringify(act)}`);
  const rope = isObject(v.rope_parameters) ? v.rope_parameters : {};
  const ropeType = rope.rope_type ?? 'axial';
  if (ropeType !== 'axial' && ropeType !== 'default') throw configError(`${p}.rope_parameters.rope_type`, `must be "axial", got ${JSON.stringify(ropeType)}`);
  const theta = rope.rope_theta ?? 10000;
  if (typeof theta !== 'number' || !(theta > 0)) throw configError(`${p}.rope_parameters.rope_theta`, `must be a positive number, got ${JSON.stringify(theta)}`);
  const depth = int(v, 'depth', p);
  const ds = v.deepstack_visual_indexes ?? [];
  if (!Array.isArray(ds) || !ds.every((i) => Number.isInteger(i) && (i as number) >= 0 && (i as number) < depth) || new Set(ds).size !== ds.length) {
    throw configError(`${p}.deepstack_visual_indexes`, `must be distinct block indexes below depth ${depth}, got ${JSON.stringify(ds)}`);
  }
  const sizes: VisionSizes = {
    hiddenSize: int(v, 'hidden_size', p),
    depth,
    numHeads: int(v, 'num_heads', p),
    intermediateSize: int(v, 'intermediate_size', p),
    patchSize: int(v, 'patch_size', p),
    temporalPatchSize: int(v, 'temporal_patch_size', p),
    inChannels: int(v, 'in_channels', p, 3),
    spatialMergeSize: int(v, 'spatial_merge_size', p),
    numPositionEmbeddings: int(v, 'num_position_embeddings', p),
    outHiddenSize: int(v, 'out_hidden_size', p),
    deepstackVisualIndexes: ds as number[],
    ropeTheta: theta,
    hiddenAct: act,
  };
  const headDim = sizes.hiddenSize / sizes.numHeads;
  if (!Number.isInteger(headDim) || headDim % 4 !== 0) throw configError(`${p}.num_heads`, `must split hidden_size (${sizes.hiddenSize}) into heads of a multiple of 4`);
  const side = Math.round(Math.sqrt(sizes.numPositionEmbeddings));
  if (side * side !== sizes.numPositionEmbeddings) throw configError(`${p}.num_position_embeddings`, `must be a square, got ${sizes.numPositionEmbeddings}`);
  return { prefix, ...sizes };
}

function visionTensors(c: VisionSizes): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const p = 'visual.';
  const H = c.hiddenSize;
  const W = H * c.spatialMergeSize ** 2;
  const linear = (name: string, out: number, inp: number) => {
    m.set(`${name}.weight`, [out, inp]);
    m.set(`${name}.bias`, [out]);
  };
  const norm = (name: string, n: number) => {
    m.set(`${name}.weight`, [n]);
    m.set(`${name}.bias`, [n]);
  };
  m.set(`${p}patch_embed.proj.weight`, [H, c.inChannels, c.temporalPatchSize, c.patchSize, c.patchSize]);
  m.set(`${p}patch_embed.proj.bias`, [H]);
  m.set(`${p}pos_embed.weight`, [c.numPositionEmbeddings, H]);
  for (let l = 0; l < c.depth; l++) {
    const bp = `${p}blocks.${l}.`;
    norm(`${bp}norm1`, H);
    norm(`${bp}norm2`, H);
    linear(`${bp}attn.qkv`, 3 * H, H);
    linear(`${bp}attn.proj`, H, H);
    linear(`${bp}mlp.linear_fc1`, c.intermediateSize, H);
    linear(`${bp}mlp.linear_fc2`, H, c.intermediateSize);
  }
  const merger = (mp: string, post: boolean) => {
    norm(`${mp}ln_q`, post ? W : H);
    linear(`${mp}mlp.0`, W, W);
    linear(`${mp}mlp.2`, c.outHiddenSize, W);
  };
  merger(`${p}merger.`, false);
  c.deepstackVisualIndexes.forEach((_, k) => merger(`${p}merger_list.${k}.`, true));
  return m;
}

export interface EncoderLoadOptions {
  /** Threads of the encoder's pool (default: one per core). */
  threads?: number;
}

function threadsOption(options: EncoderLoadOptions): { threads?: number } {
  if (options.threads === undefined) return {};
  if (!Number.isSafeInteger(options.threads) || options.threads < 1) throw configError('threads', `must be a positive integer, got ${options.threads}`);
  return { threads: options.threads };
}

/** Reads config.json and the safetensors headers into the audio encoder's load spec. Throws CheckpointError. */
export async function readAudioEncoderCheckpoint(dir: string, options: EncoderLoadOptions = {}): Promise<AudioEncoderLoadSpec> {
  const root = resolve(dir);
  const { prefix, ...sizes } = parseAudioEncoderConfig(await readJson(join(root, 'config.json'), 'config'));
  const files = await checkpointFiles(root);
  const tensors = await resolveTensors(files, prefix, audioTensors(sizes));
  return { dir: root, files, ...sizes, ...threadsOption(options), tensors };
}

/** Reads config.json and the safetensors headers into the vision encoder's load spec. Throws CheckpointError. */
export async function readVisionEncoderCheckpoint(dir: string, options: EncoderLoadOptions = {}): Promise<VisionEncoderLoadSpec> {
  const root = resolve(dir);
  const { prefix, ...sizes } = parseVisionEncoderConfig(await readJson(join(root, 'config.json'), 'config'));
  const files = await checkpointFiles(root);
  const tensors = await resolveTensors(files, prefix, visionTensors(sizes));
  return { dir: root, files, ...sizes, ...threadsOption(options), tensors };
}

/** Native rejections as CheckpointError / EncoderError. */
function mapNativeError(err: unknown): Error {
  if (err instanceof NativeAddonError) return err; // not built / stale: its own message and code
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && code.startsWith('checkpoint_')) return new CheckpointError(code as CheckpointErrorCode, message);
  if (typeof code === 'string' && (ENCODER_ERROR_CODES as readonly string[]).includes(code)) return new EncoderError(code as EncoderErrorCode, message, undefined, { cause: err });
  return new EncoderError('encoder_failed', message, undefined, { cause: err });
}

async function native<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (err) {
    throw mapNativeError(err);
  }
}

/** Audio tokens the encoder produces for `frames` valid mel frames (chunks of 2 * nWindow frames). */
export function audioTokenCount(frames: number, nWindow = 50): number {
  const chunk = 2 * nWindow;
  const tail = frames % chunk;
  return Math.floor(frames / chunk) * convLen(convLen(convLen(chunk))) + (tail === 0 ? 0 : convLen(convLen(convLen(tail))));
}

export class AudioEncoder {
  private closed = false;

  private constructor(
    private readonly handle: NativeAudioEncoder,
    readonly spec: AudioEncoderLoadSpec,
  ) {}

  /** Loads from a checkpoint directory or a spec from readAudioEncoderCheckpoint. */
  static async load(source: string | AudioEncoderLoadSpec, options: EncoderLoadOptions = {}): Promise<AudioEncoder> {
    const spec = typeof source === 'string' ? await readAudioEncoderCheckpoint(source, options) : source;
    const handle = await native(() => nativeAddon().loadAudioEncoder(spec));
    return new AudioEncoder(handle, spec);
  }

  get numMelBins(): number {
    return this.spec.numMelBins;
  }
  get outputDim(): number {
    return this.spec.outputDim;
  }

  tokenCount(frames: number): number {
    return audioTokenCount(frames, this.spec.nWindow);
  }

  /**
   * Audio embeddings (tokenCount(frames) x outputDim, row-major) of one clip's log-mel features:
   * `features` is numMelBins x frames, mel-major (the reference's `input_features[0]` restricted to
   * the valid frames). The caller may reuse `features` as soon as this returns.
   */
  async encode(features: Float32Array, frames: number): Promise<Float32Array> {
    if (this.closed) throw new EncoderError('encoder_closed', 'the audio encoder is closed');
    if (!(features instanceof Float32Array)) throw new EncoderError('encoder_features_invalid', 'features must be a Float32Array', 'features');
    if (!Number.isSafeInteger(frames) || frames < 1 || frames > 2 ** 31 - 1) {
      throw new EncoderError('encoder_features_invalid', `frames must be a positive integer, got ${frames}`, 'frames');
    }
    const expected = this.spec.numMelBins * frames;
    if (features.length !== expected) {
      throw new EncoderError(
        'encoder_features_invalid',
        `expected ${this.spec.numMelBins} x ${frames} = ${expected} mel values, got ${features.length}`,
        'features',
      );
    }
    return native(() => this.handle.encode(features, frames));
  }

  /** Releases the weights once encodes in flight finish; later encodes reject with encoder_closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}

export type VisionGrid = readonly [number, number, number];

export interface VisionEncoding {
  /** Merger output: tokens x outputDim, tokens = sum(t * h * w) / spatialMergeSize^2. */
  embeds: Float32Array;
  /** One tensor per deepstack block (in block order), each tokens x outputDim. */
  deepstack: Float32Array[];
}

export class VisionEncoder {
  private closed = false;

  private constructor(
    private readonly handle: NativeVisionEncoder,
    readonly spec: VisionEncoderLoadSpec,
  ) {}

  static async load(source: string | VisionEncoderLoadSpec, options: EncoderLoadOptions = {}): Promise<VisionEncoder> {
    const spec = typeof source === 'string' ? await readVisionEncoderCheckpoint(source, options) : source;
    const handle = await native(() => nativeAddon().loadVisionEncoder(spec));
    return new VisionEncoder(handle, spec);
  }

  /** Floats per pixel_values row: inChannels * temporalPatchSize * patchSize^2 (1536). */
  get rowWidth(): number {
    const s = this.spec;
    return s.inChannels * s.temporalPatchSize * s.patchSize * s.patchSize;
  }
  get outputDim(): number {
    return this.spec.outHiddenSize;
  }

  /**
   * Embeddings of images and videos given as the processor's pixel_values rows (rows x rowWidth)
   * and their grids [t, h, w] in patches, in row order. Each frame attends only to itself.
   */
  async encode(pixelValues: Float32Array, grids: readonly VisionGrid[]): Promise<VisionEncoding> {
    if (this.closed) throw new EncoderError('encoder_closed', 'the vision encoder is closed');
    const width = this.rowWidth;
    if (!(pixelValues instanceof Float32Array) || pixelValues.length === 0 || pixelValues.length % width !== 0) {
      throw new EncoderError('encoder_pixels_invalid', `pixelValues must be a Float32Array of whole rows of ${width} floats`, 'pixelValues');
    }
    const merge = this.spec.spatialMergeSize;
    if (!Array.isArray(grids) || grids.length === 0) throw new EncoderError('encoder_grid_invalid', 'grids must be a non-empty array of [t, h, w]', 'grids');
    let patches = 0;
    const list: [number, number, number][] = [];
    for (const [i, g] of grids.entries()) {
      const v: unknown[] = Array.isArray(g) ? (g as unknown[]) : [];
      const ok =
        v.length === 3 &&
        v.every((x) => Number.isSafeInteger(x) && (x as number) >= 1 && (x as number) <= 1 << 20) &&
        (v[1] as number) % merge === 0 &&
        (v[2] as number) % merge === 0;
      if (!ok) {
        throw new EncoderError('encoder_grid_invalid', `grids[${i}] must be [t, h, w] of positive integers with h and w multiples of ${merge}, got ${JSON.stringify(g)}`, 'grids');
      }
      const [t, h, w] = v as [number, number, number];
      list.push([t, h, w]);
      patches += t * h * w;
    }
    const rows = pixelValues.length / width;
    if (patches !== rows) {
      throw new EncoderError('encoder_grid_mismatch', `the grids cover ${patches} patches but pixelValues holds ${rows} rows`, 'grids');
    }
    return native(() => this.handle.encode(pixelValues, list));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }
}
