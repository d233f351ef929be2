// Tool use in the chat layout: tool definitions, assistant tool calls and `tool` messages render and
// tokenize exactly as transformers' apply_chat_template with the Qwen3 chat template (real Qwen3 BPE
// plus the Omni tokens). Fixtures from scripts/tool_fixtures.py.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { QwenTokenizer } from '../src/codecs/text/tokenizer.js';
import { FusionError } from '../src/fusion/errors.js';
import { buildSequence } from '../src/fusion/sequence.js';
import { layout, renderLayout, tokenizeLayout, type ChatMessage, type TemplateOptions } from '../src/fusion/template.js';
import { TOOL_IDS } from '../src/fusion/tool_format.js';
import { pyFloatRepr, pyJsonDumps } from '../src/fusion/tool_json.js';

interface Fixture {
  name: string;
  messages: ChatMessage[];
  options: TemplateOptions;
  rendered: string;
  input_ids: number[];
}

const dir = new URL('./fixtures/fusion/tools/', import.meta.url);
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as Fixture);
const tok = QwenTokenizer.load();
const encode = (texts: readonly string[]): Promise<number[][]> => tok.encodeBatch(texts);

async function ids(messages: readonly ChatMessage[], options: TemplateOptions): Promise<number[]> {
  return Array.from(buildSequence(await tokenizeLayout(layout(messages, options), encode)).inputIds);
}

function fusionError(fn: () => unknown): FusionError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(FusionError);
    return e as FusionError;
  }
  throw new Error('expected a FusionError');
}

describe('tool fixtures (Qwen3 chat template via transformers)', () => {
  it('covers the required cases', () => {
    const names = fixtures.map((f) => f.name);
    for (const n of [
      'tools_no_system',
      'tools_with_system',
      'tool_call_string_arguments',
      'tool_call_object_arguments_nested_unicode_numbers',
      'tool_calls_several_mixed_forms',
      'tool_response_single',
      'tool_responses_consecutive',
      'multi_step_reasoning_after_last_query',
      'enable_thinking_false',
    ]) {
      expect(names).toContain(n);
    }
  });

  describe.each(fixtures.map((f) => [f.name, f] as const))('%s', (_name, fx) => {
    it('renders the same template string', () => {
      expect(renderLayout(layout(fx.messages, fx.options))).toBe(fx.rendered);
    });

    it('tokenizes to the same input ids', async () => {
      expect(await ids(fx.messages, fx.options)).toEqual(fx.input_ids);
    });
  });
});

