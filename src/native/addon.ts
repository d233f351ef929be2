// The one loader of the C++ addon (native/). Everything that calls native code goes through
// `nativeAddon()`, so a missing or stale build fails in one place with one clear message.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ThinkerLoadSpec } from '../runtime/checkpoint.js';
import type { CodePredictorLoadSpec, TalkerLoadSpec } from '../runtime/talker.js';

/** Bumped in native/src/addon.cc whenever the binding surface changes. */
export const NATIVE_ABI_VERSION = 10;

export interface NativeAddon {
  pcm16leToFloat32(bytes: Uint8Array): Float32Array;
  float32ToPcm16le(samples: Float32Array): Buffer;
  mulawEncode(samples: Int16Array): Buffer;
  mulawDecode(bytes: Uint8Array): Int16Array;
  alawEncode(samples: Int16Array): Buffer;
  alawDecode(bytes: Uint8Array): Int16Array;
  /** Log-mel features on the libuv pool; rejects with `code` set (audio_too_short, audio_invalid_samples). */
  logMel(samples: Float32Array, threads?: number): Promise<NativeMelResult>;
  /** The same on the calling thread: for benchmarks and clips of a few hundred milliseconds. */
  logMelSync(samples: Float32Array, threads?: number): NativeMelResult;
  /** The float32 mel filter bank, 201 x 128, bin-major. */
  melFilterBank(): Float32Array;
  MelStream: new (maxSamples: number) => NativeMelStream;
  /** Streaming polyphase resampler; throws RangeError with `code` resample_rate_invalid. */
  Resampler: new (inputRate: number, outputRate: number) => NativeResampler;
  /**
   * Bicubic antialiased resize of 8-bit RGB to outH x outW (multiples of 32), normalised and
   * patchified into Qwen3-Omni `pixel_values` rows, on the libuv pool; rejects with `code`
   * image_option_invalid. `rgb` must stay untouched until the promise settles. Large images are
   * split by rows over up to `threads` threads (default 1; identical output for any count).
   */
  imageToPatches(rgb: Uint8Array, width: number, height: number, outH: number, outW: number, threads?: number): Promise<NativeImagePatches>;
  /**
   * `imageToPatches` of a JPEG file: libjpeg-turbo decode, EXIF `orientation` (1-8) and the rest in
   * one libuv job. `width` x `height` is the upright size read from the header (outH x outW planned
   * for it); the frame is refused over `maxPixels`. Resolves null when the decoder declines the
   * file (not a plain 8-bit YCbCr/grey JPEG, any libjpeg warning or error, a size other than
   * planned, or an addon built without libjpeg): the caller then takes the general decoder.
   */
  jpegToPatches(
    jpeg: Uint8Array,
    orientation: number,
    width: number,
    height: number,
    outH: number,
    outW: number,
    maxPixels: number,
    threads?: number,
  ): Promise<NativeImagePatches | null>;
  /**
   * One temporal step of a video: `first` fills temporal slot 0, `second` slot 1 (null repeats
   * `first`, the image case); bf16 returns bfloat16 bits. Rejects with image_option_invalid.
   */
  temporalPatches(
    first: Uint8Array,
    second: Uint8Array | null,
    width: number,
    height: number,
    outH: number,
    outW: number,
    threads: number,
    bf16: boolean,
  ): Promise<{ pixelValues: Float32Array | Uint16Array; gridT: number; gridH: number; gridW: number }>;
  /** Packed I420 (BT.601 limited range) -> 8-bit RGB on the libuv pool; rejects with frame_invalid. */
  i420ToRgb(i420: Uint8Array, width: number, height: number): Promise<Uint8Array>;
  /** CMYK -> RGB as Pillow's convert("RGB") computes it (no ICC), on the libuv pool. */
  cmykToRgb(cmyk: Uint8Array): Promise<Uint8Array>;
  /** RGBA over a white background -> RGB, rounded as Pillow's paste(mask=alpha), on the libuv pool. */
  compositeOnWhite(rgba: Uint8Array): Promise<Uint8Array>;
  /** The resized 8-bit RGB alone (the reference's uint8 intermediate), on the calling thread. */
  imageResizeSync(rgb: Uint8Array, width: number, height: number, outH: number, outW: number): Uint8Array;
  /**
   * Maps a checkpoint (spec from `readThinkerCheckpoint`) and checks every tensor against the
   * config, on the libuv pool. Rejects with code checkpoint_missing, checkpoint_io,
   * checkpoint_tensor_missing, checkpoint_tensor_shape, checkpoint_file_invalid or
   * checkpoint_config_invalid.
   */
  loadThinker(spec: ThinkerLoadSpec): Promise<NativeThinker>;
  /** Kernel family the thinker engine uses on this CPU: 'avx2+fma' or 'portable'. */
  readonly thinkerKernelLevel: string;
  /**
   * Detaches an output the addon made (log-mel features, patches, logits): it and every view of
   * its buffer become empty, V8 stops counting its bytes, and the buffer is reused by the next
   * output. False (nothing changed) for any other buffer or one already recycled.
   */
  recycle(output: ArrayBufferView | ArrayBuffer): boolean;
  readonly simdLevel: 'avx2' | 'sse2' | 'neon' | 'scalar';
  readonly abiVersion: number;
}

