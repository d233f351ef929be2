// Conversation items to model messages. Media are featurized once per content part (audio to
// log-mel frames, images to patches) and cached on the part, so every later turn reuses them
// (and keeps their identity, which lets the engine context reuse their prefill). The cache is
// bounded in bytes: a 1080p image is 50 MB of patches, and a conversation may hold a thousand
// items. Beyond the budget the least recently used media are dropped and featurized again if a
// later turn needs them (the part, and so the engine context's key, stays the same).
import { AudioInputDecoder } from '../../codecs/audio/input_decoder.js';
import { SETTINGS } from '../../config/settings.js';
import { logMelFeatures } from '../../codecs/audio/mel.js';
import { imageToPatches } from '../../codecs/image/patches.js';
import { encodeWav } from '../../codecs/audio/wav.js';
import type { InputMedia, InputMessage, InputPart } from '../../fusion/model_input.js';
import type { TurnMessage, TurnPart } from '../../runtime/contract.js';
import type { ToolCall } from '../../fusion/template.js';
import { ProtocolError, type AudioFormat, type ContentPart, type ConversationItem } from './model.js';

/** 16 kHz samples of audio parts, recorded when the session made them (committed input audio). */
export type SampleStore = WeakMap<ContentPart, Float32Array>;

/** Bytes of featurized media a session keeps for later turns (see MediaCache): the setting's default. */
export const DEFAULT_MEDIA_CACHE_BYTES = SETTINGS.realtimeMediaCacheMb.default * 1024 * 1024;

type MediaPart = ContentPart & { type: 'input_audio' | 'input_image' };

export class MediaCache {
  private readonly media = new WeakMap<ContentPart, Promise<InputMedia>>();
  /** Featurized parts held, least recently used first, with their bytes. */
  private readonly held = new Map<ContentPart, number>();
  private heldBytes = 0;

  constructor(
    private readonly samples: SampleStore,
    private readonly budgetBytes = DEFAULT_MEDIA_CACHE_BYTES,
  ) {}

  /** Bytes of featurized media held now. */
  get bytes(): number {
    return this.heldBytes;
  }

  /** 16 kHz samples of an audio part (decoded from the client's format once). */
  audioSamples(part: ContentPart & { type: 'input_audio' }, format: AudioFormat, where: string): Float32Array {
    let samples = this.samples.get(part);
    if (!samples) {
      if (!part.audio || part.audio.length === 0) throw new ProtocolError('invalid_value', 'the audio content part is empty', `${where}.audio`);
      const decoder = new AudioInputDecoder({ format: format.encoding, sampleRate: format.rate });
      const head = decoder.push(part.audio);
      const tail = decoder.end();
      samples = new Float32Array(head.length + tail.length);
      samples.set(head);
      samples.set(tail, head.length);
      this.samples.set(part, samples);
    }
    return samples;
  }

  /** Features or patches of a part (computed once while held; a failure is not cached). */
  featurize(part: MediaPart, inputFormat: AudioFormat, where: string): Promise<InputMedia> {
    const cached = this.media.get(part);
    if (cached) {
      this.touch(part);
      return cached;
    }
    const p = part.type === 'input_audio' ? this.audio(part, inputFormat, where) : this.image(part, where);
    this.media.set(part, p);
    p.then(
      (m) => {
        if (this.media.get(part) === p) this.hold(part, m.type === 'audio' ? m.features.byteLength : m.pixelValues.byteLength);
      },
      () => {
        if (this.media.get(part) === p) this.media.delete(part);
      },
    );
    return p;
  }

  /** Drops a part's cached media (its item left the conversation, or its frame was dropped). */
  forget(part: ContentPart): void {
    this.media.delete(part);
    const bytes = this.held.get(part);
    if (bytes === undefined) return;
    this.held.delete(part);
    this.heldBytes -= bytes;
  }

  private touch(part: ContentPart): void {
    const bytes = this.held.get(part);
    if (bytes === undefined) return;
    this.held.delete(part);
    this.held.set(part, bytes);
  }

  /** Holds a part's media, then drops the least recently used beyond the budget (never the newest). */
  private hold(part: ContentPart, bytes: number): void {
    this.held.set(part, bytes);
    this.heldBytes += bytes;
    for (const [old] of this.held) {
      if (this.heldBytes <= this.budgetBytes || old === part) break;
      this.forget(old);
    }
  }

