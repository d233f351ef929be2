// Conversation items between the wire and the session model (realtime-protocol.md §3). GA names
// assistant content `output_text`/`output_audio`; beta and DashScope name it `text`/`audio`.
// Audio and image bytes are decoded here, and only `conversation.item.retrieved` puts them back.
import type { ContentPart, ConversationItem, ItemInput, SessionConfig } from '../model.js';
import { discriminator, errors, Fields, isJsonObject } from './common.js';
import { decodeAudioAppend, decodeImageDataUri, type WavHeaderPolicy } from './payloads.js';

/** Which content-type names a dialect uses for assistant parts. */
export type ItemStyle = 'ga' | 'beta';

export interface ItemParseOptions {
  style: ItemStyle;
  config: SessionConfig;
  wav: WavHeaderPolicy;
}

const ITEM_TYPES = ['message', 'function_call', 'function_call_output'] as const;
const ROLES = ['system', 'user', 'assistant'] as const;
type Role = (typeof ROLES)[number];
const COMMON_ITEM_KEYS = ['id', 'type', 'object', 'status'];

/** Content types accepted per role; the value is the internal type it becomes. */
const PART_TYPES: Record<ItemStyle, Record<Role, Record<string, ContentPart['type']>>> = {
  ga: {
    system: { input_text: 'input_text' },
    user: { input_text: 'input_text', input_audio: 'input_audio', input_image: 'input_image' },
    assistant: { output_text: 'output_text', output_audio: 'output_audio' },
  },
  beta: {
    system: { input_text: 'input_text', text: 'input_text' },
    user: { input_text: 'input_text', text: 'input_text', input_audio: 'input_audio', input_image: 'input_image' },
    assistant: { text: 'output_text', audio: 'output_audio' },
  },
};

/** One item as a client sends it (`conversation.item.create.item`, `response.input[i]`). */
export function parseItem(value: unknown, path: string, options: ItemParseOptions): ItemInput {
  if (!isJsonObject(value)) throw errors.invalidType(path, 'an object', value);
  const type = discriminator(value, path, ITEM_TYPES);
  const id = (fields: Fields): { id?: string } => {
    const itemId = fields.string('id');
    fields.oneOf('object', ['realtime.item'] as const);
    fields.oneOf('status', ['completed', 'incomplete', 'in_progress'] as const);
    return itemId === undefined ? {} : { id: itemId };
  };
  switch (type) {
    case 'message': {
      const fields = Fields.of(value, path, [...COMMON_ITEM_KEYS, 'role', 'content']);
      const role = fields.requiredOneOf('role', ROLES);
      const rawContent = fields.required('content');
      if (!Array.isArray(rawContent)) throw errors.invalidType(fields.param('content'), 'an array', rawContent);
      const content = rawContent.map((part, i) => parsePart(part, `${path}.content[${i}]`, role, options));
      return { ...id(fields), type, role, content };
    }
    case 'function_call': {
      const fields = Fields.of(value, path, [...COMMON_ITEM_KEYS, 'call_id', 'name', 'arguments']);
      return {
        ...id(fields),
        type,
        callId: fields.requiredString('call_id'),
        name: fields.requiredString('name'),
        arguments: fields.string('arguments') ?? '',
      };
    }
    case 'function_call_output': {
      const fields = Fields.of(value, path, [...COMMON_ITEM_KEYS, 'call_id', 'output']);
      return { ...id(fields), type, callId: fields.requiredString('call_id'), output: fields.requiredString('output') };
    }
  }
}

function parsePart(value: unknown, path: string, role: Role, options: ItemParseOptions): ContentPart {
  if (!isJsonObject(value)) throw errors.invalidType(path, 'an object', value);
  const allowed = PART_TYPES[options.style][role];
  const wireType = discriminator(value, path, Object.keys(allowed));
  switch (allowed[wireType]!) {
    case 'input_text':
      return { type: 'input_text', text: Fields.of(value, path, ['type', 'text']).requiredString('text') };
    case 'output_text':
      return { type: 'output_text', text: Fields.of(value, path, ['type', 'text']).requiredString('text') };
    case 'output_audio': {
      // Clients may restate what the assistant said, not supply its audio (§3).
      if (value.audio !== undefined) {
        throw errors.invalidValue(`${path}.audio`, 'Assistant audio cannot be created by the client; send the transcript only.');
      }
      return { type: 'output_audio', transcript: Fields.of(value, path, ['type', 'transcript']).requiredString('transcript') };
    }
    case 'input_audio': {
      const fields = Fields.of(value, path, ['type', 'audio', 'transcript']);
      const text = fields.string('audio');
      const transcript = fields.nullableString('transcript') ?? null;
      if (text === undefined) return { type: 'input_audio', transcript };
      const audio = decodeAudioAppend(text, options.config.inputFormat, options.wav, fields.param('audio'));
      return { type: 'input_audio', audio, transcript };
    }
    case 'input_image': {
      const fields = Fields.of(value, path, ['type', 'image_url', 'detail']);
      const { image, mime } = decodeImageDataUri(fields.requiredString('image_url'), fields.param('image_url'));
      const detail = fields.oneOf('detail', ['auto', 'low', 'high'] as const) ?? 'auto';
      return { type: 'input_image', image, mime, detail };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Rendering

export interface ItemRenderOptions {
  /** `conversation.item.retrieved`: include audio and image bytes. */
  withMedia?: boolean;
  /** The assistant audio the session kept for this item (retrieved only). */
  outputAudio?: Buffer;
}

export function renderPart(part: ContentPart, style: ItemStyle, options: ItemRenderOptions = {}): Record<string, unknown> {
  switch (part.type) {
    case 'input_text':
      return { type: 'input_text', text: part.text };
    case 'input_audio':
      return options.withMedia && part.audio
        ? { type: 'input_audio', audio: part.audio.toString('base64'), transcript: part.transcript }
        : { type: 'input_audio', transcript: part.transcript };
    case 'input_image':
      return options.withMedia
        ? { type: 'input_image', image_url: `data:${part.mime};base64,${part.image.toString('base64')}`, detail: part.detail }
        : { type: 'input_image', detail: part.detail };
    case 'output_text':
      return { type: style === 'ga' ? 'output_text' : 'text', text: part.text };
    case 'output_audio': {
      const type = style === 'ga' ? 'output_audio' : 'audio';
      return options.withMedia && options.outputAudio
        ? { type, audio: options.outputAudio.toString('base64'), transcript: part.transcript }
        : { type, transcript: part.transcript };
    }
  }
}

export function renderItem(item: ConversationItem, style: ItemStyle, options: ItemRenderOptions = {}): Record<string, unknown> {
  const head = { id: item.id, object: 'realtime.item', type: item.type, status: item.status };
  switch (item.type) {
    case 'message':
      return { ...head, role: item.role, content: item.content.map((part) => renderPart(part, style, options)) };
    case 'function_call':
      return { ...head, call_id: item.callId, name: item.name, arguments: item.arguments };
    case 'function_call_output':
      return { ...head, call_id: item.callId, output: item.output };
  }
}
