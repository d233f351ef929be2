// `omni-gateway generate`: one reply from a checkpoint for a conversation file (built exactly as
// `preprocess` builds it) or for a model-input safetensors file (what `preprocess` writes, or the
// reference processor's output). Streams the reply text to stdout; --json prints one object at
// the end with ids, text and timings. Greedy runs are deterministic across runs and thread counts.
// With --voice / --speech-out the reply is spoken too (talker, code predictor, code-to-wave stream
// alongside the text): --speech-out writes a 24 kHz 16-bit WAV, --json adds the codec codes.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { PATCH_ROW_FLOATS } from '../codecs/image/smart_resize.js';
import { encodeWav } from '../codecs/audio/wav.js';
import { decodeSafetensors, type Tensor } from '../codecs/safetensors.js';
import { QwenTokenizer, StreamDetokenizer } from '../codecs/text/tokenizer.js';
import { THINKING_STOP_TEXT } from '../fusion/budget.js';
import { RuntimeError } from '../runtime/errors.js';
import { NativeEngine, type ChunkMedia, type ModelChunk } from '../runtime/native_engine.js';
import { SPEECH_SAMPLE_RATE } from '../runtime/speech.js';
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
  /** Frames x 16 codec codes (layer 0 then the 15 residual codes) when spoken, else null. */
  codec_codes: number[][] | null;
  /** 24 kHz samples of the spoken reply (0 without speech). */
  audio_samples: number;
  voice: string | null;
  finish_reason: string;
  timings: {
    load_ms: number;
    prefill_ms: number;
    first_token_ms: number;
    decode_tokens_per_second: number;
    /** From the start of the prefill to the first audio chunk (null without speech). */
    first_audio_ms: number | null;
    /** From the first reply token to the first audio chunk. */
    first_audio_after_first_token_ms: number | null;
    /** Seconds of work per second of audio, from the first token to the last audio chunk. */
    real_time_factor: number | null;
  };
}

export async function runGenerate(cmd: GenerateCommand, out: (s: string) => void = (s) => void process.stdout.write(s)): Promise<GenerateResult> {
  const speak = cmd.voice !== undefined || cmd.speechOut !== undefined;
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
    let voice: string | undefined;
    if (speak) {
      if (!engine.speech) {
        throw new GenerateInputError('speech output (--voice, --speech-out) needs the talker and code-to-wave stages; this checkpoint has none (no talker_config, or enable_audio_output false)');
      }
      try {
        engine.speech.speakerId(cmd.voice);
      } catch (err) {
        if (err instanceof RuntimeError) throw new GenerateInputError(`--voice: ${err.message}`);
        throw err;
      }
      voice = (cmd.voice ?? engine.speech.voices[0]!).toLowerCase();
    }
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
    let firstTokenAt = 0;
    let lastTokenAt = 0;
    let firstAudioAt = 0;
    let lastAudioAt = 0;
    let finish = 'length';
    const codes: number[][] = [];
    const audio: Float32Array[] = [];
    let samples = 0;
    const t2 = performance.now();
    const request = {
      maxTokens: cmd.maxTokens,
      sampling: cmd.sampling,
      thinking,
      ...(stopThinkingIds ? { stopThinkingIds } : {}),
      ...(voice !== undefined ? { speech: { voice }, onCodecFrame: (f: Int32Array) => void codes.push([...f]) } : {}),
    };
    for await (const e of session.generate(request)) {
      if (e.type === 'done') {
        finish = e.reason;
        break;
      }
      if (e.type === 'audio') {
        lastAudioAt = performance.now();
        if (samples === 0) firstAudioAt = lastAudioAt;
        audio.push(e.samples);
        samples += e.samples.length;
        continue;
      }
      lastTokenAt = performance.now();
      if (ids.length === 0) {
        firstTokenAt = lastTokenAt;
        firstTokenMs = firstTokenAt - t1;
      }
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
    // Text rate only: with speech the stream goes on after the last token until the audio is done.
    const decodeS = ((lastTokenAt || performance.now()) - t2) / 1000;
    if (cmd.speechOut !== undefined) {
      const all = new Float32Array(samples);
      let at = 0;
      for (const a of audio) {
        all.set(a, at);
        at += a.length;
      }
      // Through a temp name: a failed run never leaves half a file under the requested name.
      const tmp = `${cmd.speechOut}.${process.pid}.partial`;
      await writeFile(tmp, encodeWav(all, SPEECH_SAMPLE_RATE));
      await rename(tmp, cmd.speechOut);
    }
    const spoken = voice !== undefined && samples > 0;
    const result: GenerateResult = {
      prompt_tokens: chunk.ids.length,
      output_token_ids: ids,
      text: detok ? text : null,
      thinking_token_ids: thinkingIds,
      codec_codes: voice !== undefined ? codes : null,
      audio_samples: samples,
      voice: voice ?? null,
      finish_reason: finish,
      timings: {
        load_ms: Math.round(loadMs),
        prefill_ms: Math.round(prefillMs * 10) / 10,
        first_token_ms: Math.round(firstTokenMs * 10) / 10,
        decode_tokens_per_second: ids.length > 1 ? Math.round((ids.length - 1) / decodeS) : 0,
        first_audio_ms: spoken ? Math.round((firstAudioAt - t1) * 10) / 10 : null,
        first_audio_after_first_token_ms: spoken && firstTokenAt > 0 ? Math.round((firstAudioAt - firstTokenAt) * 10) / 10 : null,
        real_time_factor: spoken && firstTokenAt > 0 ? Math.round(((lastAudioAt - firstTokenAt) / 1000 / (samples / SPEECH_SAMPLE_RATE)) * 1e4) / 1e4 : null,
      },
    };
    out(cmd.json ? `${JSON.stringify(result)}\n` : '\n');
    session.close();
    return result;
  } finally {
    engine.close();
  }
}
