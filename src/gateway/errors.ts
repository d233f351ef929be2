// The catalogue of errors the gateway sends to clients, one entry per code, in the OpenAI error
// shape `{ error: { type, code, message, param } }` that OpenAI clients already parse. Transports
// and APIs add their codes here so the wording and status of each error live in one place.
import type { FastifyError, FastifyInstance } from 'fastify';

export interface ErrorSpec {
  readonly status: number;
  readonly type: 'invalid_request_error' | 'server_error' | 'not_found_error';
}

export const ERRORS = {
  not_found: { status: 404, type: 'not_found_error' },
  invalid_request: { status: 400, type: 'invalid_request_error' },
  payload_too_large: { status: 413, type: 'invalid_request_error' },
  server_shutting_down: { status: 503, type: 'server_error' },
  internal_error: { status: 500, type: 'server_error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export interface ErrorBody {
  error: { type: string; code: ErrorCode; message: string; param: string | null };
}

export function errorBody(code: ErrorCode, message: string, param: string | null = null): ErrorBody {
  return { error: { type: ERRORS[code].type, code, message, param } };
}

/** Route-not-found and thrown errors answer in the catalogue's shape, never echoing query strings. */
export function registerErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    return reply.code(404).send(errorBody('not_found', `no route ${request.method} ${path}`));
  });

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err.validation) {
      const first = err.validation[0];
      const param = first?.instancePath ? first.instancePath.replace(/^\//, '').replace(/\//g, '.') : null;
      return reply.code(400).send(errorBody('invalid_request', err.message, param));
    }
    if (err.statusCode === 413) return reply.code(413).send(errorBody('payload_too_large', err.message));
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.code(err.statusCode).send(errorBody('invalid_request', err.message));
    }
    request.log.error({ err }, 'unhandled error');
    return reply.code(500).send(errorBody('internal_error', 'internal server error'));
  });
}
