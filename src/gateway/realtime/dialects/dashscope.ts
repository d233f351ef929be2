// Qwen-Omni realtime (DashScope) dialect (realtime-protocol.md §2.3, §4.3, §5.3): beta event names
// plus a flat session with DashScope sampling, `max_tokens`, `smooth_output`, 16 kHz PCM input,
// 24 kHz PCM output, `input_image_buffer.append` frames and `session.finish` -> `session.finished`.
// Errors carry no inner `event_id`; items are announced once as `conversation.item.created`
// (the beta rule, see beta.ts).
import type {
  Dialect,
  ResponseOverrides,
  SamplingConfig,
  ServerEvent,
  ServerEventType,
  SessionConfig,
  SessionPatch,
} from '../model.js';
import { Fields } from './common.js';
import { BETA_EVENT_RENAMES, renderBetaResponse } from './beta.js';
import { parseClientEvent, parseSharedResponseFields, type ClientGrammar } from './events.js';
import { parseDashscopeFlatFormat, parseDashscopeFormatObject, PCM16_16K, PCM16_24K } from './formats.js';
import { renderServerEvent, type RenderStyle } from './render.js';
import {
  checkReadOnlySessionFields,
  DASHSCOPE_TURN_DETECTION,
  parseMaxTokens,
  parseTextAudioModalities,
  parseThinking,
  parseToolChoice,
  parseTools,
  parseTranscription,
  parseTurnDetection,
  parseVoice,
  renderTextAudioModalities,
  renderThinking,
  renderToolChoice,
  renderTools,
  renderTranscription,
  renderTurnDetection,
} from './session_fields.js';

export const DASHSCOPE_CLIENT_EVENT_TYPES = [
  'session.update',
  'input_audio_buffer.append',
  'input_image_buffer.append',
  'input_audio_buffer.commit',
  'input_audio_buffer.clear',
  'response.create',
  'response.cancel',
  'conversation.item.create',
  'session.finish',
] as const;

/** DashScope's documented wording (§5.3). */
export const DASHSCOPE_MODALITY_COMBINATIONS = "['text'] and ['audio', 'text']";
/** qwen3-omni-flash output limit (§9). */
const DASHSCOPE_MAX_TOKENS = 16384;
/** Echoed without effect: search (qwen3.5) and the client's own spelling of the formats. */
const DASHSCOPE_PASSTHROUGH_KEYS = ['enable_search', 'search_options', 'input_audio_format', 'output_audio_format'];
const SAMPLING_KEYS = ['temperature', 'top_p', 'top_k', 'repetition_penalty', 'presence_penalty', 'seed'];
const DASHSCOPE_SESSION_KEYS = [
  'object',
  'id',
  'model',
  'modalities',
  'instructions',
  'voice',
  'input_audio_format',
  'output_audio_format',
  'audio',
  'input_audio_transcription',
  'turn_detection',
  'tools',
  'tool_choice',
  ...SAMPLING_KEYS,
  'max_tokens',
  'smooth_output',
  'enable_search',
  'search_options',
  'thinking',
];

/** DashScope sampling ranges (§2.3); only the fields present. */
function parseSampling(fields: Fields): SamplingConfig {
  const sampling: SamplingConfig = {};
  const set = <K extends keyof SamplingConfig>(key: K, value: number | undefined): void => {
    if (value !== undefined) sampling[key] = value;
  };
  set('temperature', fields.number('temperature', { min: 0, below: 2 }));
  set('topP', fields.number('top_p', { above: 0, max: 1 }));
  set('topK', fields.number('top_k', { integer: true, min: 0 }));
  set('repetitionPenalty', fields.number('repetition_penalty', { above: 0 }));
  set('presencePenalty', fields.number('presence_penalty', { min: -2, max: 2 }));
  set('seed', fields.number('seed', { integer: true, min: 0, max: 2 ** 31 - 1 }));
  return sampling;
}

