// The Qwen3-Omni chat layout (spec §3.2) built as pieces -- special ids, text runs, media -- instead
// of one rendered string. Tokenizing each text run between two special/media pieces is exactly what
// the reference does with the rendered string (added tokens split it first, then each gap is
// pre-tokenized on its own), provided adjacent text is merged into one run, which layout() does.
//
// Layout: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, content items concatenated
// without separators, media as marker + one pad + marker, then `<|im_start|>assistant\n` as the
// generation prompt. No default system prompt. Reasoning follows the Qwen3 template: an assistant
// turn after the last text-only user query renders `<think>\n{reasoning}\n</think>\n\n{content}`;
// earlier ones lose their reasoning. `enableThinking: false` prefills an empty think block (Qwen3
// convention; whether the Omni template has the switch is open, spec §3.2).
//
// Tools follow the Qwen3 template: with `tools`, a system turn holds the first message's system
// content (if any) + `\n\n` and the `# Tools` block with one `tojson` line per tool; assistant
// `toolCalls` follow the content as `<tool_call>` blocks; consecutive `tool` messages share one user
// turn, each wrapped in `<tool_response>`. A string user message that is wholly a
// `<tool_response>…</tool_response>` is not a query for the reasoning rule.
import { SPECIAL_IDS } from '../codecs/text/special_tokens.js';
import { FusionError } from './errors.js';
import type { Grid } from './placeholders.js';
import type { Segment } from './sequence.js';
import { TOOL_IDS, TOOL_TOKEN_TEXT, TOOLS_HEAD, TOOLS_TAIL, toolCallBody, toolLines, type ToolCall, type ToolDefinition } from './tool_format.js';

export type { ToolCall, ToolDefinition, ToolFunctionCall } from './tool_format.js';
export type { JsonObject, JsonValue } from './tool_json.js';

export type ContentPart =
  | { type: 'text'; text: string }
  /** `frames`: valid mel frames of the clip (feature_attention_mask.sum()). */
  | { type: 'audio'; frames: number }
  | { type: 'image'; grid: Grid }
  /** `audioFrames`: the soundtrack's mel frames when it is interleaved (use_audio_in_video). */
  | { type: 'video'; grid: Grid; secondPerGrid: number; audioFrames?: number };

export type Role = 'system' | 'user' | 'assistant' | 'tool';

export interface ChatMessage {
  role: Role;
  /** A string, or parts; only a string-content user message counts as a query for reasoning. */
  content: string | readonly ContentPart[];
  /** Assistant reasoning (the template's `reasoning_content`). */
  reasoning?: string;
  /** Assistant tool calls (the template's `tool_calls`), rendered after the content. */
  toolCalls?: readonly ToolCall[];
}

export interface TemplateOptions {
  /** Append `<|im_start|>assistant\n` (default true). */
  addGenerationPrompt?: boolean;
  /** false: prefill `<think>\n\n</think>\n\n` after the generation prompt. */
  enableThinking?: boolean;
  /** Tool definitions for the `# Tools` system block; none or an empty list: no block. */
  tools?: readonly ToolDefinition[];
}

export type MediaSegment = Exclude<Segment, { type: 'tokens' }>;

export type LayoutPiece =
  | { type: 'text'; text: string }
  | { type: 'special'; id: number }
  | { type: 'media'; segment: MediaSegment };

const TOKEN_TEXT: ReadonlyMap<number, string> = new Map([
  [SPECIAL_IDS.imStart, '<|im_start|>'],
  [SPECIAL_IDS.imEnd, '<|im_end|>'],
  [SPECIAL_IDS.think, '<think>'],
  [SPECIAL_IDS.thinkEnd, '</think>'],
  ...TOOL_TOKEN_TEXT,
]);

/** Python str.strip/lstrip/rstrip with a character set. */
function stripChars(s: string, chars: string, left: boolean, right: boolean): string {
  let a = 0;
  let b = s.length;
  while (left && a < b && chars.includes(s[a] as string)) a++;
  while (right && b > a && chars.includes(s[b - 1] as string)) b--;
  return s.slice(a, b);
}
const lstripNl = (s: string): string => stripChars(s, '\n', true, false);
const rstripNl = (s: string): string => stripChars(s, '\n', false, true);
const stripNl = (s: string): string => stripChars(s, '\n', true, true);

