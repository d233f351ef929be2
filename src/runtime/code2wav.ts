// Qwen3-Omni's code-to-wave decoder (transformers' Qwen3OmniMoeCode2Wav), run natively on CPU
// (native/src/engine/code2wav.*): 16 codec codes per 80 ms frame in, 24 kHz mono samples out.
// This module reads config.json (code2wav_config) and the safetensors headers into the native load
// spec (every size from the config, every tensor checked against it) and validates codes before
// they reach native code.
//
//   const c2w = await Code2Wav.load(dir);
//   const wav = await c2w.render(codes, frames);        // codes: Int32Array frames x 16, frame-major
//   const s = c2w.stream();
//   const a = await s.push(codes1, 3);                  // 1920*3 - 555 samples (real config)
//   const b = await s.push(codes2, 1);                  // 1920 more; a ++ b == render(all frames)
//   await s.flush();                                    // ends the stream
//
// A decode over n frames yields samplesPerFrame * n - tail samples (1920 n - 555 for the released
// model): the decoder's transposed convs need one step of look-ahead, so the last 555 samples of
// a call are not determined. A stream emits every sample its frames determine as soon as they are
// pushed, so joined pushes equal one render over all frames (up to float summation order), and
// unlike chunked_decode (300/25) no samples are lost between chunks. Work runs on the libuv pool
// and the decoder's own threads, never on the event loop.
import { join, resolve } from 'node:path';
import { NativeAddonError, nativeAddon } from '../native/addon.js';
import type { NativeCode2Wav, NativeCode2WavSpec, NativeCode2WavStream } from '../native/addon.js';
import { CheckpointError, checkpointFiles, configError, isObject, readJson, resolveTensors } from './checkpoint.js';
import type { CheckpointErrorCode, ThinkerTensor } from './checkpoint.js';

/** Output sample rate (not stored in config.json; the reference writes its wav at 24 kHz). */
export const CODE2WAV_SAMPLE_RATE = 24000;

export const CODE2WAV_ERROR_CODES = [
  /** codes is not an Int32Array, frames is not a non-negative integer, or codes.length != frames * numQuantizers. */
  'code2wav_codes_invalid',
  /** A code is outside [0, codebookSize). */
  'code2wav_code_out_of_range',
  /** The decoder was closed. */
  'code2wav_closed',
  /** push / flush after flush(). */
  'code2wav_stream_finished',
  /** Anything else the native decoder reported (out of memory, internal error). */
  'code2wav_failed',
] as const;
export type Code2WavErrorCode = (typeof CODE2WAV_ERROR_CODES)[number];

export class Code2WavError extends Error {
  constructor(
    readonly code: Code2WavErrorCode,
    message: string,
    /** The offending argument: codes, frames. */
    readonly param?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'Code2WavError';
  }
}

export interface Code2WavLoadSpec extends NativeCode2WavSpec {
  dir: string;
  tensors: ThinkerTensor[];
}

export interface Code2WavLoadOptions {
  /** Threads of the decoder's pool (default: one per core). */
  threads?: number;
}

type Json = Record<string, unknown>;
type Sizes = Omit<Code2WavLoadSpec, 'dir' | 'files' | 'tensors' | 'threads'>;
const P = 'code2wav_config';