  private async audio(part: ContentPart & { type: 'input_audio' }, format: AudioFormat, where: string): Promise<InputMedia> {
    const samples = this.audioSamples(part, format, where);
    if (samples.length < 160) throw new ProtocolError('invalid_value', 'the audio content part is shorter than 10 ms', `${where}.audio`);
    const mel = await logMelFeatures(samples);
    return { type: 'audio', features: mel.data, frames: mel.frames, key: part };
  }

  private async image(part: ContentPart & { type: 'input_image' }, where: string): Promise<InputMedia> {
    try {
      const p = await imageToPatches(part.image);
      return { type: 'image', pixelValues: p.pixelValues, grid: p.grid, key: part };
    } catch (err) {
      const e = err as Error & { code?: string };
      throw new ProtocolError('invalid_value', `the image could not be used: ${e.message}`, `${where}.image_url`);
    }
  }
}

/**
 * The model's view of the conversation: instructions as the first system turn, messages with
 * their media featurized, function calls as assistant tool calls, outputs as tool turns.
 */
export async function toInputMessages(
  items: readonly ConversationItem[],
  instructions: string,
  cache: MediaCache,
  inputFormat: AudioFormat,
): Promise<InputMessage[]> {
  const out: InputMessage[] = [];
  if (instructions) out.push({ role: 'system', content: instructions });
  for (const [i, item] of items.entries()) {
    const where = `item[${i}]`;
    if (item.type === 'function_call') {
      const call: ToolCall = { name: item.name, arguments: item.arguments };
      const last = out.at(-1);
      // Consecutive calls of one reply share one assistant turn, as the model produced them.
      if (last?.role === 'assistant' && last.toolCalls) last.toolCalls = [...last.toolCalls, call];
      else out.push({ role: 'assistant', content: '', toolCalls: [call] });
      continue;
    }
    if (item.type === 'function_call_output') {
      out.push({ role: 'tool', content: item.output });
      continue;
    }
    const parts: InputPart[] = [];
    for (const [j, part] of item.content.entries()) {
      switch (part.type) {
        case 'input_text':
        case 'output_text':
          parts.push({ type: 'text', text: part.text });
          break;
        case 'output_audio':
          parts.push({ type: 'text', text: part.transcript });
          break;
        case 'input_audio':
        case 'input_image':
          parts.push(await cache.featurize(part, inputFormat, `${where}.content[${j}]`));
          break;
      }
    }
    // Assistant and system turns are text; a string keeps the template's reasoning rule intact.
    const textOnly = parts.every((p) => p.type === 'text');
    out.push({ role: item.role, content: textOnly ? parts.map((p) => (p as { text: string }).text).join('') : parts });
  }
  return out;
}

/**
 * The conversation as whole-turn messages for engines that take media rather than features
 * (vLLM-Omni): audio as 16 kHz WAV, images as their bytes, calls and outputs in OpenAI shape.
 */
export function toTurnMessages(items: readonly ConversationItem[], instructions: string, cache: MediaCache, inputFormat: AudioFormat): TurnMessage[] {
  const out: TurnMessage[] = [];
  if (instructions) out.push({ role: 'system', content: instructions });
  for (const [i, item] of items.entries()) {
    if (item.type === 'function_call') {
      const call = { id: item.callId, name: item.name, arguments: item.arguments };
      const last = out.at(-1);
      if (last?.role === 'assistant' && last.toolCalls) last.toolCalls.push(call);
      else out.push({ role: 'assistant', content: '', toolCalls: [call] });
      continue;
    }
    if (item.type === 'function_call_output') {
      out.push({ role: 'tool', content: item.output, toolCallId: item.callId });
      continue;
    }
    const parts: TurnPart[] = item.content.map((part, j): TurnPart => {
      switch (part.type) {
        case 'input_text':
        case 'output_text':
          return { type: 'text', text: part.text };
        case 'output_audio':
          return { type: 'text', text: part.transcript };
        case 'input_audio':
          return { type: 'audio', wav: encodeWav(cache.audioSamples(part, inputFormat, `item[${i}].content[${j}]`), 16_000) };
        case 'input_image':
          return { type: 'image', bytes: part.image, mime: part.mime === 'image/png' ? 'image/png' : 'image/jpeg' };
      }
    });
    const textOnly = parts.every((p) => p.type === 'text');
    out.push({ role: item.role, content: textOnly ? parts.map((p) => (p as { text: string }).text).join('') : parts });
  }
  return out;
}
