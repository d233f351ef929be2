// `omni-gateway preprocess`: a conversation file to exactly what the gateway hands the runtime, as
// a safetensors file with the reference processor's tensor names, so anyone can compare it with
// transformers' Qwen3OmniMoeProcessor + get_rope_index.
import { readFile, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { decodeAudioFile } from '../codecs/audio/file_decoder.js';
import { logMelFeatures, MEL_BINS, MEL_HOP } from '../codecs/audio/mel.js';
import { imageToPatches } from '../codecs/image/patches.js';
import { bytesOf, encodeSafetensors, type Tensor } from '../codecs/safetensors.js';
import { QwenTokenizer } from '../codecs/text/tokenizer.js';
import { buildSequence } from '../fusion/sequence.js';
import { layout, tokenizeLayout, type ChatMessage, type ContentPart } from '../fusion/template.js';

export class ConversationError extends Error {
  readonly code = 'OMNI_INVALID_CONVERSATION';
}

type FilePart = { type: 'audio' | 'image' | 'video'; path: string; where: string };
type RawPart = { type: 'text'; text: string } | FilePart;
interface RawMessage {
  role: ChatMessage['role'];
  content: string | RawPart[];
}

/** Validate the conversation JSON, naming the message and part of every problem. */
export function parseConversation(json: unknown): RawMessage[] {
  if (!Array.isArray(json)) throw new ConversationError('the conversation must be a JSON array of messages');
  return json.map((m: unknown, i): RawMessage => {
    const at = `messages[${i}]`;
    if (typeof m !== 'object' || m === null) throw new ConversationError(`${at} must be an object with role and content`);
    const { role, content } = m as Record<string, unknown>;
    if (role !== 'system' && role !== 'user' && role !== 'assistant') {
      throw new ConversationError(`${at}.role must be system, user or assistant, got ${JSON.stringify(role)}`);
    }
    if (typeof content === 'string') return { role, content };
    if (!Array.isArray(content)) throw new ConversationError(`${at}.content must be a string or a list of parts`);
    const parts = content.map((p: unknown, j): RawPart => {
      const where = `${at}.content[${j}]`;
      const part = (typeof p === 'object' && p !== null ? p : {}) as Record<string, unknown>;
      if (part.type === 'text') {
        if (typeof part.text !== 'string') throw new ConversationError(`${where}.text must be a string`);
        return { type: 'text', text: part.text };
      }
      if (part.type === 'audio' || part.type === 'image' || part.type === 'video') {
        if (typeof part.path !== 'string' || part.path === '') {
          throw new ConversationError(`${where}.path must name a ${part.type} file`);
        }
        return { type: part.type, path: part.path, where };
      }
      throw new ConversationError(`${where}: unknown part type ${JSON.stringify(part.type)} (text, audio, image or video)`);
    });
    return { role, content: parts };
  });
}

export interface PreprocessOptions {
  addGenerationPrompt: boolean;
  /** Where relative media paths start (the conversation file's folder). */
  baseDir: string;
  progress?: (line: string) => void;
}

interface AudioClip {
  samples: Float32Array;
  where: string;
}

async function readMedia(part: FilePart, baseDir: string): Promise<Buffer> {
  const path = resolve(baseDir, part.path);
  try {
    return await readFile(path);
  } catch (err) {
    throw new ConversationError(`${part.where}: cannot read ${part.type} file ${path}: ${(err as Error).message}`);
  }
}

function withPlace(err: unknown, where: string): Error {
  const e = err as Error & { code?: string };
  return new ConversationError(`${where}: ${e.code ? `${e.code}: ` : ''}${e.message}`);
}

/** The model input tensors of a conversation, named and typed as the reference processor's. */
export async function preprocessConversation(messages: RawMessage[], options: PreprocessOptions): Promise<Record<string, Tensor>> {
  const log = options.progress ?? (() => undefined);
  const clips: AudioClip[] = [];
  const images: { pixelValues: Float32Array; grid: [number, number, number] }[] = [];
  const audioIndex = new Map<FilePart, number>();
  const imageIndex = new Map<FilePart, number>();

  for (const m of messages) {
    if (typeof m.content === 'string') continue;
    for (const part of m.content) {
      if (part.type === 'text') continue;
      if (part.type === 'video') {
        throw new ConversationError(`${part.where}: video input is not supported by this build yet`);
      }
      const bytes = await readMedia(part, options.baseDir);
      if (part.type === 'audio') {
        log(`decoding audio ${part.path}`);
        const decoded = await decodeAudioFile(bytes).catch((err: unknown) => Promise.reject(withPlace(err, part.where)));
        audioIndex.set(part, clips.length);
        clips.push({ samples: decoded.samples, where: part.where });
      } else {
        log(`decoding image ${part.path}`);
        const p = await imageToPatches(bytes).catch((err: unknown) => Promise.reject(withPlace(err, part.where)));
        imageIndex.set(part, images.length);
        images.push({ pixelValues: p.pixelValues, grid: p.grid });
      }
    }
  }

  // Like WhisperFeatureExtractor(padding=True): every clip is zero-padded to the longest before
  // its features are computed, and a shorter clip's valid frames are min(F, ceil(n / 160)).
  const longest = clips.reduce((n, c) => Math.max(n, c.samples.length), 0);
  const frames = Math.floor(longest / MEL_HOP);
  const features = new Float32Array(clips.length * MEL_BINS * frames);
  const featureMask = new Int32Array(clips.length * frames);
  const validFrames: number[] = [];
  for (const [i, clip] of clips.entries()) {
    log(`features for ${clip.where} (${(clip.samples.length / 16_000).toFixed(2)} s)`);
    const padded = new Float32Array(longest);
    padded.set(clip.samples);
    const f = await logMelFeatures(padded).catch((err: unknown) => Promise.reject(withPlace(err, clip.where)));
    features.set(f.data, i * MEL_BINS * frames);
    const valid = Math.min(frames, Math.ceil(clip.samples.length / MEL_HOP));
    featureMask.fill(1, i * frames, i * frames + valid);
    validFrames.push(valid);
  }

  const chat: ChatMessage[] = messages.map((m) => ({
    role: m.role,
    content:
      typeof m.content === 'string'
        ? m.content
        : m.content.map((p): ContentPart => {
            if (p.type === 'text') return p;
            if (p.type === 'audio') return { type: 'audio', frames: validFrames[audioIndex.get(p)!]! };
            return { type: 'image', grid: images[imageIndex.get(p)!]!.grid };
          }),
  }));
  const tokenizer = QwenTokenizer.load();
  const segments = await tokenizeLayout(layout(chat, { addGenerationPrompt: options.addGenerationPrompt }), (t) =>
    tokenizer.encodeBatch(t),
  );
  const seq = buildSequence(segments);

  const s = seq.length;
  const tensors: Record<string, Tensor> = {
    input_ids: { dtype: 'I64', shape: [1, s], data: bytesOf(BigInt64Array.from(seq.inputIds, (v) => BigInt(v))) },
    attention_mask: { dtype: 'I64', shape: [1, s], data: bytesOf(new BigInt64Array(s).fill(1n)) },
  };
  if (clips.length > 0) {
    tensors.input_features = { dtype: 'F32', shape: [clips.length, MEL_BINS, frames], data: bytesOf(features) };
    tensors.feature_attention_mask = { dtype: 'I32', shape: [clips.length, frames], data: bytesOf(featureMask) };
  }
  if (images.length > 0) {
    const rows = images.reduce((n, im) => n + im.pixelValues.length, 0);
    const pixels = new Float32Array(rows);
    let at = 0;
    for (const im of images) {
      pixels.set(im.pixelValues, at);
      at += im.pixelValues.length;
    }
    tensors.pixel_values = { dtype: 'F32', shape: [rows / 1536, 1536], data: bytesOf(pixels) };
    tensors.image_grid_thw = {
      dtype: 'I64',
      shape: [images.length, 3],
      data: bytesOf(BigInt64Array.from(images.flatMap((im) => im.grid.map((v) => BigInt(v))))),
    };
  }
  tensors.position_ids = { dtype: 'F32', shape: [3, 1, s], data: bytesOf(seq.positionIds) };
  // get_rope_index computes the delta from float positions, so it is float32 too.
  tensors.rope_deltas = { dtype: 'F32', shape: [1, 1], data: bytesOf(Float32Array.of(seq.ropeDelta)) };
  return tensors;
}

export interface PreprocessCommand {
  input: string;
  out: string;
  addGenerationPrompt: boolean;
}

export async function runPreprocess(cmd: PreprocessCommand): Promise<void> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(cmd.input, 'utf8'));
  } catch (err) {
    throw new ConversationError(`cannot read conversation ${cmd.input}: ${(err as Error).message}`);
  }
  const messages = parseConversation(json);
  const tensors = await preprocessConversation(messages, {
    addGenerationPrompt: cmd.addGenerationPrompt,
    baseDir: dirname(resolve(cmd.input)),
    progress: (line) => process.stderr.write(`${line}\n`),
  });
  await writeFile(cmd.out, encodeSafetensors(tensors, { format: 'pt', producer: 'omni-gateway preprocess' }));
  process.stderr.write(`wrote ${cmd.out}: ${Object.keys(tensors).join(', ')}\n`);
}
