// Chat completions messages to the fusion layer's conversation: each message checked against its
// role's schema, content parts by their `type`, media decoded (all parts of a request at once,
// on the native codecs), `developer` read as `system`, assistant tool calls and reasoning kept,
// and an assistant `audio: {id}` reference replaced by the transcript of that earlier reply.
// Video files are refused (`video_unsupported`): the fusion input this API builds on takes audio
// and images only; a DashScope frame list is accepted as a sequence of images.
import type { InputMessage, InputPart } from '../../fusion/model_input.js';
import type { ToolCall } from '../../fusion/template.js';
import type { RuntimeCapabilities } from '../../runtime/contract.js';
import type { AudioTranscriptStore } from './audio_store.js';
import { invalidRequest } from './errors.js';
import { audioMedia, imageMedia, mediaBytes } from './media.js';
import {
  MESSAGE_SCHEMAS,
  USER_PART_SCHEMAS,
  type AssistantMessage,
  type MessageRole,
  type SystemMessage,
  type ToolMessage,
  type UserMessage,
  type UserPart,
  type UserPartType,
} from './schema.js';
import { checkSchema } from './validation.js';

export interface MessageContext {
  capabilities: RuntimeCapabilities;
  transcripts: AudioTranscriptStore;
  /** Aborts media decoding when the client goes away. */
  signal?: AbortSignal;
}

type TextLike = string | readonly { type: 'text'; text: string }[];
export const joinText = (content: TextLike): string => (typeof content === 'string' ? content : content.map((p) => p.text).join(''));

function needs(capable: boolean, what: string, param: string): void {
  if (!capable) throw invalidRequest('modality_unsupported', `The loaded model does not take ${what} input.`, param);
}

/**
 * What a request's media become: features for token-level engines (this file), normalised files
 * for whole-turn ones (turn_messages.ts). Each decoder reports its own errors against `field`.
 */
export interface PartDecoders<P> {
  text(text: string): P;
  image(bytes: Uint8Array, field: string): Promise<P>;
  audio(bytes: Uint8Array, field: string, signal?: AbortSignal): Promise<P>;
  /** Whether a frame list (a `video` part) can be served by this runtime. */
  framesAccepted(caps: RuntimeCapabilities): boolean;
}

/** One user content part to model input parts (a frame list gives one image per frame). */
export async function userPart<P>(part: UserPart, param: string, ctx: MessageContext, decode: PartDecoders<P>): Promise<P[]> {
  const caps = ctx.capabilities;
  switch (part.type) {
    case 'text':
      return [decode.text(part.text)];
    case 'image_url': {
      const url = typeof part.image_url === 'string' ? part.image_url : part.image_url.url;
      const field = typeof part.image_url === 'string' ? `${param}.image_url` : `${param}.image_url.url`;
      needs(caps.imageIn, 'image', param);
      return [await decode.image(mediaBytes(url, field, { allowBareBase64: false }), field)];
    }
    case 'input_audio': {
      const field = `${param}.input_audio.data`;
      needs(caps.audioIn, 'audio', param);
      return [await decode.audio(mediaBytes(part.input_audio.data, field, { allowBareBase64: true }), field, ctx.signal)];
    }
    case 'audio_url': {
      const field = `${param}.audio_url.url`;
      needs(caps.audioIn, 'audio', param);
      return [await decode.audio(mediaBytes(part.audio_url.url, field, { allowBareBase64: false }), field, ctx.signal)];
    }
    case 'video_url':
      return refuseVideoFile(part, param);
    case 'video': {
      needs(decode.framesAccepted(caps), 'video', param);
      return Promise.all(part.video.map((frame, k) => decode.image(mediaBytes(frame, `${param}.video[${k}]`, { allowBareBase64: false }), `${param}.video[${k}]`)));
    }
  }
}

/** Token-level engines: audio to log-mel features, images to patches. */
const FEATURES: PartDecoders<InputPart> = {
  text: (text) => ({ type: 'text', text }),
  image: imageMedia,
  audio: audioMedia,
  framesAccepted: (caps) => caps.videoIn && caps.imageIn,
};

