// Command-line parsing: `omni-gateway [command] [--flag value | --flag=value]...`.
// node:util's parseArgs does the tokenising; this module maps flags to settings and turns its
// errors into one-line usage errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SETTINGS, type SettingKey } from '../config/settings.js';

export const COMMANDS = ['serve', 'preprocess', 'demo-model'] as const;
export type CommandName = (typeof COMMANDS)[number];

export class UsageError extends Error {
  readonly code = 'OMNI_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface CommandLine {
  command: CommandName;
  help: boolean;
  version: boolean;
  configFile?: string;
  flags: Partial<Record<SettingKey, string>>;
  /** `preprocess` only. */
  preprocess?: { input: string; out: string; addGenerationPrompt: boolean; useAudioInVideo: boolean; fps?: number; videoGridFps?: number };
  /** `demo-model` only. */
  demoModel?: { out: string; size: 'tiny' | 'small'; seed: number };
}

const PREPROCESS_OPTIONS = ['input', 'no-generation-prompt', 'use-audio-in-video', 'fps', 'video-grid-fps'] as const;
const DEMO_MODEL_OPTIONS = ['size', 'seed'] as const;

const flagToKey = new Map<string, SettingKey>(
  (Object.keys(SETTINGS) as SettingKey[]).map((key) => [SETTINGS[key].flag, key]),
);

const options: NonNullable<ParseArgsConfig['options']> = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  config: { type: 'string', short: 'c' },
  ...Object.fromEntries([...flagToKey.keys()].map((flag) => [flag, { type: 'string' as const }])),
  input: { type: 'string', short: 'i' },
  out: { type: 'string', short: 'o' },
  'no-generation-prompt': { type: 'boolean' },
  'use-audio-in-video': { type: 'boolean' },
  fps: { type: 'string' },
  'video-grid-fps': { type: 'string' },
  size: { type: 'string' },
  seed: { type: 'string' },
};

/** A positive finite number from a flag, or a usage error naming it. */
function positiveNumber(name: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && /^\s*[0-9.eE+-]+\s*$/.test(value) ? Number(value) : NaN;
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`--${name} must be a positive number, got ${JSON.stringify(value)}`);
  return n;
}

export function parseCommandLine(argv: readonly string[]): CommandLine {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(shortParseError(err as Error & { code?: string }));
  }
  const positionals = parsed.positionals;
  const [first, ...extra] = positionals;
  if (first !== undefined && !(COMMANDS as readonly string[]).includes(first)) {
    throw new UsageError(`unknown command "${first}"; commands: ${COMMANDS.join(', ')}`);
  }
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);

  const command = (first ?? 'serve') as CommandName;
  const values = parsed.values;
  const flags: Partial<Record<SettingKey, string>> = {};
  for (const [name, value] of Object.entries(values)) {
    const key = flagToKey.get(name);
    if (key && typeof value === 'string') {
      if (command !== 'serve') throw new UsageError(`option --${name} applies to serve, not ${command}`);
      flags[key] = value;
    }
    if (command !== 'preprocess' && (PREPROCESS_OPTIONS as readonly string[]).includes(name)) {
      throw new UsageError(`option --${name} applies to preprocess, not ${command}`);
    }
    if (command !== 'demo-model' && (DEMO_MODEL_OPTIONS as readonly string[]).includes(name)) {
      throw new UsageError(`option --${name} applies to demo-model, not ${command}`);
    }
    if (name === 'out' && command === 'serve') throw new UsageError('option --out applies to preprocess and demo-model, not serve');
  }
  const configFile = values.config;
  const cli: CommandLine = {
    command,
    help: values.help === true,
    version: values.version === true,
    ...(typeof configFile === 'string' ? { configFile } : {}),
    flags,
  };
  if (command === 'preprocess' && !cli.help) {
    const { input, out } = values;
    if (typeof input !== 'string') throw new UsageError('preprocess needs --input conversation.json');
    if (typeof out !== 'string') throw new UsageError('preprocess needs --out model-input.safetensors');
    const fps = positiveNumber('fps', values.fps);
    const videoGridFps = positiveNumber('video-grid-fps', values['video-grid-fps']);
    cli.preprocess = {
      input,
      out,
      addGenerationPrompt: values['no-generation-prompt'] !== true,
      useAudioInVideo: values['use-audio-in-video'] === true,
      ...(fps !== undefined ? { fps } : {}),
      ...(videoGridFps !== undefined ? { videoGridFps } : {}),
    };
  }
  if (command === 'demo-model' && !cli.help) {
    const { out, size = 'tiny', seed = '0' } = values;
    if (typeof out !== 'string') throw new UsageError('demo-model needs --out DIR');
    if (size !== 'tiny' && size !== 'small') throw new UsageError(`--size must be tiny or small, got ${JSON.stringify(size)}`);
    if (typeof seed !== 'string' || !/^\d{1,9}$/.test(seed)) throw new UsageError(`--seed must be a non-negative integer, got ${JSON.stringify(seed)}`);
    cli.demoModel = { out, size, seed: Number(seed) };
  }
  return cli;
}

function shortParseError(err: Error & { code?: string }): string {
  const option = /'(-[^' ]+)/.exec(err.message)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? ''}`.trim();
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return option ? `option ${option} needs a value` : err.message.split('\n')[0] ?? err.message;
    default:
      return err.message.split('\n')[0] ?? err.message;
  }
}
