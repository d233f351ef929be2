// `omni-gateway runtime`: a runtime node. Serves the native engine (the configured checkpoint, or
// the demo checkpoint as the server does) to gateways over the binary WebSocket protocol of
// src/runtime/node/ (docs/runtime-protocol.md); JSON logs on stdout, one line per event.
import { pino } from 'pino';
import type { GatewayConfig } from '../config/settings.js';
import { NativeRuntime } from '../runtime/native.js';
import { RuntimeNodeServer } from '../runtime/node/server.js';

export interface RuntimeNodeCommand {
  host: string;
  port: number;
}

export interface RunningNode {
  server: RuntimeNodeServer;
  url: string;
  /** Settles with the exit code once a signal-initiated shutdown has finished. */
  exited: Promise<number>;
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export async function runRuntimeNode(config: GatewayConfig, listen: RuntimeNodeCommand): Promise<RunningNode> {
  const log = pino({ level: config.logLevel, base: { component: 'runtime-node' } });
  const runtime = new NativeRuntime({ model: config.model, modelCache: config.modelCache || undefined, threads: config.engineThreads || undefined });
  const server = new RuntimeNodeServer({
    runtime,
    secret: config.runtimeSecret,
    maxSessions: config.nodeMaxSessions,
    healthTimeoutMs: config.runtimeHealthTimeoutMs,
    log,
  });
  const bound = await server.listen(listen.host, listen.port);
  if (!config.runtimeSecret && !LOOPBACK.test(listen.host)) {
    log.warn({ host: listen.host }, 'no --runtime-secret: any client that reaches this address can use the engine');
  }
  const t0 = performance.now();
  runtime.start().then(
    (engine) => log.info({ model: runtime.modelDir, demo: !config.model, layers: engine.spec.numLayers, ms: Math.round(performance.now() - t0) }, 'native engine ready'),
    (err: unknown) => log.error({ err, model: runtime.modelDir }, 'the native engine could not load the checkpoint'),
  );
  const exited = new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        resolve(1);
        return;
      }
      signalled = true;
      log.info({ signal, sessions: server.load.activeSessions }, 'runtime node shutting down');
      server
        .close()
        .then(() => runtime.close())
        .then(
          () => resolve(0),
          () => resolve(1),
        );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  process.stderr.write(
    `omni-gateway runtime listening on ${bound.url} (model ${config.model || 'demo checkpoint'}, ${config.nodeMaxSessions > 0 ? `at most ${config.nodeMaxSessions} sessions` : 'no session limit'}, ${config.runtimeSecret ? 'secret required' : 'no secret'})\n`,
  );
  return { server, url: bound.url, exited };
}
