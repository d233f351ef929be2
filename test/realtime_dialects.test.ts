// Realtime dialects (GA, beta, DashScope): client-event parsing with the spec's exact error codes
// and params, server-event rendering, subprotocols and dialect selection
// (realtime-protocol.md §1-7, §11).
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { betaDialect, clientEventId, dashscopeDialect, dialectFor, gaDialect, parseSubprotocols, selectDialect } from '../src/gateway/realtime/dialects/index.js';
import { MAX_AUDIO_APPEND_BYTES, MAX_IMAGE_BYTES } from '../src/gateway/realtime/dialects/payloads.js';
import {
  ProtocolError,
  type ClientCommand,
  type ConversationItem,
  type Dialect,
  type ResponseState,
  type ServerEvent,
  type SessionConfig,
  type SessionPatch,
} from '../src/gateway/realtime/model.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

const BASE = { id: 'sess_1', model: 'qwen3-omni', expiresAt: 1790000000, defaultVoice: 'Cherry' };
const configOf = (dialect: Dialect): SessionConfig => dialect.initialConfig(BASE);
const b64 = (bytes: Buffer | number[]): string => Buffer.from(bytes).toString('base64');
const pcm = (bytes: number): Buffer => Buffer.alloc(bytes, 1);

const JPEG = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), Buffer.alloc(60, 7)]);
const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(60, 7)]);
const GIF = Buffer.concat([Buffer.from('GIF89a', 'latin1'), Buffer.alloc(58, 7)]);

function wav(data: Buffer, options: { rate?: number; extraChunk?: boolean } = {}): Buffer {
  const fmt = Buffer.alloc(24);
  fmt.write('fmt ', 0, 'latin1');
  fmt.writeUInt32LE(16, 4);
  fmt.writeUInt16LE(1, 8); // PCM
  fmt.writeUInt16LE(1, 10); // mono
  fmt.writeUInt32LE(options.rate ?? 16000, 12);
  fmt.writeUInt32LE((options.rate ?? 16000) * 2, 16);
  fmt.writeUInt16LE(2, 20);
  fmt.writeUInt16LE(16, 22);
  const list = Buffer.concat([Buffer.from('LIST', 'latin1'), Buffer.from([4, 0, 0, 0]), Buffer.from('INFO', 'latin1')]);
  const dataHeader = Buffer.concat([Buffer.from('data', 'latin1'), Buffer.alloc(4)]);
  dataHeader.writeUInt32LE(data.length, 4);
  const body = Buffer.concat([Buffer.from('WAVE', 'latin1'), fmt, ...(options.extraChunk ? [list] : []), dataHeader, data]);
  const riff = Buffer.concat([Buffer.from('RIFF', 'latin1'), Buffer.alloc(4)]);
  riff.writeUInt32LE(body.length, 4);
  return Buffer.concat([riff, body]);
}

/** Two MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz: 417 bytes each). */
function mp3Frames(): Buffer {
  const frames = Buffer.alloc(834);
  for (const at of [0, 417]) Buffer.from([0xff, 0xfb, 0x90, 0x64]).copy(frames, at);
  return frames;
}

/** Runs parse and returns the ProtocolError it throws. */
function rejection(dialect: Dialect, event: unknown, config = configOf(dialect)): ProtocolError {
  try {
    dialect.parse(event, config);
  } catch (error) {
    if (error instanceof ProtocolError) return error;
    throw error;
  }
  throw new Error(`expected ${JSON.stringify(event)?.slice(0, 200)} to be rejected`);
}

function expectRejected(dialect: Dialect, event: unknown, code: string, param: string | null, config?: SessionConfig): ProtocolError {
  const error = rejection(dialect, event, config);
  expect({ code: error.code, param: error.param, message: error.message }).toMatchObject({ code, param });
  return error;
}

function patchOf(dialect: Dialect, session: Record<string, unknown>, config = configOf(dialect)): SessionPatch {
  const command = dialect.parse({ type: 'session.update', session }, config);
  if (command.type !== 'session.update') throw new Error(command.type);
  return command.patch;
}

function commandOf<T extends ClientCommand['type']>(dialect: Dialect, event: unknown, type: T, config = configOf(dialect)): Extract<ClientCommand, { type: T }> {
  const command = dialect.parse(event, config);
  expect(command.type).toBe(type);
  return command as Extract<ClientCommand, { type: T }>;
}

/** What the session is expected to do with a patch: a shallow merge (passthrough merged too). */
function applyPatch(config: SessionConfig, patch: SessionPatch): SessionConfig {
  return { ...config, ...patch, passthrough: { ...config.passthrough, ...patch.passthrough } };
}

const ALL: [string, Dialect][] = [
  ['ga', gaDialect],
  ['beta', betaDialect],
  ['dashscope', dashscopeDialect],
];

// ---------------------------------------------------------------------------------------------

describe('client event envelope (every dialect)', () => {
  it.each(ALL)('%s: a JSON value that is not an object is invalid_json', (_name, dialect) => {
    for (const value of [[1, 2], 'text', 42, null, true]) expectRejected(dialect, value, 'invalid_json', null);
  });

  it.each(ALL)('%s: an object without type is missing_required_parameter type', (_name, dialect) => {
    expectRejected(dialect, { event_id: 'e1' }, 'missing_required_parameter', 'type');
  });

  it.each(ALL)('%s: a non-string type is invalid_type type', (_name, dialect) => {
    expectRejected(dialect, { type: 7 }, 'invalid_type', 'type');
  });

  it.each(ALL)('%s: an unknown type is invalid_value type listing the dialect events', (_name, dialect) => {
    const error = expectRejected(dialect, { type: 'nope' }, 'invalid_value', 'type');
    for (const type of dialect.clientEventTypes) expect(error.message).toContain(`'${type}'`);
    expect(error.message).toContain("'nope'");
  });

  it.each(ALL)('%s: an unknown top-level field is unknown_parameter', (_name, dialect) => {
    expectRejected(dialect, { type: 'input_audio_buffer.commit', bogus: 1 }, 'unknown_parameter', 'bogus');
  });

  it.each(ALL)('%s: event_id becomes eventId, null when absent', (_name, dialect) => {
    expect(dialect.parse({ type: 'input_audio_buffer.commit', event_id: 'c1' }, configOf(dialect)).eventId).toBe('c1');
    expect(dialect.parse({ type: 'input_audio_buffer.commit' }, configOf(dialect)).eventId).toBeNull();
  });

  it('clientEventId reads a usable event_id even from an event that fails to parse', () => {
    expect(clientEventId({ type: 'nope', event_id: 'c9' })).toBe('c9');
    expect(clientEventId({ event_id: 5 })).toBeNull();
    expect(clientEventId([1])).toBeNull();
  });

  it('each dialect lists its own event set', () => {
    expect(gaDialect.clientEventTypes).toHaveLength(13);
    expect(gaDialect.clientEventTypes).toEqual(expect.arrayContaining(['session.close', 'input_image_buffer.append']));
    expect(betaDialect.clientEventTypes).toEqual(expect.arrayContaining(['transcription_session.update', 'input_image_buffer.append']));
    expect(betaDialect.clientEventTypes).not.toContain('session.close');
    expect(dashscopeDialect.clientEventTypes).toEqual(expect.arrayContaining(['session.finish', 'input_image_buffer.append']));
    expect(dashscopeDialect.clientEventTypes).not.toContain('conversation.item.truncate');
    expectRejected(dashscopeDialect, { type: 'conversation.item.delete', item_id: 'x' }, 'invalid_value', 'type');
    expectRejected(gaDialect, { type: 'session.finish' }, 'invalid_value', 'type');
  });
});

