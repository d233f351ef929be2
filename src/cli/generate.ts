// `omni-gateway generate`: one reply from a checkpoint for a conversation file (built exactly as
// `preprocess` builds it) or for a model-input safetensors file (what `preprocess` writes, or the
// reference processor's output). Streams the reply text to stdout; --json prints one object at
// the end with ids, text and timings. Greedy runs are deterministic across runs and thread counts.
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { PATCH_ROW_FLOATS } from '../codecs/image/smart_resize.js';
import { decodeSafetensors, type Tensor } from '../codecs/safetensors.js';
import { QwenTokenizer, StreamDetokenizer } from '../codecs/text/tokenizer.js';
import { THINKING_STOP_TEXT } from '../fusion/budget.js';
import { NativeEngine, type ChunkMedia, type ModelChunk } from '../runtime/native_engine.js';
import type { SamplingParams } from '../runtime/sampling.js';
import { ConversationError, parseConversation, prepareModelInput, videoSteps } from './preprocess.js';

export interface GenerateCommand {
  model: string;
  input: string;
  maxTokens: number;
  sampling: SamplingParams;
  thinking?: boolean;
  thinkingBudget?: number;
  voice?: string;
  speechOut?: string;
  json: boolean;
  threads?: number;
  useAudioInVideo?: boolean;
  fps?: number;
  videoGridFps?: number;
}

/** A conversation or model input the model cannot take; exit code 2 like other usage errors. */
export class GenerateInputError extends ConversationError {}

function tensorValues(t: Tensor): number[] {
  const b = new Uint8Array(t.data).buffer;
  switch (t.dtype) {
    case 'I64':
      return Array.from(new BigInt64Array(b), Number);
    case 'I32':
      return Array.from(new Int32Array(b));
    case 'F32':
      return Array.from(new Float32Array(b));
    default:
      throw new GenerateInputError(`unexpected dtype ${t.dtype}`);
  }
}
function f32(t: Tensor, name: string): Float32Array {
  if (t.dtype !== 'F32') throw new GenerateInputError(`the model input's ${name} must be F32 (the reference's dtype), got ${t.dtype}`);
  return new Float32Array(new Uint8Array(t.data).buffer);
}

/** A model-input safetensors file (reference tensor names) as one chunk. */
export function chunkFromTensors(tensors: Record<string, Tensor>): ModelChunk {
  const need = (name: string): Tensor => {
    const t = tensors[name];
    if (!t) throw new GenerateInputError(`the model input has no ${name} tensor`);
    return t;
  };
  const ids = Int32Array.from(tensorValues(need('input_ids')));
  const positions = f32(need('position_ids'), 'position_ids');
  if (positions.length !== 3 * ids.length) throw new GenerateInputError(`position_ids must be 3 x ${ids.length}`);
  const media: ChunkMedia[] = [];
  if (tensors.input_features) {
    const [n, mels, frames] = tensors.input_features.shape as [number, number, number];
    const all = f32(tensors.input_features, 'input_features');
    const mask = tensors.feature_attention_mask ? tensorValues(tensors.feature_attention_mask) : new Array<number>(n * frames).fill(1);
    for (let i = 0; i < n; i++) {
      let valid = 0;
      for (let f = 0; f < frames; f++) valid += mask[i * frames + f]!;
      const cut = new Float32Array(mels * valid);
      for (let m = 0; m < mels; m++) cut.set(all.subarray((i * mels + m) * frames, (i * mels + m) * frames + valid), m * valid);
      media.push({ kind: 'audio', features: cut, frames: valid });
    }
  }
  for (const [pix, grids, kind] of [['pixel_values', 'image_grid_thw', 'image'], ['pixel_values_videos', 'video_grid_thw', 'video']] as const) {
    if (!tensors[pix]) continue;
    const values = f32(tensors[pix], pix);
    const g = tensorValues(need(grids));
    let at = 0;
    for (let i = 0; i < g.length; i += 3) {
      const grid: [number, number, number] = [g[i]!, g[i + 1]!, g[i + 2]!];
      const rows = grid[0] * grid[1] * grid[2];
      media.push({ kind, pixelValues: values.subarray(at * PATCH_ROW_FLOATS, (at + rows) * PATCH_ROW_FLOATS), grid });
      at += rows;
    }
  }
  return { ids, positions, media };
}

export interface GenerateResult {
  prompt_tokens: number;
  output_token_ids: number[];
  text: string | null;
  thinking_token_ids: number[];
  codec_codes: null;
  audio_samples: number;
  finish_reason: string;
  timings: { load_ms: number; prefill_ms: number; first_token_ms: number; decode_tokens_per_second: number; first_audio_ms: null };
}

