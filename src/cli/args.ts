// Command-line parsing: `omni-gateway [command] [--flag value | --flag=value]...`.
// node:util's parseArgs does the tokenising; this module maps flags to settings and turns its
// errors into one-line usage errors.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SETTINGS, type SettingKey } from '../config/settings.js';
import type { GenerateCommand } from './generate.js';

export const COMMANDS = ['serve', 'runtime', 'preprocess', 'demo-model', 'generate', 'inspect'] as const;
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
  /** `generate` only. */
  generate?: GenerateCommand;
  /** `inspect` only. */
  inspect?: { model: string; json: boolean };
  /** `runtime` only: where the node listens. */
  runtimeNode?: { host: string; port: number };
}

/** Settings a runtime node takes (the rest are the gateway's). */
const RUNTIME_NODE_SETTINGS = new Set(['model', 'model-cache', 'engine-threads', 'runtime-secret', 'node-max-sessions', 'log-level', 'runtime-health-timeout-ms']);

const PREPROCESS_OPTIONS = ['no-generation-prompt'] as const;
const DEMO_MODEL_OPTIONS = ['size'] as const;
const GENERATE_OPTIONS = ['max-tokens', 'greedy', 'temperature', 'top-p', 'top-k', 'thinking', 'thinking-budget', 'voice', 'speech-out', 'threads'] as const;
/** Conversation-building flags shared by preprocess and generate. */
const CONVERSATION_OPTIONS = ['use-audio-in-video', 'fps', 'video-grid-fps'] as const;

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
  'max-tokens': { type: 'string' },
  greedy: { type: 'boolean' },
  temperature: { type: 'string' },
  'top-p': { type: 'string' },
  'top-k': { type: 'string' },
  thinking: { type: 'string' },
  'thinking-budget': { type: 'string' },
  voice: { type: 'string' },
  'speech-out': { type: 'string' },
  threads: { type: 'string' },
  json: { type: 'boolean' },
  listen: { type: 'string' },
};

/** A non-negative integer from a flag, or a usage error naming it. */
function integer(name: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !/^\d{1,10}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return Number(value);
}

const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)$/;

