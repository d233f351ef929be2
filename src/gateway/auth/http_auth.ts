// Authentication and per-key limits for the HTTP APIs (chat completions): the same keys and
// ephemeral secrets as the realtime endpoints. A refused request gets OpenAI's error shape: 401
// for a missing or wrong key, 429 for a spent per-key budget or too many requests at once.
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ClientSecrets } from '../realtime/client_secrets.js';
import type { ProtocolError } from '../realtime/model.js';
import { presentedKey, type ApiKeys } from './api_keys.js';

function refuse(reply: FastifyReply, status: number, code: string | null, message: string): FastifyReply {
  return reply.code(status).send({ error: { type: 'invalid_request_error', code, message, param: null } });
}

/** A preHandler hook: checks the credential, counts the request and holds a session slot until the response ends. */
export function httpAuth(keys: ApiKeys, secrets: ClientSecrets) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const key = presentedKey(request.headers);
    if (key !== undefined && ClientSecrets.looksLike(key)) {
      const check = secrets.verify(key);
      if (!check.ok) return void refuse(reply, 401, 'invalid_api_key', check.reason === 'expired' ? 'The client secret has expired.' : 'Incorrect client secret provided.');
      return;
    }
    if (keys.open) return;
    if (key === undefined) return void refuse(reply, 401, null, 'Missing bearer or basic authentication in header');
    const entry = keys.find(key);
    if (!entry) return void refuse(reply, 401, 'invalid_api_key', 'Incorrect API key provided.');
    try {
      entry.usage.request();
      const release = entry.usage.openSession();
      reply.raw.once('close', release);
    } catch (err) {
      const e = err as ProtocolError;
      return void refuse(reply, 429, e.code, e.message);
    }
  };
}
