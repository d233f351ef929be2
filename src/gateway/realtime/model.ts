// The one session model behind every realtime dialect (OpenAI GA, OpenAI beta, Qwen-Omni/DashScope).
// Dialects parse their client events into `ClientCommand`s and render `ServerEvent`s back into
// their own names and shapes; the session never sees a dialect. Server events are kept in the GA
// wire shape (the richest of the three) except for the session and response objects, which stay
// structured so each dialect can render its own view of them.

export type Modality = 'text' | 'audio';

/** Audio on the wire: PCM16 LE mono at `rate`, or G.711 at 8 kHz. */
export interface AudioFormat {
  encoding: 'pcm16' | 'g711_ulaw' | 'g711_alaw';
  rate: number;
}

export interface TurnDetection {
  type: 'server_vad' | 'semantic_vad';
  threshold: number;
  prefixPaddingMs: number;
  silenceDurationMs: number;
  idleTimeoutMs: number | null;
  createResponse: boolean;
  interruptResponse: boolean;
  /** semantic_vad only. */
  eagerness?: 'low' | 'medium' | 'high' | 'auto';
}

export interface FunctionTool {
  type: 'function';
  name: string;
  description?: string;
  /** JSON Schema of the arguments. */
  parameters?: Record<string, unknown>;
}

export type ToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; name: string };

export interface Transcription {
  model?: string;
  language?: string;
  prompt?: string;
}

/** Sampling the dialects can set (GA has none; beta has temperature; DashScope has the rest). */
export interface SamplingConfig {
  temperature?: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  presencePenalty?: number;
  seed?: number;
}

/** Thinking (compute budget) per session or response: a gateway extension in every dialect. */
export interface ThinkingConfig {
  enabled: boolean;
  budgetTokens: number | null;
}

/** The effective session configuration, dialect-neutral. */
export interface SessionConfig {
  id: string;
  model: string;
  /** Unix seconds. */
  expiresAt: number;
  /** GA `session.type`. */
  type: 'realtime' | 'transcription';
  instructions: string;
  /** What a response produces: ['text'] or ['audio'] (audio always carries its transcript). */
  outputModalities: Modality[];
  inputFormat: AudioFormat;
  outputFormat: AudioFormat;
  voice: string;
  speed: number;
  turnDetection: TurnDetection | null;
  transcription: Transcription | null;
  noiseReduction: { type: 'near_field' | 'far_field' } | null;
  tools: FunctionTool[];
  toolChoice: ToolChoice;
  /** null = "inf". */
  maxOutputTokens: number | null;
  sampling: SamplingConfig;
  thinking: ThinkingConfig | null;
  /** DashScope `smooth_output`; kept and echoed. */
  smoothOutput?: boolean | null;
  /** Fields accepted and echoed without effect (GA prompt, tracing, truncation, include...). */
  passthrough: Record<string, unknown>;
}

/** A validated `session.update`: only the fields the client set, already normalised. */
export type SessionPatch = Partial<Omit<SessionConfig, 'id' | 'model' | 'expiresAt' | 'passthrough'>> & {
  passthrough?: Record<string, unknown>;
};

// ---------------------------------------------------------------------------------------------
// Conversation items (GA shapes; beta/DashScope content types are mapped at the edge)

export type ContentPart =
  | { type: 'input_text'; text: string }
  /** Client audio in the session's input format, decoded to raw bytes; transcript when known. */
  | { type: 'input_audio'; audio?: Buffer; transcript: string | null }
  /** An image as bytes (JPEG or PNG), from a data URI or the image buffer. */
  | { type: 'input_image'; image: Buffer; mime: string; detail: 'auto' | 'low' | 'high' }
  | { type: 'output_text'; text: string }
  /** Assistant speech: the 24 kHz samples are kept by the session, the wire sees the transcript. */
  | { type: 'output_audio'; transcript: string };

export type ItemStatus = 'completed' | 'incomplete' | 'in_progress';

export type ConversationItem =
  | { id: string; type: 'message'; role: 'system' | 'user' | 'assistant'; status: ItemStatus; content: ContentPart[] }
  | { id: string; type: 'function_call'; status: ItemStatus; callId: string; name: string; arguments: string }
  | { id: string; type: 'function_call_output'; status: ItemStatus; callId: string; output: string };

