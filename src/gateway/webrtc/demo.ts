// `/demo`: the browser voice-agent page (examples/demo/), served by the gateway so it shares the
// gateway's origin (no CORS, and 127.0.0.1 is a secure context for getUserMedia). Static files,
// no build step: index.html and app.js, read once at registration.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
};

/** examples/demo/ from src/gateway/webrtc/ (vitest) or dist/gateway/webrtc/ (built); undefined if not installed. */
export function demoDirectory(): string | undefined {
  for (const up of ['../../../examples/demo/', '../../../../examples/demo/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(`${dir}index.html`) && existsSync(`${dir}app.js`)) return dir;
  }
  return undefined;
}

/** GET /demo (the page) and GET /demo/app.js; a 404 that says why when the page is not installed. */
export function registerDemoRoute(app: FastifyInstance, options: { directory?: string } = {}): void {
  const dir = options.directory ?? demoDirectory();
  if (!dir) {
    app.get('/demo', async (_req, reply) =>
      reply.code(404).send({ error: { type: 'not_found_error', code: 'not_found', message: 'the demo page (examples/demo/) is not installed with this gateway', param: null } }),
    );
    return;
  }
  const body = Object.fromEntries(Object.keys(FILES).map((name) => [name, readFileSync(`${dir}/${name}`)]));
  const serve = (name: string) => async (_req: unknown, reply: FastifyReply) =>
    reply.type(FILES[name]!).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').send(body[name]);
  app.get('/demo', serve('index.html'));
  app.get('/demo/', serve('index.html'));
  app.get('/demo/app.js', serve('app.js'));
}
