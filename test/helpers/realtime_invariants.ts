// The ordering invariants of realtime-protocol.md §7, checked over a recorded server event log.
// `checkResponseCycle` validates one response (created first, done once and last, dense
// output_index, one content part per message, deltas inside their part, GA item.added/done
// placement, nothing after done, done.output equal to the announced items);
// `checkInputTurns` validates the input audio events (§7.9); `serverEventTypes` reads the event
// unions of the official `openai` SDK so every event name can be checked against them (§11.20).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Wire } from './realtime.js';

export type DialectKind = 'ga' | 'beta' | 'dashscope';

interface Names {
  textDelta: string;
  textDone: string;
  audioDelta: string;
  audioDone: string;
  transcriptDelta: string;
  transcriptDone: string;
  itemAdded: string;
  messageText: string;
  messageAudio: string;
}

const NAMES: Record<'ga' | 'beta', Names> = {
  ga: {
    textDelta: 'response.output_text.delta',
    textDone: 'response.output_text.done',
    audioDelta: 'response.output_audio.delta',
    audioDone: 'response.output_audio.done',
    transcriptDelta: 'response.output_audio_transcript.delta',
    transcriptDone: 'response.output_audio_transcript.done',
    itemAdded: 'conversation.item.added',
    messageText: 'output_text',
    messageAudio: 'output_audio',
  },
  beta: {
    textDelta: 'response.text.delta',
    textDone: 'response.text.done',
    audioDelta: 'response.audio.delta',
    audioDone: 'response.audio.done',
    transcriptDelta: 'response.audio_transcript.delta',
    transcriptDone: 'response.audio_transcript.done',
    itemAdded: 'conversation.item.created',
    messageText: 'text',
    messageAudio: 'audio',
  },
};

export const namesOf = (dialect: DialectKind): Names => NAMES[dialect === 'ga' ? 'ga' : 'beta'];

type Item = { id: string; type: string; status: string; call_id?: string; name?: string; arguments?: string; content?: { type: string; text?: string; transcript?: string }[] };
type Resp = { id: string; status: string; status_details: { type: string; reason?: string } | null; output: Item[] };

export interface CycleSummary {
  response: Resp;
  /** Index of response.created / response.done in the log. */
  createdAt: number;
  doneAt: number;
  items: Item[];
  /** Text or transcript per output index. */
  text: string[];
  audioDeltas: number;
}

function fail(message: string, log: readonly Wire[], at?: number): never {
  const around = at === undefined ? '' : `\n  at #${at}: ${JSON.stringify(log[at]).slice(0, 300)}`;
  throw new Error(`§7 invariant: ${message}${around}\n  log: ${log.map((e) => e.type).filter((t, i, a) => !(t.endsWith('.delta') && a[i - 1] === t)).join(', ')}`);
}

const isCycleEvent = (e: Wire, id: string): boolean =>
  e.response_id === id || ((e.type === 'response.created' || e.type === 'response.done') && (e.response as Resp | undefined)?.id === id);

/**
 * Checks one response cycle in `log` (every server event of the connection, in order).
 * Throws with the offending event; returns a summary for further assertions.
 */
