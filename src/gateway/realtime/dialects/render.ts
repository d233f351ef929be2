// Server events -> wire objects, shared by the dialects. The session emits GA-named events with
// structured session/response/item objects; a dialect supplies its names, its session and
// response views and its item style. `event_id` is added by the caller.
import type { ProtocolErrorBody, ResponseState, ServerEvent, ServerEventType, SessionConfig } from '../model.js';
import { renderItem, type ItemStyle } from './items.js';

export interface RenderStyle {
  itemStyle: ItemStyle;
  session(config: SessionConfig): Record<string, unknown>;
  response(response: ResponseState): Record<string, unknown>;
  /** Wire names that differ from the GA names. */
  renames: Partial<Record<ServerEventType, string>>;
  /** Events this dialect does not have (rendered as nothing). */
  omitted: ReadonlySet<ServerEventType>;
  /** DashScope's error object has no inner `event_id`. */
  errorEventId: boolean;
}

function renderErrorBody(body: ProtocolErrorBody, withEventId: boolean): Record<string, unknown> {
  const { event_id: eventId, ...rest } = body;
  return withEventId ? { ...rest, event_id: eventId } : rest;
}

export function renderServerEvent(event: ServerEvent, style: RenderStyle): Record<string, unknown>[] {
  if (style.omitted.has(event.type)) return [];
  const type = style.renames[event.type] ?? event.type;
  switch (event.type) {
    case 'session.created':
    case 'session.updated':
      return [{ type, session: style.session(event.session) }];
    case 'error':
      return [{ type, error: renderErrorBody(event.error, style.errorEventId) }];
    case 'conversation.item.added':
    case 'conversation.item.done':
      return [{ type, previous_item_id: event.previous_item_id, item: renderItem(event.item, style.itemStyle) }];
    case 'conversation.item.retrieved': {
      const options = event.audio ? { withMedia: true, outputAudio: event.audio } : { withMedia: true };
      return [{ type, item: renderItem(event.item, style.itemStyle, options) }];
    }
    case 'conversation.item.input_audio_transcription.failed': {
      const { event_id: _eventId, ...error } = event.error;
      return [{ ...event, type, error }];
    }
    case 'response.created':
    case 'response.done':
      return [{ type, response: style.response(event.response) }];
    case 'response.output_item.added':
    case 'response.output_item.done':
      return [{ ...event, type, item: renderItem(event.item, style.itemStyle) }];
    case 'response.content_part.added':
    case 'response.content_part.done':
      return [{ ...event, type, part: { ...event.part } }];
    case 'response.output_audio.delta': {
      const { audio, ...rest } = event;
      return [{ ...rest, type, delta: audio.toString('base64') }];
    }
    case 'rate_limits.updated':
      return [{ type, rate_limits: event.rate_limits.map((limit) => ({ ...limit })) }];
    default:
      // Flat events (ids, indices, strings) are already in wire shape.
      return [{ ...event, type }];
  }
}