describe('simple client events', () => {
  it.each(ALL)('%s: commit and clear parse to bare commands', (_name, dialect) => {
    expect(dialect.parse({ type: 'input_audio_buffer.commit', event_id: 'a' }, configOf(dialect))).toEqual({ type: 'input_audio_buffer.commit', eventId: 'a' });
    expect(dialect.parse({ type: 'input_audio_buffer.clear' }, configOf(dialect))).toEqual({ type: 'input_audio_buffer.clear', eventId: null });
  });

  it.each(ALL)('%s: response.cancel passes an optional response_id', (_name, dialect) => {
    expect(dialect.parse({ type: 'response.cancel' }, configOf(dialect))).toEqual({ type: 'response.cancel', eventId: null });
    expect(dialect.parse({ type: 'response.cancel', response_id: 'resp_1' }, configOf(dialect))).toEqual({ type: 'response.cancel', eventId: null, responseId: 'resp_1' });
  });

  it('GA and beta parse output_audio_buffer.clear; GA parses session.close', () => {
    expect(gaDialect.parse({ type: 'output_audio_buffer.clear' }, configOf(gaDialect)).type).toBe('output_audio_buffer.clear');
    expect(betaDialect.parse({ type: 'output_audio_buffer.clear' }, configOf(betaDialect)).type).toBe('output_audio_buffer.clear');
    expect(gaDialect.parse({ type: 'session.close', event_id: 'z' }, configOf(gaDialect))).toEqual({ type: 'session.close', eventId: 'z' });
  });

  it('DashScope session.finish becomes session.close', () => {
    expect(dashscopeDialect.parse({ type: 'session.finish', event_id: 'f' }, configOf(dashscopeDialect))).toEqual({ type: 'session.close', eventId: 'f' });
    expectRejected(dashscopeDialect, { type: 'session.finish', extra: true }, 'unknown_parameter', 'extra');
  });

  it('beta transcription_session.update is refused with a clear invalid_value', () => {
    const error = expectRejected(betaDialect, { type: 'transcription_session.update', session: {} }, 'invalid_value', 'type');
    expect(error.message).toContain('session.update');
  });

  it.each([['ga', gaDialect] as const, ['beta', betaDialect] as const])('%s: item retrieve, delete and truncate', (_name, dialect) => {
    expect(dialect.parse({ type: 'conversation.item.retrieve', item_id: 'i1' }, configOf(dialect))).toEqual({ type: 'conversation.item.retrieve', eventId: null, itemId: 'i1' });
    expect(dialect.parse({ type: 'conversation.item.delete', item_id: 'i2' }, configOf(dialect))).toEqual({ type: 'conversation.item.delete', eventId: null, itemId: 'i2' });
    expect(dialect.parse({ type: 'conversation.item.truncate', item_id: 'i3', content_index: 0, audio_end_ms: 1250 }, configOf(dialect))).toEqual({
      type: 'conversation.item.truncate',
      eventId: null,
      itemId: 'i3',
      contentIndex: 0,
      audioEndMs: 1250,
    });
    expectRejected(dialect, { type: 'conversation.item.truncate', item_id: 'i3', content_index: 0 }, 'missing_required_parameter', 'audio_end_ms');
    expectRejected(dialect, { type: 'conversation.item.truncate', item_id: 'i3', content_index: 0, audio_end_ms: -1 }, 'integer_below_min_value', 'audio_end_ms');
    expectRejected(dialect, { type: 'conversation.item.retrieve' }, 'missing_required_parameter', 'item_id');
  });
});

// ---------------------------------------------------------------------------------------------