describe('tool layout', () => {
  const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object' } } };
  const user: ChatMessage = { role: 'user', content: 'Weather?' };

  it('emits tool-call and tool-response tags as their token ids, not as text', () => {
    const pieces = layout(
      [user, { role: 'assistant', content: '', toolCalls: [{ name: 'f', arguments: {} }] }, { role: 'tool', content: 'ok' }],
      { tools: [weather] },
    );
    const specials = pieces.flatMap((p) => (p.type === 'special' ? [p.id] : []));
    for (const id of Object.values(TOOL_IDS)) expect(specials).toContain(id);
    for (const p of pieces) if (p.type === 'text') expect(p.text).not.toMatch(/<\/?tool_(call|response)>/);
  });

  it('an empty tools list adds no tools block', () => {
    const withEmpty = renderLayout(layout([{ role: 'system', content: 'S' }, user], { tools: [] }));
    expect(withEmpty).toBe(renderLayout(layout([{ role: 'system', content: 'S' }, user])));
    expect(withEmpty).not.toContain('# Tools');
  });

  it('moves list-form system content into the tools turn', () => {
    const text = renderLayout(layout([{ role: 'system', content: [{ type: 'text', text: 'Be brief.' }] }, user], { tools: [weather] }));
    expect(text.startsWith('<|im_start|>system\nBe brief.\n\n# Tools\n')).toBe(true);
    expect(text.match(/<\|im_start\|>system/g)).toHaveLength(1);
  });

  it('keeps media parts of a tool message as media segments inside the tool response', async () => {
    const segments = await tokenizeLayout(
      layout([user, { role: 'tool', content: [{ type: 'text', text: 'chart: ' }, { type: 'image', grid: [1, 4, 4] }] }]),
      encode,
    );
    expect(segments.map((s) => s.type)).toEqual(['tokens', 'image', 'tokens']);
    const text = renderLayout(layout([user, { role: 'tool', content: [{ type: 'image', grid: [1, 4, 4] }] }]));
    expect(text).toContain('<|im_start|>user\n<tool_response>\n<|vision_start|><|image_pad|><|vision_end|>\n</tool_response><|im_end|>\n');
  });

  it('list-form user content still never becomes the last query, with tools as without', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'a', reasoning: 'r' },
      { role: 'user', content: [{ type: 'text', text: 'list query' }] },
      { role: 'assistant', content: 'b', reasoning: 'r2', toolCalls: [{ name: 'f', arguments: '{}' }] },
    ];
    const text = renderLayout(layout(messages, { tools: [weather], addGenerationPrompt: false }));
    expect(text).toContain('<|im_start|>assistant\n<think>\nr\n</think>\n\na<|im_end|>');
    expect(text).toContain('<think>\nr2\n</think>\n\nb\n<tool_call>\n{"name": "f", "arguments": {}}\n</tool_call>');
  });

  it('a user message wrapped in tool_response tags is not the last query', () => {
    const messages: ChatMessage[] = [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'a', reasoning: 'kept' },
      { role: 'user', content: '<tool_response>\nx\n</tool_response>' },
      { role: 'assistant', content: 'b' },
    ];
    expect(renderLayout(layout(messages, { addGenerationPrompt: false }))).toContain('<think>\nkept\n</think>\n\na');
  });
});

describe('tojson (Python json.dumps, ensure_ascii=False)', () => {
  it('writes ", " and ": " separators, keeps key order and unicode, escapes quotes and controls', () => {
    expect(pyJsonDumps({ b: [1, 'ü 😀 中', null], a: { t: true, f: false }, e: {}, l: [] }, 'tool_invalid', 'x')).toBe(
      '{"b": [1, "ü 😀 中", null], "a": {"t": true, "f": false}, "e": {}, "l": []}',
    );
    expect(pyJsonDumps('"\\\n\t\u0001\u007f<&>\'', 'tool_invalid', 'x')).toBe('"\\"\\\\\\n\\t\\u0001\u007f<&>\'"');
  });

  it('writes safe integers as ints and other numbers as Python float repr', () => {
    const cases: [number, string][] = [
      [3, '3'],
      [-0, '0'],
      [2.5, '2.5'],
      [0.1, '0.1'],
      [-0.001, '-0.001'],
      [0.0001, '0.0001'],
      [0.00001, '1e-05'],
      [1.5e-7, '1.5e-07'],
      [123456789012345.6, '123456789012345.6'],
      [9007199254740991, '9007199254740991'],
      [2 ** 53, '9007199254740992.0'],
      [1e16, '1e+16'],
      [1.5e300, '1.5e+300'],
      [5e-324, '5e-324'],
      [NaN, 'NaN'],
      [-Infinity, '-Infinity'],
    ];
    for (const [x, s] of cases) expect(pyJsonDumps(x, 'tool_invalid', 'x')).toBe(s);
    expect(pyFloatRepr(1)).toBe('1.0');
    expect(pyFloatRepr(-0)).toBe('-0.0');
    expect(pyJsonDumps(12345678901234567890n, 'tool_invalid', 'x')).toBe('12345678901234567890');
  });

  it('leaves out undefined object properties, as JSON does', () => {
    expect(pyJsonDumps({ a: 1, b: undefined }, 'tool_invalid', 'x')).toBe('{"a": 1}');
  });
});

