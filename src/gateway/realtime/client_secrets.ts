// Ephemeral client secrets (`POST /v1/realtime/client_secrets`): a server holding an API key mints
// a short-lived `ek_...` token for a browser, optionally with the session configuration the
// browser's session starts with. Tokens are signed (HMAC-SHA256), not stored, so any gateway
// process sharing the signing key accepts them.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { GatewayConfig } from '../../config/settings.js';
import { ApiKeys, presentedKey } from '../auth/api_keys.js';
import { errorBody } from '../errors.js';
import { gaDialect } from './dialects/index.js';
import { newId } from './ids.js';
import { ProtocolError } from './model.js';

export const DEFAULT_SECRET_SECONDS = 600;
const MIN_SECONDS = 10;
const MAX_SECONDS = 7200;
const PREFIX = 'ek_';

interface SecretClaims {
  /** Expiry, unix seconds. */
  exp: number;
  /** The GA session object to start with (validated when minted). */
  session?: Record<string, unknown>;
}

export type SecretCheck = { ok: true; session?: Record<string, unknown> } | { ok: false; reason: 'invalid' | 'expired' };

export class ClientSecrets {
  private readonly key: Buffer;

  constructor(key: string) {
    // Without a configured key, secrets are valid in this process only.
    this.key = key ? Buffer.from(key, 'utf8') : randomBytes(32);
  }

  issue(claims: SecretClaims): string {
    const body = Buffer.from(JSON.stringify(claims), 'utf8').toString('base64url');
    return `${PREFIX}${body}.${this.sign(body)}`;
  }

  static looksLike(token: string): boolean {
    return token.startsWith(PREFIX);
  }

  verify(token: string, now = Date.now()): SecretCheck {
    if (!token.startsWith(PREFIX)) return { ok: false, reason: 'invalid' };
    const [body, sig] = token.slice(PREFIX.length).split('.');
    if (!body || !sig) return { ok: false, reason: 'invalid' };
    const expected = Buffer.from(this.sign(body), 'utf8');
    const given = Buffer.from(sig, 'utf8');
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) return { ok: false, reason: 'invalid' };
    let claims: SecretClaims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as SecretClaims;
    } catch {
      return { ok: false, reason: 'invalid' };
    }
    if (typeof claims.exp !== 'number' || claims.exp * 1000 <= now) return { ok: false, reason: 'expired' };
    return { ok: true, ...(claims.session ? { session: claims.session } : {}) };
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

function badRequest(message: string, param: string | null): ReturnType<typeof errorBody> {
  return errorBody('invalid_request', message, param);
}

/** `POST /v1/realtime/client_secrets`: needs a real API key (not an ephemeral one). */
export function registerClientSecretRoute(app: FastifyInstance, config: GatewayConfig, secrets: ClientSecrets, keys: ApiKeys = ApiKeys.parse(config.apiKeys)): void {
  const models = new Set(config.servedModels.split(','));
  app.post('/v1/realtime/client_secrets', async (request, reply) => {
    const key = presentedKey(request.headers);
    if (!keys.open && (key === undefined || ClientSecrets.looksLike(key) || !keys.accepts(key))) {
      return reply.code(401).send({ error: { type: 'invalid_request_error', code: 'invalid_api_key', message: 'Incorrect API key provided.', param: null } });
    }
    const body = (request.body ?? {}) as Record<string, unknown>;
    if (typeof body !== 'object' || Array.isArray(body)) return reply.code(400).send(badRequest('the body must be a JSON object', null));
    const unknown = Object.keys(body).find((k) => k !== 'expires_after' && k !== 'session');
    if (unknown) return reply.code(400).send(badRequest(`Unknown parameter: '${unknown}'.`, unknown));
    let seconds = DEFAULT_SECRET_SECONDS;
    const after = body.expires_after as Record<string, unknown> | undefined;
    if (after !== undefined) {
      if (typeof after !== 'object' || after === null || (after.anchor !== undefined && after.anchor !== 'created_at')) {
        return reply.code(400).send(badRequest("expires_after must be { anchor: 'created_at', seconds }", 'expires_after'));
      }
      const s = after.seconds;
      if (typeof s !== 'number' || !Number.isInteger(s) || s < MIN_SECONDS || s > MAX_SECONDS) {
        return reply.code(400).send(badRequest(`expires_after.seconds must be an integer from ${MIN_SECONDS} to ${MAX_SECONDS}`, 'expires_after.seconds'));
      }
      seconds = s;
    }
    const session = (body.session ?? { type: 'realtime' }) as Record<string, unknown>;
    const model = typeof session.model === 'string' ? session.model : [...models][0]!;
    if (!models.has(model)) return reply.code(400).send(badRequest(`Model "${model}" is not served here`, 'session.model'));
    const { model: _m, ...rest } = session;
    const base = gaDialect.initialConfig({ id: newId('sess'), model, expiresAt: Math.floor(Date.now() / 1000) + seconds, defaultVoice: 'Cherry' });
    try {
      const command = gaDialect.parse({ type: 'session.update', session: rest }, base);
      if (command.type !== 'session.update') throw new ProtocolError('invalid_value', 'session must be a session object', 'session');
      const config = { ...base, ...command.patch, passthrough: { ...base.passthrough, ...command.patch.passthrough } };
      const exp = Math.floor(Date.now() / 1000) + seconds;
      const value = secrets.issue({ exp, session: rest });
      const [rendered] = gaDialect.render({ type: 'session.created', session: config });
      return reply.code(200).send({ value, expires_at: exp, session: (rendered as { session: unknown }).session });
    } catch (err) {
      if (err instanceof ProtocolError) return reply.code(400).send({ error: { type: err.errorType, code: err.code, message: err.message, param: err.param } });
      throw err;
    }
  });
}