describe('GA session.update', () => {
  it('without session.type is missing_required_parameter session.type', () => {
    expectRejected(gaDialect, { type: 'session.update', session: { instructions: 'x' } }, 'missing_required_parameter', 'session.type');
  });

  it('an unknown session field is unknown_parameter with the dotted param', () => {
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', bogus_field: 1 } }, 'unknown_parameter', 'session.bogus_field');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', modalities: ['text'] } }, 'unknown_parameter', 'session.modalities');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', temperature: 0.8 } }, 'unknown_parameter', 'session.temperature');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', audio: { input: { bogus: 1 } } } }, 'unknown_parameter', 'session.audio.input.bogus');
  });

  it('rate 16000 is integer_below_min_value on session.audio.input.format.rate', () => {
    const error = expectRejected(
      gaDialect,
      { type: 'session.update', session: { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 16000 } } } } },
      'integer_below_min_value',
      'session.audio.input.format.rate',
    );
    expect(error.message).toContain('Expected a value >= 24000');
  });

  it('an unknown format type is invalid_value', () => {
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', audio: { output: { format: { type: 'audio/flac' } } } } }, 'invalid_value', 'session.audio.output.format.type');
  });

  it('the whole update is validated before anything applies', () => {
    // A valid field next to an invalid one: nothing comes back, so nothing can be applied.
    expectRejected(
      gaDialect,
      { type: 'session.update', session: { type: 'realtime', instructions: 'Be brief.', audio: { input: { format: { type: 'audio/pcm', rate: 16000 } } } } },
      'integer_below_min_value',
      'session.audio.input.format.rate',
    );
  });

  it('formats normalise to AudioFormat', () => {
    const patch = patchOf(gaDialect, { type: 'realtime', audio: { input: { format: { type: 'audio/pcmu' } }, output: { format: { type: 'audio/pcma' } } } });
    expect(patch.inputFormat).toEqual({ encoding: 'g711_ulaw', rate: 8000 });
    expect(patch.outputFormat).toEqual({ encoding: 'g711_alaw', rate: 8000 });
    expect(patchOf(gaDialect, { type: 'realtime', audio: { input: { format: { type: 'audio/pcm', rate: 24000 } } } }).inputFormat).toEqual({ encoding: 'pcm16', rate: 24000 });
    expect(patchOf(gaDialect, { type: 'realtime', audio: { input: { format: { type: 'audio/pcm' } } } }).inputFormat).toEqual({ encoding: 'pcm16', rate: 24000 });
  });

  it('a full update maps every field', () => {
    const patch = patchOf(gaDialect, {
      type: 'realtime',
      instructions: 'Be brief.',
      output_modalities: ['text'],
      audio: {
        input: {
          transcription: { model: 'qwen3-asr', language: 'en' },
          noise_reduction: { type: 'far_field' },
          turn_detection: { type: 'server_vad', threshold: 0.6, silence_duration_ms: 300, idle_timeout_ms: 6000 },
        },
        output: { voice: { id: 'voice_custom' }, speed: 1.25 },
      },
      tools: [{ type: 'function', name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} } }],
      tool_choice: { type: 'function', name: 'get_weather' },
      max_output_tokens: 'inf',
      thinking: { type: 'enabled', budget_tokens: 256 },
      prompt: { id: 'pmpt_1' },
      tracing: 'auto',
      truncation: 'disabled',
      include: ['item.input_audio_transcription.logprobs'],
    });
    expect(patch).toEqual({
      instructions: 'Be brief.',
      outputModalities: ['text'],
      transcription: { model: 'qwen3-asr', language: 'en' },
      noiseReduction: { type: 'far_field' },
      turnDetection: { type: 'server_vad', threshold: 0.6, prefixPaddingMs: 300, silenceDurationMs: 300, idleTimeoutMs: 6000, createResponse: true, interruptResponse: true },
      voice: 'voice_custom',
      speed: 1.25,
      tools: [{ type: 'function', name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: {} } }],
      toolChoice: { type: 'function', name: 'get_weather' },
      maxOutputTokens: null,
      thinking: { enabled: true, budgetTokens: 256 },
      passthrough: { truncation: 'disabled', include: ['item.input_audio_transcription.logprobs'], prompt: { id: 'pmpt_1' }, tracing: 'auto' },
    });
  });

  it('output_modalities allows only ["audio"] or ["text"]', () => {
    expect(patchOf(gaDialect, { type: 'realtime', output_modalities: ['audio'] }).outputModalities).toEqual(['audio']);
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', output_modalities: ['audio', 'text'] } }, 'invalid_value', 'session.output_modalities');
  });

  it('ranges: max_output_tokens, speed, threshold, idle timeout', () => {
    const update = (session: Record<string, unknown>): Record<string, unknown> => ({ type: 'session.update', session: { type: 'realtime', ...session } });
    expectRejected(gaDialect, update({ max_output_tokens: 0 }), 'integer_below_min_value', 'session.max_output_tokens');
    expectRejected(gaDialect, update({ max_output_tokens: 4097 }), 'integer_above_max_value', 'session.max_output_tokens');
    expectRejected(gaDialect, update({ max_output_tokens: 'lots' }), 'invalid_value', 'session.max_output_tokens');
    expectRejected(gaDialect, update({ max_output_tokens: 1.5 }), 'invalid_type', 'session.max_output_tokens');
    expect(patchOf(gaDialect, { type: 'realtime', max_output_tokens: 4096 }).maxOutputTokens).toBe(4096);
    expectRejected(gaDialect, update({ audio: { output: { speed: 2 } } }), 'decimal_above_max_value', 'session.audio.output.speed');
    expectRejected(gaDialect, update({ audio: { output: { speed: 0.1 } } }), 'decimal_below_min_value', 'session.audio.output.speed');
    expectRejected(gaDialect, update({ audio: { input: { turn_detection: { type: 'server_vad', threshold: 1.5 } } } }), 'decimal_above_max_value', 'session.audio.input.turn_detection.threshold');
    expectRejected(gaDialect, update({ audio: { input: { turn_detection: { type: 'server_vad', idle_timeout_ms: 100 } } } }), 'integer_below_min_value', 'session.audio.input.turn_detection.idle_timeout_ms');
    expectRejected(gaDialect, update({ instructions: 5 }), 'invalid_type', 'session.instructions');
  });

  it('turn detection: null is manual, semantic_vad takes eagerness, server_vad does not', () => {
    expect(patchOf(gaDialect, { type: 'realtime', audio: { input: { turn_detection: null } } }).turnDetection).toBeNull();
    expect(patchOf(gaDialect, { type: 'realtime', audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: 'high' } } } }).turnDetection).toMatchObject({
      type: 'semantic_vad',
      eagerness: 'high',
      createResponse: true,
    });
    expectRejected(
      gaDialect,
      { type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad', eagerness: 'high' } } } } },
      'unknown_parameter',
      'session.audio.input.turn_detection.eagerness',
    );
    expectRejected(
      gaDialect,
      { type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'semantic_vad', eagerness: 'fast' } } } } },
      'invalid_value',
      'session.audio.input.turn_detection.eagerness',
    );
  });

  it('turn detection keeps current values of the same type for omitted fields', () => {
    const config = { ...configOf(gaDialect), turnDetection: { ...configOf(gaDialect).turnDetection!, silenceDurationMs: 900 } };
    expect(patchOf(gaDialect, { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad', threshold: 0.7 } } } }, config).turnDetection).toMatchObject({
      threshold: 0.7,
      silenceDurationMs: 900,
    });
  });

  it('tool shapes and tool_choice are checked', () => {
    const update = (session: Record<string, unknown>): Record<string, unknown> => ({ type: 'session.update', session: { type: 'realtime', ...session } });
    expectRejected(gaDialect, update({ tools: [{ type: 'function' }] }), 'missing_required_parameter', 'session.tools[0].name');
    expectRejected(gaDialect, update({ tools: [{ type: 'mcp', server_label: 'x' }] }), 'unknown_parameter', 'session.tools[0].server_label');
    expectRejected(gaDialect, update({ tools: [{ type: 'mcp' }] }), 'invalid_value', 'session.tools[0].type');
    expectRejected(gaDialect, update({ tools: [{ type: 'function', name: 'bad name' }] }), 'invalid_value', 'session.tools[0].name');
    expectRejected(gaDialect, update({ tools: [{ type: 'function', name: 'f', parameters: [] }] }), 'invalid_type', 'session.tools[0].parameters');
    expectRejected(gaDialect, update({ tools: {} }), 'invalid_type', 'session.tools');
    expectRejected(gaDialect, update({ tool_choice: 'sometimes' }), 'invalid_value', 'session.tool_choice');
    expectRejected(gaDialect, update({ tool_choice: { type: 'function' } }), 'missing_required_parameter', 'session.tool_choice.name');
    expect(patchOf(gaDialect, { type: 'realtime', tool_choice: 'required' }).toolChoice).toBe('required');
  });

  it('voice is a string or {id}; an empty voice is invalid_value', () => {
    expect(patchOf(gaDialect, { type: 'realtime', audio: { output: { voice: 'marin' } } }).voice).toBe('marin');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', audio: { output: { voice: '' } } } }, 'invalid_value', 'session.audio.output.voice');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', audio: { output: { voice: 3 } } } }, 'invalid_type', 'session.audio.output.voice');
  });

  it('session type and model cannot change', () => {
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'transcription' } }, 'invalid_value', 'session.type');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'bogus' } }, 'invalid_value', 'session.type');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', model: 'other' } }, 'invalid_value', 'session.model');
    expect(patchOf(gaDialect, { type: 'realtime', model: 'qwen3-omni', object: 'realtime.session', id: 'sess_1' })).toEqual({});
  });

  it('thinking: disabled, null, and a bad type', () => {
    expect(patchOf(gaDialect, { type: 'realtime', thinking: { type: 'disabled' } }).thinking).toEqual({ enabled: false, budgetTokens: null });
    expect(patchOf(gaDialect, { type: 'realtime', thinking: null }).thinking).toBeNull();
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', thinking: { type: 'maybe' } } }, 'invalid_value', 'session.thinking.type');
    expectRejected(gaDialect, { type: 'session.update', session: { type: 'realtime', thinking: { type: 'enabled', budget_tokens: 0 } } }, 'integer_below_min_value', 'session.thinking.budget_tokens');
  });

  it('session.update without session is missing_required_parameter session', () => {
    expectRejected(gaDialect, { type: 'session.update' }, 'missing_required_parameter', 'session');
    expectRejected(gaDialect, { type: 'session.update', session: [] }, 'invalid_type', 'session');
  });
});

describe('beta session.update', () => {
  it('string formats normalise', () => {
    expect(patchOf(betaDialect, { input_audio_format: 'pcm16', output_audio_format: 'g711_ulaw' })).toEqual({
      inputFormat: { encoding: 'pcm16', rate: 24000 },
      outputFormat: { encoding: 'g711_ulaw', rate: 8000 },
    });
    expect(patchOf(betaDialect, { input_audio_format: 'g711_alaw' }).inputFormat).toEqual({ encoding: 'g711_alaw', rate: 8000 });
    expectRejected(betaDialect, { type: 'session.update', session: { input_audio_format: 'pcm24' } }, 'invalid_value', 'session.input_audio_format');
  });

  it('modalities map to internal output modalities; ["audio"] alone is invalid_value', () => {
    expect(patchOf(betaDialect, { modalities: ['text'] }).outputModalities).toEqual(['text']);
    expect(patchOf(betaDialect, { modalities: ['text', 'audio'] }).outputModalities).toEqual(['audio']);
    expectRejected(betaDialect, { type: 'session.update', session: { modalities: ['audio'] } }, 'invalid_value', 'session.modalities');
  });

  it('temperature range, max_response_output_tokens, voice, transcription, passthrough', () => {
    expectRejected(betaDialect, { type: 'session.update', session: { temperature: 0.5 } }, 'decimal_below_min_value', 'session.temperature');
    const patch = patchOf(betaDialect, {
      temperature: 1,
      max_response_output_tokens: 'inf',
      voice: 'alloy',
      input_audio_transcription: { model: 'whisper-1' },
      input_audio_noise_reduction: null,
      turn_detection: { type: 'server_vad', silence_duration_ms: 700 },
      tracing: 'auto',
      thinking: { type: 'enabled' },
    });
    expect(patch).toMatchObject({
      sampling: { temperature: 1 },
      maxOutputTokens: null,
      voice: 'alloy',
      transcription: { model: 'whisper-1' },
      noiseReduction: null,
      turnDetection: { silenceDurationMs: 700 },
      passthrough: { tracing: 'auto' },
      thinking: { enabled: true, budgetTokens: null },
    });
  });

  it('GA-only fields are unknown_parameter; no session.type is needed', () => {
    expectRejected(betaDialect, { type: 'session.update', session: { output_modalities: ['text'] } }, 'unknown_parameter', 'session.output_modalities');
    expectRejected(betaDialect, { type: 'session.update', session: { type: 'realtime' } }, 'unknown_parameter', 'session.type');
    expect(patchOf(betaDialect, { instructions: 'hi' })).toEqual({ instructions: 'hi' });
  });
});