class Pieces {
  readonly list: LayoutPiece[] = [];
  text(t: string): void {
    if (t.length === 0) return;
    const last = this.list[this.list.length - 1];
    if (last?.type === 'text') last.text += t;
    else this.list.push({ type: 'text', text: t });
  }
  special(id: number): void {
    this.list.push({ type: 'special', id });
  }
  media(segment: MediaSegment): void {
    this.list.push({ type: 'media', segment });
  }
  /** Template text with the tool tokens in it as special pieces (never for message content). */
  markup(t: string): void {
    for (const part of t.split(TOOL_TOKEN_RE)) {
      const id = TOOL_TOKEN_ID.get(part);
      if (id !== undefined) this.special(id);
      else this.text(part);
    }
  }
}

const TOOL_TOKEN_ID: ReadonlyMap<string, number> = new Map([...TOOL_TOKEN_TEXT].map(([id, t]) => [t, id]));
const TOOL_TOKEN_RE = /(<\/?tool_call>|<\/?tool_response>)/;

function checkMessage(m: ChatMessage, i: number): void {
  const param = `messages[${i}]`;
  if (m.role !== 'system' && m.role !== 'user' && m.role !== 'assistant' && m.role !== 'tool') {
    throw new FusionError('message_invalid', `unknown role ${String(m.role)}`, `${param}.role`);
  }
  if (typeof m.content !== 'string' && !Array.isArray(m.content)) {
    throw new FusionError('message_invalid', 'content must be a string or a list of parts', `${param}.content`);
  }
  const parts = typeof m.content === 'string' ? [] : (m.content as readonly ContentPart[]);
  if (m.role === 'assistant' && parts.some((p) => p.type !== 'text')) {
    throw new FusionError('message_invalid', 'assistant turns carry text only', `${param}.content`);
  }
  if (m.toolCalls !== undefined && m.toolCalls !== null) {
    if (m.role !== 'assistant') {
      throw new FusionError('message_invalid', 'only assistant turns carry tool calls', `${param}.toolCalls`);
    }
    if (!Array.isArray(m.toolCalls)) {
      throw new FusionError('tool_call_invalid', 'toolCalls must be a list', `${param}.toolCalls`);
    }
  }
}

/** Index of the last user message whose content is a string that is not a tool response. */
function lastQueryIndex(messages: readonly ChatMessage[]): number {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as ChatMessage;
    if (m.role !== 'user' || typeof m.content !== 'string') continue;
    if (m.content.startsWith('<tool_response>') && m.content.endsWith('</tool_response>')) continue;
    return i;
  }
  return messages.length - 1;
}

function contentPieces(p: Pieces, content: ChatMessage['content']): void {
  if (typeof content === 'string') {
    p.text(content);
    return;
  }
  for (const part of content) {
    if (part.type === 'text') p.text(part.text);
    else p.media(part);
  }
}

function assistantText(content: ChatMessage['content']): string {
  if (typeof content === 'string') return content;
  return content.map((part) => (part.type === 'text' ? part.text : '')).join('');
}

