// Errors of the chat completions API, in the OpenAI shape the app's catalogue uses
// (`{ error: { type, code, message, param } }`), with OpenAI's own codes for request problems
// (`invalid_value`, `missing_required_parameter`, ...) so SDKs show them as they would OpenAI's.
// Errors of the lower layers (codecs, fusion, runtime) keep their code and message; only the
// param is rewritten to the request field that carried the input.
import type { FastifyReply } from 'fastify';
import { CodecError, type CodecErrorCode } from '../../codecs/errors.js';
import { FusionError } from '../../fusion/errors.js';
import { RuntimeError, type RuntimeErrorCode } from '../../runtime/errors.js';

export type ChatErrorType = 'invalid_request_error' | 'server_error';

export interface ChatErrorBody {
  error: { type: ChatErrorType; code: string; message: string; param: string | null };
}

export class ChatError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'ChatError';
  }

  get type(): ChatErrorType {
    return this.status >= 500 ? 'server_error' : 'invalid_request_error';
  }

  body(): ChatErrorBody {
    return { error: { type: this.type, code: this.code, message: this.message, param: this.param } };
  }
}

/** A 400 about the request. */
export function invalidRequest(code: string, message: string, param: string | null = null): ChatError {
  return new ChatError(400, code, message, param);
}

/** Codec failures that are the server's, not the input's. */
const SERVER_CODEC_CODES: ReadonlySet<CodecErrorCode> = new Set(['ffmpeg_unavailable', 'ffmpeg_failed', 'tokenizer_unavailable', 'vad_model_unavailable', 'vad_overloaded']);
/** Runtime failures that are the server's. */
const SERVER_RUNTIME_CODES: ReadonlySet<RuntimeErrorCode> = new Set(['engine_failed', 'session_closed', 'session_busy', 'backend_unsupported', 'backend_failed', 'server_busy', 'cancelled']);

/**
 * Any error to a ChatError. `param` names the request field the failing input came from; it
 * replaces the lower layer's own param (which names its argument, e.g. `audio`).
 */
export function toChatError(err: unknown, param?: string): ChatError {
  if (err instanceof ChatError) return err;
  if (err instanceof CodecError) {
    if (SERVER_CODEC_CODES.has(err.code)) return new ChatError(500, err.code, err.message, null);
    // Spec §6.2: base64 garbage is `invalid_value` with "Invalid base64" in the message.
    const code = err.code === 'audio_invalid_base64' ? 'invalid_value' : err.code;
    return new ChatError(400, code, err.message, param ?? err.param ?? null);
  }
  if (err instanceof FusionError) return new ChatError(400, err.code, err.message, param ?? err.param ?? null);
  if (err instanceof RuntimeError) {
    if (err.code === 'context_full') return new ChatError(400, 'context_length_exceeded', err.message, 'messages');
    // Every engine full (or vLLM-Omni answering 429/503): a retryable 503, not a server fault.
    if (err.code === 'server_busy') return new ChatError(503, err.code, err.message, null);
    if (SERVER_RUNTIME_CODES.has(err.code)) return new ChatError(500, err.code, err.message, null);
    return new ChatError(400, err.code, err.message, param ?? err.param ?? null);
  }
  return new ChatError(500, 'internal_error', 'internal server error', null);
}

/** Sends an error as JSON; unexpected ones are logged (their message is not sent). */
export function sendChatError(reply: FastifyReply, err: unknown, param?: string): FastifyReply {
  const e = toChatError(err, param);
  if (e.status >= 500) reply.log.error({ err }, 'chat completion failed');
  return reply.code(e.status).send(e.body());
}