/** Checks each part of a user message against the schema of its `type`. */
function checkUserParts(m: UserMessage, param: string): void {
  if (typeof m.content === 'string') return;
  m.content.forEach((raw, j) => {
    const partParam = `${param}.content[${j}]`;
    const schema = USER_PART_SCHEMAS[raw.type as UserPartType];
    if (!schema) {
      throw invalidRequest(
        'invalid_value',
        `Invalid value for '${partParam}.type': '${raw.type}'. Supported values are: ${Object.keys(USER_PART_SCHEMAS).map((t) => `'${t}'`).join(', ')}.`,
        `${partParam}.type`,
      );
    }
    checkSchema(schema, raw, partParam);
  });
}

async function userMessage(m: UserMessage, param: string, ctx: MessageContext): Promise<InputMessage> {
  if (typeof m.content === 'string') return { role: 'user', content: m.content };
  const decoded = await Promise.all(m.content.map((part, j) => userPart(part as UserPart, `${param}.content[${j}]`, ctx, FEATURES)));
  return { role: 'user', content: decoded.flat() };
}

/** An assistant message's text: its content, or the transcript of the earlier spoken reply it names. */
export function assistantText(m: AssistantMessage, param: string, ctx: MessageContext): string {
  const content = m.content == null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => (p.type === 'text' ? p.text : p.refusal)).join('');
  if (!m.audio) return content;
  const transcript = ctx.transcripts.get(m.audio.id);
  if (transcript === undefined) throw invalidRequest('invalid_value', `Audio '${m.audio.id}' is unknown or has expired.`, `${param}.audio.id`);
  return content || transcript;
}

/** The refusal of a video file part (this endpoint takes frame lists; remote URLs are refused first). */
export function refuseVideoFile(part: UserPart & { type: 'video_url' }, param: string): never {
  const field = typeof part.video_url === 'string' ? `${param}.video_url` : `${param}.video_url.url`;
  const url = typeof part.video_url === 'string' ? part.video_url : part.video_url.url;
  // Still refuse remote URLs first: that error tells the client what it can do instead.
  mediaBytes(url, field, { allowBareBase64: false });
  throw invalidRequest(
    'video_unsupported',
    `Video files are not supported on this endpoint yet; send the video as a frame list ({"type": "video", "video": ["data:image/jpeg;base64,...", ...]}) or use the realtime API.`,
    field,
  );
}

function assistantMessage(m: AssistantMessage, param: string, ctx: MessageContext): InputMessage {
  const content = assistantText(m, param, ctx);
  const toolCalls: ToolCall[] | undefined = m.tool_calls?.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: c.function.arguments } }));
  return {
    role: 'assistant',
    content,
    ...(toolCalls && toolCalls.length > 0 ? { toolCalls } : {}),
    ...(m.reasoning_content ? { reasoning: m.reasoning_content } : {}),
  };
}

/** Checks every message's shape (and each user part's) before any media is decoded. */
export function checkMessages(messages: readonly unknown[]): void {
  messages.forEach((raw, i) => {
    const role = (raw as { role: MessageRole }).role;
    checkSchema(MESSAGE_SCHEMAS[role], raw, `messages[${i}]`);
    if (role === 'user') checkUserParts(raw as UserMessage, `messages[${i}]`);
  });
}

/** The first failing message's error (not whichever media decode failed first), else the values. */
export async function firstFailure<T>(pending: readonly Promise<T>[]): Promise<T[]> {
  const settled = await Promise.allSettled(pending);
  return settled.map((s) => {
    if (s.status === 'rejected') throw s.reason;
    return s.value;
  });
}

/** Checks and converts the messages, decoding every media part. */
export async function toInputMessages(messages: readonly unknown[], ctx: MessageContext): Promise<InputMessage[]> {
  // Every shape is checked before any media is decoded: a bad last message costs no decoding.
  checkMessages(messages);
  const pending = messages.map(async (raw, i): Promise<InputMessage> => {
    const param = `messages[${i}]`;
    const role = (raw as { role: MessageRole }).role;
    switch (role) {
      case 'system':
      case 'developer':
        return { role: 'system', content: joinText((raw as SystemMessage).content) };
      case 'user':
        return userMessage(raw as UserMessage, param, ctx);
      case 'assistant':
        return assistantMessage(raw as AssistantMessage, param, ctx);
      case 'tool':
        return { role: 'tool', content: joinText((raw as ToolMessage).content) };
    }
  });
  return firstFailure(pending);
}
