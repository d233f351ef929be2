// The client-event envelope shared by all dialects: `type` and `event_id` checks, the unknown-type
// error listing the dialect's events, and the events whose payload is the same everywhere (audio
// and image appends, item CRUD, cancel). Each dialect plugs in its session and response parsers.
import type { ClientCommand, DialectName, ResponseOverrides, SessionConfig, SessionPatch } from '../model.js';
import { errors, Fields, isJsonObject, parseMetadata } from './common.js';
import { parseItem, type ItemStyle } from './items.js';
import { decodeAudioAppend, decodeImageFrame, type WavHeaderPolicy } from './payloads.js';
import { parseThinking } from './session_fields.js';

/** What differs between dialects when parsing client events. */
export interface ClientGrammar {
  name: DialectName;
  /** Accepted event types, in the order the unknown-type error lists them. */
  clientEventTypes: readonly string[];
  itemStyle: ItemStyle;
  wav: WavHeaderPolicy;
  /** `session.update.session` (path `session`); the whole update is validated before returning. */
  parseSession(session: unknown, config: SessionConfig): SessionPatch;
  /** `response.create.response` (path `response`). */
  parseResponse(response: Fields, config: SessionConfig): ResponseOverrides;
  responseKeys: readonly string[];
  /** Events the dialect lists but handles itself (renames, refusals). */
  special?: Partial<Record<string, (event: Fields, eventId: string | null, config: SessionConfig) => ClientCommand>>;
}

/** The client's `event_id` if it sent a usable one (for error bodies, even when parsing fails). */
export function clientEventId(event: unknown): string | null {
  return isJsonObject(event) && typeof event.event_id === 'string' ? event.event_id : null;
}

export function parseClientEvent(event: unknown, config: SessionConfig, grammar: ClientGrammar): ClientCommand {
  if (!isJsonObject(event)) throw errors.invalidJson();
  const type = event.type;
  if (type === undefined) throw errors.missingRequired('type');
  if (typeof type !== 'string') throw errors.invalidType('type', 'a string', type);
  if (!grammar.clientEventTypes.includes(type)) throw errors.notOneOf('type', type, grammar.clientEventTypes);
  const eventId = event.event_id === undefined || event.event_id === null ? null : event.event_id;
  if (eventId !== null && typeof eventId !== 'string') throw errors.invalidType('event_id', 'a string', eventId);
  const envelope = (keys: readonly string[]): Fields => Fields.of(event, '', ['type', 'event_id', ...keys]);

  const special = grammar.special?.[type];
  if (special) return special(envelope(Object.keys(event)), eventId, config);

  switch (type) {
    case 'session.update': {
      const fields = envelope(['session']);
      return { type, eventId, patch: grammar.parseSession(fields.required('session'), config) };
    }
    case 'input_audio_buffer.append': {
      const fields = envelope(['audio']);
      return { type, eventId, audio: decodeAudioAppend(fields.requiredString('audio'), config.inputFormat, grammar.wav) };
    }
    case 'input_image_buffer.append': {
      const fields = envelope(['image']);
      return { type, eventId, image: decodeImageFrame(fields.requiredString('image')).image };
    }
    case 'input_audio_buffer.commit':
    case 'input_audio_buffer.clear':
    case 'output_audio_buffer.clear':
    case 'session.close':
      envelope([]);
      return { type, eventId };
    case 'conversation.item.create': {
      const fields = envelope(['item', 'previous_item_id']);
      const item = parseItem(fields.required('item'), 'item', { style: grammar.itemStyle, config, wav: grammar.wav });
      const previous = fields.nullableString('previous_item_id');
      return previous === undefined ? { type, eventId, item } : { type, eventId, item, previousItemId: previous };
    }
    case 'conversation.item.retrieve':
    case 'conversation.item.delete':
      return { type, eventId, itemId: envelope(['item_id']).requiredString('item_id') };
    case 'conversation.item.truncate': {
      const fields = envelope(['item_id', 'content_index', 'audio_end_ms']);
      fields.required('content_index');
      fields.required('audio_end_ms');
      return {
        type,
        eventId,
        itemId: fields.requiredString('item_id'),
        contentIndex: fields.number('content_index', { integer: true, min: 0 })!,
        audioEndMs: fields.number('audio_end_ms', { integer: true, min: 0 })!,
      };
    }
    case 'response.create': {
      const fields = envelope(['response']);
      const raw = fields.raw('response');
      if (raw === undefined || raw === null) return { type, eventId, response: {} };
      const response = Fields.of(raw, 'response', grammar.responseKeys);
      return { type, eventId, response: grammar.parseResponse(response, config) };
    }
    case 'response.cancel': {
      const responseId = envelope(['response_id']).string('response_id');
      return responseId === undefined ? { type, eventId } : { type, eventId, responseId };
    }
    default:
      // A type listed by the grammar without a parser is a bug in the dialect, not the client.
      throw new Error(`realtime dialect ${grammar.name}: no parser for client event ${type}`);
  }
}

/** `response.input`: items or `{type:"item_reference", id}`. */
export function parseResponseInput(response: Fields, style: ItemStyle, config: SessionConfig, wav: WavHeaderPolicy): ResponseOverrides['input'] {
  const list = response.array('input');
  if (!list) return undefined;
  return list.map((value, i) => {
    const path = `${response.param('input')}[${i}]`;
    if (isJsonObject(value) && value.type === 'item_reference') {
      return { reference: Fields.of(value, path, ['type', 'id']).requiredString('id') };
    }
    return parseItem(value, path, { style, config, wav });
  });
}

/**
 * The `response.create` fields every dialect spells alike (conversation, input, metadata and the
 * thinking extension), parsed into `out` after the dialect's own fields.
 */
export function parseSharedResponseFields(response: Fields, style: ItemStyle, config: SessionConfig, wav: WavHeaderPolicy, out: ResponseOverrides): ResponseOverrides {
  const conversation = parseConversation(response);
  if (conversation) out.conversation = conversation;
  const input = parseResponseInput(response, style, config, wav);
  if (input) out.input = input;
  const metadata = parseMetadata(response, 'metadata');
  if (metadata !== undefined) out.metadata = metadata;
  const thinking = parseThinking(response, 'thinking');
  if (thinking !== undefined) out.thinking = thinking;
  return out;
}

/** `response.conversation`: "auto" (default conversation) or "none" (out of band). */
export function parseConversation(response: Fields): 'auto' | 'none' | undefined {
  return response.oneOf('conversation', ['auto', 'none'] as const);
}
