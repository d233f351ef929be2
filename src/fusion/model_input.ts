// A conversation whose media are already featurized (log-mel frames, image patches) turned into
// model input: ids, TMRoPE positions, and where each media item's run sits. Each position also
// gets a key (the token id for text, the media item's identity for its run) so a caller holding
// an earlier input in an engine can find the longest common prefix and prefill only the rest.
import { recycleOutput } from '../codecs/recycle.js';
import { QwenTokenizer } from '../codecs/text/tokenizer.js';
import { FusionError } from './errors.js';
import type { Grid } from './placeholders.js';
import { buildSequence, segmentIds } from './sequence.js';
import { layout, tokenizeLayout, type ChatMessage, type ContentPart, type Role, type TemplateOptions, type ToolCall } from './template.js';

/** Media ready for the model; `key` identifies the item across rebuilds (compared by identity). */
export type InputMedia =
  /** Log-mel features, 128 x frames, mel-major, cut to the clip's valid frames. */
  | { type: 'audio'; features: Float32Array; frames: number; key: object }
  | { type: 'image'; pixelValues: Float32Array; grid: Grid; key: object };

export type InputPart = { type: 'text'; text: string } | InputMedia;

export interface InputMessage {
  role: Role;
  content: string | readonly InputPart[];
  toolCalls?: readonly ToolCall[];
  reasoning?: string;
}

export interface PlacedMedia {
  media: InputMedia;
  /** Index of the run's first token (its start marker) and one past its end marker. */
  start: number;
  end: number;
}

export interface ModelInputPlan {
  ids: Int32Array;
  /** 3 x length, row-major. */
  positions: Float32Array;
  length: number;
  media: PlacedMedia[];
  /** Per position: the token id (text) or the media item's key (its whole run). */
  keys: readonly unknown[];
}

let tokenizer: QwenTokenizer | undefined;
/** The Qwen3 tokenizer, loaded once per process. */
export const sharedTokenizer = (): QwenTokenizer => (tokenizer ??= QwenTokenizer.load());

function chatPart(part: InputPart): ContentPart {
  if (part.type === 'text') return part;
  if (part.type === 'audio') return { type: 'audio', frames: part.frames };
  return { type: 'image', grid: part.grid };
}

/** The template's view of the messages; their media items, in order, go to `media`. */
function toChat(messages: readonly InputMessage[], media: InputMedia[]): ChatMessage[] {
  return messages.map((m) => {
    const content =
      typeof m.content === 'string'
        ? m.content
        : m.content.map((p) => {
            if (p.type !== 'text') media.push(p);
            return chatPart(p);
          });
    return { role: m.role, content, ...(m.toolCalls ? { toolCalls: m.toolCalls } : {}), ...(m.reasoning !== undefined ? { reasoning: m.reasoning } : {}) };
  });
}

/**
 * Tokenizes ahead of time the text runs the next turn of a conversation will need: the messages as
 * they stand, then a user turn (its role header) and the generation prompt. They land in the
 * tokenizer's run cache, so when the user's turn ends only its own new text, if any, is left to
 * tokenize; in particular the previous reply, which will render as a past turn. Changes nothing
 * else: a guess that turns out wrong only means those runs are tokenized then.
 */
export async function warmTextRuns(messages: readonly InputMessage[], options: TemplateOptions = {}): Promise<void> {
  const chat = [...toChat(messages, []), { role: 'user' as const, content: '' }];
  await sharedTokenizer().encodeBatch(layout(chat, options).flatMap((p) => (p.type === 'text' ? [p.text] : [])));
}

/** Lays out, tokenizes and positions a featurized conversation. */
export async function buildModelInput(messages: readonly InputMessage[], options: TemplateOptions = {}): Promise<ModelInputPlan> {
  const media: InputMedia[] = [];
  const chat = toChat(messages, media);
  const tok = sharedTokenizer();
  const segments = await tokenizeLayout(layout(chat, options), (texts) => tok.encodeBatch(texts));
  const seq = buildSequence(segments);
  const keys: unknown[] = new Array<unknown>(seq.length);
  const placed: PlacedMedia[] = [];
  let at = 0;
  let next = 0;
  for (const s of segments) {
    if (s.type === 'tokens') {
      for (const id of s.ids) keys[at++] = id;
      continue;
    }
    const item = media[next++];
    if (!item || item.type !== s.type) throw new FusionError('media_count_mismatch', 'media items and their placeholders are out of order', 'messages');
    const n = segmentIds(s).length;
    placed.push({ media: item, start: at, end: at + n });
    keys.fill(item.key, at, at + n);
    at += n;
  }
  if (next !== media.length || at !== seq.length) throw new FusionError('media_count_mismatch', 'media items and their placeholders do not match', 'messages');
  return { ids: seq.inputIds, positions: seq.positionIds, length: seq.length, media: placed, keys };
}

/** Length of the common prefix of two key sequences. */
export function commonPrefix(a: readonly unknown[], b: readonly unknown[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/**
 * Gives the plan's featurized media (log-mel features, image patches) back to the codecs' memory
 * pool, for a caller whose engine holds the prompt now and that will not feed it again. The media
 * arrays are empty afterwards. Saves V8 a full collection per ~64 MB of media (one per 1080p image).
 */
export function recycleMedia(plan: ModelInputPlan): void {
  for (const { media: m } of plan.media) recycleOutput(m.type === 'audio' ? m.features : m.pixelValues);
}
