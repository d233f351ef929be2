// Browser origins allowed to use the gateway. Browsers send `Origin` on cross-origin fetches and
// on every WebSocket upgrade; a request whose Origin is not allowed is refused with 403 before
// any work (no upgrade, no session), and CORS answers name only allowed origins. Requests without
// an Origin (servers, devices, the SDKs on Node) are not browser requests and pass.
import cors from '@fastify/cors';
import type { FastifyInstance } from 'fastify';

export class AllowedOrigins {
  private readonly list: ReadonlySet<string>;

  constructor(spec: string) {
    this.list = new Set(
      spec
        .split(',')
        .map((o) => o.trim().replace(/\/+$/, ''))
        .filter(Boolean),
    );
  }

  /** No list: any origin (local use). */
  get any(): boolean {
    return this.list.size === 0;
  }

  allows(origin: string | undefined): boolean {
    return origin === undefined || this.any || this.list.has(origin);
  }
}

export async function registerOriginChecks(app: FastifyInstance, origins: AllowedOrigins): Promise<void> {
  await app.register(cors, {
    origin: (origin, cb) => cb(null, origins.allows(origin)),
    methods: ['GET', 'POST', 'OPTIONS'],
    allowedHeaders: ['authorization', 'content-type', 'openai-beta', 'x-request-id', 'api-key'],
    exposedHeaders: ['location', 'x-request-id'],
    maxAge: 600,
  });
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (typeof origin === 'string' && !origins.allows(origin)) {
      await reply.code(403).send({ error: { type: 'invalid_request_error', code: 'origin_not_allowed', message: `origin ${origin} is not allowed to use this gateway`, param: null } });
    }
  });
}
