// The real `omni-gateway` command as a user runs it (compiled dist/, which `npm test` builds).
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = join(import.meta.dirname, '..', 'bin', 'omni-gateway.js');
const cleanEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OMNI_')));

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { env: { ...cleanEnv, ...env }, encoding: 'utf8', timeout: 15_000 });
}

describe('omni-gateway command', () => {
  it.each([
    [['--bogus'], {}, 'omni-gateway: unknown option --bogus (see omni-gateway --help)'],
    [['--port', 'abc'], {}, 'invalid setting port (--port, OMNI_PORT) from flag: got "abc", expected an integer from 0 to 65535'],
    [[], { OMNI_RUNTIME: 'gpu' }, 'invalid setting runtime (--runtime, OMNI_RUNTIME) from environment: got "gpu", expected one of native, vllm-omni'],
    [['bench-it'], {}, 'unknown command "bench-it"'],
  ])('exits 2 with one line for %j %j', (args, env, message) => {
    const r = run(args, env);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(message);
  });

  it('exits 2 naming the setting when a TLS file cannot be read', () => {
    const r = run(['--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem', '--port', '0']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('invalid setting tls-cert (--tls-cert, OMNI_TLS_CERT): cannot read /nonexistent/cert.pem');
  });

  it('prints help listing every setting with its flag and environment variable', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    for (const token of ['--port', 'OMNI_PORT', '--drain-timeout-ms', 'OMNI_RUNTIME_URL', 'Exit codes']) {
      expect(r.stdout).toContain(token);
    }
  });

  it('prints its version', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+\n$/);
  });

  it('serves, answers /healthz, and exits 0 on SIGTERM within the drain bound', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'omni-cli-'));
    const cfg = join(dir, 'gw.json');
    writeFileSync(cfg, JSON.stringify({ drainTimeoutMs: 1500, modelCache: join(dir, 'cache') }));
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--config', cfg], {
      env: cleanEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (d: Buffer) => {
        stderr += d.toString();
        const m = /listening on (http:\/\/\S+)/.exec(stderr);
        if (m?.[1]) resolve(m[1]);
      });
      child.once('exit', () => reject(new Error(`exited early: ${stderr}`)));
    });
    const res = await fetch(`${url}/healthz`);
    expect(await res.json()).toEqual({ status: 'ok' });
    // No model configured: the demo checkpoint is made and loaded in the background.
    let ready: { ready?: boolean; runtime?: { detail?: string } } = {};
    for (let i = 0; i < 100 && !ready.ready; i++) {
      ready = (await (await fetch(`${url}/readyz`)).json()) as typeof ready;
      if (!ready.ready) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready.ready).toBe(true);
    expect(ready.runtime?.detail).toMatch(/random weights/);

    const t0 = Date.now();
    child.kill('SIGTERM');
    const [code] = (await once(child, 'exit')) as [number | null];
    expect(code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1500 + 1000);
    const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { msg: string; signal?: string });
    expect(lines.find((l) => l.msg === 'shutting down')?.signal).toBe('SIGTERM');
    expect(lines.some((l) => l.msg === 'shutdown complete')).toBe(true);
  });
});
