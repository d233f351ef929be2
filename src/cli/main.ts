// Entry point of the `omni-gateway` command. Exit codes: 0 ok, 1 runtime failure, 2 usage/config.
import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig } from '../config/load.js';
import { UsageError, parseCommandLine, type CommandLine } from './args.js';
import { helpText } from './help.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  let cli: CommandLine;
  try {
    cli = parseCommandLine(argv);
    if (cli.help) {
      process.stdout.write(helpText(packageVersion()));
      return EXIT_OK;
    }
    if (cli.version) {
      process.stdout.write(`${packageVersion()}\n`);
      return EXIT_OK;
    }
    if (cli.inspect) {
      const { inspectCheckpoint, formatReport } = await import('./inspect.js');
      try {
        const report = await inspectCheckpoint(cli.inspect.model);
        process.stdout.write(cli.inspect.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
        return report.usable ? EXIT_OK : EXIT_USAGE;
      } catch (err) {
        const e = err as Error & { code?: string };
        process.stderr.write(`omni-gateway inspect: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
        return EXIT_USAGE;
      }
    }
    if (cli.generate) {
      const { runGenerate } = await import('./generate.js');
      const { ConversationError } = await import('./preprocess.js');
      try {
        await runGenerate(cli.generate);
        return EXIT_OK;
      } catch (err) {
        const e = err as Error & { code?: string };
        // Bad input, a checkpoint that cannot load, or media the checkpoint cannot take: usage errors.
        if (err instanceof ConversationError || /^checkpoint_|^encoder_|^modality_/.test(e.code ?? '')) {
          process.stderr.write(`omni-gateway generate: ${e.code && !(err instanceof ConversationError) ? `${e.code}: ` : ''}${e.message}\n`);
          return EXIT_USAGE;
        }
        throw err;
      }
    }
    if (cli.demoModel) {
      const { writeDemoModel } = await import('../runtime/demo_model.js');
      const { out, size, seed } = cli.demoModel;
      const r = await writeDemoModel(out, { size, seed });
      process.stderr.write(`wrote ${out}: config.json and model.safetensors (${r.tensors} tensors, ${(r.bytes / 1e6).toFixed(1)} MB bf16, seed ${seed}); random weights: its words are noise\n`);
      return EXIT_OK;
    }
    if (cli.preprocess) {
      const { runPreprocess, ConversationError } = await import('./preprocess.js');
      try {
        await runPreprocess(cli.preprocess);
        return EXIT_OK;
      } catch (err) {
        if (err instanceof ConversationError) {
          process.stderr.write(`omni-gateway preprocess: ${err.message}\n`);
          return EXIT_USAGE;
        }
        throw err;
      }
    }
    const config = loadConfig({ flags: cli.flags, env, ...(cli.configFile ? { configFile: cli.configFile } : {}) });
    if (cli.runtimeNode) {
      const { runRuntimeNode } = await import('./runtime.js');
      const node = await runRuntimeNode(config, cli.runtimeNode);
      return await node.exited;
    }
    // Loaded only when serving, so --help and usage errors answer without loading the server.
    const { serve } = await import('./serve.js');
    const running = await serve(config);
    return await running.exited;
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) {
      process.stderr.write(`omni-gateway: ${err.message} (see omni-gateway --help)\n`);
      return EXIT_USAGE;
    }
    const e = err as Error & { code?: string };
    process.stderr.write(`omni-gateway: ${e.code ? `${e.code}: ` : ''}${e.message}\n`);
    return EXIT_FAILURE;
  }
}
