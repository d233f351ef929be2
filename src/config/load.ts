// Resolve the gateway configuration from defaults < config file < environment < flags, and
// validate every value against its schema. Errors name the setting, where the value came from,
// and what is allowed.
import { readFileSync } from 'node:fs';
import type { TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { SETTINGS, describeAllowed, type GatewayConfig, type SettingKey } from './settings.js';

export type ConfigSource = 'default' | 'config file' | 'environment' | 'flag';

export class ConfigError extends Error {
  readonly code = 'OMNI_INVALID_CONFIG';
  constructor(
    message: string,
    readonly setting?: SettingKey,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface ConfigInputs {
  /** Values from CLI flags, keyed by setting (already mapped from flag names). */
  flags?: Partial<Record<SettingKey, string>>;
  env?: NodeJS.ProcessEnv;
  /** Path of a JSON config file whose keys are setting names (camelCase). */
  configFile?: string;
}

const KEYS = Object.keys(SETTINGS) as SettingKey[];

export function settingLabel(key: SettingKey): string {
  const s = SETTINGS[key];
  return `${s.flag} (--${s.flag}, ${s.env})`;
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ConfigError(`config file ${path} must hold a JSON object of settings`);
  }
  for (const key of Object.keys(parsed)) {
    if (!(key in SETTINGS)) {
      throw new ConfigError(`config file ${path} has unknown setting "${key}"; known settings: ${KEYS.join(', ')}`);
    }
  }
  return parsed as Record<string, unknown>;
}

/**
 * Flags and environment variables are text: read integers strictly (no "80.5" -> 80, "" -> 0 or
 * "0x10" -> 16, which TypeBox's lenient Convert would allow). Config files carry typed JSON.
 */
function fromText(schema: TSchema, text: string): unknown {
  const t = text.trim();
  if ((schema as { type?: string }).type === 'integer') return /^[+-]?\d+$/.test(t) ? Number(t) : text;
  return t;
}

function validateOne(key: SettingKey, raw: unknown, source: ConfigSource): unknown {
  const { schema } = SETTINGS[key];
  const value = typeof raw === 'string' && source !== 'config file' ? fromText(schema, raw) : raw;
  if (!Value.Check(schema, value)) {
    const shown = JSON.stringify(raw) ?? String(raw);
    throw new ConfigError(
      `invalid setting ${settingLabel(key)} from ${source}: got ${shown}, expected ${describeAllowed(schema)}`,
      key,
    );
  }
  return value;
}

export function loadConfig(inputs: ConfigInputs = {}): GatewayConfig {
  const env = inputs.env ?? {};
  const file = inputs.configFile ? readConfigFile(inputs.configFile) : {};
  const out: Record<string, unknown> = {};
  for (const key of KEYS) {
    const spec = SETTINGS[key];
    const flag = inputs.flags?.[key];
    const envValue = env[spec.env];
    if (flag !== undefined) out[key] = validateOne(key, flag, 'flag');
    else if (envValue !== undefined && envValue !== '') out[key] = validateOne(key, envValue, 'environment');
    else if (key in file) out[key] = validateOne(key, file[key], 'config file');
    else out[key] = spec.default;
  }
  const config = out as unknown as GatewayConfig;
  checkCombinations(config);
  return config;
}

function checkCombinations(c: GatewayConfig): void {
  if (c.runtime === 'vllm-omni' && c.runtimeUrl === '') {
    throw new ConfigError(`setting ${settingLabel('runtimeUrl')} is required when runtime is vllm-omni`, 'runtimeUrl');
  }
  if ((c.tlsCert === '') !== (c.tlsKey === '')) {
    const missing: SettingKey = c.tlsCert === '' ? 'tlsCert' : 'tlsKey';
    throw new ConfigError(`setting ${settingLabel(missing)} is required: TLS needs both a certificate and a key`, missing);
  }
}
