// Start a real gateway on a free loopback port, capturing its JSON logs.
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config/load.js';
import type { GatewayConfig, SettingKey } from '../../src/config/settings.js';
import { buildGateway, type Gateway } from '../../src/gateway/app.js';
import type { RuntimeBackend } from '../../src/runtime/contract.js';
import { createRuntime } from '../../src/runtime/create.js';

export interface TestGateway {
  gateway: Gateway;
  url: string;
  wsUrl: string;
  config: GatewayConfig;
  logs: string[];
}

export async function startTestGateway(
  flags: Partial<Record<SettingKey, string>> = {},
  extra: { routes?: (app: FastifyInstance, gateway: Gateway) => void | Promise<void>; runtime?: RuntimeBackend } = {},
): Promise<TestGateway> {
  const config = loadConfig({ flags: { port: '0', logLevel: 'info', ...flags }, env: {} });
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  const gateway = await buildGateway({
    config,
    runtime: extra.runtime ?? createRuntime(config),
    logStream,
    ...(extra.routes ? { routes: extra.routes } : {}),
  });
  const url = await gateway.app.listen({ host: '127.0.0.1', port: 0 });
  return { gateway, url, wsUrl: url.replace(/^http/, 'ws'), config, logs };
}