/** The conversation as special ids, merged text runs and media, in sequence order. */
export function layout(messages: readonly ChatMessage[], options: TemplateOptions = {}): LayoutPiece[] {
  messages.forEach(checkMessage);
  const p = new Pieces();
  const tools = options.tools === undefined || options.tools === null ? [] : toolLines(options.tools);
  // the first message's system content moves into the tools turn
  const systemInTools = tools.length > 0 && messages[0]?.role === 'system';
  if (tools.length > 0) {
    p.special(SPECIAL_IDS.imStart);
    p.text('system\n');
    if (systemInTools) {
      contentPieces(p, (messages[0] as ChatMessage).content);
      p.text('\n\n');
    }
    p.markup(TOOLS_HEAD);
    for (const line of tools) p.text(`\n${line}`);
    p.markup(TOOLS_TAIL);
    p.special(SPECIAL_IDS.imEnd);
    p.text('\n');
  }
  const lastQuery = lastQueryIndex(messages);
  messages.forEach((m, i) => {
    if (i === 0 && systemInTools) return;
    if (m.role === 'tool') {
      // consecutive tool results share one user turn
      if (messages[i - 1]?.role !== 'tool') {
        p.special(SPECIAL_IDS.imStart);
        p.text('user');
      }
      p.text('\n');
      p.special(TOOL_IDS.toolResponse);
      p.text('\n');
      contentPieces(p, m.content);
      p.text('\n');
      p.special(TOOL_IDS.toolResponseEnd);
      if (messages[i + 1]?.role !== 'tool') {
        p.special(SPECIAL_IDS.imEnd);
        p.text('\n');
      }
      return;
    }
    p.special(SPECIAL_IDS.imStart);
    if (m.role !== 'assistant') {
      p.text(`${m.role}\n`);
      contentPieces(p, m.content);
    } else {
      let content = assistantText(m.content);
      let reasoning = '';
      if (m.reasoning !== undefined) {
        reasoning = m.reasoning;
      } else if (content.includes('</think>')) {
        const parts = content.split('</think>');
        reasoning = lstripNl((rstripNl(parts[0] as string).split('<think>').pop() as string));
        content = lstripNl(parts[parts.length - 1] as string);
      }
      p.text('assistant\n');
      const isLast = i === messages.length - 1;
      if (i > lastQuery && (isLast || reasoning.length > 0)) {
        p.special(SPECIAL_IDS.think);
        p.text(`\n${stripNl(reasoning)}\n`);
        p.special(SPECIAL_IDS.thinkEnd);
        p.text(`\n\n${lstripNl(content)}`);
      } else {
        p.text(content);
      }
      (m.toolCalls ?? []).forEach((call, j) => {
        // the template tests the content after the think split, before its lstrip
        if (j > 0 || content.length > 0) p.text('\n');
        const body = toolCallBody(call, `messages[${i}].toolCalls[${j}]`);
        p.special(TOOL_IDS.toolCall);
        p.text(body);
        p.special(TOOL_IDS.toolCallEnd);
      });
    }
    p.special(SPECIAL_IDS.imEnd);
    p.text('\n');
  });
  if (options.addGenerationPrompt ?? true) {
    p.special(SPECIAL_IDS.imStart);
    p.text('assistant\n');
    if (options.enableThinking === false) {
      p.special(SPECIAL_IDS.think);
      p.text('\n\n');
      p.special(SPECIAL_IDS.thinkEnd);
      p.text('\n\n');
    }
  }
  return p.list;
}

const MEDIA_TEXT: Record<MediaSegment['type'], string> = {
  audio: '<|audio_start|><|audio_pad|><|audio_end|>',
  image: '<|vision_start|><|image_pad|><|vision_end|>',
  video: '<|vision_start|><|video_pad|><|vision_end|>',
};

/** The rendered chat-template string of a layout (what apply_chat_template returns), for checks. */
export function renderLayout(pieces: readonly LayoutPiece[]): string {
  return pieces
    .map((piece) => {
      if (piece.type === 'text') return piece.text;
      if (piece.type === 'media') return MEDIA_TEXT[piece.segment.type];
      return TOKEN_TEXT.get(piece.id) ?? '';
    })
    .join('');
}

/** Anything that turns text runs into ids, one array per run (QwenTokenizer.encodeBatch). */
export type EncodeTexts = (texts: readonly string[]) => Promise<number[][]>;

/**
 * Segments ready for SequenceBuilder: each text run tokenized on its own (one encode per run, as
 * the reference tokenizes each gap between added tokens), special ids and media as they are.
 */
export async function tokenizeLayout(pieces: readonly LayoutPiece[], encode: EncodeTexts): Promise<Segment[]> {
  // All text runs in one batch: each encode call is a hop to the tokenizer's threads.
  const runs = await encode(pieces.flatMap((p) => (p.type === 'text' ? [p.text] : [])));
  let run = 0;
  const out: Segment[] = [];
  let pending: number[] = [];
  const flush = (): void => {
    if (pending.length > 0) out.push({ type: 'tokens', ids: pending });
    pending = [];
  };
  for (const piece of pieces) {
    if (piece.type === 'text') {
      // a loop, not push(...ids): a long text run would exceed the argument limit
      for (const id of runs[run++]!) pending.push(id);
    } else if (piece.type === 'special') pending.push(piece.id);
    else {
      flush();
      out.push(piece.segment);
    }
  }
  flush();
  return out;
}