describe('tool validation errors name the offending field', () => {
  const user: ChatMessage = { role: 'user', content: 'hi' };
  const tool = (t: unknown): TemplateOptions => ({ tools: [t as never] });

  it('tools that are not a list', () => {
    const e = fusionError(() => layout([user], { tools: {} as never }));
    expect([e.code, e.param]).toEqual(['tool_invalid', 'tools']);
  });

  it('a tool that is not an object', () => {
    const e = fusionError(() => layout([user], tool('get_weather')));
    expect([e.code, e.param]).toEqual(['tool_invalid', 'tools[0]']);
  });

  it('a tool without a function name', () => {
    let e = fusionError(() => layout([user], tool({ type: 'function', function: { description: 'x' } })));
    expect([e.code, e.param]).toEqual(['tool_invalid', 'tools[0].function.name']);
    e = fusionError(() => layout([user], tool({ type: 'function', function: null })));
    expect([e.code, e.param]).toEqual(['tool_invalid', 'tools[0].function']);
    e = fusionError(() => layout([user], tool({ description: 'flat, unnamed' })));
    expect([e.code, e.param]).toEqual(['tool_invalid', 'tools[0].name']);
  });

  it('a tool holding non-JSON data, with the path inside the tool', () => {
    const e = fusionError(() => layout([user], tool({ name: 'f', parameters: { properties: { 'a-b': { default: () => 1 } } } })));
    expect([e.code, e.param]).toEqual(['tool_invalid', 'tools[0].parameters.properties["a-b"].default']);
    const date = fusionError(() => layout([user], tool({ name: 'f', since: new Date(0) })));
    expect(date.param).toBe('tools[0].since');
    const hole = fusionError(() => layout([user], tool({ name: 'f', enum: [1, undefined] })));
    expect(hole.param).toBe('tools[0].enum[1]');
  });

  it('a cyclic or too deeply nested tool', () => {
    const cyclic: Record<string, unknown> = { name: 'f' };
    cyclic.self = cyclic;
    expect(fusionError(() => layout([user], tool(cyclic))).param).toBe('tools[0].self');
    let deep: unknown = 1;
    for (let i = 0; i < 600; i++) deep = [deep];
    expect(fusionError(() => layout([user], tool({ name: 'f', deep }))).code).toBe('tool_invalid');
  });

  const call = (c: unknown): ChatMessage[] => [user, { role: 'assistant', content: '', toolCalls: [c as never] }];

  it('a tool call without a function name', () => {
    let e = fusionError(() => layout(call({ function: { arguments: '{}' } })));
    expect([e.code, e.param]).toEqual(['tool_call_invalid', 'messages[1].toolCalls[0].function.name']);
    e = fusionError(() => layout(call({ name: '', arguments: '{}' })));
    expect([e.code, e.param]).toEqual(['tool_call_invalid', 'messages[1].toolCalls[0].name']);
    e = fusionError(() => layout(call('f()')));
    expect([e.code, e.param]).toEqual(['tool_call_invalid', 'messages[1].toolCalls[0]']);
  });

  it('tool call arguments that are neither a string nor an object', () => {
    for (const args of [undefined, null, 3, ['a']]) {
      const e = fusionError(() => layout(call({ function: { name: 'f', arguments: args } })));
      expect([e.code, e.param]).toEqual(['tool_call_invalid', 'messages[1].toolCalls[0].function.arguments']);
    }
    const e = fusionError(() => layout(call({ name: 'f', arguments: { x: Symbol('s') } })));
    expect([e.code, e.param]).toEqual(['tool_call_invalid', 'messages[1].toolCalls[0].arguments.x']);
  });

  it('toolCalls that are not a list, or on a turn other than the assistant', () => {
    let e = fusionError(() => layout([user, { role: 'assistant', content: '', toolCalls: {} as never }]));
    expect([e.code, e.param]).toEqual(['tool_call_invalid', 'messages[1].toolCalls']);
    e = fusionError(() => layout([{ role: 'user', content: 'x', toolCalls: [] }]));
    expect([e.code, e.param]).toEqual(['message_invalid', 'messages[0].toolCalls']);
  });

  it('an unknown role is still refused', () => {
    const e = fusionError(() => layout([{ role: 'function' as never, content: 'x' }]));
    expect([e.code, e.param]).toEqual(['message_invalid', 'messages[0].role']);
  });
});