describe('DashScope session.update', () => {
  it('modalities ["audio"] is invalid_value with the documented message', () => {
    const error = expectRejected(dashscopeDialect, { type: 'session.update', session: { modalities: ['audio'] } }, 'invalid_value', 'session.modalities');
    expect(error.message).toBe("Invalid modalities: ['audio']. Supported combinations are: ['text'] and ['audio', 'text'].");
  });

  it('modalities text and both (either order)', () => {
    expect(patchOf(dashscopeDialect, { modalities: ['text'] }).outputModalities).toEqual(['text']);
    expect(patchOf(dashscopeDialect, { modalities: ['audio', 'text'] }).outputModalities).toEqual(['audio']);
    expect(patchOf(dashscopeDialect, { modalities: ['text', 'audio'] }).outputModalities).toEqual(['audio']);
  });

  it('format spellings: input 16 kHz, output 24 kHz, flat or nested', () => {
    for (const name of ['pcm16', 'pcm']) expect(patchOf(dashscopeDialect, { input_audio_format: name }).inputFormat).toEqual({ encoding: 'pcm16', rate: 16000 });
    for (const name of ['pcm24', 'pcm16', 'pcm']) expect(patchOf(dashscopeDialect, { output_audio_format: name }).outputFormat).toEqual({ encoding: 'pcm16', rate: 24000 });
    expect(patchOf(dashscopeDialect, { audio: { input: { format: { type: 'pcm', sample_rate: 16000 } } } }).inputFormat).toEqual({ encoding: 'pcm16', rate: 16000 });
    expectRejected(dashscopeDialect, { type: 'session.update', session: { audio: { input: { format: { type: 'pcm', sample_rate: 24000 } } } } }, 'integer_above_max_value', 'session.audio.input.format.sample_rate');
    expectRejected(dashscopeDialect, { type: 'session.update', session: { audio: { input: { format: { type: 'pcm', rate: 16000 } } } } }, 'unknown_parameter', 'session.audio.input.format.rate');
    expectRejected(dashscopeDialect, { type: 'session.update', session: { input_audio_format: 'pcm24' } }, 'invalid_value', 'session.input_audio_format');
  });

  it('sampling, max_tokens, smooth_output and search are accepted with their ranges', () => {
    const patch = patchOf(dashscopeDialect, {
      temperature: 1.5,
      top_p: 0.9,
      top_k: 20,
      repetition_penalty: 1.05,
      presence_penalty: -1,
      seed: 42,
      max_tokens: 1024,
      smooth_output: false,
      enable_search: true,
      search_options: { forced_search: true },
      voice: 'Serena',
      input_audio_transcription: { model: 'gummy-realtime-v1' },
    });
    expect(patch).toMatchObject({
      sampling: { temperature: 1.5, topP: 0.9, topK: 20, repetitionPenalty: 1.05, presencePenalty: -1, seed: 42 },
      maxOutputTokens: 1024,
      smoothOutput: false,
      voice: 'Serena',
      transcription: { model: 'gummy-realtime-v1' },
      passthrough: { enable_search: true, search_options: { forced_search: true } },
    });
    const update = (session: Record<string, unknown>): Record<string, unknown> => ({ type: 'session.update', session });
    expectRejected(dashscopeDialect, update({ temperature: 2 }), 'invalid_value', 'session.temperature');
    expectRejected(dashscopeDialect, update({ top_p: 0 }), 'invalid_value', 'session.top_p');
    expectRejected(dashscopeDialect, update({ presence_penalty: 3 }), 'decimal_above_max_value', 'session.presence_penalty');
    expectRejected(dashscopeDialect, update({ seed: -1 }), 'integer_below_min_value', 'session.seed');
    expectRejected(dashscopeDialect, update({ smooth_output: 'yes' }), 'invalid_type', 'session.smooth_output');
    expect(patchOf(dashscopeDialect, { smooth_output: null }).smoothOutput).toBeNull();
  });

  it('DashScope VAD ranges: silence 200-6000 ms, threshold -1..1', () => {
    expectRejected(dashscopeDialect, { type: 'session.update', session: { turn_detection: { type: 'server_vad', silence_duration_ms: 100 } } }, 'integer_below_min_value', 'session.turn_detection.silence_duration_ms');
    expect(patchOf(dashscopeDialect, { turn_detection: { type: 'server_vad', threshold: -0.5 } }).turnDetection).toMatchObject({ threshold: -0.5, silenceDurationMs: 800 });
  });

  it('thinking is accepted as an extension', () => {
    expect(patchOf(dashscopeDialect, { thinking: { type: 'enabled', budget_tokens: 100 } }).thinking).toEqual({ enabled: true, budgetTokens: 100 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('input_audio_buffer.append', () => {
  const append = (audio: string): Record<string, unknown> => ({ type: 'input_audio_buffer.append', audio });

  it.each(ALL)('%s: valid PCM16 decodes to bytes', (_name, dialect) => {
    expect(commandOf(dialect, append(b64(pcm(960))), 'input_audio_buffer.append').audio).toEqual(pcm(960));
  });

  it.each(ALL)('%s: base64 garbage is invalid_value audio "Invalid base64"', (_name, dialect) => {
    for (const garbage of ['@@@@', '-_-_', 'AAA', 'AA AA===', 'AA=A']) {
      const error = expectRejected(dialect, append(garbage), 'invalid_value', 'audio');
      expect(error.message).toMatch(/^Invalid base64/);
    }
  });

  it.each(ALL)('%s: audio above 15 MiB decoded is string_above_max_length audio', (_name, dialect) => {
    const text = 'AAAA'.repeat(MAX_AUDIO_APPEND_BYTES / 3 + 1);
    expectRejected(dialect, append(text), 'string_above_max_length', 'audio');
  });

  it.each(ALL)('%s: an odd PCM16 byte count is invalid_value audio', (_name, dialect) => {
    expectRejected(dialect, append(b64(pcm(961))), 'invalid_value', 'audio');
  });

  it.each(ALL)('%s: MP3 (ID3 or consecutive frames) in a PCM session is invalid_value audio', (_name, dialect) => {
    const id3 = Buffer.concat([Buffer.from('ID3', 'latin1'), Buffer.from([4, 0, 0, 0, 0, 0, 0]), Buffer.alloc(22)]);
    expectRejected(dialect, append(b64(id3)), 'invalid_value', 'audio');
    expectRejected(dialect, append(b64(mp3Frames())), 'invalid_value', 'audio');
  });

  it('a single MPEG sync word in PCM noise is not mistaken for MP3', () => {
    const noise = Buffer.concat([Buffer.from([0xff, 0xfb, 0x90, 0x64]), Buffer.alloc(956, 3)]);
    expect(commandOf(gaDialect, append(b64(noise)), 'input_audio_buffer.append').audio).toHaveLength(960);
  });

  it('GA and beta reject a RIFF/WAV header', () => {
    const file = wav(pcm(640), { rate: 24000 });
    expectRejected(gaDialect, append(b64(file)), 'invalid_value', 'audio');
    expectRejected(betaDialect, append(b64(file)), 'invalid_value', 'audio');
  });

  it('DashScope strips a WAV header, walking the chunk list', () => {
    const data = Buffer.alloc(640);
    for (let i = 0; i < data.length; i++) data[i] = i % 251;
    expect(wav(data)).toHaveLength(44 + 640);
    expect(commandOf(dashscopeDialect, append(b64(wav(data))), 'input_audio_buffer.append').audio).toEqual(data);
    expect(commandOf(dashscopeDialect, append(b64(wav(data, { extraChunk: true }))), 'input_audio_buffer.append').audio).toEqual(data);
  });

  it('DashScope rejects a WAV whose format is not the session input format', () => {
    expectRejected(dashscopeDialect, append(b64(wav(pcm(640), { rate: 44100 }))), 'invalid_value', 'audio');
  });

  it('G.711 sessions take any byte count', () => {
    const config = { ...configOf(gaDialect), inputFormat: { encoding: 'g711_ulaw' as const, rate: 8000 } };
    expect(commandOf(gaDialect, append(b64(pcm(161))), 'input_audio_buffer.append', config).audio).toHaveLength(161);
  });

  it('audio must be a string and is required', () => {
    expectRejected(gaDialect, { type: 'input_audio_buffer.append' }, 'missing_required_parameter', 'audio');
    expectRejected(gaDialect, { type: 'input_audio_buffer.append', audio: 5 }, 'invalid_type', 'audio');
  });
});

describe('input_image_buffer.append (all dialects)', () => {
  const append = (image: string): Record<string, unknown> => ({ type: 'input_image_buffer.append', image });

  it.each(ALL)('%s: JPEG and PNG frames decode to bytes', (_name, dialect) => {
    expect(commandOf(dialect, append(b64(JPEG)), 'input_image_buffer.append').image).toEqual(JPEG);
    expect(commandOf(dialect, append(b64(PNG)), 'input_image_buffer.append').image).toEqual(PNG);
  });

  it.each(ALL)('%s: a non-JPEG/PNG frame is invalid_value image', (_name, dialect) => {
    expectRejected(dialect, append(b64(GIF)), 'invalid_value', 'image');
  });

  it.each(ALL)('%s: a frame above 500 KB is string_above_max_length image', (_name, dialect) => {
    const big = Buffer.concat([JPEG, Buffer.alloc(MAX_IMAGE_BYTES)]);
    expectRejected(dialect, append(b64(big)), 'string_above_max_length', 'image');
  });

  it.each(ALL)('%s: base64 garbage is invalid_value image', (_name, dialect) => {
    expectRejected(dialect, append('@@@@'), 'invalid_value', 'image');
  });
});

// ---------------------------------------------------------------------------------------------

describe('conversation.item.create', () => {
  const create = (item: unknown, extra: Record<string, unknown> = {}): Record<string, unknown> => ({ type: 'conversation.item.create', item, ...extra });
  const dataUri = (mime: string, bytes: Buffer): string => `data:${mime};base64,${b64(bytes)}`;

  it('GA user message with text, audio and image parts', () => {
    const command = commandOf(
      gaDialect,
      create({
        type: 'message',
        role: 'user',
        content: [
          { type: 'input_text', text: 'hi' },
          { type: 'input_audio', audio: b64(pcm(960)), transcript: 'hello' },
          { type: 'input_image', image_url: dataUri('image/png', PNG), detail: 'low' },
          { type: 'input_image', image_url: dataUri('image/jpeg', JPEG) },
        ],
      }),
      'conversation.item.create',
    );
    expect(command.item).toEqual({
      type: 'message',
      role: 'user',
      content: [
        { type: 'input_text', text: 'hi' },
        { type: 'input_audio', audio: pcm(960), transcript: 'hello' },
        { type: 'input_image', image: PNG, mime: 'image/png', detail: 'low' },
        { type: 'input_image', image: JPEG, mime: 'image/jpeg', detail: 'auto' },
      ],
    });
    expect(command).not.toHaveProperty('previousItemId');
  });

  it('an http URL or a non-image data URI is invalid_value on the part image_url', () => {
    const user = (part: unknown): unknown => create({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'a' }, part] });
    expectRejected(gaDialect, user({ type: 'input_image', image_url: 'https://example.com/cat.png' }), 'invalid_value', 'item.content[1].image_url');
    expectRejected(gaDialect, user({ type: 'input_image', image_url: dataUri('text/plain', Buffer.from('hello')) }), 'invalid_value', 'item.content[1].image_url');
    expectRejected(gaDialect, user({ type: 'input_image', image_url: dataUri('image/png', GIF) }), 'invalid_value', 'item.content[1].image_url');
    expectRejected(gaDialect, user({ type: 'input_image', image_url: 'data:image/png;base64,@@@@' }), 'invalid_value', 'item.content[1].image_url');
  });

  it('input_audio part audio is validated like an append, with its own param', () => {
    const user = (audio: string): unknown => create({ type: 'message', role: 'user', content: [{ type: 'input_audio', audio }] });
    expectRejected(gaDialect, user('@@@@'), 'invalid_value', 'item.content[0].audio');
    expectRejected(gaDialect, user(b64(pcm(3))), 'invalid_value', 'item.content[0].audio');
  });

  it('system and assistant messages (GA content types)', () => {
    expect(commandOf(gaDialect, create({ type: 'message', role: 'system', content: [{ type: 'input_text', text: 'rules' }] }), 'conversation.item.create').item).toEqual({
      type: 'message',
      role: 'system',
      content: [{ type: 'input_text', text: 'rules' }],
    });
    expect(
      commandOf(
        gaDialect,
        create({ id: 'item_a', type: 'message', role: 'assistant', status: 'completed', object: 'realtime.item', content: [{ type: 'output_text', text: 'ok' }, { type: 'output_audio', transcript: 'said' }] }),
        'conversation.item.create',
      ).item,
    ).toEqual({ id: 'item_a', type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'ok' }, { type: 'output_audio', transcript: 'said' }] });
    expectRejected(gaDialect, create({ type: 'message', role: 'assistant', content: [{ type: 'text', text: 'x' }] }), 'invalid_value', 'item.content[0].type');
    expectRejected(gaDialect, create({ type: 'message', role: 'system', content: [{ type: 'input_audio', audio: '' }] }), 'invalid_value', 'item.content[0].type');
    expectRejected(gaDialect, create({ type: 'message', role: 'assistant', content: [{ type: 'output_audio', audio: 'AAAA', transcript: 'x' }] }), 'invalid_value', 'item.content[0].audio');
  });

  it.each([['beta', betaDialect] as const, ['dashscope', dashscopeDialect] as const])('%s: assistant text/audio map to output_text/output_audio', (_name, dialect) => {
    expect(commandOf(dialect, create({ type: 'message', role: 'assistant', content: [{ type: 'text', text: 'ok' }, { type: 'audio', transcript: 'said' }] }), 'conversation.item.create').item).toEqual({
      type: 'message',
      role: 'assistant',
      content: [{ type: 'output_text', text: 'ok' }, { type: 'output_audio', transcript: 'said' }],
    });
    expectRejected(dialect, create({ type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'x' }] }), 'invalid_value', 'item.content[0].type');
  });

  it.each(ALL)('%s: function_call and function_call_output items', (_name, dialect) => {
    expect(commandOf(dialect, create({ type: 'function_call', call_id: 'call_1', name: 'f', arguments: '{}' }), 'conversation.item.create').item).toEqual({
      type: 'function_call',
      callId: 'call_1',
      name: 'f',
      arguments: '{}',
    });
    expect(commandOf(dialect, create({ type: 'function_call_output', call_id: 'call_1', output: '{"ok":true}' }), 'conversation.item.create').item).toEqual({
      type: 'function_call_output',
      callId: 'call_1',
      output: '{"ok":true}',
    });
    expectRejected(dialect, create({ type: 'function_call_output', output: 'x' }), 'missing_required_parameter', 'item.call_id');
  });

  it.each(ALL)('%s: item type, role and content are required', (_name, dialect) => {
    expectRejected(dialect, create({ role: 'user', content: [] }), 'missing_required_parameter', 'item.type');
    expectRejected(dialect, create({ type: 'message', content: [] }), 'missing_required_parameter', 'item.role');
    expectRejected(dialect, create({ type: 'message', role: 'user' }), 'missing_required_parameter', 'item.content');
    expectRejected(dialect, create({ type: 'mcp_call' }), 'invalid_value', 'item.type');
    expectRejected(dialect, create({ type: 'message', role: 'user', content: [{ type: 'input_text', text: 'a', extra: 1 }] }), 'unknown_parameter', 'item.content[0].extra');
    expectRejected(dialect, { type: 'conversation.item.create' }, 'missing_required_parameter', 'item');
  });

  it('previous_item_id: a string ("root" as is) or null', () => {
    const item = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'a' }] };
    expect(commandOf(gaDialect, create(item, { previous_item_id: 'root' }), 'conversation.item.create').previousItemId).toBe('root');
    expect(commandOf(gaDialect, create(item, { previous_item_id: null }), 'conversation.item.create').previousItemId).toBeNull();
    expectRejected(gaDialect, create(item, { previous_item_id: 3 }), 'invalid_type', 'previous_item_id');
  });
});