export async function runGenerate(cmd: GenerateCommand, out: (s: string) => void = (s) => void process.stdout.write(s)): Promise<GenerateResult> {
  if (cmd.voice !== undefined || cmd.speechOut !== undefined) {
    throw new GenerateInputError('speech output (--voice, --speech-out) needs the talker and code-to-wave stages, which this engine does not have yet');
  }
  // The input is read and checked before the (possibly large) checkpoint is loaded.
  let conversation: ReturnType<typeof parseConversation> | undefined;
  let tensorInput: Record<string, Tensor> | undefined;
  if (cmd.input.endsWith('.safetensors')) {
    let bytes: Buffer;
    try {
      bytes = await readFile(cmd.input);
    } catch (err) {
      throw new GenerateInputError(`cannot read model input ${cmd.input}: ${(err as Error).message}`);
    }
    try {
      tensorInput = decodeSafetensors(bytes).tensors;
    } catch (err) {
      throw new GenerateInputError(`${cmd.input} is not a safetensors file: ${(err as Error).message}`);
    }
  } else {
    let json: unknown;
    try {
      json = JSON.parse(await readFile(cmd.input, 'utf8'));
    } catch (err) {
      throw new GenerateInputError(`cannot read conversation ${cmd.input}: ${(err as Error).message}`);
    }
    conversation = parseConversation(json);
  }
  const t0 = performance.now();
  const engine = await NativeEngine.load(cmd.model, cmd.threads ? { threads: cmd.threads } : {});
  try {
    const loadMs = performance.now() - t0;
    // The Qwen3 tokenizer applies only to checkpoints with its vocabulary.
    const realVocab = engine.spec.vocabSize >= 151_669;
    const tokenizer = realVocab ? QwenTokenizer.load() : undefined;
    let chunk: ModelChunk;
    if (tensorInput) {
      chunk = chunkFromTensors(tensorInput);
    } else {
      if (!realVocab) throw new GenerateInputError(`this checkpoint's vocabulary (${engine.spec.vocabSize} tokens) is not Qwen3's; give a model-input .safetensors file instead of a conversation`);
      const input = await prepareModelInput(conversation!, {
        addGenerationPrompt: true,
        withMedia: true,
        baseDir: dirname(resolve(cmd.input)),
        ...(cmd.thinking === false ? { enableThinking: false } : {}),
        ...(cmd.useAudioInVideo ? { useAudioInVideo: true } : {}),
        ...(cmd.fps !== undefined ? { fps: cmd.fps } : {}),
        ...(cmd.videoGridFps !== undefined ? { videoGridFps: cmd.videoGridFps } : {}),
      });
      const videos: ChunkMedia[] = [];
      for (const plan of input.videos) {
        const pixels = new Float32Array(plan.grid[0] * plan.rowsPerStep * PATCH_ROW_FLOATS);
        let at = 0;
        for await (const step of videoSteps([plan], () => undefined)) {
          pixels.set(step, at);
          at += step.length;
        }
        videos.push({ kind: 'video', pixelValues: pixels, grid: plan.grid });
      }
      chunk = {
        ids: input.inputIds,
        positions: input.positionIds,
        media: [...input.audio.map((a) => ({ kind: 'audio' as const, ...a })), ...input.images.map((im) => ({ kind: 'image' as const, ...im })), ...videos],
      };
    }
    for (const m of chunk.media ?? []) {
      if (m.kind === 'audio' && !engine.audio) throw new GenerateInputError('the conversation has audio but this checkpoint has no audio encoder');
      if (m.kind !== 'audio' && !engine.vision) throw new GenerateInputError(`the conversation has ${m.kind === 'image' ? 'an image' : 'a video'} but this checkpoint has no vision encoder`);
    }
    const session = engine.open({ maxLength: chunk.ids.length + cmd.maxTokens + 64 });
    const t1 = performance.now();
    await session.append(chunk);
    const prefillMs = performance.now() - t1;
    const thinking = cmd.thinking === false ? { enabled: false, budgetTokens: null } : { enabled: realVocab, budgetTokens: cmd.thinkingBudget ?? null };
    const stopThinkingIds = tokenizer && cmd.thinkingBudget !== undefined ? await tokenizer.encode(THINKING_STOP_TEXT) : undefined;
    const detok = tokenizer ? new StreamDetokenizer(tokenizer) : undefined;
    const ids: number[] = [];
    const thinkingIds: number[] = [];
    let text = '';
    let firstTokenMs = 0;
    let finish = 'length';
    const t2 = performance.now();
    for await (const e of session.generate({ maxTokens: cmd.maxTokens, sampling: cmd.sampling, thinking, ...(stopThinkingIds ? { stopThinkingIds } : {}) })) {
      if (e.type === 'done') {
        finish = e.reason;
        break;
      }
      if (e.type !== 'token') continue;
      if (ids.length === 0) firstTokenMs = performance.now() - t1;
      ids.push(e.id);
      if (e.thinking) thinkingIds.push(e.id);
      if (detok) {
        const piece = detok.push(e.id);
        text += piece;
        if (!cmd.json) out(piece);
      } else if (!cmd.json) {
        out(`${e.id} `);
      }
    }
    if (detok) {
      const rest = detok.flush();
      text += rest;
      if (!cmd.json) out(rest);
    }
    const decodeS = (performance.now() - t2) / 1000;
    const result: GenerateResult = {
      prompt_tokens: chunk.ids.length,
      output_token_ids: ids,
      text: detok ? text : null,
      thinking_token_ids: thinkingIds,
      codec_codes: null,
      audio_samples: 0,
      finish_reason: finish,
      timings: {
        load_ms: Math.round(loadMs),
        prefill_ms: Math.round(prefillMs * 10) / 10,
        first_token_ms: Math.round(firstTokenMs * 10) / 10,
        decode_tokens_per_second: ids.length > 1 ? Math.round((ids.length - 1) / decodeS) : 0,
        first_audio_ms: null,
      },
    };
    out(cmd.json ? `${JSON.stringify(result)}\n` : '\n');
    session.close();
    return result;
  } finally {
    engine.close();
  }
}
