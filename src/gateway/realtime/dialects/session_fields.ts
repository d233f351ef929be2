// Session and response fields that mean the same in every dialect, only under different keys:
// turn detection, transcription, tools, tool choice, token limits, thinking, voice (parse and
// render). Ranges follow realtime-protocol.md §2.1-2.4.
import type {
  FunctionTool,
  Modality,
  ResponseState,
  ResponseUsage,
  SessionConfig,
  ThinkingConfig,
  ToolChoice,
  Transcription,
  TurnDetection,
} from '../model.js';
import { errors, Fields, isJsonSchemaObject, quote, type NumberRange } from './common.js';

// ---------------------------------------------------------------------------------------------
// Read-only fields

/** Checks that read-only fields a client may echo back (`model`, `object`) were not changed. */
export function checkReadOnlySessionFields(session: Fields, config: SessionConfig): void {
  session.oneOf('object', ['realtime.session'] as const);
  const model = session.string('model');
  if (model !== undefined && model !== config.model) {
    throw errors.invalidValue(session.param('model'), `The session model cannot be changed by session.update (it is '${config.model}').`);
  }
  session.string('id');
  session.number('expires_at', { integer: true });
}

// ---------------------------------------------------------------------------------------------
// Turn detection

export interface TurnDetectionRules {
  /** server_vad values used when a new turn_detection object omits them. */
  defaults: TurnDetection;
  threshold: NumberRange;
  silenceDurationMs: NumberRange;
}

export const OPENAI_TURN_DETECTION: TurnDetectionRules = {
  defaults: {
    type: 'server_vad',
    threshold: 0.5,
    prefixPaddingMs: 300,
    silenceDurationMs: 500,
    idleTimeoutMs: null,
    createResponse: true,
    interruptResponse: true,
  },
  threshold: { min: 0, max: 1 },
  silenceDurationMs: { integer: true, min: 0 },
};

export const DASHSCOPE_TURN_DETECTION: TurnDetectionRules = {
  defaults: { ...OPENAI_TURN_DETECTION.defaults, silenceDurationMs: 800 },
  threshold: { min: -1, max: 1 },
  silenceDurationMs: { integer: true, min: 200, max: 6000 },
};

const SERVER_VAD_KEYS = ['type', 'threshold', 'prefix_padding_ms', 'silence_duration_ms', 'idle_timeout_ms', 'create_response', 'interrupt_response'];
const SEMANTIC_VAD_KEYS = ['type', 'eagerness', 'create_response', 'interrupt_response'];
const IDLE_TIMEOUT_MS: NumberRange = { integer: true, min: 5000, max: 30000 };

/**
 * `turn_detection`: null (manual turns) or a VAD object. Omitted fields keep the current value
 * when the type stays the same, else take the dialect's defaults.
 */
export function parseTurnDetection(
  parent: Fields,
  key: string,
  current: TurnDetection | null,
  rules: TurnDetectionRules,
): TurnDetection | null | undefined {
  const td = parent.nullableObject(key, [...new Set([...SERVER_VAD_KEYS, ...SEMANTIC_VAD_KEYS])]);
  if (td === null || td === undefined) return td;
  const type = td.oneOf('type', ['server_vad', 'semantic_vad'] as const) ?? current?.type ?? 'server_vad';
  // Re-check the keys against the chosen type (eagerness is semantic_vad only, and vice versa).
  Fields.of(td.value, td.path, type === 'server_vad' ? SERVER_VAD_KEYS : SEMANTIC_VAD_KEYS);
  const base: TurnDetection = current && current.type === type ? current : { ...rules.defaults, type };
  const result: TurnDetection = {
    type,
    threshold: td.number('threshold', rules.threshold) ?? base.threshold,
    prefixPaddingMs: td.number('prefix_padding_ms', { integer: true, min: 0 }) ?? base.prefixPaddingMs,
    silenceDurationMs: td.number('silence_duration_ms', rules.silenceDurationMs) ?? base.silenceDurationMs,
    idleTimeoutMs: td.has('idle_timeout_ms') ? td.nullableNumber('idle_timeout_ms', IDLE_TIMEOUT_MS)! : base.idleTimeoutMs,
    createResponse: td.boolean('create_response') ?? base.createResponse,
    interruptResponse: td.boolean('interrupt_response') ?? base.interruptResponse,
  };
  if (type === 'semantic_vad') result.eagerness = td.oneOf('eagerness', ['low', 'medium', 'high', 'auto'] as const) ?? base.eagerness ?? 'auto';
  return result;
}

