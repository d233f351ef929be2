// Which dialect a connection speaks, and what its WebSocket subprotocols say
// (realtime-protocol.md §1.1-1.3).
import type { Dialect, DialectName } from '../model.js';
import { betaDialect } from './beta.js';
import { dashscopeDialect } from './dashscope.js';
import { gaDialect } from './ga.js';

export { betaDialect } from './beta.js';
export { dashscopeDialect } from './dashscope.js';
export { gaDialect } from './ga.js';
export { clientEventId } from './events.js';

const DIALECTS: Record<DialectName, Dialect> = { ga: gaDialect, beta: betaDialect, dashscope: dashscopeDialect };

export function dialectFor(name: DialectName): Dialect {
  return DIALECTS[name];
}

const BETA_SUBPROTOCOL = 'openai-beta.realtime-v1';
const API_KEY_PREFIX = 'openai-insecure-api-key.';

/** A `Sec-WebSocket-Protocol` header, a list of offered protocols (ws passes a Set), or nothing. */
export type OfferedProtocols = string | readonly string[] | ReadonlySet<string> | undefined;

function protocolList(offered: OfferedProtocols): string[] {
  if (offered === undefined) return [];
  const parts = typeof offered === 'string' ? [offered] : [...offered];
  return parts.flatMap((p) => p.split(',')).map((p) => p.trim()).filter((p) => p.length > 0);
}

export interface SubprotocolSelection {
  /** The protocol to select: browsers fail the handshake unless `realtime` is echoed (§0.4). */
  selected: 'realtime' | false;
  /** From `openai-insecure-api-key.<key>`; non-enumerable, so logging the object never shows it. */
  apiKey?: string;
  /** `openai-beta.realtime-v1` was offered. */
  beta: boolean;
}

/**
 * Reads the offered subprotocols. Only `realtime` is ever selected (never the key token);
 * `openai-organization.*` and `openai-project.*` are tolerated and ignored.
 */
export function parseSubprotocols(offered: OfferedProtocols): SubprotocolSelection {
  const protocols = protocolList(offered);
  const selection: SubprotocolSelection = {
    selected: protocols.includes('realtime') ? 'realtime' : false,
    beta: protocols.includes(BETA_SUBPROTOCOL),
  };
  const keyToken = protocols.find((p) => p.startsWith(API_KEY_PREFIX));
  const apiKey = keyToken?.slice(API_KEY_PREFIX.length);
  if (apiKey) Object.defineProperty(selection, 'apiKey', { value: apiKey, enumerable: false });
  return selection;
}

export interface DialectRequest {
  /** Request path, with or without the query string. */
  path: string;
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
  protocols?: OfferedProtocols;
}

function headerValues(headers: DialectRequest['headers'], name: string): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(headers)) {
    if (key.toLowerCase() !== name || value === undefined) continue;
    out.push(...(typeof value === 'string' ? [value] : value));
  }
  return out;
}

/**
 * §1.1: `/api-ws/v1/realtime` is DashScope; otherwise the beta header `OpenAI-Beta: realtime=v1`
 * or the `openai-beta.realtime-v1` subprotocol selects beta; otherwise GA.
 */
export function selectDialect(request: DialectRequest): Dialect {
  const path = request.path.split('?')[0]!.replace(/\/+$/, '');
  if (path.endsWith('/api-ws/v1/realtime')) return dashscopeDialect;
  const betaHeader = headerValues(request.headers, 'openai-beta')
    .flatMap((v) => v.split(','))
    .some((v) => v.trim().toLowerCase() === 'realtime=v1');
  const protocols = request.protocols ?? headerValues(request.headers, 'sec-websocket-protocol');
  if (betaHeader || parseSubprotocols(protocols).beta) return betaDialect;
  return gaDialect;
}
