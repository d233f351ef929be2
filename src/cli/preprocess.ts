// `omni-gateway preprocess`: a conversation file to exactly what the gateway hands the runtime, as
// a safetensors file with the reference processor's tensor names, so anyone can compare it with
// transformers' Qwen3OmniMoeProcessor + get_rope_index.
//
// Videos are planned first (probe: frames, size, grid) and their patches streamed into the file
// step by step at the end, so a long video never sits in memory whole.
import { readFile, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { decodeAudioFile } from '../codecs/audio/file_decoder.js';
import { logMelFeatures, MEL_BINS, MEL_HOP } from '../codecs/audio/mel.js';
import { imageToPatches } from '../codecs/image/patches.js';
import { PATCH_ROW_FLOATS } from '../codecs/image/smart_resize.js';
import { recycleOutput } from '../codecs/recycle.js';
import { bytesOf, SafetensorsFileWriter, type Tensor, type TensorSpec } from '../codecs/safetensors.js';
import { QwenTokenizer } from '../codecs/text/tokenizer.js';
import { planVideo, videoPatchSteps, type VideoPlan } from '../codecs/video/patches.js';
import { extractSoundtrack } from '../codecs/video/soundtrack.js';
import { buildSequence } from '../fusion/sequence.js';
import { layout, tokenizeLayout, type ChatMessage, type ContentPart, type ToolCall, type ToolDefinition } from '../fusion/template.js';

export class ConversationError extends Error {
  readonly code = 'OMNI_INVALID_CONVERSATION';
}

type FilePart = { type: 'audio' | 'image' | 'video'; path: string; where: string };
type RawPart = { type: 'text'; text: string } | FilePart;
interface RawMessage {
  role: ChatMessage['role'];
  content: string | RawPart[];
  toolCalls?: ToolCall[];
  where: string;
}
export interface Conversation {
  messages: RawMessage[];
  tools?: ToolDefinition[];
}

const ROLES = ['system', 'user', 'assistant', 'tool'] as const;

function parseMessages(json: unknown[], base: string): RawMessage[] {
  return json.map((m: unknown, i): RawMessage => {
    const at = `${base}[${i}]`;
    if (typeof m !== 'object' || m === null) throw new ConversationError(`${at} must be an object with role and content`);
    const { role, content, tool_calls: toolCalls } = m as Record<string, unknown>;
    if (!(ROLES as readonly unknown[]).includes(role)) {
      throw new ConversationError(`${at}.role must be system, user, assistant or tool, got ${JSON.stringify(role)}`);
    }
    const r = role as RawMessage['role'];
    if (toolCalls !== undefined && (r !== 'assistant' || !Array.isArray(toolCalls))) {
      throw new ConversationError(`${at}.tool_calls must be a list, on an assistant message`);
    }
    const extra = toolCalls ? { toolCalls: toolCalls as ToolCall[] } : {};
    if (typeof content === 'string') return { role: r, content, where: at, ...extra };
    if (content == null && toolCalls) return { role: r, content: '', where: at, ...extra };
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
    return { role: r, content: parts, where: at, ...extra };
  });
}

/**
 * Validate the conversation JSON -- an array of messages, or `{ messages, tools }` -- naming the
 * message and part of every problem.
 */
export function parseConversation(json: unknown): Conversation {
  const conversation = parseConversationShape(json);
  if (conversation.messages.length === 0) throw new ConversationError('the conversation has no messages');
  return conversation;
}

function parseConversationShape(json: unknown): Conversation {
  if (Array.isArray(json)) return { messages: parseMessages(json, 'messages') };
  if (typeof json === 'object' && json !== null && Array.isArray((json as Record<string, unknown>).messages)) {
    const { messages, tools } = json as { messages: unknown[]; tools?: unknown };
    if (tools !== undefined && !Array.isArray(tools)) throw new ConversationError('tools must be a list of tool definitions');
    return { messages: parseMessages(messages, 'messages'), ...(tools ? { tools: tools as ToolDefinition[] } : {}) };
  }
  throw new ConversationError('the conversation must be a JSON array of messages, or an object { messages, tools }');
}

export interface PreprocessOptions {
  addGenerationPrompt: boolean;
  /** Where relative media paths start (the conversation file's folder). */
  baseDir: string;
  /** Interleave each video's soundtrack with its frames (the processor's use_audio_in_video). */
  useAudioInVideo?: boolean;
  /** Video sampling rate in frames per second (default 2, the official rule). */
  fps?: number;
  /** Rate video_second_per_grid is computed from (default: the real sampling rate; 1 = transformers' default). */
  videoGridFps?: number;
  /** false: prefill an empty think block after the generation prompt (thinking off). */
  enableThinking?: boolean;
  /** Also return each clip's features and each image's patches separately (for running the model). */
  withMedia?: boolean;
  progress?: (line: string) => void;
}

/** Model input: the tensors in file order, the large video patches still to be streamed. */
export interface ModelInput {
  tensors: Record<string, Tensor>;
  /** Videos in order; their rows make `pixel_values_videos` (float32, rows x 1536). */
  videos: VideoPlan[];
  /** Where each video is in the conversation (messages[i].content[j]), for error messages. */
  videoPlaces: string[];
  inputIds: Int32Array;
  /** 3 x length, row-major. */
  positionIds: Float32Array;
  /** With `withMedia`: each clip's features cut to its valid frames (128 x frames, mel-major), in queue order. */
  audio: { features: Float32Array; frames: number }[];
  images: { pixelValues: Float32Array; grid: [number, number, number] }[];
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
  if (err instanceof ConversationError) return err;
  const e = err as Error & { code?: string };
  return new ConversationError(`${where}: ${e.code ? `${e.code}: ` : ''}${e.message}`);
}

const placed = <T>(where: string, p: Promise<T>): Promise<T> => p.catch((err: unknown) => Promise.reject(withPlace(err, where)));

const i64 = (values: ArrayLike<number>): Uint8Array => bytesOf(BigInt64Array.from(values, (v) => BigInt(v)));

/**
 * Everything but the video patches, which `writeModelInput` (or `gatherVideoPatches`) streams
 * from the plans. Media errors become ConversationError naming the message and part.
 */
export async function prepareModelInput(conversation: Conversation, options: PreprocessOptions): Promise<ModelInput> {
  const log = options.progress ?? (() => undefined);
  const { messages } = conversation;
  const clips: AudioClip[] = [];
  const images: { pixelValues: Float32Array; grid: [number, number, number] }[] = [];
  const videos: VideoPlan[] = [];
  const videoPlaces: string[] = [];
  const audioIndex = new Map<FilePart, number>();
  const imageIndex = new Map<FilePart, number>();
  const videoIndex = new Map<FilePart, { video: number; soundtrack?: number }>();

  // Media in order of appearance: the processor's audio queue holds a video's soundtrack at the
  // place the video occurs.
  for (const m of messages) {
    if (typeof m.content === 'string') continue;
    for (const part of m.content) {
      if (part.type === 'text') continue;
      if (part.type === 'video') {
        const path = resolve(options.baseDir, part.path);
        log(`probing video ${part.path}`);
        // Every video is planned before any is streamed: a decoder started now would idle and be killed.
        const plan = await placed(part.where, planVideo(path, { fps: options.fps, secondPerGridFps: options.videoGridFps, startDecoderEarly: false }));
        log(`video ${part.path}: ${plan.probe.width}x${plan.probe.height}, ${plan.probe.totalFrames} frames; ${plan.indices.length} sampled -> grid ${plan.grid.join('x')}, ${plan.tokens} tokens`);
        const entry: { video: number; soundtrack?: number } = { video: videos.length };
        videos.push(plan);
        videoPlaces.push(part.where);
        if (options.useAudioInVideo) {
          log(`extracting the soundtrack of ${part.path}`);
          const samples = await placed(part.where, extractSoundtrack(path));
          entry.soundtrack = clips.length;
          clips.push({ samples, where: part.where });
        }
        videoIndex.set(part, entry);
        continue;
      }
      const bytes = await readMedia(part, options.baseDir);
      if (part.type === 'audio') {
        log(`decoding audio ${part.path}`);
        const decoded = await placed(part.where, decodeAudioFile(bytes));
        audioIndex.set(part, clips.length);
        clips.push({ samples: decoded.samples, where: part.where });
      } else {
        log(`decoding image ${part.path}`);
        const p = await placed(part.where, imageToPatches(bytes));
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
    // Zero-padded to the longest clip (the longest itself needs no copy).
    let padded = clip.samples;
    if (padded.length < longest) {
      padded = new Float32Array(longest);
      padded.set(clip.samples);
    }
    const f = await placed(clip.where, logMelFeatures(padded));
    features.set(f.data, i * MEL_BINS * frames);
    const valid = Math.min(frames, Math.ceil(clip.samples.length / MEL_HOP));
    featureMask.fill(1, i * frames, i * frames + valid);
    validFrames.push(valid);
  }

  const chat: ChatMessage[] = messages.map((m) => ({
    role: m.role,
    ...(m.toolCalls ? { toolCalls: m.toolCalls } : {}),
    content:
      typeof m.content === 'string'
        ? m.content
        : m.content.map((p): ContentPart => {
            if (p.type === 'text') return p;
            if (p.type === 'audio') return { type: 'audio', frames: validFrames[audioIndex.get(p)!]! };
            if (p.type === 'image') return { type: 'image', grid: images[imageIndex.get(p)!]!.grid };
            const v = videoIndex.get(p)!;
            const plan = videos[v.video]!;
            return {
              type: 'video',
              grid: plan.grid,
              secondPerGrid: plan.secondPerGrid,
              ...(v.soundtrack !== undefined ? { audioFrames: validFrames[v.soundtrack]! } : {}),
            };
          }),
  }));
  const tokenizer = QwenTokenizer.load();
  let pieces;
  try {
    pieces = layout(chat, {
      addGenerationPrompt: options.addGenerationPrompt,
      ...(options.enableThinking !== undefined ? { enableThinking: options.enableThinking } : {}),
      ...(conversation.tools ? { tools: conversation.tools } : {}),
    });
  } catch (err) {
    const e = err as Error & { param?: string };
    throw new ConversationError(`${e.message}${e.param ? ` (${e.param})` : ''}`);
  }
  const segments = await tokenizeLayout(pieces, (t) => tokenizer.encodeBatch(t));
  const seq = buildSequence(segments);

  const s = seq.length;
  const tensors: Record<string, Tensor> = {
    input_ids: { dtype: 'I64', shape: [1, s], data: i64(seq.inputIds) },
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
    tensors.pixel_values = { dtype: 'F32', shape: [rows / PATCH_ROW_FLOATS, PATCH_ROW_FLOATS], data: bytesOf(pixels) };
    tensors.image_grid_thw = { dtype: 'I64', shape: [images.length, 3], data: i64(images.flatMap((im) => im.grid)) };
  }
  if (videos.length > 0) {
    tensors.video_grid_thw = { dtype: 'I64', shape: [videos.length, 3], data: i64(videos.flatMap((v) => v.grid)) };
    tensors.video_second_per_grid = { dtype: 'F32', shape: [videos.length], data: bytesOf(Float32Array.from(videos, (v) => v.secondPerGrid)) };
  }
  tensors.position_ids = { dtype: 'F32', shape: [3, 1, s], data: bytesOf(seq.positionIds) };
  // get_rope_index computes the delta from float positions, so it is float32 too.
  tensors.rope_deltas = { dtype: 'F32', shape: [1, 1], data: bytesOf(Float32Array.of(seq.ropeDelta)) };
  const audio = !options.withMedia ? [] : validFrames.map((valid, i) => {
    const cut = new Float32Array(MEL_BINS * valid);
    for (let m = 0; m < MEL_BINS; m++) {
      const row = (i * MEL_BINS + m) * frames;
      cut.set(features.subarray(row, row + valid), m * valid);
    }
    return { features: cut, frames: valid };
  });
  return { tensors, videos, videoPlaces, inputIds: Int32Array.from(seq.inputIds), positionIds: seq.positionIds, audio, images };
}

const videoRows = (videos: readonly VideoPlan[]): number => videos.reduce((n, v) => n + v.grid[0] * v.rowsPerStep, 0);

/**
 * Streams every video's patch steps in order, with progress; errors name the video's place. Each
 * step is valid until the next one is asked for: its memory is then reused (copy what you keep).
 */
export async function* videoSteps(videos: readonly VideoPlan[], log: (line: string) => void, places: readonly string[] = []): AsyncGenerator<Float32Array> {
  for (const [i, plan] of videos.entries()) {
    try {
      for await (const step of videoPatchSteps(plan)) {
        if (step.t % 16 === 15 || step.t === plan.grid[0] - 1) log(`video ${i + 1}/${videos.length}: ${step.t + 1}/${plan.grid[0]} temporal steps`);
        yield step.pixelValues as Float32Array;
        recycleOutput(step.pixelValues);
      }
    } catch (err) {
      throw withPlace(err, places[i] ?? `video ${i + 1}`);
    }
  }
}

/** The whole model input in memory, video patches included (tests, short clips). */
export async function preprocessConversation(conversation: Conversation, options: PreprocessOptions): Promise<Record<string, Tensor>> {
  const input = await prepareModelInput(conversation, options);
  const { position_ids, rope_deltas, video_grid_thw, video_second_per_grid, ...head } = input.tensors;
  if (input.videos.length === 0) return input.tensors;
  const pixels = new Float32Array(videoRows(input.videos) * PATCH_ROW_FLOATS);
  let at = 0;
  for await (const step of videoSteps(input.videos, options.progress ?? (() => undefined), input.videoPlaces)) {
    pixels.set(step, at);
    at += step.length;
  }
  return {
    ...head,
    pixel_values_videos: { dtype: 'F32', shape: [pixels.length / PATCH_ROW_FLOATS, PATCH_ROW_FLOATS], data: bytesOf(pixels) },
    video_grid_thw: video_grid_thw!,
    video_second_per_grid: video_second_per_grid!,
    position_ids: position_ids!,
    rope_deltas: rope_deltas!,
  };
}

/** Writes the model input to `path`, streaming video patches (memory stays bounded by a few frames). */
export async function writeModelInput(path: string, input: ModelInput, log: (line: string) => void = () => undefined): Promise<string[]> {
  const specs: [string, TensorSpec][] = [];
  const order: string[] = [];
  for (const [name, t] of Object.entries(input.tensors)) {
    if (name === 'video_grid_thw') {
      specs.push(['pixel_values_videos', { dtype: 'F32', shape: [videoRows(input.videos), PATCH_ROW_FLOATS] }]);
      order.push('pixel_values_videos');
    }
    specs.push([name, { dtype: t.dtype, shape: t.shape }]);
    order.push(name);
  }
  // Written beside the target and renamed at the end: a failure never leaves a truncated file
  // under the requested name.
  const partial = `${path}.partial-${process.pid}`;
  const writer = await SafetensorsFileWriter.create(partial, specs, { format: 'pt', producer: 'omni-gateway preprocess' });
  try {
    for (const name of order) {
      if (name === 'pixel_values_videos') {
        for await (const step of videoSteps(input.videos, log, input.videoPlaces)) await writer.append(name, bytesOf(step));
      } else {
        await writer.append(name, input.tensors[name]!.data);
      }
    }
    await writer.close();
    await rename(partial, path);
  } catch (err) {
    await writer.abort().catch(() => undefined);
    await rm(partial, { force: true });
    throw err;
  }
  return order;
}

export interface PreprocessCommand {
  input: string;
  out: string;
  addGenerationPrompt: boolean;
  useAudioInVideo?: boolean;
  fps?: number;
  videoGridFps?: number;
}

export async function runPreprocess(cmd: PreprocessCommand): Promise<void> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(cmd.input, 'utf8'));
  } catch (err) {
    throw new ConversationError(`cannot read conversation ${cmd.input}: ${(err as Error).message}`);
  }
  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const input = await prepareModelInput(parseConversation(json), {
    addGenerationPrompt: cmd.addGenerationPrompt,
    baseDir: dirname(resolve(cmd.input)),
    useAudioInVideo: cmd.useAudioInVideo,
    fps: cmd.fps,
    videoGridFps: cmd.videoGridFps,
    progress: log,
  });
  const names = await writeModelInput(cmd.out, input, log);
  log(`wrote ${cmd.out}: ${names.join(', ')}`);
}