function parseDashscopeSession(value: unknown, config: SessionConfig): SessionPatch {
  const session = Fields.of(value, 'session', DASHSCOPE_SESSION_KEYS);
  checkReadOnlySessionFields(session, config);
  const patch: SessionPatch = {};
  const modalities = parseTextAudioModalities(session, 'modalities', DASHSCOPE_MODALITY_COMBINATIONS);
  if (modalities) patch.outputModalities = modalities;
  const instructions = session.string('instructions');
  if (instructions !== undefined) patch.instructions = instructions;
  const voice = parseVoice(session, 'voice', false);
  if (voice !== undefined) patch.voice = voice;

  // Flat names (older and 2026 docs) or the newer SDK's audio.{input,output}.format objects.
  const audio = session.object('audio', ['input', 'output']);
  const audioInput = audio?.object('input', ['format']);
  const audioOutput = audio?.object('output', ['format']);
  const nestedInput = audioInput ? parseDashscopeFormatObject(audioInput, 'format', 'input') : undefined;
  const nestedOutput = audioOutput ? parseDashscopeFormatObject(audioOutput, 'format', 'output') : undefined;
  const inputFormat = parseDashscopeFlatFormat(session, 'input_audio_format', 'input') ?? nestedInput;
  const outputFormat = parseDashscopeFlatFormat(session, 'output_audio_format', 'output') ?? nestedOutput;
  if (inputFormat) patch.inputFormat = inputFormat;
  if (outputFormat) patch.outputFormat = outputFormat;

  const transcription = parseTranscription(session, 'input_audio_transcription');
  if (transcription !== undefined) patch.transcription = transcription;
  const turnDetection = parseTurnDetection(session, 'turn_detection', config.turnDetection, DASHSCOPE_TURN_DETECTION);
  if (turnDetection !== undefined) patch.turnDetection = turnDetection;
  const tools = parseTools(session, 'tools');
  if (tools) patch.tools = tools;
  const toolChoice = parseToolChoice(session, 'tool_choice');
  if (toolChoice !== undefined) patch.toolChoice = toolChoice;
  const sampling = parseSampling(session);
  if (Object.keys(sampling).length > 0) patch.sampling = { ...config.sampling, ...sampling };
  const maxTokens = parseMaxTokens(session, 'max_tokens', DASHSCOPE_MAX_TOKENS);
  if (maxTokens !== undefined) patch.maxOutputTokens = maxTokens;
  if (session.has('smooth_output')) patch.smoothOutput = session.raw('smooth_output') === null ? null : session.boolean('smooth_output')!;
  session.boolean('enable_search');
  session.object('search_options', ['forced_search', 'search_strategy', 'enable_source']);
  const thinking = parseThinking(session, 'thinking');
  if (thinking !== undefined) patch.thinking = thinking;
  const passthrough = session.pick(DASHSCOPE_PASSTHROUGH_KEYS);
  if (Object.keys(passthrough).length > 0) patch.passthrough = { ...config.passthrough, ...passthrough };
  return patch;
}

const DASHSCOPE_RESPONSE_KEYS = [
  'instructions',
  'modalities',
  'voice',
  'output_audio_format',
  'tools',
  'tool_choice',
  ...SAMPLING_KEYS,
  'max_tokens',
  'conversation',
  'input',
  'metadata',
  'thinking',
];

function parseDashscopeResponse(response: Fields, config: SessionConfig): ResponseOverrides {
  const out: ResponseOverrides = {};
  const instructions = response.string('instructions');
  if (instructions !== undefined) out.instructions = instructions;
  const modalities = parseTextAudioModalities(response, 'modalities', DASHSCOPE_MODALITY_COMBINATIONS);
  if (modalities) out.outputModalities = modalities;
  const voice = parseVoice(response, 'voice', false);
  if (voice !== undefined) out.voice = voice;
  const outputFormat = parseDashscopeFlatFormat(response, 'output_audio_format', 'output');
  if (outputFormat) out.outputFormat = outputFormat;
  const tools = parseTools(response, 'tools');
  if (tools) out.tools = tools;
  const toolChoice = parseToolChoice(response, 'tool_choice');
  if (toolChoice !== undefined) out.toolChoice = toolChoice;
  const sampling = parseSampling(response);
  if (Object.keys(sampling).length > 0) out.sampling = sampling;
  const maxTokens = parseMaxTokens(response, 'max_tokens', DASHSCOPE_MAX_TOKENS);
  if (maxTokens !== undefined) out.maxOutputTokens = maxTokens;
  return parseSharedResponseFields(response, 'beta', config, 'strip', out);
}