/** One step of `NativeThinker.decodeBatch`. */
export interface NativeThinkerStep {
  session: NativeThinkerSession;
  token: number;
  /** Rotary positions t, h, w of the new token (the same value thrice for generated text). */
  position: [number, number, number];
}

/**
 * The thinker's MoE text decoder of a loaded checkpoint. Compute runs off the event loop; one
 * forward pass at a time per thinker (on its own threads), so concurrent sessions share it by
 * taking turns, or together through decodeBatch. Errors carry `code`: thinker_closed,
 * thinker_input_invalid, token_id_invalid, thinker_context_full, session_busy, session_released.
 */
export interface NativeThinker {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  /** Threads of the engine's pool (including the libuv thread that runs a step). */
  readonly threads: number;
  /** A session with an empty KV cache holding up to `maxLength` positions. */
  newSession(maxLength: number): NativeThinkerSession;
  /**
   * One decode step for several sessions together (continuous batching); logits (vocabSize
   * floats) per step, in order. Each session's result is bit-identical to its own `decode`.
   * A session may appear once; every session must be idle (else session_busy, nothing runs).
   */
  decodeBatch(steps: NativeThinkerStep[]): Promise<Float32Array[]>;
  /** Token embeddings, ids.length x hiddenSize (for assembling media prompts). */
  embed(ids: Int32Array): Float32Array;
  /** Frees the weights once work in flight ends; later calls on it or its sessions fail with thinker_closed. */
  close(): void;
}

export interface NativeThinkerChunk {
  ids: Int32Array;
  /** 3 x n float32, row-major: all t, then all h, then all w. */
  positions: Float32Array;
  /** Rows (indices.length x hiddenSize) that replace the token embeddings at the given chunk indices. */
  media?: { indices: Int32Array; embeds: Float32Array };
  /** DeepStack: layers[l] (indices.length x hiddenSize) is added to the hidden state after decoder layer l. */
  deepstack?: { indices: Int32Array; layers: Float32Array[] };
}

/** A chunk whose hidden_states[layer] (transformers' numbering: 0 = embeddings, l = after decoder layer l - 1, before its DeepStack addition) are kept for the given chunk rows. */
export interface NativeThinkerCaptureChunk extends NativeThinkerChunk {
  capture: { layer: number; indices: Int32Array };
}