export function checkResponseCycle(log: readonly Wire[], responseId: string, dialect: DialectKind = 'ga'): CycleSummary {
  const n = namesOf(dialect);
  const idx: number[] = [];
  log.forEach((e, i) => {
    if (isCycleEvent(e, responseId)) idx.push(i);
  });
  if (idx.length === 0) fail(`no events for ${responseId}`, log);
  const createdAt = idx[0]!;
  if (log[createdAt]!.type !== 'response.created') fail(`first event of ${responseId} is not response.created`, log, createdAt);
  const created = log[createdAt]!.response as Resp;
  if (created.status !== 'in_progress' || created.output.length !== 0) fail('response.created must be in_progress with empty output', log, createdAt);
  const dones = idx.filter((i) => log[i]!.type === 'response.done');
  if (dones.length !== 1) fail(`${responseId} has ${dones.length} response.done events`, log, dones[1]);
  const doneAt = dones[0]!;
  if (idx.at(-1) !== doneAt) fail(`an event of ${responseId} follows its response.done`, log, idx.at(-1));
  // Nothing anywhere after done mentions the response or its items' open state.
  const response = log[doneAt]!.response as Resp;

  // Walk the cycle.
  const items: Item[] = [];
  const text: string[] = [];
  let audioDeltas = 0;
  const state: ('open' | 'done')[] = [];
  const part: ('none' | 'open' | 'done')[] = [];
  const partType: string[] = [];
  const subDone: Set<string>[] = [];
  const argsDone: boolean[] = [];
  const allowed = new Set([
    'response.created',
    'response.done',
    'response.output_item.added',
    'response.output_item.done',
    'response.content_part.added',
    'response.content_part.done',
    n.textDelta,
    n.textDone,
    n.audioDelta,
    n.audioDone,
    n.transcriptDelta,
    n.transcriptDone,
    'response.function_call_arguments.delta',
    'response.function_call_arguments.done',
    'output_audio_buffer.started',
    'output_audio_buffer.stopped',
    'output_audio_buffer.cleared',
  ]);
  for (const i of idx) {
    const e = log[i]!;
    if (!allowed.has(e.type)) fail(`unexpected event type ${e.type} in a ${dialect} response cycle`, log, i);
    if (e.type === 'response.created' || e.type === 'response.done' || e.type.startsWith('output_audio_buffer.')) continue;
    const oi = e.output_index as number;
    if (typeof oi !== 'number') fail('event without output_index', log, i);
    if (e.type === 'response.output_item.added') {
      if (oi !== items.length) fail(`output_index ${oi} is not dense (expected ${items.length})`, log, i);
      const item = e.item as Item;
      items.push(item);
      state.push('open');
      part.push('none');
      partType.push('');
      subDone.push(new Set());
      argsDone.push(false);
      text.push('');
      if (item.status !== 'in_progress') fail('output_item.added item must be in_progress', log, i);
      // GA: conversation.item.added directly follows (out-of-band responses have no conversation events).
      const next = log[i + 1];
      const inConversation = created && (log[createdAt]!.response as { conversation_id?: unknown }).conversation_id !== null;
      if (inConversation) {
        if (next?.type !== n.itemAdded || (next.item as Item).id !== item.id) fail(`${n.itemAdded} must directly follow response.output_item.added`, log, i + 1);
      }
      continue;
    }
    const item = items[oi];
    if (!item) fail(`event for output_index ${oi} before its output_item.added`, log, i);
    if (state[oi] === 'done') fail(`event for output_index ${oi} after its output_item.done`, log, i);
    if (e.item_id !== undefined && e.item_id !== item.id) fail(`output_index ${oi} changed item_id`, log, i);
    switch (e.type) {
      case 'response.output_item.done': {
        const doneItem = e.item as Item;
        if (doneItem.id !== item.id) fail('output_item.done has another item id', log, i);
        if (item.type === 'message' && part[oi] !== 'done') fail('output_item.done before content_part.done', log, i);
        if (item.type === 'function_call' && !argsDone[oi]) fail('function_call output_item.done before function_call_arguments.done', log, i);
        if (doneItem.status === 'in_progress') fail('output_item.done item still in_progress', log, i);
        if (dialect === 'ga' && (log[createdAt]!.response as { conversation_id?: unknown }).conversation_id !== null) {
          const prev = log[i - 1];
          if (prev?.type !== 'conversation.item.done' || (prev.item as Item).id !== item.id) fail('conversation.item.done must come just before response.output_item.done', log, i - 1);
        }
        items[oi] = doneItem;
        state[oi] = 'done';
        break;
      }
      case 'response.content_part.added': {
        if (item.type !== 'message') fail('content part on a non-message item', log, i);
        if (part[oi] !== 'none') fail('a message has more than one content part', log, i);
        if (e.content_index !== 0) fail('content_index must be 0', log, i);
        part[oi] = 'open';
        partType[oi] = (e.part as { type: string }).type;
        if (!['text', 'audio'].includes(partType[oi] ?? '')) fail(`content_part.added part.type ${partType[oi]} (must be text or audio)`, log, i);
        break;
      }
      case 'response.content_part.done': {
        if (part[oi] !== 'open') fail('content_part.done without an open part', log, i);
        const need = partType[oi] === 'text' ? [n.textDone] : [n.audioDone, n.transcriptDone];
        for (const d of need) if (!subDone[oi]!.has(d)) fail(`content_part.done before ${d}`, log, i);
        part[oi] = 'done';
        break;
      }
      case 'response.function_call_arguments.delta':
      case 'response.function_call_arguments.done':
        if (item.type !== 'function_call') fail('arguments event on a non-function_call item', log, i);
        if (argsDone[oi]) fail('arguments event after function_call_arguments.done', log, i);
        if (e.call_id !== item.call_id) fail('call_id differs from the announced item', log, i);
        if (e.type === 'response.function_call_arguments.done') argsDone[oi] = true;
        break;
      default: {
        // text / audio / transcript deltas and their done events
        if (part[oi] !== 'open') fail(`${e.type} outside an open content part`, log, i);
        if (e.content_index !== 0) fail('content_index must be 0', log, i);
        const textual = e.type === n.textDelta || e.type === n.textDone;
        if (textual !== (partType[oi] === 'text')) fail(`${e.type} in a ${partType[oi]} part`, log, i);
        if (subDone[oi]!.has(e.type.replace(/\.delta$/, '.done'))) fail(`${e.type} after its done`, log, i);
        if (e.type === n.textDelta || e.type === n.transcriptDelta) text[oi] += e.delta as string;
        if (e.type === n.audioDelta) {
          audioDeltas++;
          if (typeof e.delta !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(e.delta) || e.delta.length % 4 !== 0) fail('audio delta is not padded base64', log, i);
        }
        if (e.type.endsWith('.done')) subDone[oi]!.add(e.type);
      }
    }
  }
  for (let oi = 0; oi < items.length; oi++) if (state[oi] !== 'done') fail(`output_index ${oi} never got output_item.done`, log, doneAt);

  // response.done: the announced items, same ids, statuses and call data (§7.6, §7.7).
  if (response.status === 'in_progress') fail('response.done with status in_progress', log, doneAt);
  if (response.output.length !== items.length) fail(`response.done.output has ${response.output.length} items, ${items.length} were announced`, log, doneAt);
  response.output.forEach((o, k) => {
    const a = items[k]!;
    if (o.id !== a.id || o.type !== a.type || o.status !== a.status) fail(`response.done.output[${k}] differs from output_item.done (${o.id}/${o.status} vs ${a.id}/${a.status})`, log, doneAt);
    if (a.type === 'function_call' && (o.call_id !== a.call_id || o.name !== a.name || o.arguments !== a.arguments)) fail(`response.done.output[${k}] call data differs`, log, doneAt);
    if (a.type === 'message' && JSON.stringify(o.content) !== JSON.stringify(a.content)) fail(`response.done.output[${k}] content differs from output_item.done`, log, doneAt);
  });
  if (response.status !== 'completed') {
    const last = items.at(-1);
    if (last?.type === 'message' && last.status !== 'incomplete') fail(`a ${response.status} response left its message ${last.status}`, log, doneAt);
  }
  return { response, createdAt, doneAt, items, text, audioDeltas };
}