/** An item as a client may create it (ids optional; the session assigns missing ones). */
export type ItemInput =
  | { id?: string; type: 'message'; role: 'system' | 'user' | 'assistant'; content: ContentPart[] }
  | { id?: string; type: 'function_call'; callId: string; name: string; arguments: string }
  | { id?: string; type: 'function_call_output'; callId: string; output: string };

// ---------------------------------------------------------------------------------------------
// Client commands (what a dialect's parser hands the session)

export interface ResponseOverrides {
  outputModalities?: Modality[];
  instructions?: string;
  voice?: string;
  outputFormat?: AudioFormat;
  tools?: FunctionTool[];
  toolChoice?: ToolChoice;
  maxOutputTokens?: number | null;
  sampling?: SamplingConfig;
  thinking?: ThinkingConfig | null;
  /** 'none': out of band, the result is not added to the conversation. */
  conversation?: 'auto' | 'none';
  /** Replaces the conversation as the response's input: items, or references to existing ones. */
  input?: ({ reference: string } | ItemInput)[];
  metadata?: Record<string, string> | null;
}

export type ClientCommand = { eventId: string | null } & (
  | { type: 'session.update'; patch: SessionPatch }
  | { type: 'input_audio_buffer.append'; audio: Buffer }
  | { type: 'input_audio_buffer.commit' }
  | { type: 'input_audio_buffer.clear' }
  | { type: 'input_image_buffer.append'; image: Buffer }
  | { type: 'output_audio_buffer.clear' }
  | { type: 'conversation.item.create'; item: ItemInput; previousItemId?: string | null }
  | { type: 'conversation.item.retrieve'; itemId: string }
  | { type: 'conversation.item.truncate'; itemId: string; contentIndex: number; audioEndMs: number }
  | { type: 'conversation.item.delete'; itemId: string }
  | { type: 'response.create'; response: ResponseOverrides }
  | { type: 'response.cancel'; responseId?: string }
  /** GA `session.close` / DashScope `session.finish`: finish, then close 1000. */
  | { type: 'session.close' }
);

// ---------------------------------------------------------------------------------------------
// Responses

export type ResponseStatus = 'in_progress' | 'completed' | 'cancelled' | 'failed' | 'incomplete';

export interface ResponseUsage {
  totalTokens: number;
  inputTokens: number;
  outputTokens: number;
  input: { text: number; audio: number; image: number; cached: number };
  output: { text: number; audio: number };
}

export interface ResponseState {
  id: string;
  status: ResponseStatus;
  statusDetails: null | {
    type: 'cancelled' | 'incomplete' | 'failed';
    reason?: 'turn_detected' | 'client_cancelled' | 'max_output_tokens' | 'content_filter';
    error?: { type: string; code: string; message?: string };
  };
  /** Output items as announced (ids dense by output index). */
  output: ConversationItem[];
  /** null for out-of-band responses. */
  conversationId: string | null;
  outputModalities: Modality[];
  maxOutputTokens: number | null;
  voice: string;
  outputFormat: AudioFormat;
  sampling: SamplingConfig;
  usage: ResponseUsage | null;
  metadata: Record<string, string> | null;
}

// ---------------------------------------------------------------------------------------------
// Server events: GA wire names and fields (snake_case), but `session`, `response` and `item` are
// the structured objects above; `audio` deltas are raw bytes in the output format. A dialect
// renders each into zero or more wire events.

interface Ev<T extends string> {
  type: T;
}
type Loc = { response_id: string; item_id: string; output_index: number; content_index: number };

