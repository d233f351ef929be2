// Errors of the runtime layer (engine sessions, generation, backends), one catalogue with stable
// codes; the gateway maps them onto protocol errors without rewording them.

export const RUNTIME_ERROR_CODES = [
  'sampling_invalid',
  'generation_invalid',
  'session_busy',
  'session_closed',
  'context_full',
  'modality_unsupported',
  'segment_invalid',
  'engine_failed',
  'cancelled',
  'backend_unsupported',
  'voice_unknown',
  /** Every engine is full (pool admission control, or a runtime node at its session limit): try again later. */
  'server_busy',
  /** A remote serving backend (vLLM-Omni) failed: HTTP error, broken or malformed stream, unreachable, stalled. */
  'backend_failed',
] as const;

export type RuntimeErrorCode = (typeof RUNTIME_ERROR_CODES)[number];

export class RuntimeError extends Error {
  constructor(
    readonly code: RuntimeErrorCode,
    message: string,
    /** The offending field or parameter, e.g. `temperature`. */
    readonly param?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RuntimeError';
  }
}