// ---------------------------------------------------------------------------------------------

describe('response.create', () => {
  it.each(ALL)('%s: no response object means no overrides', (_name, dialect) => {
    expect(dialect.parse({ type: 'response.create' }, configOf(dialect))).toEqual({ type: 'response.create', eventId: null, response: {} });
  });

  it('GA overrides use GA field names', () => {
    const command = commandOf(
      gaDialect,
      {
        type: 'response.create',
        response: {
          output_modalities: ['text'],
          instructions: 'Short.',
          audio: { output: { format: { type: 'audio/pcmu' }, voice: 'ash' } },
          tools: [{ type: 'function', name: 'f' }],
          tool_choice: 'none',
          max_output_tokens: 5,
          conversation: 'none',
          input: [{ type: 'item_reference', id: 'item_1' }, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'q' }] }],
          metadata: { topic: 'x' },
          thinking: { type: 'disabled' },
          parallel_tool_calls: false,
        },
      },
      'response.create',
    );
    expect(command.response).toEqual({
      outputModalities: ['text'],
      instructions: 'Short.',
      outputFormat: { encoding: 'g711_ulaw', rate: 8000 },
      voice: 'ash',
      tools: [{ type: 'function', name: 'f' }],
      toolChoice: 'none',
      maxOutputTokens: 5,
      conversation: 'none',
      input: [{ reference: 'item_1' }, { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'q' }] }],
      metadata: { topic: 'x' },
      thinking: { enabled: false, budgetTokens: null },
    });
  });

  it('GA response errors name the response.* param', () => {
    expectRejected(gaDialect, { type: 'response.create', response: { modalities: ['text'] } }, 'unknown_parameter', 'response.modalities');
    expectRejected(gaDialect, { type: 'response.create', response: { conversation: 'conv_1' } }, 'invalid_value', 'response.conversation');
    expectRejected(gaDialect, { type: 'response.create', response: { input: [{ type: 'item_reference' }] } }, 'missing_required_parameter', 'response.input[0].id');
    expectRejected(gaDialect, { type: 'response.create', response: { input: [{ role: 'user' }] } }, 'missing_required_parameter', 'response.input[0].type');
    expectRejected(gaDialect, { type: 'response.create', response: { metadata: { a: 1 } } }, 'invalid_value', 'response.metadata');
    expectRejected(gaDialect, { type: 'response.create', response: { max_output_tokens: 0 } }, 'integer_below_min_value', 'response.max_output_tokens');
  });

  it('beta overrides use beta field names', () => {
    const command = commandOf(
      betaDialect,
      {
        type: 'response.create',
        response: { modalities: ['text', 'audio'], voice: 'verse', output_audio_format: 'g711_alaw', temperature: 0.7, max_response_output_tokens: 'inf', conversation: 'auto' },
      },
      'response.create',
    );
    expect(command.response).toEqual({
      outputModalities: ['audio'],
      voice: 'verse',
      outputFormat: { encoding: 'g711_alaw', rate: 8000 },
      sampling: { temperature: 0.7 },
      maxOutputTokens: null,
      conversation: 'auto',
    });
    expectRejected(betaDialect, { type: 'response.create', response: { output_modalities: ['text'] } }, 'unknown_parameter', 'response.output_modalities');
  });

  it('DashScope response.modalities ["audio"] is invalid_value response.modalities', () => {
    expectRejected(dashscopeDialect, { type: 'response.create', response: { modalities: ['audio'] } }, 'invalid_value', 'response.modalities');
    expect(commandOf(dashscopeDialect, { type: 'response.create', response: { instructions: 'x', modalities: ['text'] } }, 'response.create').response).toEqual({
      instructions: 'x',
      outputModalities: ['text'],
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Rendering

const userAudioItem: ConversationItem = {
  id: 'item_u1',
  type: 'message',
  role: 'user',
  status: 'completed',
  content: [{ type: 'input_audio', audio: pcm(4), transcript: null }],
};
const assistantItem: ConversationItem = {
  id: 'item_a1',
  type: 'message',
  role: 'assistant',
  status: 'completed',
  content: [{ type: 'output_audio', transcript: 'Sure' }],
};
const textItem: ConversationItem = { id: 'item_a2', type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'ok' }] };
const imageItem: ConversationItem = {
  id: 'item_i',
  type: 'message',
  role: 'user',
  status: 'completed',
  content: [{ type: 'input_image', image: PNG, mime: 'image/png', detail: 'auto' }],
};
const callItem: ConversationItem = { id: 'item_c', type: 'function_call', status: 'completed', callId: 'call_1', name: 'f', arguments: '{"a":1}' };

const response: ResponseState = {
  id: 'resp_1',
  status: 'cancelled',
  statusDetails: { type: 'cancelled', reason: 'turn_detected' },
  output: [assistantItem],
  conversationId: 'conv_1',
  outputModalities: ['audio'],
  maxOutputTokens: null,
  voice: 'Cherry',
  outputFormat: { encoding: 'pcm16', rate: 24000 },
  sampling: { temperature: 0.8 },
  usage: { totalTokens: 30, inputTokens: 20, outputTokens: 10, input: { text: 5, audio: 10, image: 5, cached: 0 }, output: { text: 4, audio: 6 } },
  metadata: null,
};
const loc = { response_id: 'resp_1', item_id: 'item_a1', output_index: 0, content_index: 0 };

describe('GA rendering', () => {
  it('session object per §2.1 with format objects, full turn detection and "inf"', () => {
    const [wire] = gaDialect.render({ type: 'session.created', session: configOf(gaDialect) });
    expect(wire).toEqual({
      type: 'session.created',
      session: {
        type: 'realtime',
        object: 'realtime.session',
        id: 'sess_1',
        model: 'qwen3-omni',
        output_modalities: ['audio'],
        audio: {
          input: {
            format: { type: 'audio/pcm', rate: 24000 },
            transcription: null,
            noise_reduction: null,
            turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500, idle_timeout_ms: null, create_response: true, interrupt_response: true },
          },
          output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'Cherry', speed: 1 },
        },
        instructions: '',
        tools: [],
        tool_choice: 'auto',
        max_output_tokens: 'inf',
        truncation: 'auto',
        include: null,
        expires_at: 1790000000,
      },
    });
    expect(wire).not.toHaveProperty('event_id');
  });

  it('session round trip: an update applied and rendered shows the new values', () => {
    const patch = patchOf(gaDialect, {
      type: 'realtime',
      instructions: 'Be brief.',
      output_modalities: ['text'],
      audio: { input: { format: { type: 'audio/pcmu' }, transcription: { model: 'qwen3-asr' }, turn_detection: null }, output: { voice: 'marin' } },
      max_output_tokens: 100,
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }],
      thinking: { type: 'enabled', budget_tokens: 64 },
      tracing: 'auto',
    });
    const [wire] = gaDialect.render({ type: 'session.updated', session: applyPatch(configOf(gaDialect), patch) });
    expect(wire!.session).toMatchObject({
      instructions: 'Be brief.',
      output_modalities: ['text'],
      audio: { input: { format: { type: 'audio/pcmu' }, transcription: { model: 'qwen3-asr' }, turn_detection: null }, output: { voice: 'marin' } },
      max_output_tokens: 100,
      tools: [{ type: 'function', name: 'f', parameters: { type: 'object' } }],
      thinking: { type: 'enabled', budget_tokens: 64 },
      tracing: 'auto',
    });
    // Rendering it back and parsing the result gives the same patch (GA session objects are
    // accepted by session.update, minus server-owned fields).
    const echoed = { ...(wire!.session as Record<string, unknown>) };
    delete echoed.expires_at;
    delete echoed.truncation;
    delete echoed.include;
    expect(patchOf(gaDialect, echoed)).toMatchObject({ ...patch, passthrough: { tracing: 'auto' } });
  });

  it('items: added and done without audio bytes; retrieved with audio base64 and the image data URI', () => {
    expect(gaDialect.render({ type: 'conversation.item.added', item: userAudioItem, previous_item_id: null })).toEqual([
      {
        type: 'conversation.item.added',
        previous_item_id: null,
        item: { id: 'item_u1', object: 'realtime.item', type: 'message', status: 'completed', role: 'user', content: [{ type: 'input_audio', transcript: null }] },
      },
    ]);
    expect(gaDialect.render({ type: 'conversation.item.done', item: userAudioItem, previous_item_id: 'x' })[0]).toMatchObject({ type: 'conversation.item.done', previous_item_id: 'x' });
    expect(gaDialect.render({ type: 'conversation.item.retrieved', item: userAudioItem })[0]!.item).toMatchObject({
      content: [{ type: 'input_audio', audio: b64(pcm(4)), transcript: null }],
    });
    expect(gaDialect.render({ type: 'conversation.item.retrieved', item: assistantItem, audio: pcm(6) })[0]!.item).toMatchObject({
      content: [{ type: 'output_audio', audio: b64(pcm(6)), transcript: 'Sure' }],
    });
    expect(gaDialect.render({ type: 'conversation.item.added', item: imageItem, previous_item_id: null })[0]!.item).toMatchObject({
      content: [{ type: 'input_image', detail: 'auto' }],
    });
    expect(JSON.stringify(gaDialect.render({ type: 'conversation.item.added', item: imageItem, previous_item_id: null }))).not.toContain('base64');
    expect(gaDialect.render({ type: 'conversation.item.retrieved', item: imageItem })[0]!.item).toMatchObject({
      content: [{ type: 'input_image', image_url: `data:image/png;base64,${b64(PNG)}` }],
    });
    expect(gaDialect.render({ type: 'response.output_item.done', response_id: 'resp_1', output_index: 0, item: callItem })).toEqual([
      {
        type: 'response.output_item.done',
        response_id: 'resp_1',
        output_index: 0,
        item: { id: 'item_c', object: 'realtime.item', type: 'function_call', status: 'completed', call_id: 'call_1', name: 'f', arguments: '{"a":1}' },
      },
    ]);
  });

  it('response object per §5.1', () => {
    expect(gaDialect.render({ type: 'response.done', response })).toEqual([
      {
        type: 'response.done',
        response: {
          id: 'resp_1',
          object: 'realtime.response',
          status: 'cancelled',
          status_details: { type: 'cancelled', reason: 'turn_detected' },
          output: [{ id: 'item_a1', object: 'realtime.item', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'output_audio', transcript: 'Sure' }] }],
          conversation_id: 'conv_1',
          output_modalities: ['audio'],
          max_output_tokens: 'inf',
          audio: { output: { format: { type: 'audio/pcm', rate: 24000 }, voice: 'Cherry' } },
          usage: {
            total_tokens: 30,
            input_tokens: 20,
            output_tokens: 10,
            input_token_details: { text_tokens: 5, audio_tokens: 10, image_tokens: 5, cached_tokens: 0 },
            output_token_details: { text_tokens: 4, audio_tokens: 6 },
          },
          metadata: null,
        },
      },
    ]);
  });

  it('deltas: audio as base64 delta, text and transcript as is', () => {
    expect(gaDialect.render({ type: 'response.output_audio.delta', ...loc, audio: pcm(6) })).toEqual([{ type: 'response.output_audio.delta', ...loc, delta: b64(pcm(6)) }]);
    expect(gaDialect.render({ type: 'response.output_text.delta', ...loc, delta: 'hi' })).toEqual([{ type: 'response.output_text.delta', ...loc, delta: 'hi' }]);
    expect(gaDialect.render({ type: 'response.output_audio_transcript.done', ...loc, transcript: 'Sure' })).toEqual([{ type: 'response.output_audio_transcript.done', ...loc, transcript: 'Sure' }]);
    expect(gaDialect.render({ type: 'response.content_part.added', ...loc, part: { type: 'audio', transcript: '' } })).toEqual([
      { type: 'response.content_part.added', ...loc, part: { type: 'audio', transcript: '' } },
    ]);
  });

  it('error keeps the inner event_id; flat events pass through; session.finished is not a GA event', () => {
    const error = new ProtocolError('invalid_value', 'bad', 'type').body('c1');
    expect(gaDialect.render({ type: 'error', error })).toEqual([{ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'bad', param: 'type', event_id: 'c1' } }]);
    expect(gaDialect.render({ type: 'input_audio_buffer.committed', item_id: 'i', previous_item_id: null })).toEqual([{ type: 'input_audio_buffer.committed', item_id: 'i', previous_item_id: null }]);
    expect(gaDialect.render({ type: 'rate_limits.updated', rate_limits: [{ name: 'tokens', limit: 10, remaining: 9, reset_seconds: 1 }] })).toEqual([
      { type: 'rate_limits.updated', rate_limits: [{ name: 'tokens', limit: 10, remaining: 9, reset_seconds: 1 }] },
    ]);
    expect(gaDialect.render({ type: 'session.finished' })).toEqual([]);
    expect(
      gaDialect.render({ type: 'conversation.item.input_audio_transcription.failed', item_id: 'i', content_index: 0, error: new ProtocolError('asr_failed', 'ASR failed', null, 'server_error').body(null) }),
    ).toEqual([{ type: 'conversation.item.input_audio_transcription.failed', item_id: 'i', content_index: 0, error: { type: 'server_error', code: 'asr_failed', message: 'ASR failed', param: null } }]);
  });
});

