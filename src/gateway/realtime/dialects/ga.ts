// OpenAI Realtime GA dialect (realtime-protocol.md §2.1, §4.1, §5.1): `session.type` required on
// every update, audio settings under `session.audio.{input,output}`, format objects,
// `output_modalities`, `max_output_tokens`, `conversation.item.added/done`, `response.output_*`.
import type { Dialect, ResponseOverrides, ResponseState, ServerEvent, SessionConfig, SessionPatch } from '../model.js';
import { errors, Fields, isJsonObject } from './common.js';
import { parseClientEvent, parseSharedResponseFields, type ClientGrammar } from './events.js';
import { parseGaFormat, PCM16_24K, renderGaFormat } from './formats.js';
import { renderItem } from './items.js';
import { renderServerEvent, type RenderStyle } from './render.js';
import {
  checkReadOnlySessionFields,
  OPENAI_TURN_DETECTION,
  parseMaxTokens,
  parseNoiseReduction,
  parseOutputModalities,
  parseSpeed,
  parseThinking,
  parseToolChoice,
  parseTools,
  parseTranscription,
  parseTurnDetection,
  parseVoice,
  renderMaxTokens,
  renderStatusDetails,
  renderThinking,
  renderToolChoice,
  renderTools,
  renderTranscription,
  renderTurnDetection,
  renderUsage,
} from './session_fields.js';

export const GA_CLIENT_EVENT_TYPES = [
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
  // gateway extensions: video frames (§3) and a graceful close (§4.1)
  'input_image_buffer.append',
  'session.close',
] as const;

/** Accepted and echoed without effect (§2.1). */
const GA_PASSTHROUGH_KEYS = ['prompt', 'tracing', 'truncation', 'include', 'reasoning', 'parallel_tool_calls'];
const GA_SESSION_KEYS = [
  'type',
  'object',
  'id',
  'model',
  'expires_at',
  'instructions',
  'output_modalities',
  'audio',
  'tools',
  'tool_choice',
  'max_output_tokens',
  'thinking',
  ...GA_PASSTHROUGH_KEYS,
];

function parseGaSession(value: unknown, config: SessionConfig): SessionPatch {
  // The discriminator is checked first: live OpenAI reports it before anything else.
  if (isJsonObject(value) && value.type === undefined) throw errors.missingRequired('session.type');
  const session = Fields.of(value, 'session', GA_SESSION_KEYS);
  const type = session.requiredOneOf('type', ['realtime', 'transcription'] as const);
  if (type !== config.type) {
    throw errors.invalidValue(session.param('type'), `Cannot change the session type from '${config.type}' to '${type}'.`);
  }
  checkReadOnlySessionFields(session, config);

  const patch: SessionPatch = {};
  const instructions = session.string('instructions');
  if (instructions !== undefined) patch.instructions = instructions;
  const modalities = parseOutputModalities(session, 'output_modalities');
  if (modalities) patch.outputModalities = modalities;

  const audio = session.object('audio', ['input', 'output']);
  const input = audio?.object('input', ['format', 'noise_reduction', 'transcription', 'turn_detection']);
  if (input) {
    const format = parseGaFormat(input, 'format');
    if (format) patch.inputFormat = format;
    const noiseReduction = parseNoiseReduction(input, 'noise_reduction');
    if (noiseReduction !== undefined) patch.noiseReduction = noiseReduction;
    const transcription = parseTranscription(input, 'transcription');
    if (transcription !== undefined) patch.transcription = transcription;
    const turnDetection = parseTurnDetection(input, 'turn_detection', config.turnDetection, OPENAI_TURN_DETECTION);
    if (turnDetection !== undefined) patch.turnDetection = turnDetection;
  }
  const output = audio?.object('output', ['format', 'voice', 'speed']);
  if (output) {
    const format = parseGaFormat(output, 'format');
    if (format) patch.outputFormat = format;
    const voice = parseVoice(output, 'voice', true);
    if (voice !== undefined) patch.voice = voice;
    const speed = parseSpeed(output, 'speed');
    if (speed !== undefined) patch.speed = speed;
  }

  const tools = parseTools(session, 'tools');
  if (tools) patch.tools = tools;
  const toolChoice = parseToolChoice(session, 'tool_choice');
  if (toolChoice !== undefined) patch.toolChoice = toolChoice;
  const maxOutputTokens = parseMaxTokens(session, 'max_output_tokens');
  if (maxOutputTokens !== undefined) patch.maxOutputTokens = maxOutputTokens;
  const thinking = parseThinking(session, 'thinking');
  if (thinking !== undefined) patch.thinking = thinking;
  const passthrough = session.pick(GA_PASSTHROUGH_KEYS);
  if (Object.keys(passthrough).length > 0) patch.passthrough = { ...config.passthrough, ...passthrough };
  return patch;
}

