// Structured JSON logs (pino through Fastify). Credentials never reach a log line: auth headers
// are not logged at all, the WebSocket subprotocol header (which can carry a browser's key) is
// redacted, and secret-looking query parameters are masked in logged URLs.
import { randomUUID } from 'node:crypto';
import { LogController, type FastifyServerOptions, type RawRequestDefaultExpression } from 'fastify';
import type { DestinationStream, LoggerOptions } from 'pino';

const SECRET_QUERY_KEYS = /^(api[-_]?key|key|token|access[-_]?token|client[-_]?secret|secret|password|auth|authorization)$/i;

/** Mask the values of secret-looking query parameters; leave the path untouched. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const params = url
    .slice(q + 1)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=');
      const key = eq < 0 ? pair : pair.slice(0, eq);
      let name = key;
      try {
        name = decodeURIComponent(key);
      } catch {
        /* keep raw */
      }
      return eq >= 0 && SECRET_QUERY_KEYS.test(name) ? `${key}=[REDACTED]` : pair;
    });
  return `${url.slice(0, q)}?${params.join('&')}`;
}

const PROBE_PATHS = new Set(['/healthz', '/readyz', '/metrics']);

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Keep a caller's well-formed `x-request-id` for tracing across services; otherwise mint one. */
export function requestId(req: RawRequestDefaultExpression): string {
  const given = req.headers['x-request-id'];
  return typeof given === 'string' && REQUEST_ID.test(given) ? given : `req_${randomUUID()}`;
}

export function loggerOptions(level: string, stream?: DestinationStream): LoggerOptions & { stream?: DestinationStream } {
  return {
    level,
    base: { service: 'omni-gateway' },
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["api-key"]',
        'req.headers["x-api-key"]',
        'req.headers.cookie',
        'req.headers["sec-websocket-protocol"]',
      ],
      censor: '[REDACTED]',
    },
    serializers: {
      req(req: { method?: string; url?: string; ip?: string; headers?: Record<string, unknown> }) {
        return {
          method: req.method,
          url: req.url ? redactUrl(req.url) : undefined,
          remoteAddress: req.ip,
          userAgent: req.headers?.['user-agent'],
        };
      },
    },
    ...(stream ? { stream } : {}),
  };
}

export function fastifyLogOptions(level: string, stream?: DestinationStream): Partial<FastifyServerOptions> {
  return {
    logger: loggerOptions(level, stream),
    genReqId: requestId,
    logController: new LogController({
      requestIdLogLabel: 'request_id',
      // Probes and scrapes arrive every few seconds; logging each would drown the real traffic.
      disableRequestLogging: (req: { url?: string }) => PROBE_PATHS.has((req.url ?? '').split('?')[0] ?? ''),
    }),
  };
}
