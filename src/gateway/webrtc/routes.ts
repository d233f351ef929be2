// The WebRTC call endpoints (realtime-protocol.md §1.1, §1.4):
//   POST /v1/realtime/calls               raw `application/sdp` offer, or multipart/form-data with
//                                         `sdp` and `session` (a GA session object); answers 201
//                                         with the SDP answer and `Location: /v1/realtime/calls/rtc_...`
//   POST /v1/realtime/calls/{id}/hangup   ends the call
// Authentication: `Authorization: Bearer` with an API key, or an ephemeral `ek_` client secret
// (whose attached session configures the call). Errors are JSON `{error:{message,type,code,param}}`.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayConfig } from '../../config/settings.js';
import { sharedTokenizer } from '../../fusion/model_input.js';
import type { RuntimeBackend } from '../../runtime/contract.js';
import { ApiKeys, presentedKey } from '../auth/api_keys.js';
import { ClientSecrets } from '../realtime/client_secrets.js';
import { gaDialect } from '../realtime/dialects/index.js';
import { newId } from '../realtime/ids.js';
import { ProtocolError, type SessionConfig } from '../realtime/model.js';
import { configuredLimits, type RealtimeSession, type SessionLimits } from '../realtime/session.js';
import { CallRegistry, RtcCall } from './call.js';
import { InvalidOfferError, type MediaEdge } from './media.js';
import { MultipartError, parseMultipart } from './multipart.js';
import { WrtcEdge, type IceServer } from './wrtc_peer.js';

export const CALLS_PATH = '/v1/realtime/calls';
/** Largest request body: an SDP offer is a few KiB; a session with tools may be larger. */
export const MAX_CALL_BODY_BYTES = 1024 * 1024;

export interface WebRtcDeps {
  config: GatewayConfig;
  runtime: RuntimeBackend;
  /** The gateway's client-secret verifier (the one that signs `ek_` tokens). */
  secrets?: ClientSecrets;
  /** Where live calls are kept (shared with the sideband WebSocket); a new one by default. */
  calls?: CallRegistry;
  /** The media edge; default: in-process libwebrtc (@roamhq/wrtc). */
  edge?: MediaEdge;
  /** STUN/TURN servers for the default edge's ICE gathering. */
  iceServers?: IceServer[];
  limits?: Partial<SessionLimits>;
  /** Live sessions of every transport (the gateway's `realtimeSessions`). */
  sessions?: Set<RealtimeSession>;
  onBargeIn?: (info: { detectedAt: number; responseId: string }) => void;
}

type ErrorType = 'invalid_request_error' | 'server_error' | 'not_found_error';

function sendError(reply: FastifyReply, status: number, type: ErrorType, code: string | null, message: string, param: string | null = null): FastifyReply {
  return reply.code(status).type('application/json').send({ error: { message, type, code, param } });
}

/**
 * Registers the call routes in their own scope (their body parsers stay local) and returns the
 * registry of live calls, which the WebSocket transport uses for `?call_id=`.
 */
