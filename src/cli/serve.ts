// `omni-gateway serve`: start the gateway and shut it down gracefully on SIGINT/SIGTERM.
import type { GatewayConfig } from '../config/settings.js';
import { buildGateway, type Gateway } from '../gateway/app.js';
import { createRuntime } from '../runtime/create.js';
import { NativeRuntime } from '../runtime/native.js';
import { RuntimePool } from '../runtime/pool.js';

export interface RunningGateway {
  gateway: Gateway;
  url: string;
  /** Settles with the exit code once a signal-initiated shutdown has finished. */
  exited: Promise<number>;
}

export async function serve(config: GatewayConfig): Promise<RunningGateway> {
  const runtime = createRuntime(config);
  const gateway = await buildGateway({ config, runtime });
  const { app } = gateway;
  // Per-engine metrics of a runtime pool join the gateway's /metrics.
  if (runtime instanceof RuntimePool) runtime.metrics.registerOn(gateway.metrics.registry);
  const url = await app.listen({ host: config.host, port: config.port });
  if (runtime instanceof NativeRuntime) {
    // Loads in the background: /readyz answers 503 with the reason until the engine is up.
    const t0 = performance.now();
    runtime.start().then(
      (engine) => app.log.info({ model: runtime.modelDir, demo: !config.model, layers: engine.spec.numLayers, ms: Math.round(performance.now() - t0) }, config.model ? 'native engine ready' : 'native engine ready with the demo checkpoint (random weights: its words are noise)'),
      (err: unknown) => app.log.error({ err, model: runtime.modelDir }, 'the native engine could not load the checkpoint'),
    );
  }

  const exited = new Promise<number>((resolve) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        app.log.warn({ signal }, 'second signal: exiting without waiting for the drain');
        resolve(1);
        return;
      }
      signalled = true;
      app.log.info({ signal, drainTimeoutMs: config.drainTimeoutMs, sessions: gateway.connections.size }, 'shutting down');
      gateway.close(`server shutting down (${signal})`).then(
        (report) => {
          app.log.info(report, 'shutdown complete');
          resolve(0);
        },
        (err: unknown) => {
          app.log.error({ err }, 'shutdown failed');
          resolve(1);
        },
      );
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });

  const health = await runtime.health(config.runtimeHealthTimeoutMs);
  const readiness = health.reachable && health.modelLoaded ? 'ready' : `not ready: ${health.detail}`;
  process.stderr.write(`omni-gateway listening on ${url} (runtime ${runtime.kind}, ${readiness})\n`);
  return { gateway, url, exited };
}