export type ServerEvent =
  | (Ev<'session.created'> & { session: SessionConfig })
  | (Ev<'session.updated'> & { session: SessionConfig })
  | (Ev<'error'> & { error: ProtocolErrorBody })
  /** GA renders added+done (user items) or added (assistant, in progress); beta/DashScope render `created`. */
  | (Ev<'conversation.item.added'> & { item: ConversationItem; previous_item_id: string | null })
  | (Ev<'conversation.item.done'> & { item: ConversationItem; previous_item_id: string | null })
  | (Ev<'conversation.item.retrieved'> & { item: ConversationItem; audio?: Buffer })
  | (Ev<'conversation.item.truncated'> & { item_id: string; content_index: number; audio_end_ms: number })
  | (Ev<'conversation.item.deleted'> & { item_id: string })
  | (Ev<'conversation.item.input_audio_transcription.delta'> & { item_id: string; content_index: number; delta: string })
  | (Ev<'conversation.item.input_audio_transcription.completed'> & {
      item_id: string;
      content_index: number;
      transcript: string;
      usage: { type: 'tokens'; input_tokens: number; output_tokens: number; total_tokens: number } | { type: 'duration'; seconds: number };
    })
  | (Ev<'conversation.item.input_audio_transcription.failed'> & { item_id: string; content_index: number; error: ProtocolErrorBody })
  | (Ev<'input_audio_buffer.committed'> & { item_id: string; previous_item_id: string | null })
  | Ev<'input_audio_buffer.cleared'>
  | (Ev<'input_audio_buffer.speech_started'> & { item_id: string; audio_start_ms: number })
  | (Ev<'input_audio_buffer.speech_stopped'> & { item_id: string; audio_end_ms: number })
  | (Ev<'input_audio_buffer.timeout_triggered'> & { item_id: string; audio_start_ms: number; audio_end_ms: number })
  | (Ev<'output_audio_buffer.started' | 'output_audio_buffer.stopped' | 'output_audio_buffer.cleared'> & { response_id: string })
  | (Ev<'response.created'> & { response: ResponseState })
  | (Ev<'response.done'> & { response: ResponseState })
  | (Ev<'response.output_item.added' | 'response.output_item.done'> & { response_id: string; output_index: number; item: ConversationItem })
  | (Ev<'response.content_part.added' | 'response.content_part.done'> & Loc & { part: { type: 'text'; text: string } | { type: 'audio'; transcript: string } })
  | (Ev<'response.output_text.delta' | 'response.output_audio_transcript.delta'> & Loc & { delta: string })
  | (Ev<'response.output_text.done'> & Loc & { text: string })
  | (Ev<'response.output_audio_transcript.done'> & Loc & { transcript: string })
  | (Ev<'response.output_audio.delta'> & Loc & { audio: Buffer })
  | (Ev<'response.output_audio.done'> & Loc)
  | (Ev<'response.function_call_arguments.delta'> & { response_id: string; item_id: string; output_index: number; call_id: string; delta: string })
  | (Ev<'response.function_call_arguments.done'> & { response_id: string; item_id: string; output_index: number; call_id: string; name: string; arguments: string })
  | (Ev<'rate_limits.updated'> & { rate_limits: { name: 'requests' | 'tokens'; limit: number; remaining: number; reset_seconds: number }[] })
  /** DashScope's answer to session.finish. */
  | Ev<'session.finished'>;

export type ServerEventType = ServerEvent['type'];

// ---------------------------------------------------------------------------------------------
// Errors

export interface ProtocolErrorBody {
  type: 'invalid_request_error' | 'server_error';
  code: string | null;
  message: string;
  param: string | null;
  /** The client event that caused it (null when it had none). */
  event_id: string | null;
}

/** A client event or request the session refuses; becomes one `error` event. */
export class ProtocolError extends Error {
  constructor(
    readonly code: string | null,
    message: string,
    readonly param: string | null = null,
    readonly errorType: ProtocolErrorBody['type'] = 'invalid_request_error',
  ) {
    super(message);
    this.name = 'ProtocolError';
  }

  body(eventId: string | null): ProtocolErrorBody {
    return { type: this.errorType, code: this.code, message: this.message, param: this.param, event_id: eventId };
  }
}

export type DialectName = 'ga' | 'beta' | 'dashscope';

/** A wire dialect: parses its client events, renders server events. Pure and stateless. */
export interface Dialect {
  readonly name: DialectName;
  /** The session a new connection starts with (defaults of this dialect). */
  initialConfig(base: { id: string; model: string; expiresAt: number; defaultVoice: string }): SessionConfig;
  /**
   * Turns one parsed JSON value into a command, or throws ProtocolError (invalid_json for a
   * non-object, missing_required_parameter / invalid_value for `type`, unknown_parameter, ...).
   * `config` is the current session (e.g. to validate against its type).
   */
  parse(event: unknown, config: SessionConfig): ClientCommand;
  /** The wire events for one server event (with `event_id` already assigned by the caller). */
  render(event: ServerEvent): Record<string, unknown>[];
  /** Client event types this dialect accepts (listed in the unknown-type error). */
  readonly clientEventTypes: readonly string[];
}
