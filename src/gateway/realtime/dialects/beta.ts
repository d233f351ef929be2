// OpenAI Realtime beta dialect (realtime-protocol.md §2.2, §4.2, §5.2): a flat session with
// `modalities`, string formats and `temperature`; `conversation.item.created`;
// `response.text.*`, `response.audio.*`, `response.audio_transcript.*`; content types text/audio.
//
// Item announcement rule: the session emits exactly one `conversation.item.added` per item
// (user items typed or committed from audio: added then done; assistant items: added in
// progress). Beta renders `added` as its single `conversation.item.created` and renders
// `conversation.item.done` as nothing, so every item, including a user item committed from the
// audio buffer, is announced exactly once; its final state reaches beta clients through
// `response.output_item.done` / `response.done` (assistant) or is already final (user).
import { gaInitialConfig } from './ga.js';
import type {
  Dialect,
  ResponseOverrides,
  ResponseState,
  ServerEvent,
  ServerEventType,
  SessionConfig,
  SessionPatch,
} from '../model.js';
import { errors, Fields } from './common.js';
import { parseClientEvent, parseSharedResponseFields, type ClientGrammar } from './events.js';
import { parseBetaFormat, renderBetaFormat } from './formats.js';
import { renderItem } from './items.js';
import { renderServerEvent, type RenderStyle } from './render.js';
import {
  checkReadOnlySessionFields,
  OPENAI_TURN_DETECTION,
  parseMaxTokens,
  parseNoiseReduction,
  parseSpeed,
  parseTextAudioModalities,
  parseThinking,
  parseToolChoice,
  parseTools,
  parseTranscription,
  parseTurnDetection,
  parseVoice,
  renderMaxTokens,
  renderStatusDetails,
  renderTextAudioModalities,
  renderThinking,
  renderToolChoice,
  renderTools,
  renderTranscription,
  renderTurnDetection,
  renderUsage,
} from './session_fields.js';

export const BETA_CLIENT_EVENT_TYPES = [
  'session.update',
  'input_audio_buffer.append',
  'input_audio_buffer.commit',
  'input_audio_buffer.clear',
  'output_audio_buffer.clear',
  'conversation.item.create',
  'conversation.item.retrieve',
  'conversation.item.truncate',
  'conversation.item.delete',
  'response.create',
  'response.cancel',
  'transcription_session.update',
  // gateway extension: video frames (§3)
  'input_image_buffer.append',
] as const;

/** GA event names -> beta names (§2.3, §5.2); shared with DashScope. */
export const BETA_EVENT_RENAMES: Partial<Record<ServerEventType, string>> = {
  'conversation.item.added': 'conversation.item.created',
  'response.output_text.delta': 'response.text.delta',
  'response.output_text.done': 'response.text.done',
  'response.output_audio.delta': 'response.audio.delta',
  'response.output_audio.done': 'response.audio.done',
  'response.output_audio_transcript.delta': 'response.audio_transcript.delta',
  'response.output_audio_transcript.done': 'response.audio_transcript.done',
};

export const BETA_MODALITY_COMBINATIONS = "['text'] and ['text', 'audio']";
const BETA_TEMPERATURE = { min: 0.6, max: 1.2 };
const BETA_PASSTHROUGH_KEYS = ['tracing', 'include', 'client_secret'];
const BETA_SESSION_KEYS = [
  'object',
  'id',
  'model',
  'expires_at',
  'modalities',
  'instructions',
  'voice',
  'speed',
  'input_audio_format',
  'output_audio_format',
  'input_audio_transcription',
  'input_audio_noise_reduction',
  'turn_detection',
  'tools',
  'tool_choice',
  'temperature',
  'max_response_output_tokens',
  'thinking',
  ...BETA_PASSTHROUGH_KEYS,
];

function parseBetaSession(value: unknown, config: SessionConfig): SessionPatch {
  const session = Fields.of(value, 'session', BETA_SESSION_KEYS);
  checkReadOnlySessionFields(session, config);
  const patch: SessionPatch = {};
  const modalities = parseTextAudioModalities(session, 'modalities', BETA_MODALITY_COMBINATIONS);
  if (modalities) patch.outputModalities = modalities;
  const instructions = session.string('instructions');
  if (instructions !== undefined) patch.instructions = instructions;
  const voice = parseVoice(session, 'voice', false);
  if (voice !== undefined) patch.voice = voice;
  const speed = parseSpeed(session, 'speed');
  if (speed !== undefined) patch.speed = speed;
  const inputFormat = parseBetaFormat(session, 'input_audio_format');
  if (inputFormat) patch.inputFormat = inputFormat;
  const outputFormat = parseBetaFormat(session, 'output_audio_format');
  if (outputFormat) patch.outputFormat = outputFormat;
  const transcription = parseTranscription(session, 'input_audio_transcription');
  if (transcription !== undefined) patch.transcription = transcription;
  const noiseReduction = parseNoiseReduction(session, 'input_audio_noise_reduction');
  if (noiseReduction !== undefined) patch.noiseReduction = noiseReduction;
  const turnDetection = parseTurnDetection(session, 'turn_detection', config.turnDetection, OPENAI_TURN_DETECTION);
  if (turnDetection !== undefined) patch.turnDetection = turnDetection;
  const tools = parseTools(session, 'tools');
  if (tools) patch.tools = tools;
  const toolChoice = parseToolChoice(session, 'tool_choice');
  if (toolChoice !== undefined) patch.toolChoice = toolChoice;
  const temperature = session.number('temperature', BETA_TEMPERATURE);
  if (temperature !== undefined) patch.sampling = { ...config.sampling, temperature };
  const maxTokens = parseMaxTokens(session, 'max_response_output_tokens');
  if (maxTokens !== undefined) patch.maxOutputTokens = maxTokens;
  const thinking = parseThinking(session, 'thinking');
  if (thinking !== undefined) patch.thinking = thinking;
  const passthrough = session.pick(BETA_PASSTHROUGH_KEYS);
  if (Object.keys(passthrough).length > 0) patch.passthrough = { ...config.passthrough, ...passthrough };
  return patch;
}

