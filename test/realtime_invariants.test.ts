// The §7 checker of the realtime conformance suite (test/helpers/realtime_invariants.ts) must
// catch what it claims to: a valid GA cycle passes, and each broken variant fails for its reason.
import { describe, expect, it } from 'vitest';
import type { Wire } from './helpers/realtime.js';
import { checkEventTypes, checkInputTurns, checkResponseCycle, serverEventTypes } from './helpers/realtime_invariants.js';

const R = 'resp_1';
const item = (status: string, text?: string) => ({ id: 'item_a', type: 'message', role: 'assistant', status, content: text === undefined ? [] : [{ type: 'output_text', text }] });
const loc = { response_id: R, item_id: 'item_a', output_index: 0, content_index: 0 };

function valid(): Wire[] {
  return [
    { type: 'response.created', response: { id: R, status: 'in_progress', status_details: null, output: [], conversation_id: 'conv_1' } },
    { type: 'response.output_item.added', response_id: R, output_index: 0, item: item('in_progress') },
    { type: 'conversation.item.added', previous_item_id: null, item: item('in_progress') },
    { type: 'response.content_part.added', ...loc, part: { type: 'text', text: '' } },
    { type: 'response.output_text.delta', ...loc, delta: 'Hi' },
    { type: 'response.output_text.done', ...loc, text: 'Hi' },
    { type: 'response.content_part.done', ...loc, part: { type: 'text', text: 'Hi' } },
    { type: 'conversation.item.done', previous_item_id: null, item: item('completed', 'Hi') },
    { type: 'response.output_item.done', response_id: R, output_index: 0, item: item('completed', 'Hi') },
    { type: 'response.done', response: { id: R, status: 'completed', status_details: null, output: [item('completed', 'Hi')], conversation_id: 'conv_1' } },
  ];
}

const broken = (edit: (log: Wire[]) => void): Wire[] => {
  const log = valid();
  edit(log);
  return log;
};

describe('realtime §7 invariant checker', () => {
  it('accepts a valid GA text cycle and reports its text', () => {
    expect(checkResponseCycle(valid(), R).text).toEqual(['Hi']);
  });

  it.each([
    ['response.done twice', (l: Wire[]) => l.push({ ...l.at(-1)! }), /2 response.done/],
    ['an event after response.done', (l: Wire[]) => l.push({ type: 'response.output_text.delta', ...loc, delta: 'x' }), /follows its response.done/],
    ['a delta before its content part', (l: Wire[]) => l.splice(3, 0, { type: 'response.output_text.delta', ...loc, delta: 'x' }), /outside an open content part/],
    ['a delta after content_part.done', (l: Wire[]) => l.splice(7, 0, { type: 'response.output_text.delta', ...loc, delta: 'x' }), /outside an open content part|after its done/],
    ['two content parts', (l: Wire[]) => l.splice(4, 0, { type: 'response.content_part.added', ...loc, part: { type: 'text', text: '' } }), /more than one content part/],
    ['a sparse output_index', (l: Wire[]) => ((l[1]! as Wire & { output_index: number }).output_index = 1), /not dense/],
    ['conversation.item.added not right after output_item.added', (l: Wire[]) => l.splice(2, 1), /must directly follow/],
    ['conversation.item.done not right before output_item.done', (l: Wire[]) => l.splice(7, 1), /just before response.output_item.done/],
    ['an audio delta in a text part', (l: Wire[]) => l.splice(5, 0, { type: 'response.output_audio.delta', ...loc, delta: 'AAAA' }), /in a text part/],
    ['response.done.output differing from the items', (l: Wire[]) => ((l.at(-1)!.response as { output: unknown[] }).output = []), /has 0 items/],
    ['a status differing in response.done', (l: Wire[]) => ((l.at(-1)!.response as { output: { status: string }[] }).output[0]!.status = 'incomplete'), /differs/],
    ['text.done missing before content_part.done', (l: Wire[]) => l.splice(5, 1), /before response.output_text.done/],
  ])('rejects %s', (_name, edit, message) => {
    expect(() => checkResponseCycle(broken(edit), R)).toThrow(message);
  });

  it('checks input turns: stopped before started and committed before stopped are caught', () => {
    expect(() => checkInputTurns([{ type: 'input_audio_buffer.speech_stopped', item_id: 'i', audio_end_ms: 1 }])).toThrow(/without speech_started/);
    expect(() =>
      checkInputTurns([
        { type: 'input_audio_buffer.speech_started', item_id: 'i', audio_start_ms: 0 },
        { type: 'input_audio_buffer.committed', item_id: 'i', previous_item_id: null },
      ]),
    ).toThrow(/before its speech_stopped/);
  });

  it('reads the SDK event unions (GA 7.x, beta 6.x)', () => {
    const ga = serverEventTypes('ga');
    expect(ga.has('conversation.item.added')).toBe(true);
    expect(ga.has('response.output_audio.delta')).toBe(true);
    expect(() => checkEventTypes([{ type: 'response.done', event_id: 'e' }], 'ga')).toThrow(/response.done lacks required field response/);
    expect(() => checkEventTypes([{ type: 'response.text.delta', event_id: 'e' }], 'ga')).toThrow(/not in the union/);
    const beta = serverEventTypes('beta');
    expect(beta.has('response.audio.delta')).toBe(true);
    expect(beta.has('conversation.item.added')).toBe(false);
  });
});