export interface NativeThinkerSession {
  /** Positions held in the KV cache. */
  readonly length: number;
  readonly maxLength: number;
  /** Appends a chunk; resolves with the logits (vocabSize floats) of its last position. */
  /** The same, also resolving the captured rows (indices.length x hiddenSize) (talker prompts). */
  prefill(chunk: NativeThinkerCaptureChunk): Promise<{ logits: Float32Array; captured: Float32Array }>;
  prefill(chunk: NativeThinkerChunk): Promise<Float32Array>;
  decode(token: number, position: [number, number, number]): Promise<Float32Array>;
  /** Drops the KV entries from `length` on (0 <= length <= this.length). Throws session_busy while a call runs. */
  truncate(length: number): void;
  /** Frees the KV cache; later calls fail with session_released. */
  release(): void;
}

export interface NativeMelResult {
  /** 128 x frames, mel-major (the reference's `input_features[0]`). */
  features: Float32Array;
  frames: number;
  /** Largest raw log10-mel value of the clip (before the floor at max - 8). */
  clipMax: number;
}

export interface NativeImagePatches {
  /** gridT * gridH * gridW rows of 1536 floats. */
  pixelValues: Float32Array;
  gridT: number;
  gridH: number;
  gridW: number;
}

export interface NativeMelStream {
  /** Append samples; returns the number of frames computed so far. */
  push(samples: Float32Array): number;
  /** Features of everything pushed: identical to logMel over the same samples. */
  finish(): NativeMelResult;
  reset(): void;
  readonly samples: number;
  readonly frames: number;
}

export interface NativeResampler {
  /** Outputs whose look-ahead has arrived; bit-identical for any split of the input. */
  process(samples: Float32Array): Float32Array;
  /**
   * `process` into the start of `out` (reused by the caller); returns how many samples it wrote.
   * Throws RangeError `resample_output_too_small` (consuming nothing) when `out` cannot hold them.
   */
  processInto(samples: Float32Array, out: Float32Array): number;
  /** The zero-padded tail (total output is ceil(N * out / in)); the stream then restarts at time 0. */
  flush(): Float32Array;
  reset(): void;
  readonly inputRate: number;
  readonly outputRate: number;
  /** Input samples of look-ahead held back before the output aligned with them is emitted. */
  readonly delaySamples: number;
  /** Taps per output sample (0 for equal rates). */
  readonly filterLength: number;
}

// ---- thinker audio / vision encoders (native/src/encoder_binding.cc) ----------------------------
// A second declaration of NativeAddon: TypeScript merges it with the one above. Specs come from
// src/runtime/encoders.ts (readAudioEncoderCheckpoint / readVisionEncoderCheckpoint).
export interface NativeAddon {
  /** Maps the checkpoint and loads the audio encoder on the libuv pool; rejects with checkpoint_* codes. */
  loadAudioEncoder(spec: NativeAudioEncoderSpec): Promise<NativeAudioEncoder>;
  /** The same for the vision encoder. */
  loadVisionEncoder(spec: NativeVisionEncoderSpec): Promise<NativeVisionEncoder>;
}

export interface NativeEncoderSpecBase {
  files: string[];
  tensors: { key: string; name: string; file: number; dtype: 'F32' | 'BF16' | 'F16'; shape: number[]; offset: number; bytes: number }[];
  /** Threads of the encoder's pool (default: one per core). */
  threads?: number;
}

export interface NativeAudioEncoderSpec extends NativeEncoderSpecBase {
  numMelBins: number;
  dModel: number;
  numLayers: number;
  numHeads: number;
  ffnDim: number;
  downsampleHiddenSize: number;
  outputDim: number;
  nWindow: number;
  nWindowInfer: number;
  maxSourcePositions: number;
}

export interface NativeVisionEncoderSpec extends NativeEncoderSpecBase {
  hiddenSize: number;
  depth: number;
  numHeads: number;
  intermediateSize: number;
  patchSize: number;
  temporalPatchSize: number;
  inChannels: number;
  spatialMergeSize: number;
  numPositionEmbeddings: number;
  outHiddenSize: number;
  deepstackVisualIndexes: number[];
  ropeTheta: number;
  hiddenAct: 'gelu_pytorch_tanh' | 'gelu';
}

