// `omni-gateway preprocess`: conversation validation, the safetensors container, and the tensors
// it writes for a real conversation.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConversationError, parseConversation, preprocessConversation } from '../src/cli/preprocess.js';
import { decodeSafetensors, encodeSafetensors, bytesOf } from '../src/codecs/safetensors.js';

const BIN = join(import.meta.dirname, '..', 'bin', 'omni-gateway.js');

describe('safetensors container', () => {
  it('round-trips names, dtypes, shapes, bytes and metadata with an 8-byte aligned header', () => {
    const ids = BigInt64Array.of(1n, 2n, 151_644n);
    const x = Float32Array.of(0.5, -1, 3);
    const file = encodeSafetensors(
      { input_ids: { dtype: 'I64', shape: [1, 3], data: bytesOf(ids) }, x: { dtype: 'F32', shape: [3], data: bytesOf(x) } },
      { format: 'pt' },
    );
    expect(Number(file.readBigUInt64LE(0)) % 8).toBe(0);
    const { tensors, metadata } = decodeSafetensors(file);
    expect(metadata).toEqual({ format: 'pt' });
    expect(tensors.input_ids).toMatchObject({ dtype: 'I64', shape: [1, 3] });
    expect(Array.from(new BigInt64Array(new Uint8Array(tensors.input_ids!.data).buffer))).toEqual([1n, 2n, 151_644n]);
    expect(Array.from(new Float32Array(new Uint8Array(tensors.x!.data).buffer))).toEqual([0.5, -1, 3]);
  });

  it('refuses a tensor whose bytes do not match its shape', () => {
    expect(() => encodeSafetensors({ x: { dtype: 'F32', shape: [2, 2], data: new Uint8Array(12) } })).toThrow(
      'tensor x: shape [2, 2] of F32 needs 16 bytes, got 12',
    );
  });
});

describe('conversation validation', () => {
  it.each([
    [{}, 'the conversation must be a JSON array of messages'],
    [[{ role: 'robot', content: 'hi' }], 'messages[0].role must be system, user, assistant or tool, got "robot"'],
    [[{ role: 'user', content: 5 }], 'messages[0].content must be a string or a list of parts'],
    [[{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'gif', path: 'x' }] }], 'messages[0].content[1]: unknown part type "gif"'],
    [[{ role: 'user', content: [{ type: 'audio' }] }], 'messages[0].content[0].path must name a audio file'],
  ])('rejects %j naming the message and part', (json, message) => {
    expect(() => parseConversation(json)).toThrow(ConversationError);
    expect(() => parseConversation(json)).toThrow(message);
  });

  it('names the part whose file is missing or is not media', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-pp-'));
    writeFileSync(join(dir, 'notes.txt'), 'not audio');
    const missing = parseConversation([{ role: 'user', content: [{ type: 'image', path: 'nope.png' }] }]);
    await expect(preprocessConversation(missing, { addGenerationPrompt: true, baseDir: dir })).rejects.toThrow(
      /messages\[0\]\.content\[0\]: cannot read image file .*nope\.png/,
    );
    const garbage = parseConversation([{ role: 'user', content: [{ type: 'audio', path: 'notes.txt' }] }]);
    await expect(preprocessConversation(garbage, { addGenerationPrompt: true, baseDir: dir })).rejects.toThrow(
      /messages\[0\]\.content\[0\]: audio_format_unsupported/,
    );
  });

  it('exits 2 with one line for a bad conversation, and needs --input and --out', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-pp-'));
    writeFileSync(join(dir, 'c.json'), '[{"role":"user","content":[{"type":"video","path":"v.mp4"}]}]');
    writeFileSync(join(dir, 'v.mp4'), 'x');
    let r = spawnSync(process.execPath, [BIN, 'preprocess', '--input', join(dir, 'c.json'), '--out', join(dir, 'o')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/messages\[0\]\.content\[0\]: video_format_unsupported: not a recognised video file/);
    r = spawnSync(process.execPath, [BIN, 'preprocess', '--input', join(dir, 'c.json')], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('preprocess needs --out');
    r = spawnSync(process.execPath, [BIN, 'preprocess', '--port', '1', '-i', 'a', '-o', 'b'], { encoding: 'utf8' });
    expect(r.stderr).toContain('option --port applies to serve, not preprocess');
  });
});