describe('beta rendering', () => {
  it('session object per §2.2', () => {
    expect(betaDialect.render({ type: 'session.created', session: configOf(betaDialect) })[0]!.session).toEqual({
      id: 'sess_1',
      object: 'realtime.session',
      model: 'qwen3-omni',
      expires_at: 1790000000,
      modalities: ['text', 'audio'],
      instructions: '',
      voice: 'Cherry',
      speed: 1,
      input_audio_format: 'pcm16',
      output_audio_format: 'pcm16',
      input_audio_transcription: null,
      input_audio_noise_reduction: null,
      turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500, create_response: true, interrupt_response: true },
      tools: [],
      tool_choice: 'auto',
      temperature: 0.8,
      max_response_output_tokens: 'inf',
    });
  });

  it('session round trip: modalities and formats render in beta names', () => {
    const patch = patchOf(betaDialect, { modalities: ['text'], input_audio_format: 'g711_ulaw', temperature: 1.1, max_response_output_tokens: 50 });
    expect(betaDialect.render({ type: 'session.updated', session: applyPatch(configOf(betaDialect), patch) })[0]!.session).toMatchObject({
      modalities: ['text'],
      input_audio_format: 'g711_ulaw',
      temperature: 1.1,
      max_response_output_tokens: 50,
    });
  });

  it('event names per §5.2', () => {
    const names = (events: ServerEvent[]): string[] => events.flatMap((e) => betaDialect.render(e)).map((w) => w.type as string);
    expect(
      names([
        { type: 'response.output_text.delta', ...loc, delta: 'a' },
        { type: 'response.output_text.done', ...loc, text: 'a' },
        { type: 'response.output_audio.delta', ...loc, audio: pcm(2) },
        { type: 'response.output_audio.done', ...loc },
        { type: 'response.output_audio_transcript.delta', ...loc, delta: 'a' },
        { type: 'response.output_audio_transcript.done', ...loc, transcript: 'a' },
      ]),
    ).toEqual(['response.text.delta', 'response.text.done', 'response.audio.delta', 'response.audio.done', 'response.audio_transcript.delta', 'response.audio_transcript.done']);
  });

  it('each item is announced exactly once as conversation.item.created, including a user item committed from audio', () => {
    const turn: ServerEvent[] = [
      { type: 'input_audio_buffer.committed', item_id: 'item_u1', previous_item_id: null },
      { type: 'conversation.item.added', item: userAudioItem, previous_item_id: null },
      { type: 'conversation.item.done', item: userAudioItem, previous_item_id: null },
      { type: 'response.output_item.added', response_id: 'resp_1', output_index: 0, item: { ...assistantItem, status: 'in_progress', content: [] } },
      { type: 'conversation.item.added', item: { ...assistantItem, status: 'in_progress', content: [] }, previous_item_id: 'item_u1' },
      { type: 'conversation.item.done', item: assistantItem, previous_item_id: 'item_u1' },
      { type: 'response.output_item.done', response_id: 'resp_1', output_index: 0, item: assistantItem },
    ];
    const wire = turn.flatMap((e) => betaDialect.render(e));
    const created = wire.filter((w) => w.type === 'conversation.item.created');
    expect(created.map((w) => (w.item as { id: string }).id)).toEqual(['item_u1', 'item_a1']);
    expect(created[0]).toMatchObject({ previous_item_id: null, item: { role: 'user', content: [{ type: 'input_audio', transcript: null }] } });
    expect(wire.map((w) => w.type)).not.toContain('conversation.item.added');
    expect(wire.map((w) => w.type)).not.toContain('conversation.item.done');
  });

  it('items use text/audio content types; response object per §5.2', () => {
    expect(betaDialect.render({ type: 'conversation.item.added', item: textItem, previous_item_id: null })[0]!.item).toMatchObject({ content: [{ type: 'text', text: 'ok' }] });
    expect(betaDialect.render({ type: 'response.created', response })[0]!.response).toEqual({
      id: 'resp_1',
      object: 'realtime.response',
      status: 'cancelled',
      status_details: { type: 'cancelled', reason: 'turn_detected' },
      output: [{ id: 'item_a1', object: 'realtime.item', type: 'message', status: 'completed', role: 'assistant', content: [{ type: 'audio', transcript: 'Sure' }] }],
      conversation_id: 'conv_1',
      modalities: ['text', 'audio'],
      voice: 'Cherry',
      output_audio_format: 'pcm16',
      temperature: 0.8,
      max_output_tokens: 'inf',
      usage: expect.objectContaining({ total_tokens: 30 }) as unknown,
      metadata: null,
    });
  });
});

