// The one table of gateway settings. Every setting has a CLI flag, an environment variable, a
// schema, a default and a description; the help text, the config-file keys and validation are all
// derived from this table, so a new setting is one entry here.
import { Type, type TSchema } from 'typebox';

export interface SettingSpec {
  /** Flag name without dashes, e.g. `port` for `--port`. */
  readonly flag: string;
  readonly env: string;
  readonly schema: TSchema;
  readonly default: string | number;
  readonly description: string;
}

const oneOf = <const T extends readonly string[]>(values: T) =>
  Type.Union(values.map((v) => Type.Literal(v)));

const optionalPath = Type.String({ maxLength: 4096 });
const httpUrl = Type.Union([Type.Literal(''), Type.String({ pattern: '^https?://[^\\s/]+(/\\S*)?$', maxLength: 2048 })]);

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const RUNTIME_BACKENDS = ['native', 'vllm-omni', 'pool'] as const;

export const SETTINGS = {
  host: {
    flag: 'host',
    env: 'OMNI_HOST',
    schema: Type.String({ minLength: 1, maxLength: 255, pattern: '^[A-Za-z0-9.:\\-\\[\\]%]+$' }),
    default: '127.0.0.1',
    description: 'Address to listen on (0.0.0.0 or :: for all interfaces)',
  },
  port: {
    flag: 'port',
    env: 'OMNI_PORT',
    schema: Type.Integer({ minimum: 0, maximum: 65535 }),
    default: 8080,
    description: 'TCP port to listen on (0 picks a free port and prints it)',
  },
  logLevel: {
    flag: 'log-level',
    env: 'OMNI_LOG_LEVEL',
    schema: oneOf(LOG_LEVELS),
    default: 'info',
    description: 'Log verbosity of the JSON logs on stdout',
  },
  drainTimeoutMs: {
    flag: 'drain-timeout-ms',
    env: 'OMNI_DRAIN_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 0, maximum: 600_000 }),
    default: 10_000,
    description: 'On SIGTERM/SIGINT, how long open sessions may take to finish before they are closed',
  },
  runtime: {
    flag: 'runtime',
    env: 'OMNI_RUNTIME',
    schema: oneOf(RUNTIME_BACKENDS),
    default: 'native',
    description: 'Model runtime backend: the in-process native engine, a vLLM-Omni server, or a pool of runtime nodes (--runtime-nodes)',
  },
  runtimeUrl: {
    flag: 'runtime-url',
    env: 'OMNI_RUNTIME_URL',
    schema: httpUrl,
    default: '',
    description: 'Base URL of the runtime server (required for vllm-omni), e.g. http://gpu1:8000',
  },
  runtimeNodes: {
    flag: 'runtime-nodes',
    env: 'OMNI_RUNTIME_NODES',
    schema: Type.String({ maxLength: 65_536, pattern: '^$|^wss?://[^\\s,/]+/?(,wss?://[^\\s,/]+/?)*$' }),
    default: '',
    description: 'Comma-separated ws://host:port URLs of `omni-gateway runtime` nodes (required for pool); a host name resolving to several addresses is one node per address',
  },
  runtimeSecret: {
    flag: 'runtime-secret',
    env: 'OMNI_RUNTIME_SECRET',
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    description: 'Shared secret between gateways and runtime nodes (set the same on both; empty = none, loopback only); prefer the environment variable to the flag',
  },
  nodeMaxSessions: {
    flag: 'node-max-sessions',
    env: 'OMNI_NODE_MAX_SESSIONS',
    schema: Type.Integer({ minimum: 0, maximum: 1_000_000 }),
    default: 0,
    description: 'Most engine sessions per runtime node (pool: placed by this gateway; runtime command: admitted by the node); when every node is full clients get server_busy (0 = no limit)',
  },
  model: {
    flag: 'model',
    env: 'OMNI_MODEL',
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    description: 'Checkpoint directory (native; unset = a random demo checkpoint) or served model name (vllm-omni)',
  },
  modelCache: {
    flag: 'model-cache',
    env: 'OMNI_MODEL_CACHE',
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    description: 'Folder for the demo checkpoint made when no model is set (unset = $XDG_CACHE_HOME/omni-gateway or ~/.cache/omni-gateway)',
  },
  engineThreads: {
    flag: 'engine-threads',
    env: 'OMNI_ENGINE_THREADS',
    schema: Type.Integer({ minimum: 0, maximum: 1024 }),
    default: 0,
    description: 'Threads of the native engine (0 = one per core)',
  },
  runtimeHealthTimeoutMs: {
    flag: 'runtime-health-timeout-ms',
    env: 'OMNI_RUNTIME_HEALTH_TIMEOUT_MS',
    schema: Type.Integer({ minimum: 50, maximum: 60_000 }),
    default: 2_000,
    description: 'Time limit of one runtime readiness probe',
  },
  tlsCert: {
    flag: 'tls-cert',
    env: 'OMNI_TLS_CERT',
    schema: optionalPath,
    default: '',
    description: 'PEM certificate file; with --tls-key the gateway serves HTTPS and WSS',
  },
  tlsKey: {
    flag: 'tls-key',
    env: 'OMNI_TLS_KEY',
    schema: optionalPath,
    default: '',
    description: 'PEM private key file for --tls-cert',
  },
  apiKeys: {
    flag: 'api-keys',
    env: 'OMNI_API_KEYS',
    schema: Type.String({ maxLength: 65_536 }),
    default: '',
    description: 'Comma-separated API keys clients must present (Bearer header or browser subprotocol); empty = no authentication (local use only)',
  },
  apiKeysFile: {
    flag: 'api-keys-file',
    env: 'OMNI_API_KEYS_FILE',
    schema: optionalPath,
    default: '',
    description: 'JSON file of API key digests with per-key limits: {"keys":[{"name","sha256","limits":{"sessions","requestsPerMinute","audioSecondsPerMinute","tokensPerMinute"}}]}',
  },
  iceServers: {
    flag: 'ice-servers',
    env: 'OMNI_ICE_SERVERS',
    schema: Type.String({ maxLength: 8192 }),
    default: '',
    description: 'STUN/TURN servers for WebRTC calls, as a JSON list of RTCIceServer: [{"urls":"stun:host:3478"},{"urls":"turn:host","username":"u","credential":"p"}]; empty = host candidates only',
  },
  allowedOrigins: {
    flag: 'allowed-origins',
    env: 'OMNI_ALLOWED_ORIGINS',
    schema: Type.String({ maxLength: 8192 }),
    default: '',
    description: 'Comma-separated browser origins (e.g. https://app.example.com) allowed to call the gateway (CORS, WebSocket Origin); requests from other origins get 403; empty = any origin (local use)',
  },
  otlpEndpoint: {
    flag: 'otlp-endpoint',
    env: 'OMNI_OTLP_ENDPOINT',
    schema: httpUrl,
    default: '',
    description: 'OTLP/HTTP traces URL (e.g. http://collector:4318/v1/traces): per-turn latency spans are exported there; empty = no tracing',
  },
  clientSecretKey: {
    flag: 'client-secret-key',
    env: 'OMNI_CLIENT_SECRET_KEY',
    schema: Type.String({ maxLength: 4096 }),
    default: '',
    description: 'Key that signs ephemeral client secrets (ek_...); set the same value on every gateway process so any of them accepts a secret (empty = a random key per process)',
  },
  servedModels: {
    flag: 'served-models',
    env: 'OMNI_SERVED_MODELS',
    schema: Type.String({ minLength: 1, maxLength: 4096, pattern: '^[^,\\s]+(,[^,\\s]+)*$' }),
    default: 'qwen3-omni,qwen3-omni-flash-realtime,qwen3-omni-flash,qwen-omni-turbo-realtime,qwen-omni-turbo,gpt-realtime,gpt-4o-realtime-preview,gpt-4o-mini-realtime-preview',
    description: 'Comma-separated model names clients may ask for (all served by the configured runtime); others get invalid_model',
  },
  sessionMaxMinutes: {
    flag: 'session-max-minutes',
    env: 'OMNI_SESSION_MAX_MINUTES',
    schema: Type.Integer({ minimum: 1, maximum: 1440 }),
    default: 60,
    description: 'Longest realtime session; at the limit the client gets session_expired and the socket closes',
  },
  playbackLeadMs: {
    flag: 'playback-lead-ms',
    env: 'OMNI_PLAYBACK_LEAD_MS',
    schema: Type.Integer({ minimum: 0, maximum: 60_000 }),
    default: 300,
    description: 'How far speech is sent ahead of real time (a barge-in stops the rest, and the reply is cut at what was sent)',
  },
  realtimeMediaCacheMb: {
    flag: 'realtime-media-cache-mb',
    env: 'OMNI_REALTIME_MEDIA_CACHE_MB',
    schema: Type.Integer({ minimum: 16, maximum: 65_536 }),
    default: 512,
    description: 'Featurized media (image patches, audio features) one realtime session keeps for later turns, MB; beyond it the least recently used are dropped and featurized again when a turn needs them',
  },
} as const satisfies Record<string, SettingSpec>;

