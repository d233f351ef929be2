// The engine contract the gateway talks to, whatever runs the model. This file grows with the
// engine (sessions, segments, generation events); today it carries what every backend must answer
// from day one: whether it can serve.

export type RuntimeKind = 'native' | 'vllm-omni';

export interface RuntimeHealth {
  /** The backend answered (in-process: the engine is loaded into this process). */
  reachable: boolean;
  /** A model is loaded and can take requests. */
  modelLoaded: boolean;
  /** Model identifier when known (checkpoint path or served model name). */
  model?: string;
  /** One human sentence on the state, e.g. why it is not ready. */
  detail: string;
}

export interface RuntimeBackend {
  readonly kind: RuntimeKind;
  /** Probe readiness; must settle within `timeoutMs` and never throw. */
  health(timeoutMs: number): Promise<RuntimeHealth>;
  close(): Promise<void>;
}
