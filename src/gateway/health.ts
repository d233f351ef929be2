// Liveness and readiness. /healthz says the process serves HTTP; /readyz says it can take work:
// not draining, and the runtime reachable with a model loaded. Concurrent probes share one
// runtime check so a burst of probes never becomes a burst of upstream requests.
import type { FastifyInstance } from 'fastify';
import type { RuntimeBackend, RuntimeHealth } from '../runtime/contract.js';

export interface ReadinessState {
  draining: boolean;
}

export function registerHealthRoutes(
  app: FastifyInstance,
  runtime: RuntimeBackend,
  state: ReadinessState,
  probeTimeoutMs: number,
): void {
  let inFlight: Promise<RuntimeHealth> | undefined;
  const probe = () => {
    inFlight ??= runtime.health(probeTimeoutMs).finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  };

  app.get('/healthz', () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    if (state.draining) {
      return reply.code(503).send({ ready: false, reason: 'draining: the gateway is shutting down' });
    }
    const health = await probe();
    const ready = health.reachable && health.modelLoaded;
    return reply.code(ready ? 200 : 503).send({
      ready,
      runtime: { backend: runtime.kind, ...health },
    });
  });
}