export function renderTurnDetection(td: TurnDetection | null, idleTimeout: 'always' | 'when_set'): Record<string, unknown> | null {
  if (!td) return null;
  const flags = { create_response: td.createResponse, interrupt_response: td.interruptResponse };
  if (td.type === 'semantic_vad') return { type: td.type, eagerness: td.eagerness ?? 'auto', ...flags };
  return {
    type: td.type,
    threshold: td.threshold,
    prefix_padding_ms: td.prefixPaddingMs,
    silence_duration_ms: td.silenceDurationMs,
    ...(idleTimeout === 'always' || td.idleTimeoutMs !== null ? { idle_timeout_ms: td.idleTimeoutMs } : {}),
    ...flags,
  };
}

// ---------------------------------------------------------------------------------------------
// Input transcription, noise reduction

export function parseTranscription(parent: Fields, key: string): Transcription | null | undefined {
  const t = parent.nullableObject(key, ['model', 'language', 'prompt']);
  if (t === null || t === undefined) return t;
  const out: Transcription = {};
  const model = t.string('model');
  const language = t.string('language');
  const prompt = t.string('prompt');
  if (model !== undefined) out.model = model;
  if (language !== undefined) out.language = language;
  if (prompt !== undefined) out.prompt = prompt;
  return out;
}

export function renderTranscription(t: Transcription | null): Record<string, unknown> | null {
  return t ? { ...t } : null;
}

export function parseNoiseReduction(parent: Fields, key: string): { type: 'near_field' | 'far_field' } | null | undefined {
  const nr = parent.nullableObject(key, ['type']);
  if (nr === null || nr === undefined) return nr;
  return { type: nr.requiredOneOf('type', ['near_field', 'far_field'] as const) };
}

// ---------------------------------------------------------------------------------------------
// Tools

const TOOL_NAME = /^[A-Za-z0-9_-]{1,64}$/;

export function parseTools(parent: Fields, key: string): FunctionTool[] | undefined {
  const list = parent.array(key);
  if (!list) return undefined;
  return list.map((value, i) => {
    const tool = Fields.of(value, `${parent.param(key)}[${i}]`, ['type', 'name', 'description', 'parameters']);
    tool.requiredOneOf('type', ['function'] as const);
    const name = tool.requiredString('name');
    if (!TOOL_NAME.test(name)) {
      throw errors.invalidValue(tool.param('name'), `Invalid '${tool.param('name')}': expected 1-64 characters of [A-Za-z0-9_-], got ${quote(name)}.`);
    }
    const out: FunctionTool = { type: 'function', name };
    const description = tool.string('description');
    if (description !== undefined) out.description = description;
    const parameters = tool.raw('parameters');
    if (parameters !== undefined) {
      if (!isJsonSchemaObject(parameters)) throw errors.invalidType(tool.param('parameters'), 'an object (a JSON Schema)', parameters);
      out.parameters = parameters;
    }
    return out;
  });
}

export function renderTools(tools: FunctionTool[]): Record<string, unknown>[] {
  return tools.map((t) => ({ ...t }));
}

export function parseToolChoice(parent: Fields, key: string): ToolChoice | undefined {
  const value = parent.raw(key);
  if (value === undefined) return undefined;
  if (typeof value === 'string') return parent.oneOf(key, ['none', 'auto', 'required'] as const);
  const choice = Fields.of(value, parent.param(key), ['type', 'name']);
  choice.requiredOneOf('type', ['function'] as const);
  return { type: 'function', name: choice.requiredString('name') };
}

export function renderToolChoice(choice: ToolChoice): unknown {
  return typeof choice === 'string' ? choice : { ...choice };
}

// ---------------------------------------------------------------------------------------------
// Token limits, thinking, voice, speed

/** `max_output_tokens` and friends: 1..`max` or "inf" (null). */
export function parseMaxTokens(fields: Fields, key: string, max = 4096): number | null | undefined {
  const value = fields.raw(key);
  if (value === undefined) return undefined;
  if (value === 'inf') return null;
  if (typeof value === 'string') throw errors.notOneOf(fields.param(key), value, ['inf']);
  return fields.number(key, { integer: true, min: 1, max });
}