const dashscopeGrammar: ClientGrammar = {
  name: 'dashscope',
  clientEventTypes: DASHSCOPE_CLIENT_EVENT_TYPES,
  itemStyle: 'beta',
  // DashScope clients commonly read WAV files in chunks; the first chunk carries the header.
  wav: 'strip',
  parseSession: parseDashscopeSession,
  parseResponse: parseDashscopeResponse,
  responseKeys: DASHSCOPE_RESPONSE_KEYS,
  special: {
    'session.finish': (event, eventId) => {
      Fields.of(event.value, '', ['type', 'event_id']);
      return { type: 'session.close', eventId };
    },
  },
};

function stringOr(value: unknown, fallback: string): string {
  return typeof value === 'string' ? value : fallback;
}

export function renderDashscopeSession(config: SessionConfig): Record<string, unknown> {
  const { input_audio_format: inputName, output_audio_format: outputName, ...echoed } = config.passthrough;
  const sampling = config.sampling;
  const optional = (key: string, value: unknown): Record<string, unknown> => (value === undefined ? {} : { [key]: value });
  return {
    id: config.id,
    object: 'realtime.session',
    model: config.model,
    modalities: renderTextAudioModalities(config.outputModalities),
    instructions: config.instructions,
    voice: config.voice,
    input_audio_format: stringOr(inputName, 'pcm16'),
    output_audio_format: stringOr(outputName, 'pcm24'),
    input_audio_transcription: renderTranscription(config.transcription),
    turn_detection: renderTurnDetection(config.turnDetection, 'when_set'),
    tools: renderTools(config.tools),
    tool_choice: renderToolChoice(config.toolChoice),
    temperature: sampling.temperature ?? 0.8,
    ...optional('top_p', sampling.topP),
    ...optional('top_k', sampling.topK),
    ...optional('repetition_penalty', sampling.repetitionPenalty),
    ...optional('presence_penalty', sampling.presencePenalty),
    ...optional('seed', sampling.seed),
    ...optional('max_tokens', config.maxOutputTokens ?? undefined),
    ...optional('smooth_output', config.smoothOutput),
    ...echoed,
    ...renderThinking(config.thinking),
  };
}

const dashscopeRenderStyle: RenderStyle = {
  itemStyle: 'beta',
  session: renderDashscopeSession,
  response: (response) => renderBetaResponse(response, 'pcm24'),
  renames: BETA_EVENT_RENAMES,
  // One `created` per item (beta rule); no WebRTC output buffer on DashScope.
  omitted: new Set<ServerEventType>([
    'conversation.item.done',
    'output_audio_buffer.started',
    'output_audio_buffer.stopped',
    'output_audio_buffer.cleared',
  ]),
  errorEventId: false,
};

/** Documented DashScope defaults (§5.3): both modalities, 16 kHz in, 24 kHz out, VAD 0.5/300/800. */
export function dashscopeInitialConfig(base: { id: string; model: string; expiresAt: number; defaultVoice: string }): SessionConfig {
  return {
    id: base.id,
    model: base.model,
    expiresAt: base.expiresAt,
    type: 'realtime',
    instructions: '',
    outputModalities: ['audio'],
    inputFormat: PCM16_16K,
    outputFormat: PCM16_24K,
    voice: base.defaultVoice,
    speed: 1,
    turnDetection: { ...DASHSCOPE_TURN_DETECTION.defaults },
    transcription: null,
    noiseReduction: null,
    tools: [],
    toolChoice: 'auto',
    maxOutputTokens: null,
    sampling: { temperature: 0.8 },
    thinking: null,
    smoothOutput: null,
    passthrough: {},
  };
}

export const dashscopeDialect: Dialect = {
  name: 'dashscope',
  clientEventTypes: DASHSCOPE_CLIENT_EVENT_TYPES,
  initialConfig: dashscopeInitialConfig,
  parse: (event: unknown, config: SessionConfig) => parseClientEvent(event, config, dashscopeGrammar),
  render: (event: ServerEvent) => renderServerEvent(event, dashscopeRenderStyle),
};
