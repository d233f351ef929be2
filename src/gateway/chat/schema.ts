// TypeBox schemas of a chat completions request. The route validates the envelope (top-level
// fields, messages as role + content); each message and content part is then checked against
// its own schema by role and `type` (validation.ts), which gives precise errors ("messages[1].
// content[0].image_url.url is required") where one big union would only say "no branch matched".
// Unknown top-level fields are accepted and ignored (SDKs send `user`, `metadata`, `store`, ...).
import { Type, type Static } from 'typebox';

const nullable = <T extends Parameters<typeof Type.Optional>[0]>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

export const ContentPartEnvelope = Type.Object({ type: Type.String() });

export const MessageEnvelope = Type.Object({
  role: Type.Enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: Type.Optional(Type.Union([Type.String(), Type.Null(), Type.Array(ContentPartEnvelope)])),
});

export const FunctionTool = Type.Object({
  type: Type.Literal('function'),
  function: Type.Object({
    name: Type.String({ pattern: '^[A-Za-z0-9_.:-]{1,64}$' }),
    description: Type.Optional(Type.String()),
    parameters: Type.Optional(Type.Object({})),
    strict: nullable(Type.Boolean()),
  }),
});

export const ToolChoice = Type.Union([
  Type.Enum(['none', 'auto', 'required']),
  Type.Object({ type: Type.Literal('function'), function: Type.Object({ name: Type.String() }) }),
]);

export const ChatCompletionBody = Type.Object({
  model: Type.String({ minLength: 1, maxLength: 256 }),
  messages: Type.Array(MessageEnvelope, { minItems: 1 }),
  stream: nullable(Type.Boolean()),
  stream_options: nullable(Type.Object({ include_usage: Type.Optional(Type.Boolean()) })),
  max_tokens: nullable(Type.Integer({ minimum: 1 })),
  max_completion_tokens: nullable(Type.Integer({ minimum: 1 })),
  temperature: nullable(Type.Number({ minimum: 0, maximum: 2 })),
  top_p: nullable(Type.Number({ exclusiveMinimum: 0, maximum: 1 })),
  /** Extensions (vLLM / DashScope): top-k and repetition penalty. */
  top_k: nullable(Type.Integer({ minimum: 0 })),
  repetition_penalty: nullable(Type.Number({ exclusiveMinimum: 0, maximum: 100 })),
  seed: nullable(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
  n: nullable(Type.Integer({ minimum: 1 })),
  stop: nullable(Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { maxItems: 4 })])),
  presence_penalty: nullable(Type.Number({ minimum: -2, maximum: 2 })),
  frequency_penalty: nullable(Type.Number({ minimum: -2, maximum: 2 })),
  logprobs: nullable(Type.Boolean()),
  top_logprobs: nullable(Type.Integer({ minimum: 0 })),
  response_format: nullable(Type.Object({ type: Type.String() })),
  modalities: nullable(Type.Array(Type.Enum(['text', 'audio']), { minItems: 1, maxItems: 2 })),
  audio: nullable(Type.Object({ voice: Type.String({ minLength: 1 }), format: Type.String({ minLength: 1 }) })),
  tools: nullable(Type.Array(FunctionTool, { maxItems: 128 })),
  tool_choice: nullable(ToolChoice),
  parallel_tool_calls: nullable(Type.Boolean()),
  reasoning_effort: nullable(Type.Enum(['none', 'minimal', 'low', 'medium', 'high'])),
  /** Extension: explicit thinking switch and budget (Anthropic-style). */
  thinking: nullable(Type.Object({ type: Type.Enum(['enabled', 'disabled']), budget_tokens: Type.Optional(Type.Integer({ minimum: 1 })) })),
  /** DashScope's thinking switch. */
  enable_thinking: nullable(Type.Boolean()),
});
export type ChatCompletionBody = Static<typeof ChatCompletionBody>;

// ---- per message, by role ----

const TextPart = Type.Object({ type: Type.Literal('text'), text: Type.String() });
const RefusalPart = Type.Object({ type: Type.Literal('refusal'), refusal: Type.String() });
const ImageUrlPart = Type.Object({
  type: Type.Literal('image_url'),
  /** DashScope also accepts the URL as a bare string. */
  image_url: Type.Union([Type.String(), Type.Object({ url: Type.String(), detail: Type.Optional(Type.Enum(['auto', 'low', 'high'])) })]),
});
const InputAudioPart = Type.Object({
  type: Type.Literal('input_audio'),
  input_audio: Type.Object({ data: Type.String(), format: Type.Optional(Type.String()) }),
});
/** vLLM's extension. */
const AudioUrlPart = Type.Object({ type: Type.Literal('audio_url'), audio_url: Type.Object({ url: Type.String() }) });
const VideoUrlPart = Type.Object({ type: Type.Literal('video_url'), video_url: Type.Union([Type.String(), Type.Object({ url: Type.String() })]) });
/** DashScope's frame list. */
const VideoFramesPart = Type.Object({ type: Type.Literal('video'), video: Type.Array(Type.String(), { minItems: 1, maxItems: 768 }) });

export const USER_PART_SCHEMAS = {
  text: TextPart,
  image_url: ImageUrlPart,
  input_audio: InputAudioPart,
  audio_url: AudioUrlPart,
  video_url: VideoUrlPart,
  video: VideoFramesPart,
} as const;
export type UserPartType = keyof typeof USER_PART_SCHEMAS;
export type UserPart = Static<(typeof USER_PART_SCHEMAS)[UserPartType]>;

export const AssistantToolCall = Type.Object({
  id: Type.String(),
  type: Type.Literal('function'),
  function: Type.Object({ name: Type.String({ minLength: 1 }), arguments: Type.String() }),
});

export const MESSAGE_SCHEMAS = {
  system: Type.Object({ role: Type.Literal('system'), content: Type.Union([Type.String(), Type.Array(TextPart)]) }),
  developer: Type.Object({ role: Type.Literal('developer'), content: Type.Union([Type.String(), Type.Array(TextPart)]) }),
  user: Type.Object({ role: Type.Literal('user'), content: Type.Union([Type.String(), Type.Array(ContentPartEnvelope, { minItems: 1 })]) }),
  assistant: Type.Object({
    role: Type.Literal('assistant'),
    content: Type.Optional(Type.Union([Type.String(), Type.Null(), Type.Array(Type.Union([TextPart, RefusalPart]))])),
    tool_calls: nullable(Type.Array(AssistantToolCall)),
    audio: nullable(Type.Object({ id: Type.String() })),
    reasoning_content: nullable(Type.String()),
    refusal: nullable(Type.String()),
  }),
  tool: Type.Object({ role: Type.Literal('tool'), content: Type.Union([Type.String(), Type.Array(TextPart)]), tool_call_id: Type.String({ minLength: 1 }) }),
} as const;
export type MessageRole = keyof typeof MESSAGE_SCHEMAS;
export type SystemMessage = Static<(typeof MESSAGE_SCHEMAS)['system']>;
export type UserMessage = Static<(typeof MESSAGE_SCHEMAS)['user']>;
export type AssistantMessage = Static<(typeof MESSAGE_SCHEMAS)['assistant']>;
export type ToolMessage = Static<(typeof MESSAGE_SCHEMAS)['tool']>;