const BETA_RESPONSE_KEYS = [
  'modalities',
  'instructions',
  'voice',
  'output_audio_format',
  'tools',
  'tool_choice',
  'temperature',
  'max_response_output_tokens',
  'conversation',
  'input',
  'metadata',
  'thinking',
];

function parseBetaResponse(response: Fields, config: SessionConfig): ResponseOverrides {
  const out: ResponseOverrides = {};
  const modalities = parseTextAudioModalities(response, 'modalities', BETA_MODALITY_COMBINATIONS);
  if (modalities) out.outputModalities = modalities;
  const instructions = response.string('instructions');
  if (instructions !== undefined) out.instructions = instructions;
  const voice = parseVoice(response, 'voice', false);
  if (voice !== undefined) out.voice = voice;
  const outputFormat = parseBetaFormat(response, 'output_audio_format');
  if (outputFormat) out.outputFormat = outputFormat;
  const tools = parseTools(response, 'tools');
  if (tools) out.tools = tools;
  const toolChoice = parseToolChoice(response, 'tool_choice');
  if (toolChoice !== undefined) out.toolChoice = toolChoice;
  const temperature = response.number('temperature', BETA_TEMPERATURE);
  if (temperature !== undefined) out.sampling = { temperature };
  const maxTokens = parseMaxTokens(response, 'max_response_output_tokens');
  if (maxTokens !== undefined) out.maxOutputTokens = maxTokens;
  return parseSharedResponseFields(response, 'beta', config, 'reject', out);
}

const betaGrammar: ClientGrammar = {
  name: 'beta',
  clientEventTypes: BETA_CLIENT_EVENT_TYPES,
  itemStyle: 'beta',
  wav: 'reject',
  parseSession: parseBetaSession,
  parseResponse: parseBetaResponse,
  responseKeys: BETA_RESPONSE_KEYS,
  special: {
    // Transcription-only sessions have their own object and `transcription_session.updated`
    // answer, which the session model does not have; say so instead of half-supporting it.
    'transcription_session.update': () => {
      throw errors.invalidValue(
        'type',
        "Invalid value: 'transcription_session.update'. Transcription sessions are not supported by this gateway; use session.update with input_audio_transcription on a realtime session.",
      );
    },
  },
};

export function renderBetaSession(config: SessionConfig): Record<string, unknown> {
  return {
    id: config.id,
    object: 'realtime.session',
    model: config.model,
    expires_at: config.expiresAt,
    modalities: renderTextAudioModalities(config.outputModalities),
    instructions: config.instructions,
    voice: config.voice,
    speed: config.speed,
    input_audio_format: renderBetaFormat(config.inputFormat),
    output_audio_format: renderBetaFormat(config.outputFormat),
    input_audio_transcription: renderTranscription(config.transcription),
    input_audio_noise_reduction: config.noiseReduction ? { ...config.noiseReduction } : null,
    turn_detection: renderTurnDetection(config.turnDetection, 'when_set'),
    tools: renderTools(config.tools),
    tool_choice: renderToolChoice(config.toolChoice),
    temperature: config.sampling.temperature ?? 0.8,
    max_response_output_tokens: renderMaxTokens(config.maxOutputTokens),
    ...config.passthrough,
    ...renderThinking(config.thinking),
  };
}

/** The beta response object (§5.2); DashScope uses it with its own format name. */
export function renderBetaResponse(response: ResponseState, formatName: string = renderBetaFormat(response.outputFormat)): Record<string, unknown> {
  return {
    id: response.id,
    object: 'realtime.response',
    status: response.status,
    status_details: renderStatusDetails(response.statusDetails),
    output: response.output.map((item) => renderItem(item, 'beta')),
    conversation_id: response.conversationId,
    modalities: renderTextAudioModalities(response.outputModalities),
    voice: response.voice,
    output_audio_format: formatName,
    ...(response.sampling.temperature !== undefined ? { temperature: response.sampling.temperature } : {}),
    max_output_tokens: renderMaxTokens(response.maxOutputTokens),
    usage: renderUsage(response.usage),
    metadata: response.metadata,
  };
}

const betaRenderStyle: RenderStyle = {
  itemStyle: 'beta',
  session: renderBetaSession,
  response: (response) => renderBetaResponse(response),
  renames: BETA_EVENT_RENAMES,
  // One `created` per item (see the rule at the top); no DashScope session.finished.
  omitted: new Set<ServerEventType>(['conversation.item.done', 'session.finished']),
  errorEventId: true,
};

/** The GA defaults, with beta's own: a sampling temperature of 0.8 and no GA-only passthrough fields. */
export function betaInitialConfig(base: { id: string; model: string; expiresAt: number; defaultVoice: string }): SessionConfig {
  return { ...gaInitialConfig(base), sampling: { temperature: 0.8 }, passthrough: {} };
}

export const betaDialect: Dialect = {
  name: 'beta',
  clientEventTypes: BETA_CLIENT_EVENT_TYPES,
  initialConfig: betaInitialConfig,
  parse: (event: unknown, config: SessionConfig) => parseClientEvent(event, config, betaGrammar),
  render: (event: ServerEvent) => renderServerEvent(event, betaRenderStyle),
};