export function renderMaxTokens(value: number | null): number | 'inf' {
  return value ?? 'inf';
}

/** Gateway extension: `thinking: {type: "enabled"|"disabled", budget_tokens?}` or null. */
export function parseThinking(fields: Fields, key: string): ThinkingConfig | null | undefined {
  const thinking = fields.nullableObject(key, ['type', 'budget_tokens']);
  if (thinking === null || thinking === undefined) return thinking;
  const type = thinking.requiredOneOf('type', ['enabled', 'disabled'] as const);
  return { enabled: type === 'enabled', budgetTokens: thinking.number('budget_tokens', { integer: true, min: 1 }) ?? null };
}

export function renderThinking(thinking: ThinkingConfig | null): Record<string, unknown> {
  if (!thinking) return {};
  return { thinking: { type: thinking.enabled ? 'enabled' : 'disabled', budget_tokens: thinking.budgetTokens } };
}

/** A voice name; GA also takes `{id}` (custom voices). */
export function parseVoice(fields: Fields, key: string, allowObject: boolean): string | undefined {
  const value = fields.raw(key);
  if (value === undefined) return undefined;
  const voice = allowObject && typeof value === 'object' && value !== null && !Array.isArray(value)
    ? Fields.of(value, fields.param(key), ['id']).requiredString('id')
    : fields.string(key)!;
  if (voice.length === 0) throw errors.invalidValue(fields.param(key), `Invalid '${fields.param(key)}': the voice name is empty.`);
  return voice;
}

export function parseSpeed(fields: Fields, key: string): number | undefined {
  return fields.number(key, { min: 0.25, max: 1.5 });
}

// ---------------------------------------------------------------------------------------------
// Modalities

/** GA `output_modalities`: exactly ["audio"] or ["text"]. */
export function parseOutputModalities(fields: Fields, key: string): Modality[] | undefined {
  const list = fields.array(key);
  if (!list) return undefined;
  if (list.length === 1 && (list[0] === 'audio' || list[0] === 'text')) return [list[0]];
  throw errors.invalidValue(
    fields.param(key),
    `Invalid '${fields.param(key)}': ${quote(list)}. Supported values are: ['audio'] and ['text'].`,
  );
}

/**
 * beta/DashScope `modalities`: ["text"] or text plus audio (either order), internally ['text'] or
 * ['audio'] (audio always carries its transcript). `["audio"]` alone is rejected.
 */
export function parseTextAudioModalities(fields: Fields, key: string, combinations: string): Modality[] | undefined {
  const list = fields.array(key);
  if (!list) return undefined;
  const set = new Set(list);
  const valid = list.length === set.size && list.every((m) => m === 'text' || m === 'audio') && set.has('text');
  if (!valid) {
    throw errors.invalidValue(fields.param(key), `Invalid modalities: ${quote(list)}. Supported combinations are: ${combinations}.`);
  }
  return set.has('audio') ? ['audio'] : ['text'];
}

export function renderTextAudioModalities(modalities: Modality[]): string[] {
  return modalities.includes('audio') ? ['text', 'audio'] : ['text'];
}

// ---------------------------------------------------------------------------------------------
// Response pieces common to all dialects

export function renderStatusDetails(details: ResponseState['statusDetails']): Record<string, unknown> | null {
  if (!details) return null;
  return {
    type: details.type,
    ...(details.reason !== undefined ? { reason: details.reason } : {}),
    ...(details.error !== undefined ? { error: { ...details.error } } : {}),
  };
}

export function renderUsage(usage: ResponseUsage | null): Record<string, unknown> | null {
  if (!usage) return null;
  return {
    total_tokens: usage.totalTokens,
    input_tokens: usage.inputTokens,
    output_tokens: usage.outputTokens,
    input_token_details: {
      text_tokens: usage.input.text,
      audio_tokens: usage.input.audio,
      image_tokens: usage.input.image,
      cached_tokens: usage.input.cached,
    },
    output_token_details: { text_tokens: usage.output.text, audio_tokens: usage.output.audio },
  };
}