describe('DashScope rendering', () => {
  it('session.created per §5.3: both modalities, Cherry, server_vad 0.5/300/800', () => {
    expect(dashscopeDialect.render({ type: 'session.created', session: configOf(dashscopeDialect) })[0]!.session).toEqual({
      id: 'sess_1',
      object: 'realtime.session',
      model: 'qwen3-omni',
      modalities: ['text', 'audio'],
      instructions: '',
      voice: 'Cherry',
      input_audio_format: 'pcm16',
      output_audio_format: 'pcm24',
      input_audio_transcription: null,
      turn_detection: { type: 'server_vad', threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 800, create_response: true, interrupt_response: true },
      tools: [],
      tool_choice: 'auto',
      temperature: 0.8,
      smooth_output: null,
    });
  });

  it('session round trip echoes the client spelling of formats, sampling and search', () => {
    const patch = patchOf(dashscopeDialect, { input_audio_format: 'pcm', output_audio_format: 'pcm', top_p: 0.5, max_tokens: 200, enable_search: true });
    expect(dashscopeDialect.render({ type: 'session.updated', session: applyPatch(configOf(dashscopeDialect), patch) })[0]!.session).toMatchObject({
      input_audio_format: 'pcm',
      output_audio_format: 'pcm',
      top_p: 0.5,
      max_tokens: 200,
      enable_search: true,
    });
  });

  it('error has no inner event_id; session.finished is rendered; item done and output buffer events are not', () => {
    const error = new ProtocolError('invalid_value', 'bad', 'session.modalities').body('c1');
    expect(dashscopeDialect.render({ type: 'error', error })).toEqual([{ type: 'error', error: { type: 'invalid_request_error', code: 'invalid_value', message: 'bad', param: 'session.modalities' } }]);
    expect(dashscopeDialect.render({ type: 'session.finished' })).toEqual([{ type: 'session.finished' }]);
    expect(dashscopeDialect.render({ type: 'conversation.item.done', item: textItem, previous_item_id: null })).toEqual([]);
    expect(dashscopeDialect.render({ type: 'output_audio_buffer.started', response_id: 'r' })).toEqual([]);
    expect(dashscopeDialect.render({ type: 'conversation.item.added', item: textItem, previous_item_id: null })[0]!.type).toBe('conversation.item.created');
    expect(dashscopeDialect.render({ type: 'response.output_audio.delta', ...loc, audio: pcm(4) })).toEqual([{ type: 'response.audio.delta', ...loc, delta: b64(pcm(4)) }]);
  });
});