export function registerWebRtcRoutes(app: FastifyInstance, deps: WebRtcDeps): CallRegistry {
  const calls = deps.calls ?? new CallRegistry();
  const keys = ApiKeys.parse(deps.config.apiKeys);
  const secrets = deps.secrets ?? new ClientSecrets(deps.config.clientSecretKey);
  const models = deps.config.servedModels.split(',');
  const edge = deps.edge ?? new WrtcEdge(deps.iceServers ? { iceServers: deps.iceServers } : {});
  const tokenizer = sharedTokenizer();
  const limits = configuredLimits(deps.config, deps.limits);

  /** Checks the credential; answers 401 itself and returns undefined when it fails. */
  function authenticate(request: FastifyRequest, reply: FastifyReply): { session?: Record<string, unknown> } | undefined {
    const key = presentedKey(request.headers);
    if (key !== undefined && ClientSecrets.looksLike(key)) {
      const check = secrets.verify(key);
      if (check.ok) return check.session ? { session: check.session } : {};
      if (!keys.open || check.reason === 'expired') {
        const message = check.reason === 'expired' ? 'The client secret has expired.' : 'Incorrect API key provided.';
        sendError(reply, 401, 'invalid_request_error', 'invalid_api_key', message);
        return undefined;
      }
      return {};
    }
    if (keys.open) return {};
    if (key === undefined) {
      sendError(reply, 401, 'invalid_request_error', null, 'Missing bearer or basic authentication in header');
      return undefined;
    }
    if (!keys.accepts(key)) {
      sendError(reply, 401, 'invalid_request_error', 'invalid_api_key', 'Incorrect API key provided.');
      return undefined;
    }
    return {};
  }

  /** The call's session: defaults, then the client secret's session, then the request's. */
  function sessionConfig(sessions: Record<string, unknown>[]): SessionConfig {
    let model = models[0]!;
    for (const s of sessions) if (typeof s.model === 'string') model = s.model;
    if (!models.includes(model)) throw new ProtocolError('invalid_model', `Model "${model}" is not served here; served models: ${models.join(', ')}`, 'session.model');
    const expiresAt = Math.floor(Date.now() / 1000) + deps.config.sessionMaxMinutes * 60;
    let config = gaDialect.initialConfig({ id: newId('sess'), model, expiresAt, defaultVoice: 'Cherry' });
    for (const session of sessions) {
      const { model: _model, ...rest } = session;
      const command = gaDialect.parse({ type: 'session.update', session: rest }, config);
      if (command.type !== 'session.update') throw new ProtocolError('invalid_value', 'session must be a session object', 'session');
      config = { ...config, ...command.patch, passthrough: { ...config.passthrough, ...command.patch.passthrough } };
    }
    return config;
  }

  void app.register((scope, _opts, registered) => {
    scope.addContentTypeParser('application/sdp', { parseAs: 'string', bodyLimit: MAX_CALL_BODY_BYTES }, (_req, body, done) => done(null, body));
    scope.addContentTypeParser('multipart/form-data', { parseAs: 'buffer', bodyLimit: MAX_CALL_BODY_BYTES }, (_req, body, done) => done(null, body));

    scope.post(CALLS_PATH, { bodyLimit: MAX_CALL_BODY_BYTES }, async (request, reply) => {
      const auth = authenticate(request, reply);
      if (!auth) return reply;
      const contentType = String(request.headers['content-type'] ?? '');
      const mediaType = contentType.split(';')[0]!.trim().toLowerCase();
      let sdp: string;
      const sessions: Record<string, unknown>[] = auth.session ? [auth.session] : [];
      if (mediaType === 'application/sdp') {
        sdp = typeof request.body === 'string' ? request.body : '';
      } else if (mediaType === 'multipart/form-data') {
        try {
          const parts = parseMultipart(request.body as Buffer, contentType);
          const sdpPart = parts.find((p) => p.name === 'sdp');
          if (!sdpPart) return sendError(reply, 400, 'invalid_request_error', 'missing_required_parameter', "Missing required parameter: 'sdp'.", 'sdp');
          sdp = sdpPart.data.toString('utf8');
          const sessionPart = parts.find((p) => p.name === 'session');
          if (sessionPart) {
            let session: unknown;
            try {
              session = JSON.parse(sessionPart.data.toString('utf8'));
            } catch (err) {
              return sendError(reply, 400, 'invalid_request_error', 'invalid_json', `the session part is not valid JSON: ${(err as Error).message}`, 'session');
            }
            if (typeof session !== 'object' || session === null || Array.isArray(session)) {
              return sendError(reply, 400, 'invalid_request_error', 'invalid_type', 'session must be a JSON object', 'session');
            }
            sessions.push(session as Record<string, unknown>);
          }
        } catch (err) {
          if (err instanceof MultipartError) return sendError(reply, 400, 'invalid_request_error', 'invalid_multipart', err.message, null);
          throw err;
        }
      } else {
        return sendError(reply, 400, 'invalid_request_error', 'unsupported_content_type', "the body must be an SDP offer ('application/sdp') or multipart/form-data with 'sdp' and 'session'", null);
      }

      let config: SessionConfig;
      try {
        config = sessionConfig(sessions);
      } catch (err) {
        if (err instanceof ProtocolError) return sendError(reply, 400, err.errorType, err.code, err.message, err.param);
        throw err;
      }
      let call: RtcCall;
      try {
        call = await RtcCall.open({
          config,
          runtime: deps.runtime,
          tokenizer,
          edge,
          offerSdp: sdp,
          limits,
          maxMinutes: deps.config.sessionMaxMinutes,
          ...(deps.onBargeIn ? { onBargeIn: deps.onBargeIn } : {}),
          onEnded: (ended) => {
            calls.delete(ended);
            deps.sessions?.delete(ended.session);
          },
          log: request.log,
        });
      } catch (err) {
        if (err instanceof InvalidOfferError) return sendError(reply, 400, 'invalid_request_error', 'invalid_offer', err.message, 'sdp');
        throw err;
      }
      calls.add(call);
      deps.sessions?.add(call.session);
      request.log.info({ callId: call.id, model: config.model }, 'webrtc call started');
      return reply.code(201).header('location', `${CALLS_PATH}/${call.id}`).type('application/sdp').send(call.answerSdp);
    });

    scope.post<{ Params: { id: string } }>(`${CALLS_PATH}/:id/hangup`, async (request, reply) => {
      if (!authenticate(request, reply)) return reply;
      const call = calls.get(request.params.id);
      if (!call) return sendError(reply, 404, 'invalid_request_error', 'call_not_found', `no call has id '${request.params.id}'`, 'call_id');
      call.end('hangup');
      return reply.code(200).send();
    });

    // Calls end when the gateway starts closing (like WebSocket sessions, told first), and at the
    // latest when it has closed.
    const shutdown = (): void => calls.closeAll('server shutting down', new ProtocolError('server_shutting_down', 'The server is shutting down.', null, 'server_error'));
    scope.addHook('preClose', (done) => {
      shutdown();
      done();
    });
    scope.addHook('onClose', (_instance, done) => {
      shutdown();
      done();
    });
    registered();
  });
  return calls;
}