const GA_RESPONSE_KEYS = [
  'output_modalities',
  'instructions',
  'audio',
  'tools',
  'tool_choice',
  'max_output_tokens',
  'conversation',
  'input',
  'metadata',
  'thinking',
  // accepted, no effect
  'prompt',
  'parallel_tool_calls',
  'reasoning',
];

function parseGaResponse(response: Fields, config: SessionConfig): ResponseOverrides {
  const out: ResponseOverrides = {};
  const modalities = parseOutputModalities(response, 'output_modalities');
  if (modalities) out.outputModalities = modalities;
  const instructions = response.string('instructions');
  if (instructions !== undefined) out.instructions = instructions;
  const output = response.object('audio', ['output'])?.object('output', ['format', 'voice']);
  if (output) {
    const format = parseGaFormat(output, 'format');
    if (format) out.outputFormat = format;
    const voice = parseVoice(output, 'voice', true);
    if (voice !== undefined) out.voice = voice;
  }
  const tools = parseTools(response, 'tools');
  if (tools) out.tools = tools;
  const toolChoice = parseToolChoice(response, 'tool_choice');
  if (toolChoice !== undefined) out.toolChoice = toolChoice;
  const maxOutputTokens = parseMaxTokens(response, 'max_output_tokens');
  if (maxOutputTokens !== undefined) out.maxOutputTokens = maxOutputTokens;
  return parseSharedResponseFields(response, 'ga', config, 'reject', out);
}

const gaGrammar: ClientGrammar = {
  name: 'ga',
  clientEventTypes: GA_CLIENT_EVENT_TYPES,
  itemStyle: 'ga',
  wav: 'reject',
  parseSession: parseGaSession,
  parseResponse: parseGaResponse,
  responseKeys: GA_RESPONSE_KEYS,
};

export function renderGaSession(config: SessionConfig): Record<string, unknown> {
  return {
    type: config.type,
    object: config.type === 'transcription' ? 'realtime.transcription_session' : 'realtime.session',
    id: config.id,
    model: config.model,
    output_modalities: [...config.outputModalities],
    audio: {
      input: {
        format: renderGaFormat(config.inputFormat),
        transcription: renderTranscription(config.transcription),
        noise_reduction: config.noiseReduction ? { ...config.noiseReduction } : null,
        turn_detection: renderTurnDetection(config.turnDetection, 'always'),
      },
      output: { format: renderGaFormat(config.outputFormat), voice: config.voice, speed: config.speed },
    },
    instructions: config.instructions,
    tools: renderTools(config.tools),
    tool_choice: renderToolChoice(config.toolChoice),
    max_output_tokens: renderMaxTokens(config.maxOutputTokens),
    ...config.passthrough,
    ...renderThinking(config.thinking),
    expires_at: config.expiresAt,
  };
}

export function renderGaResponse(response: ResponseState): Record<string, unknown> {
  return {
    id: response.id,
    object: 'realtime.response',
    status: response.status,
    status_details: renderStatusDetails(response.statusDetails),
    output: response.output.map((item) => renderItem(item, 'ga')),
    conversation_id: response.conversationId,
    output_modalities: [...response.outputModalities],
    max_output_tokens: renderMaxTokens(response.maxOutputTokens),
    audio: { output: { format: renderGaFormat(response.outputFormat), voice: response.voice } },
    usage: renderUsage(response.usage),
    metadata: response.metadata,
  };
}

const gaRenderStyle: RenderStyle = {
  itemStyle: 'ga',
  session: renderGaSession,
  response: renderGaResponse,
  renames: {},
  // `session.finished` is DashScope's answer to session.finish; GA just closes.
  omitted: new Set(['session.finished']),
  errorEventId: true,
};

/** Defaults observed on live GA sessions (§2.1), voice from the gateway's configuration. */
export function gaInitialConfig(base: { id: string; model: string; expiresAt: number; defaultVoice: string }): SessionConfig {
  return {
    id: base.id,
    model: base.model,
    expiresAt: base.expiresAt,
    type: 'realtime',
    instructions: '',
    outputModalities: ['audio'],
    inputFormat: PCM16_24K,
    outputFormat: PCM16_24K,
    voice: base.defaultVoice,
    speed: 1,
    turnDetection: { ...OPENAI_TURN_DETECTION.defaults },
    transcription: null,
    noiseReduction: null,
    tools: [],
    toolChoice: 'auto',
    maxOutputTokens: null,
    sampling: {},
    thinking: null,
    passthrough: { truncation: 'auto', include: null },
  };
}

export const gaDialect: Dialect = {
  name: 'ga',
  clientEventTypes: GA_CLIENT_EVENT_TYPES,
  initialConfig: gaInitialConfig,
  parse: (event: unknown, config: SessionConfig) => parseClientEvent(event, config, gaGrammar),
  render: (event: ServerEvent) => renderServerEvent(event, gaRenderStyle),
};