/** A decimal number from a flag within [min, max] (min excluded when `open`), or a usage error naming it. */
function decimal(name: string, value: unknown, min: number, max: number, open = false): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'string' && DECIMAL.test(value) ? Number(value) : NaN;
  if (!(open ? n > min : n >= min) || !(n <= max)) {
    throw new UsageError(`--${name} must be a number ${open ? 'above' : 'from'} ${min} ${open ? 'up ' : ''}to ${max}, got ${JSON.stringify(value)}`);
  }
  return n;
}
const positiveNumber = (name: string, value: unknown): number | undefined => decimal(name, value, 0.01, 1000);

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
    // generate and inspect take --model as the checkpoint to run or read.
    if (name === 'model' && (command === 'generate' || command === 'inspect')) continue;
    if (key && typeof value === 'string') {
      if (command === 'runtime' && !RUNTIME_NODE_SETTINGS.has(name)) throw new UsageError(`option --${name} applies to serve, not runtime`);
      if (command !== 'serve' && command !== 'runtime') throw new UsageError(`option --${name} applies to serve, not ${command}`);
      flags[key] = value;
    }
    if (command !== 'preprocess' && (PREPROCESS_OPTIONS as readonly string[]).includes(name)) {
      throw new UsageError(`option --${name} applies to preprocess, not ${command}`);
    }
    if (command !== 'demo-model' && (DEMO_MODEL_OPTIONS as readonly string[]).includes(name)) {
      throw new UsageError(`option --${name} applies to demo-model, not ${command}`);
    }
    if (command !== 'generate' && (GENERATE_OPTIONS as readonly string[]).includes(name)) {
      throw new UsageError(`option --${name} applies to generate, not ${command}`);
    }
    if (command !== 'generate' && command !== 'preprocess' && (CONVERSATION_OPTIONS as readonly string[]).includes(name)) {
      throw new UsageError(`option --${name} applies to preprocess and generate, not ${command}`);
    }
    if (name === 'seed' && command !== 'generate' && command !== 'demo-model') throw new UsageError(`option --seed applies to generate and demo-model, not ${command}`);
    if (name === 'json' && command !== 'generate' && command !== 'inspect') throw new UsageError(`option --json applies to generate and inspect, not ${command}`);
    if (name === 'out' && command !== 'preprocess' && command !== 'demo-model') throw new UsageError(`option --out applies to preprocess and demo-model, not ${command}`);
    if (name === 'input' && command !== 'preprocess' && command !== 'generate') throw new UsageError(`option --input applies to preprocess and generate, not ${command}`);
    if (name === 'listen' && command !== 'runtime') throw new UsageError(`option --listen applies to runtime, not ${command}`);
  }
  const configFile = values.config;
  const cli: CommandLine = {
    command,
    help: values.help === true,
    version: values.version === true,
    ...(typeof configFile === 'string' ? { configFile } : {}),
    flags,
  };
  if (command === 'runtime' && !cli.help) {
    const listen = typeof values.listen === 'string' ? values.listen : '127.0.0.1:7000';
    const m = /^(?:\[([0-9A-Fa-f:.%a-z]+)\]|([A-Za-z0-9.-]+))?:?(\d{1,5})$/.exec(listen);
    const port = m ? Number(m[3]) : NaN;
    if (!m || !(port >= 0 && port <= 65535)) throw new UsageError(`--listen must be HOST:PORT (e.g. 0.0.0.0:7000 or [::]:7000), got ${JSON.stringify(listen)}`);
    cli.runtimeNode = { host: m[1] ?? m[2] ?? '127.0.0.1', port };
  }
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
  if ((command === 'generate' || command === 'inspect') && !cli.help) {
    const model = values.model;
    if (typeof model !== 'string' || model === '') throw new UsageError(`${command} needs --model DIR (a checkpoint directory)`);
    if (command === 'inspect') {
      cli.inspect = { model, json: values.json === true };
      return cli;
    }
    const { input } = values;
    if (typeof input !== 'string') throw new UsageError('generate needs --input conversation.json (or a model-input .safetensors file)');
    const thinking = values.thinking;
    if (thinking !== undefined && thinking !== 'on' && thinking !== 'off') throw new UsageError(`--thinking must be on or off, got ${JSON.stringify(thinking)}`);
    const temperature = decimal('temperature', values.temperature, 0, 100);
    const topP = decimal('top-p', values['top-p'], 0, 1, true);
    if (values.greedy === true && (temperature !== undefined || topP !== undefined || values['top-k'] !== undefined)) {
      throw new UsageError('--greedy cannot be combined with --temperature, --top-p or --top-k');
    }
    if (!temperature && (topP !== undefined || values['top-k'] !== undefined || values.seed !== undefined)) {
      throw new UsageError('--top-p, --top-k and --seed apply to sampling: give --temperature above 0 (without it generation is greedy)');
    }
    if (thinking === 'off' && values['thinking-budget'] !== undefined) throw new UsageError('--thinking-budget needs thinking on, not --thinking off');
    const topK = integer('top-k', values['top-k'], 0, 1_000_000);
    const seed = integer('seed', values.seed, 0, 2 ** 32 - 1);
    const thinkingBudget = integer('thinking-budget', values['thinking-budget'], 1, 1_000_000);
    const threads = integer('threads', values.threads, 1, 1024);
    cli.generate = {
      model,
      input,
      maxTokens: integer('max-tokens', values['max-tokens'], 1, 1_000_000) ?? 256,
      sampling: {
        temperature: values.greedy === true ? 0 : (temperature ?? 0),
        ...(topP !== undefined ? { topP } : {}),
        ...(topK !== undefined ? { topK } : {}),
        ...(seed !== undefined ? { seed } : {}),
      },
      ...(thinking !== undefined ? { thinking: thinking === 'on' } : {}),
      ...(thinkingBudget !== undefined ? { thinkingBudget } : {}),
      ...(typeof values.voice === 'string' ? { voice: values.voice } : {}),
      ...(typeof values['speech-out'] === 'string' ? { speechOut: values['speech-out'] } : {}),
      ...(threads !== undefined ? { threads } : {}),
      ...(values['use-audio-in-video'] === true ? { useAudioInVideo: true } : {}),
      ...(positiveNumber('fps', values.fps) !== undefined ? { fps: positiveNumber('fps', values.fps)! } : {}),
      ...(positiveNumber('video-grid-fps', values['video-grid-fps']) !== undefined ? { videoGridFps: positiveNumber('video-grid-fps', values['video-grid-fps'])! } : {}),
      json: values.json === true,
    };
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