export type SettingKey = keyof typeof SETTINGS;

export interface GatewayConfig {
  host: string;
  port: number;
  logLevel: (typeof LOG_LEVELS)[number];
  drainTimeoutMs: number;
  runtime: (typeof RUNTIME_BACKENDS)[number];
  runtimeUrl: string;
  runtimeNodes: string;
  runtimeSecret: string;
  nodeMaxSessions: number;
  model: string;
  modelCache: string;
  engineThreads: number;
  runtimeHealthTimeoutMs: number;
  tlsCert: string;
  tlsKey: string;
  apiKeys: string;
  apiKeysFile: string;
  iceServers: string;
  allowedOrigins: string;
  otlpEndpoint: string;
  clientSecretKey: string;
  servedModels: string;
  sessionMaxMinutes: number;
  playbackLeadMs: number;
  realtimeMediaCacheMb: number;
}

/** Human wording of what a schema accepts, used in error messages and help. */
export function describeAllowed(schema: TSchema): string {
  const s = schema as Record<string, unknown>;
  if (Array.isArray(s.anyOf)) {
    const consts = (s.anyOf as Record<string, unknown>[]).map((x) => x.const).filter((x) => typeof x === 'string');
    if (consts.length === (s.anyOf as unknown[]).length) return `one of ${consts.join(', ')}`;
    if (consts.length === 1 && consts[0] === '') return 'an http:// or https:// URL';
  }
  if (s.type === 'integer') return `an integer from ${String(s.minimum)} to ${String(s.maximum)}`;
  if (s.type === 'string' && s.pattern && s.minLength) return 'a host name or IP address';
  if (s.type === 'string') return 'a string';
  return 'a valid value';
}