export interface NativeAudioEncoder {
  readonly outputDim: number;
  readonly numMelBins: number;
  readonly threads: number;
  /** features: numMelBins x frames, mel-major; resolves tokens x outputDim. Rejects encoder_features_invalid, encoder_closed. */
  encode(features: Float32Array, frames: number): Promise<Float32Array>;
  tokenCount(frames: number): number;
  /** Drops the weights once encodes in flight finish. */
  close(): void;
}

export interface NativeVisionEncoder {
  readonly rowWidth: number;
  readonly outputDim: number;
  readonly spatialMergeSize: number;
  readonly deepstackCount: number;
  readonly threads: number;
  /** Rejects encoder_pixels_invalid, encoder_grid_invalid, encoder_grid_mismatch, encoder_closed. */
  encode(pixelValues: Float32Array, grids: [number, number, number][]): Promise<{ embeds: Float32Array; deepstack: Float32Array[] }>;
  close(): void;
}

// ---- talker / code predictor (native/src/engine_binding.cc) -------------------------------------
// The thinker's decoder driven by caller-built embeddings. Specs from src/runtime/talker.ts.
export interface NativeAddon {
  /** Maps the checkpoint and loads the talker on the libuv pool; rejects with checkpoint_* codes. */
  loadTalker(spec: TalkerLoadSpec): Promise<NativeTalker>;
  /** The same for the code predictor. */
  loadCodePredictor(spec: CodePredictorLoadSpec): Promise<NativeCodePredictor>;
}

/** Logits of the last row (codec_head, vocabSize floats, raw) and its final-normed hidden state. */
export interface NativeTalkerOutput {
  logits: Float32Array;
  hidden: Float32Array;
}

export interface NativeDecoderEmbedChunk {
  /** rows x hiddenSize input embeddings (every row). */
  embeds: Float32Array;
  /** 3 x rows float32: all t, then all h, then all w (1-D rotary: the same row thrice). */
  positions: Float32Array;
  /** Output head (code predictor: lm_head.{head}); default 0. */
  head?: number;
}

/**
 * The talker: errors carry `code` thinker_closed, thinker_input_invalid, thinker_context_full,
 * session_busy, session_released (the thinker engine's codes).
 */
export interface NativeTalker {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly threads: number;
  newSession(maxLength: number): NativeTalkerSession;
  /** talker.model.codec_embedding rows, ids.length x hiddenSize. */
  embed(ids: Int32Array): Float32Array;
  /**
   * Projection MLP `which` of spec.projectionTensors (0 text_projection, 1 hidden_projection) over
   * rows of projectionInputSize floats (thinker hidden) -> rows x hiddenSize, on the libuv pool.
   */
  project(rows: Float32Array, which: number): Promise<Float32Array>;
  close(): void;
}

export interface NativeTalkerSession {
  readonly length: number;
  readonly maxLength: number;
  prefill(chunk: NativeDecoderEmbedChunk): Promise<NativeTalkerOutput>;
  /** One step from an input embedding row (hiddenSize floats) at rotary position [t, h, w]. */
  decode(embed: Float32Array, position: [number, number, number]): Promise<NativeTalkerOutput>;
  truncate(length: number): void;
  release(): void;
}

export interface NativeCodePredictor {
  readonly vocabSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly threads: number;
  /** Heads (lm_head.{g}): numCodeGroups - 1. */
  readonly numHeads: number;
  /**
   * Greedy residual codes of one frame: prefill rows (n x hiddenSize, typically [talker hidden,
   * talker codec_embedding(code0)]) at positions 0..n-1, then code g+1 = argmax(lm_head.{g}) and
   * step g feeds codec_embedding.{g-1}(code g) at position n+g-1. Resolves codes (numHeads, groups
   * 1..numHeads) and their raw logits (numHeads x vocabSize).
   */
  generate(prefill: Float32Array): Promise<{ codes: Int32Array; logits: Float32Array }>;
  /** code_predictor.model.codec_embedding.{table} rows. */
  embed(ids: Int32Array, table?: number): Float32Array;
  newSession(maxLength: number): NativeCodePredictorSession;
  close(): void;
}