function int(obj: Json, field: string, fallback: number, min = 1): number {
  const v = obj[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw configError(`${P}.${field}`, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
  return v;
}

function num(obj: Json, field: string, fallback: number, path = P): number {
  const v = obj[field] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw configError(`${path}.${field}`, `must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

function intList(obj: Json, field: string, fallback: number[]): number[] {
  const v = obj[field] ?? fallback;
  if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'number' || !Number.isSafeInteger(x) || x < 1)) {
    throw configError(`${P}.${field}`, `must be a non-empty list of positive integers, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

/** code2wav sizes from a parsed config.json (defaults = Qwen3OmniMoeCode2WavConfig's). */
export function parseCode2WavConfig(config: unknown): Sizes & { prefix: string } {
  if (!isObject(config)) throw configError('(root)', 'must be a JSON object');
  let c: Json;
  let prefix: string;
  if (isObject(config.code2wav_config)) {
    c = config.code2wav_config;
    prefix = 'code2wav.';
  } else if (config.upsample_rates !== undefined && config.codebook_size !== undefined) {
    c = config;
    prefix = '';
  } else {
    throw configError(P, 'is missing: expected the config of a Qwen3OmniMoeForConditionalGeneration with audio output');
  }
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') throw configError(`${P}.hidden_act`, `must be "silu" (the only activation implemented), got ${JSON.stringify(act)}`);
  const rope = isObject(c.rope_parameters) ? c.rope_parameters : {};
  const ropeType = rope.rope_type ?? 'default';
  if (ropeType !== 'default') throw configError(`${P}.rope_parameters.rope_type`, `must be "default", got ${JSON.stringify(ropeType)}`);
  const theta = rope.rope_theta ?? c.rope_theta ?? 10000;
  if (typeof theta !== 'number' || !(theta > 0)) throw configError(`${P}.rope_parameters.rope_theta`, `must be a positive number, got ${JSON.stringify(theta)}`);
  const hiddenSize = int(c, 'hidden_size', 1024);
  const numHeads = int(c, 'num_attention_heads', 16);
  const numKvHeads = int(c, 'num_key_value_heads', 16);
  if (c.head_dim === undefined && hiddenSize % numHeads !== 0) throw configError(`${P}.num_attention_heads`, `(${numHeads}) must divide hidden_size (${hiddenSize})`);
  const headDim = int(c, 'head_dim', Math.floor(hiddenSize / numHeads));
  if (headDim % 2 !== 0) throw configError(`${P}.head_dim`, `must be even, got ${headDim}`);
  if (numHeads % numKvHeads !== 0) throw configError(`${P}.num_key_value_heads`, `(${numKvHeads}) must divide num_attention_heads (${numHeads})`);
  const upsampleRates = intList(c, 'upsample_rates', [8, 5, 4, 3]);
  const decoderDim = int(c, 'decoder_dim', 1536);
  if (decoderDim % 2 ** upsampleRates.length !== 0) throw configError(`${P}.decoder_dim`, `(${decoderDim}) must be divisible by 2^${upsampleRates.length}`);
  const bias = c.attention_bias ?? false;
  if (typeof bias !== 'boolean') throw configError(`${P}.attention_bias`, 'must be a boolean');
  return {
    prefix,
    codebookSize: int(c, 'codebook_size', 2048),
    numQuantizers: int(c, 'num_quantizers', 16),
    hiddenSize,
    numLayers: int(c, 'num_hidden_layers', 8, 0),
    numHeads,
    numKvHeads,
    headDim,
    intermediateSize: int(c, 'intermediate_size', 3072),
    slidingWindow: int(c, 'sliding_window', 72),
    decoderDim,
    ropeTheta: theta,
    rmsNormEps: num(c, 'rms_norm_eps', 1e-5),
    attentionBias: bias,
    upsamplingRatios: intList(c, 'upsampling_ratios', [2, 2]),
    upsampleRates,
  };
}

/** Every tensor code2wav reads (names without the `code2wav.` prefix) with the shape the config implies. */
export function code2WavTensors(c: Sizes): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const H = c.hiddenSize;
  const qd = c.numHeads * c.headDim;
  const kvd = c.numKvHeads * c.headDim;
  const linear = (name: string, out: number, inp: number, bias: boolean) => {
    m.set(`${name}.weight`, [out, inp]);
    if (bias) m.set(`${name}.bias`, [out]);
  };
  m.set('code_embedding.weight', [c.codebookSize * c.numQuantizers, H]);
  for (let l = 0; l < c.numLayers; l++) {
    const p = `pre_transformer.layers.${l}.`;
    linear(`${p}self_attn.q_proj`, qd, H, c.attentionBias);
    linear(`${p}self_attn.k_proj`, kvd, H, c.attentionBias);
    linear(`${p}self_attn.v_proj`, kvd, H, c.attentionBias);
    linear(`${p}self_attn.o_proj`, H, qd, c.attentionBias);
    linear(`${p}mlp.gate_proj`, c.intermediateSize, H, false);
    linear(`${p}mlp.up_proj`, c.intermediateSize, H, false);
    linear(`${p}mlp.down_proj`, H, c.intermediateSize, false);
    for (const n of ['input_layernorm.weight', 'post_attention_layernorm.weight', 'self_attn_layer_scale.scale', 'mlp_layer_scale.scale']) m.set(p + n, [H]);
  }
  m.set('pre_transformer.norm.weight', [H]);
  c.upsamplingRatios.forEach((r, i) => {
    const p = `upsample.${i}.`;
    m.set(`${p}0.conv.weight`, [H, H, r]);
    m.set(`${p}0.conv.bias`, [H]);
    m.set(`${p}1.dwconv.conv.weight`, [H, 1, 7]);
    m.set(`${p}1.dwconv.conv.bias`, [H]);
    m.set(`${p}1.norm.weight`, [H]);
    m.set(`${p}1.norm.bias`, [H]);
    linear(`${p}1.pwconv1`, 4 * H, H, true);
    linear(`${p}1.pwconv2`, H, 4 * H, true);
    m.set(`${p}1.gamma`, [H]);
  });
  m.set('decoder.0.conv.weight', [c.decoderDim, H, 7]);
  m.set('decoder.0.conv.bias', [c.decoderDim]);
  c.upsampleRates.forEach((r, b) => {
    const p = `decoder.${b + 1}.block.`;
    const inDim = c.decoderDim / 2 ** b;
    const out = inDim / 2;
    m.set(`${p}0.alpha`, [inDim]);
    m.set(`${p}0.beta`, [inDim]);
    m.set(`${p}1.conv.weight`, [inDim, out, 2 * r]);
    m.set(`${p}1.conv.bias`, [out]);
    for (let u = 0; u < 3; u++) {
      const up = `${p}${2 + u}.`;
      for (const a of ['act1', 'act2']) {
        m.set(`${up}${a}.alpha`, [out]);
        m.set(`${up}${a}.beta`, [out]);
      }
      m.set(`${up}conv1.conv.weight`, [out, out, 7]);
      m.set(`${up}conv1.conv.bias`, [out]);
      m.set(`${up}conv2.conv.weight`, [out, out, 1]);
      m.set(`${up}conv2.conv.bias`, [out]);
    }
  });
  const nb = c.upsampleRates.length;
  const od = c.decoderDim / 2 ** nb;
  m.set(`decoder.${nb + 1}.alpha`, [od]);
  m.set(`decoder.${nb + 1}.beta`, [od]);
  m.set(`decoder.${nb + 2}.conv.weight`, [1, od, 7]);
  m.set(`decoder.${nb + 2}.conv.bias`, [1]);
  return m;
}


/** Reads config.json and the safetensors headers into code2wav's load spec. Throws CheckpointError. */
export async function readCode2WavCheckpoint(dir: string, options: Code2WavLoadOptions = {}): Promise<Code2WavLoadSpec> {
  const root = resolve(dir);
  const { prefix, ...sizes } = parseCode2WavConfig(await readJson(join(root, 'config.json'), 'config'));
  if (options.threads !== undefined && (!Number.isSafeInteger(options.threads) || options.threads < 1)) {
    throw configError('threads', `must be a positive integer, got ${options.threads}`);
  }
  const files = await checkpointFiles(root);
  const tensors = await resolveTensors(files, prefix, code2WavTensors(sizes));
  return { dir: root, files, ...sizes, ...(options.threads === undefined ? {} : { threads: options.threads }), tensors };
}

function mapNativeError(err: unknown): Error {
  if (err instanceof NativeAddonError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : String(err);
  if (typeof code === 'string' && code.startsWith('checkpoint_')) return new CheckpointError(code as CheckpointErrorCode, message);
  if (typeof code === 'string' && (CODE2WAV_ERROR_CODES as readonly string[]).includes(code)) return new Code2WavError(code as Code2WavErrorCode, message, undefined, { cause: err });
  return new Code2WavError('code2wav_failed', message, undefined, { cause: err });
}

async function native<T>(p: () => T | Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (err) {
    throw mapNativeError(err);
  }
}

/** Checks codes (frames x numQuantizers, frame-major) and returns the frame count. */
function checkCodes(codes: unknown, frames: number | undefined, q: number, codebook: number): number {
  if (!(codes instanceof Int32Array)) throw new Code2WavError('code2wav_codes_invalid', 'codes must be an Int32Array of frames x numQuantizers (frame-major)', 'codes');
  const n = frames ?? codes.length / q;
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new Code2WavError('code2wav_codes_invalid', frames === undefined ? `codes.length (${codes.length}) is not a multiple of numQuantizers (${q})` : `frames must be a non-negative integer, got ${frames}`, frames === undefined ? 'codes' : 'frames');
  }
  if (codes.length !== n * q) throw new Code2WavError('code2wav_codes_invalid', `expected ${n} x ${q} = ${n * q} codes, got ${codes.length}`, 'codes');
  for (let i = 0; i < codes.length; i++) {
    const v = codes[i] as number;
    if (v < 0 || v >= codebook) {
      throw new Code2WavError('code2wav_code_out_of_range', `code ${v} at frame ${Math.floor(i / q)}, codebook ${i % q} is outside [0, ${codebook})`, 'codes');
    }
  }
  return n;
}

export class Code2WavStream {
  private finished = false;
  private frameCount = 0;
  private sampleTotal = 0;

  /** @internal */
  constructor(
    private readonly owner: Code2Wav,
    private readonly handle: NativeCode2WavStream,
  ) {}

  /** Frames pushed so far. */
  get frames(): number {
    return this.frameCount;
  }

  /** Samples emitted so far (sampleCount(frames) once the pushes have resolved). */
  get samples(): number {
    return this.sampleTotal;
  }

  /** Decodes the next frames; resolves with the samples they complete (pushes apply in call order). */
  async push(codes: Int32Array, frames?: number): Promise<Float32Array> {
    this.check();
    const n = checkCodes(codes, frames, this.owner.numQuantizers, this.owner.codebookSize);
    this.frameCount += n;
    const out = await native(() => this.handle.push(codes, n));
    this.sampleTotal += out.length;
    return out;
  }

  /** Ends the stream once the earlier pushes are done. Every determined sample was already emitted: resolves empty. */
  async flush(): Promise<Float32Array> {
    this.check();
    this.finished = true;
    return native(() => this.handle.flush());
  }

  private check(): void {
    if (this.finished) throw new Code2WavError('code2wav_stream_finished', 'the stream was flushed; start a new one');
    this.owner.assertOpen();
  }
}

export class Code2Wav {
  private closed = false;

  private constructor(
    private readonly handle: NativeCode2Wav,
    readonly spec: Code2WavLoadSpec,
  ) {}

  /** Loads from a checkpoint directory or a spec from readCode2WavCheckpoint. */
  static async load(source: string | Code2WavLoadSpec, options: Code2WavLoadOptions = {}): Promise<Code2Wav> {
    const spec = typeof source === 'string' ? await readCode2WavCheckpoint(source, options) : source;
    const handle = await native(() => nativeAddon().loadCode2Wav(spec));
    return new Code2Wav(handle, spec);
  }

  get numQuantizers(): number {
    return this.spec.numQuantizers;
  }
  get codebookSize(): number {
    return this.spec.codebookSize;
  }
  /** Samples per frame (1920 = 80 ms at 24 kHz for the released model). */
  get samplesPerFrame(): number {
    return this.handle.samplesPerFrame;
  }
  get sampleRate(): number {
    return CODE2WAV_SAMPLE_RATE;
  }
  get threads(): number {
    return this.handle.threads;
  }

  /** Samples of one decode over `frames` frames: samplesPerFrame * frames - tail (0 for 0 frames). */
  sampleCount(frames: number): number {
    if (!Number.isSafeInteger(frames) || frames < 0) throw new Code2WavError('code2wav_codes_invalid', `frames must be a non-negative integer, got ${frames}`, 'frames');
    if (frames === 0) return 0;
    const r = this.spec.upsamplingRatios.reduce((a, b) => a * b, 1);
    let len = frames * r;
    for (const rate of this.spec.upsampleRates) len = Math.max(0, len - 1) * rate;
    return len;
  }

  /** One decode of codes (frames x numQuantizers, frame-major); frames defaults to codes.length / numQuantizers. */
  async render(codes: Int32Array, frames?: number): Promise<Float32Array> {
    this.assertOpen();
    const n = checkCodes(codes, frames, this.numQuantizers, this.codebookSize);
    return native(() => this.handle.render(codes, n));
  }

  /** A causal stream: push frames as they arrive, get the samples they complete. */
  stream(): Code2WavStream {
    this.assertOpen();
    return new Code2WavStream(this, this.handle.stream());
  }

  /** Drops the weights; decodes already queued finish first. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
  }

  /** @internal */
  assertOpen(): void {
    if (this.closed) throw new Code2WavError('code2wav_closed', 'the code2wav decoder is closed');
  }
}
