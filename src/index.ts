// Public API for embedding the gateway in another Node.js program.
export { loadConfig, ConfigError } from './config/load.js';
export { SETTINGS, type GatewayConfig } from './config/settings.js';
export { buildGateway, Gateway, type GatewayOptions, type ShutdownReport } from './gateway/app.js';
export { createRuntime } from './runtime/create.js';
export type { RuntimeBackend, RuntimeHealth, RuntimeKind } from './runtime/contract.js';
export { g711Decode, g711Encode, type G711Law } from './codecs/audio/g711.js';
export { pcm16leToFloat32, float32ToPcm16le } from './codecs/audio/pcm.js';