describe('tools in the conversation file', () => {
  it('{ messages, tools } renders the tool block, assistant tool calls and tool responses', async () => {
    const conv = parseConversation({
      tools: [{ type: 'function', function: { name: 'get_time', description: 'Current time', parameters: { type: 'object', properties: {} } } }],
      messages: [
        { role: 'user', content: 'What time is it?' },
        { role: 'assistant', content: '', tool_calls: [{ function: { name: 'get_time', arguments: {} } }] },
        { role: 'tool', content: '12:00' },
      ],
    });
    const t = await preprocessConversation(conv, { addGenerationPrompt: true, baseDir: '.' });
    const ids = Array.from(new BigInt64Array(new Uint8Array(t.input_ids!.data).buffer), Number);
    expect(ids.filter((id) => id === 151_657)).toHaveLength(3); // <tool_call>: twice in the system block's instructions, once for the call
    expect(ids.filter((id) => id === 151_665)).toHaveLength(1); // <tool_response>
  });

  it('rejects a conversation with no messages', () => {
    expect(() => parseConversation([])).toThrow('the conversation has no messages');
    expect(() => parseConversation({ messages: [], tools: [] })).toThrow('the conversation has no messages');
  });

  it('rejects tool calls on a user message and a non-list tools, naming them', () => {
    expect(() => parseConversation([{ role: 'user', content: 'x', tool_calls: [] }])).toThrow('messages[0].tool_calls must be a list, on an assistant message');
    expect(() => parseConversation({ messages: [], tools: {} })).toThrow('tools must be a list');
  });
});

describe('model input file', () => {
  it('writes the reference tensor names, dtypes and shapes for text, audio and an image', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-pp-'));
    writeFileSync(join(dir, 'speech.wav'), readFileSync(join(import.meta.dirname, 'fixtures', 'audio', 'speech_en.wav')));
    writeFileSync(join(dir, 'image.png'), readFileSync(join(import.meta.dirname, 'fixtures', 'image', 'rgb_20x20.png')));
    const conversation = [
      { role: 'system', content: 'You are a helpful assistant.' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Listen and look.' },
          { type: 'audio', path: 'speech.wav' },
          { type: 'image', path: 'image.png' },
        ],
      },
    ];
    writeFileSync(join(dir, 'c.json'), JSON.stringify(conversation));
    const out = join(dir, 'm.safetensors');
    const r = spawnSync(process.execPath, [BIN, 'preprocess', '-i', join(dir, 'c.json'), '-o', out], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    const t = decodeSafetensors(readFileSync(out)).tensors;
    const s = t.input_ids!.shape[1]!;
    const shapes = Object.fromEntries(Object.entries(t).map(([k, v]) => [k, [v.dtype, v.shape]]));
    // speech_en: 46536 samples -> 290 frames -> 38 audio tokens; 20x20 image -> grid [1, 4, 4].
    expect(shapes).toEqual({
      input_ids: ['I64', [1, s]],
      attention_mask: ['I64', [1, s]],
      input_features: ['F32', [1, 128, 290]],
      feature_attention_mask: ['I32', [1, 290]],
      pixel_values: ['F32', [16, 1536]],
      image_grid_thw: ['I64', [1, 3]],
      position_ids: ['F32', [3, 1, s]],
      rope_deltas: ['F32', [1, 1]],
    });
    const ids = Array.from(new BigInt64Array(new Uint8Array(t.input_ids!.data).buffer), Number);
    expect(ids.filter((id) => id === 151_675)).toHaveLength(38); // <|audio_pad|>
    expect(ids.filter((id) => id === 151_655)).toHaveLength(4); // <|image_pad|>
    expect(ids.slice(-3)).toEqual([151_644, 77_091, 198]); // <|im_start|>assistant\n
  });
});

describe('parity with the reference processor (scripts/preprocess_fixture.py)', () => {
  it('writes the reference tensors: same names, dtypes, shapes; ids and positions identical', () => {
    const fixtures = join(import.meta.dirname, 'fixtures', 'preprocess');
    const dir = mkdtempSync(join(tmpdir(), 'omni-pp-'));
    const out = join(dir, 'model-input.safetensors');
    const r = spawnSync(process.execPath, [BIN, 'preprocess', '--input', join(fixtures, 'conversation.json'), '--out', out], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(0);
    const ours = decodeSafetensors(readFileSync(out)).tensors;
    const ref = decodeSafetensors(readFileSync(join(fixtures, 'expected.safetensors'))).tensors;
    expect(Object.keys(ours).sort()).toEqual(Object.keys(ref).sort());
    for (const [name, t] of Object.entries(ref)) {
      const o = ours[name]!;
      expect({ name, dtype: o.dtype, shape: o.shape }).toEqual({ name, dtype: t.dtype, shape: t.shape });
      if (t.dtype !== 'F32' || name === 'position_ids' || name === 'rope_deltas') {
        expect(Buffer.compare(Buffer.from(o.data), Buffer.from(t.data)), name).toBe(0);
        continue;
      }
      const a = new Float32Array(new Uint8Array(o.data).buffer);
      const b = new Float32Array(new Uint8Array(t.data).buffer);
      const tolerance = name === 'pixel_values' ? 2 / 127.5 : 1e-4;
      let worst = 0;
      for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
      expect(worst, name).toBeLessThan(tolerance);
    }
  });
});