/** Every response in the log, checked; returns their summaries in order. */
export function checkAllResponses(log: readonly Wire[], dialect: DialectKind = 'ga'): CycleSummary[] {
  return log.filter((e) => e.type === 'response.created').map((e) => checkResponseCycle(log, (e.response as Resp).id, dialect));
}

/** §7.9: speech_started(item) < speech_stopped(item) < committed(item) < the user item events. */
export function checkInputTurns(log: readonly Wire[], dialect: DialectKind = 'ga'): void {
  const n = namesOf(dialect);
  const started = new Map<string, number>();
  const stopped = new Map<string, number>();
  const committed = new Map<string, number>();
  const terminal = new Map<string, number>();
  log.forEach((e, i) => {
    const id = e.item_id as string;
    switch (e.type) {
      case 'input_audio_buffer.speech_started':
        if (started.has(id)) fail(`speech_started twice for ${id}`, log, i);
        started.set(id, i);
        break;
      case 'input_audio_buffer.speech_stopped':
        if (!started.has(id)) fail(`speech_stopped for ${id} without speech_started`, log, i);
        if (stopped.has(id)) fail(`${id} stopped twice`, log, i);
        stopped.set(id, i);
        break;
      case 'input_audio_buffer.committed':
        if (started.has(id) && !stopped.has(id)) fail(`committed ${id} before its speech_stopped`, log, i);
        if (committed.has(id)) fail(`committed ${id} twice`, log, i);
        committed.set(id, i);
        break;
      case 'conversation.item.input_audio_transcription.completed':
      case 'conversation.item.input_audio_transcription.failed':
        if (terminal.has(id)) fail(`two transcription terminals for ${id}`, log, i);
        if (!committed.has(id)) fail(`transcription terminal before commit of ${id}`, log, i);
        terminal.set(id, i);
        break;
      case 'conversation.item.input_audio_transcription.delta':
        if (terminal.has(id)) fail(`transcription delta after the terminal for ${id}`, log, i);
        break;
      default:
        if (e.type === n.itemAdded && committed.has((e.item as Item).id)) {
          const c = committed.get((e.item as Item).id)!;
          if (c > i) fail('user item event before its committed', log, i);
        }
    }
  });
  for (const [id, c] of committed) {
    const added = log.findIndex((e) => e.type === n.itemAdded && (e.item as Item).id === id);
    if (added < 0) fail(`committed ${id} was never announced with ${n.itemAdded}`, log, c);
    if (added < c) fail(`${id} announced before committed`, log, added);
  }
}