export interface NativeCodePredictorSession {
  readonly length: number;
  readonly maxLength: number;
  prefill(chunk: NativeDecoderEmbedChunk): Promise<Float32Array>;
  decode(embed: Float32Array, position: [number, number, number], head?: number): Promise<Float32Array>;
  truncate(length: number): void;
  release(): void;
}

// ---- code2wav (native/src/code2wav_binding.cc) ---------------------------------------------------
// Codec codes (frames x numQuantizers, frame-major) to a 24 kHz waveform. Specs from
// src/runtime/code2wav.ts (readCode2WavCheckpoint).
export interface NativeAddon {
  /** Maps the checkpoint and loads code2wav on the libuv pool; rejects with checkpoint_* codes. */
  loadCode2Wav(spec: NativeCode2WavSpec): Promise<NativeCode2Wav>;
}

export interface NativeCode2WavSpec extends NativeEncoderSpecBase {
  codebookSize: number;
  numQuantizers: number;
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  intermediateSize: number;
  slidingWindow: number;
  decoderDim: number;
  ropeTheta: number;
  rmsNormEps: number;
  attentionBias: boolean;
  upsamplingRatios: number[];
  upsampleRates: number[];
}

export interface NativeCode2Wav {
  readonly samplesPerFrame: number;
  readonly numQuantizers: number;
  readonly codebookSize: number;
  readonly threads: number;
  /** One decode: samplesPerFrame * frames - tail samples (clamped to [-1, 1]). */
  render(codes: Int32Array, frames: number): Promise<Float32Array>;
  /** A causal stream; its pushes run in call order. */
  stream(): NativeCode2WavStream;
  sampleCount(frames: number): number;
  close(): void;
}

export interface NativeCode2WavStream {
  /** The samples the frames pushed so far complete (joined == render of all frames). */
  push(codes: Int32Array, frames: number): Promise<Float32Array>;
  /** Ends the stream after the pushes before it; resolves with the samples still owed (none). */
  flush(): Promise<Float32Array>;
}

export class NativeAddonError extends Error {
  readonly code = 'OMNI_NATIVE_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NativeAddonError';
  }
}

// src/native/ and dist/native/ both sit two levels below the package root.
const packageRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NATIVE_ADDON_PATH = join(packageRoot, 'native', 'build', 'Release', 'omni_native.node');

let loaded: NativeAddon | undefined;

export function nativeAddon(): NativeAddon {
  if (loaded) return loaded;
  const path = process.env.OMNI_NATIVE_ADDON || NATIVE_ADDON_PATH;
  const howToBuild =
    'build it with `npm install` (or `npm run build`), which needs python3, make and a C++17 compiler';
  if (!existsSync(path)) {
    throw new NativeAddonError(`the native addon is not built: ${path} is missing; ${howToBuild}`);
  }
  let addon: NativeAddon;
  try {
    addon = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (cause) {
    throw new NativeAddonError(
      `the native addon at ${path} failed to load (${(cause as Error).message}); rebuild it: ${howToBuild}`,
      { cause },
    );
  }
  if (addon.abiVersion !== NATIVE_ABI_VERSION) {
    throw new NativeAddonError(
      `the native addon at ${path} is stale (binding version ${addon.abiVersion}, expected ${NATIVE_ABI_VERSION}); ${howToBuild}`,
    );
  }
  loaded = addon;
  return addon;
}

export type NativeStatus = { loaded: true; simdLevel: string } | { loaded: false; error: string };

export function nativeStatus(): NativeStatus {
  try {
    return { loaded: true, simdLevel: nativeAddon().simdLevel };
  } catch (err) {
    return { loaded: false, error: (err as Error).message };
  }
}