// ---------------------------------------------------------------------------------------------

describe('subprotocols (§1.2-1.3)', () => {
  it('selects realtime and extracts the key from a browser offer', () => {
    const selection = parseSubprotocols('realtime, openai-insecure-api-key.ek_toy_ephemeral');
    expect(selection.selected).toBe('realtime');
    expect(selection.apiKey).toBe('ek_toy_ephemeral');
    expect(selection.beta).toBe(false);
  });

  it('detects the beta token and tolerates organization/project tokens', () => {
    const selection = parseSubprotocols(['realtime', 'openai-insecure-api-key.K', 'openai-organization.org_1', 'openai-project.proj_1', 'openai-beta.realtime-v1']);
    expect(selection).toMatchObject({ selected: 'realtime', beta: true });
    expect(selection.apiKey).toBe('K');
    expect(parseSubprotocols(new Set(['realtime'])).selected).toBe('realtime');
  });

  it('selects nothing when realtime is not offered, and handles no header', () => {
    expect(parseSubprotocols('openai-insecure-api-key.K')).toMatchObject({ selected: false, beta: false });
    expect(parseSubprotocols(undefined)).toEqual({ selected: false, beta: false });
    expect(parseSubprotocols('')).toEqual({ selected: false, beta: false });
  });

  it('never exposes the key when the result is logged or serialised', () => {
    const selection = parseSubprotocols('realtime, openai-insecure-api-key.sk-secret-123');
    expect(JSON.stringify(selection)).not.toContain('sk-secret-123');
    expect(inspect(selection)).not.toContain('sk-secret-123');
    expect(Object.keys(selection)).not.toContain('apiKey');
    expect({ ...selection }).not.toHaveProperty('apiKey');
  });
});

describe('selectDialect (§1.1)', () => {
  it('the DashScope path selects DashScope, even with beta hints', () => {
    expect(selectDialect({ path: '/api-ws/v1/realtime?model=qwen3-omni-flash-realtime', headers: { 'openai-beta': 'realtime=v1' } }).name).toBe('dashscope');
  });

  it('the beta header or the beta subprotocol selects beta on /v1/realtime', () => {
    expect(selectDialect({ path: '/v1/realtime?model=m', headers: { 'openai-beta': 'realtime=v1' } }).name).toBe('beta');
    expect(selectDialect({ path: '/v1/realtime', headers: { 'OpenAI-Beta': 'assistants=v2, realtime=v1' } }).name).toBe('beta');
    expect(selectDialect({ path: '/v1/realtime', headers: {}, protocols: 'realtime, openai-beta.realtime-v1' }).name).toBe('beta');
    expect(selectDialect({ path: '/v1/realtime', headers: { 'sec-websocket-protocol': 'realtime, openai-beta.realtime-v1' } }).name).toBe('beta');
  });

  it('otherwise GA', () => {
    expect(selectDialect({ path: '/v1/realtime?model=m', headers: { authorization: 'Bearer x' } }).name).toBe('ga');
    expect(selectDialect({ path: '/openai/v1/realtime/', headers: {}, protocols: ['realtime', 'openai-insecure-api-key.K'] }).name).toBe('ga');
  });

  it('dialectFor returns each dialect by name', () => {
    expect(dialectFor('ga')).toBe(gaDialect);
    expect(dialectFor('beta')).toBe(betaDialect);
    expect(dialectFor('dashscope')).toBe(dashscopeDialect);
  });
});