// ---------------------------------------------------------------------------------------------
// The SDK's server event unions (the `type` literal of each member of RealtimeServerEvent).

const require = createRequire(import.meta.url);

/** The `type` literal of each member of the union, with the member's required top-level fields. */
function unionMembers(dts: string): Map<string, string[]> {
  const m = /export type RealtimeServerEvent = ([^;]+);/.exec(dts);
  if (!m) throw new Error('RealtimeServerEvent union not found');
  const out = new Map<string, string[]>();
  for (const raw of m[1]!.split('|')) {
    const name = raw.trim().split('.').at(-1)!;
    const at = dts.search(new RegExp(`(?:interface|class) ${name} \\{`));
    if (at < 0) throw new Error(`interface ${name} not found`);
    // The interface body, comments removed, cut at its closing brace.
    const text = dts.slice(dts.indexOf('{', at) + 1).replace(/\/\*[\s\S]*?\*\//g, '');
    let depth = 0;
    let end = 0;
    for (; end < text.length; end++) {
      const ch = text[end];
      if (ch === '{' || ch === '(' || ch === '<') depth++;
      else if (ch === '}' || ch === ')' || ch === '>') {
        if (depth === 0) break;
        depth--;
      }
    }
    const body = text.slice(0, end);
    const required: string[] = [];
    let type: string | undefined;
    depth = 0;
    let line = '';
    for (const ch of body) {
      if (depth === 0 && ch === ';') {
        const prop = /^\s*(\w+)(\??):\s*([\s\S]*)$/.exec(line);
        if (prop) {
          if (prop[1] === 'type') type = /^'([^']+)'/.exec(prop[3]!.trim())?.[1];
          if (prop[2] !== '?') required.push(prop[1]!);
        }
        line = '';
        continue;
      }
      if (ch === '{' || ch === '(' || ch === '<') depth++;
      else if (ch === '}' || ch === ')' || ch === '>') depth--;
      line += ch;
    }
    if (type) out.set(type, required);
  }
  return out;
}

const members = new Map<string, Map<string, string[]>>();

function sdkMembers(kind: 'ga' | 'beta'): Map<string, string[]> {
  let map = members.get(kind);
  if (!map) {
    const root = dirname(require.resolve(kind === 'ga' ? 'openai' : 'openai6'));
    const file = kind === 'ga' ? join(root, 'resources/realtime/realtime.d.ts') : join(root, 'resources/beta/realtime/realtime.d.ts');
    map = unionMembers(readFileSync(file, 'utf8'));
    members.set(kind, map);
  }
  return map;
}

/** Event types of the SDK's GA (`openai` 7.x) or beta (`openai` 6.x beta) RealtimeServerEvent union. */
export function serverEventTypes(kind: 'ga' | 'beta'): Set<string> {
  return new Set(sdkMembers(kind).keys());
}

/**
 * Throws unless every event of `log` is a member of the SDK union of the dialect and carries the
 * member's required top-level fields (§11.20: what a TypeScript client may rely on).
 */
export function checkEventTypes(log: readonly Wire[], kind: 'ga' | 'beta'): void {
  const union = sdkMembers(kind);
  const problems = new Set<string>();
  for (const e of log) {
    const required = union.get(e.type);
    if (!required) {
      problems.add(`${e.type} is not in the union`);
      continue;
    }
    for (const key of required) if (!(key in e)) problems.add(`${e.type} lacks required field ${key}`);
  }
  if (problems.size > 0) throw new Error(`events outside the openai SDK ${kind} RealtimeServerEvent types: ${[...problems].join('; ')}`);
}
