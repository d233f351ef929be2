import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.js';
import { SETTINGS } from '../src/config/settings.js';
import { UsageError, parseCommandLine } from '../src/cli/args.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('uses the documented defaults when nothing is set', () => {
    const c = loadConfig({ env: {} });
    for (const [key, spec] of Object.entries(SETTINGS)) expect(c[key as keyof typeof c]).toBe(spec.default);
  });

  it('takes flag over environment over config file over default', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-cfg-'));
    const file = join(dir, 'gw.json');
    writeFileSync(file, JSON.stringify({ port: 9001, host: '0.0.0.0', logLevel: 'warn' }));
    const c = loadConfig({
      configFile: file,
      env: { OMNI_PORT: '9002', OMNI_LOG_LEVEL: 'debug' },
      flags: { port: '9003' },
    });
    expect(c.port).toBe(9003);
    expect(c.logLevel).toBe('debug');
    expect(c.host).toBe('0.0.0.0');
  });

  it('converts numeric strings from the environment to numbers', () => {
    expect(loadConfig({ env: { OMNI_DRAIN_TIMEOUT_MS: ' 2500 ' } }).drainTimeoutMs).toBe(2500);
  });

  it('treats an empty environment variable as unset', () => {
    expect(loadConfig({ env: { OMNI_PORT: '' } }).port).toBe(8080);
  });

  it.each([
    ['port', { port: 'abc' }, 'an integer from 0 to 65535'],
    ['port', { port: '70000' }, 'an integer from 0 to 65535'],
    ['port', { port: '80.5' }, 'an integer from 0 to 65535'],
    ['log-level', { logLevel: 'loud' }, 'one of fatal, error, warn, info, debug, trace, silent'],
    ['runtime', { runtime: 'tensorrt' }, 'one of native, vllm-omni'],
    ['runtime-url', { runtimeUrl: 'ftp://x' }, 'an http:// or https:// URL'],
    ['host', { host: 'bad host' }, 'a host name or IP address'],
  ] as const)('rejects a bad %s naming the setting and the allowed values', (flag, flags, allowed) => {
    const err = configError(() => loadConfig({ env: {}, flags }));
    expect(err.message).toContain(`invalid setting ${flag} (--${flag}, `);
    expect(err.message).toContain(`expected ${allowed}`);
    expect(err.message).toContain('from flag');
    expect(err.message).not.toContain('\n');
  });

  it('says a bad value came from the environment', () => {
    const err = configError(() => loadConfig({ env: { OMNI_PORT: '-1' } }));
    expect(err.message).toMatch(/^invalid setting port \(--port, OMNI_PORT\) from environment: got "-1"/);
    expect(err.setting).toBe('port');
  });

  it('requires a runtime URL for vllm-omni', () => {
    const err = configError(() => loadConfig({ env: {}, flags: { runtime: 'vllm-omni' } }));
    expect(err.message).toContain('runtime-url (--runtime-url, OMNI_RUNTIME_URL) is required when runtime is vllm-omni');
    expect(loadConfig({ env: {}, flags: { runtime: 'vllm-omni', runtimeUrl: 'http://127.0.0.1:8000' } }).runtime).toBe(
      'vllm-omni',
    );
  });

  it('requires TLS certificate and key together', () => {
    expect(configError(() => loadConfig({ env: {}, flags: { tlsCert: '/x.pem' } })).setting).toBe('tlsKey');
    expect(configError(() => loadConfig({ env: {}, flags: { tlsKey: '/k.pem' } })).setting).toBe('tlsCert');
  });

  it('rejects unknown keys, wrong types and broken JSON in a config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-cfg-'));
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    expect(configError(() => loadConfig({ env: {}, configFile: write('a.json', '{"prot": 1}') })).message).toContain(
      'unknown setting "prot"',
    );
    expect(configError(() => loadConfig({ env: {}, configFile: write('b.json', '{"port": "80"}') })).message).toContain(
      'from config file: got "80"',
    );
    expect(configError(() => loadConfig({ env: {}, configFile: write('c.json', '{port') })).message).toContain(
      'is not valid JSON',
    );
    expect(configError(() => loadConfig({ env: {}, configFile: join(dir, 'missing.json') })).message).toContain(
      'cannot read config file',
    );
  });
});

describe('command line', () => {
  it('defaults to serve and maps flags to settings', () => {
    const cli = parseCommandLine(['--port', '9000', '--log-level=debug', '--drain-timeout-ms', '5']);
    expect(cli.command).toBe('serve');
    expect(cli.flags).toEqual({ port: '9000', logLevel: 'debug', drainTimeoutMs: '5' });
  });

  it('accepts the serve command, --config, --help and --version', () => {
    const cli = parseCommandLine(['serve', '-c', 'gw.json', '--help']);
    expect(cli).toMatchObject({ command: 'serve', configFile: 'gw.json', help: true, version: false });
    expect(parseCommandLine(['-v']).version).toBe(true);
  });

  it.each([
    [['--bogus'], 'unknown option --bogus'],
    [['--port'], 'option --port needs a value'],
    [['launch'], 'unknown command "launch"; commands: serve'],
    [['serve', 'extra'], 'unexpected argument "extra"'],
  ])('rejects %j with a one-line usage error', (argv, message) => {
    expect(() => parseCommandLine(argv)).toThrow(UsageError);
    expect(() => parseCommandLine(argv)).toThrow(message);
  });
});
