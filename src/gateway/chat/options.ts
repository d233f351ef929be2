// The generation settings of a chat completions request: output modalities and speech, sampling,
// thinking budget, tools, stop sequences, streaming. Everything the runtime cannot do is refused
// here with a 400 naming the field, before any media is decoded or any session opened.
import { resolveThinking, type ThinkingSettings } from '../../fusion/budget.js';
import { FusionError } from '../../fusion/errors.js';
import type { ToolDefinition } from '../../fusion/template.js';
import type { RuntimeCapabilities } from '../../runtime/contract.js';
import type { SamplingParams } from '../../runtime/sampling.js';
import { invalidRequest, toChatError } from './errors.js';
import type { ChatCompletionBody } from './schema.js';

/** `openai`: /v1/chat/completions. `dashscope`: /compatible-mode/v1/... (stream only, `wav` = raw PCM16). */
export type ChatDialect = 'openai' | 'dashscope';

export type SpeechFormat = 'wav' | 'pcm16';

export interface ChatOptions {
  model: string;
  stream: boolean;
  includeUsage: boolean;
  /** Requested completion budget; the route caps it by the context left. */
  maxTokens: number | undefined;
  sampling: SamplingParams;
  thinking: ThinkingSettings;
  stop: string[];
  /** Speak the reply; `format` of non-streamed audio (streams are always PCM16). */
  speech: { voice: string | undefined; format: SpeechFormat } | undefined;
  /** Tools rendered into the prompt (none when `tool_choice` is "none"). */
  tools: ToolDefinition[] | undefined;
}

const OPENAI_AUDIO_FORMATS = ['wav', 'aac', 'mp3', 'flac', 'opus', 'pcm16'];

function resolveSpeech(body: ChatCompletionBody, dialect: ChatDialect, stream: boolean, caps: RuntimeCapabilities): ChatOptions['speech'] {
  const modalities = body.modalities ?? ['text'];
  if (!modalities.includes('audio')) return undefined;
  // DashScope defaults the audio settings; OpenAI requires them with audio output.
  const audio = body.audio ?? (dialect === 'dashscope' ? { voice: caps.voices[0] ?? '', format: 'wav' } : undefined);
  if (!audio) throw invalidRequest('missing_required_parameter', "Missing required parameter: 'audio'. It is required when 'modalities' includes 'audio'.", 'audio');
  const format = audio.format;
  if (dialect === 'openai' && stream && format !== 'pcm16') {
    throw invalidRequest('unsupported_value', `'audio.format' does not support '${format}' when stream=true. Supported values are: 'pcm16'.`, 'audio.format');
  }
  if (format !== 'wav' && format !== 'pcm16') {
    const known = OPENAI_AUDIO_FORMATS.includes(format);
    throw invalidRequest(
      known ? 'unsupported_value' : 'invalid_value',
      `'audio.format' does not support '${format}' on this gateway. Supported values are: 'wav', 'pcm16'.`,
      'audio.format',
    );
  }
  // Shape errors first (as OpenAI orders them), then what the loaded model can do.
  if (!caps.speechOut) {
    throw invalidRequest('modality_unsupported', "The loaded model cannot speak: 'modalities' may only contain 'text'.", 'modalities');
  }
  if (audio.voice && caps.voices.length > 0 && !caps.voices.includes(audio.voice)) {
    throw invalidRequest('invalid_value', `'audio.voice' '${audio.voice}' is not a voice of the loaded model. Supported values are: ${caps.voices.map((v) => `'${v}'`).join(', ')}.`, 'audio.voice');
  }
  return { voice: audio.voice || undefined, format };
}

function resolveThinkingOf(body: ChatCompletionBody, speaking: boolean): ThinkingSettings {
  const explicit = body.thinking
    ? { enabled: body.thinking.type === 'enabled', ...(body.thinking.budget_tokens !== undefined ? { budgetTokens: body.thinking.budget_tokens } : {}) }
    : typeof body.enable_thinking === 'boolean'
      ? { enabled: body.enable_thinking }
      : undefined;
  const effort = body.reasoning_effort === 'none' ? 'minimal' : (body.reasoning_effort ?? undefined);
  try {
    return resolveThinking({
      task: speaking ? 'voice' : 'text',
      ...(effort ? { reasoningEffort: effort } : {}),
      ...(explicit ? { thinking: explicit } : {}),
    });
  } catch (err) {
    if (err instanceof FusionError) throw toChatError(err, err.param === 'reasoning.effort' ? 'reasoning_effort' : 'thinking.budget_tokens');
    throw err;
  }
}

function refuseUnsupported(body: ChatCompletionBody): void {
  if (body.n != null && body.n !== 1) throw invalidRequest('unsupported_value', `'n' must be 1 on this gateway (got ${body.n}).`, 'n');
  if (body.logprobs) throw invalidRequest('unsupported_parameter', "'logprobs' is not supported on this gateway.", 'logprobs');
  if (body.top_logprobs) throw invalidRequest('unsupported_parameter', "'top_logprobs' is not supported on this gateway.", 'top_logprobs');
  for (const key of ['presence_penalty', 'frequency_penalty'] as const) {
    if (body[key]) throw invalidRequest('unsupported_parameter', `'${key}' is not supported on this gateway (use 'repetition_penalty').`, key);
  }
  const format = body.response_format?.type;
  if (format && format !== 'text') throw invalidRequest('unsupported_value', `'response_format.type' '${format}' is not supported on this gateway. Supported values are: 'text'.`, 'response_format.type');
  const choice = body.tool_choice;
  if (choice === 'required' || (typeof choice === 'object' && choice !== null)) {
    throw invalidRequest('unsupported_value', "'tool_choice' can be 'auto' or 'none' on this gateway: the runtime cannot force a function call.", 'tool_choice');
  }
}

/** Resolves and checks a request's settings (not its messages). */
export function resolveChatOptions(body: ChatCompletionBody, dialect: ChatDialect, caps: RuntimeCapabilities): ChatOptions {
  refuseUnsupported(body);
  const stream = body.stream === true;
  if (dialect === 'dashscope' && !stream) {
    throw invalidRequest('invalid_value', "This endpoint only supports stream mode: set 'stream' to true.", 'stream');
  }
  const speech = resolveSpeech(body, dialect, stream, caps);
  const sampling: SamplingParams = {
    ...(body.temperature != null ? { temperature: body.temperature } : {}),
    ...(body.top_p != null ? { topP: body.top_p } : {}),
    ...(body.top_k != null ? { topK: body.top_k } : {}),
    ...(body.repetition_penalty != null ? { repetitionPenalty: body.repetition_penalty } : {}),
    ...(body.seed != null ? { seed: body.seed } : {}),
  };
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  const tools = body.tools && body.tools.length > 0 && body.tool_choice !== 'none' ? (body.tools as ToolDefinition[]) : undefined;
  return {
    model: body.model,
    stream,
    includeUsage: stream && body.stream_options?.include_usage === true,
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? undefined,
    sampling,
    thinking: resolveThinkingOf(body, speech !== undefined),
    stop,
    speech,
    tools,
  };
}
