// POST /v1/chat/completions (OpenAI) and POST /compatible-mode/v1/chat/completions (DashScope's
// compatible mode: stream only, `audio.format: "wav"` streamed as raw PCM16). A request is checked
// and its media decoded before anything is sent, so every request error is a JSON 400; a session
// of the runtime serves exactly one request and is closed when it ends or the client goes away
// (a disconnect cancels the generation within one step).
import { Readable } from 'node:stream';
import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { QwenTokenizer } from '../../codecs/text/tokenizer.js';
import type { RuntimeBackend } from '../../runtime/contract.js';
import { AudioTranscriptStore } from './audio_store.js';
import { CompletionRun, newId, type ChatRun, type CompletionDeps } from './completion.js';
import { ChatError, invalidRequest, sendChatError, toChatError } from './errors.js';
import { toInputMessages } from './messages.js';
import { resolveChatOptions, type ChatDialect, type ChatOptions } from './options.js';
import { collectReply, completionBody } from './response.js';
import { ChatCompletionBody } from './schema.js';
import { ChunkStream, SSE_DONE, sseEvent } from './stream.js';
import { TurnCompletionRun } from './turn_completion.js';
import { toTurnMessages } from './turn_messages.js';
import { issueToError, type SchemaIssue } from './validation.js';

/**
 * Largest request body: base64 media inflate by 4/3, so this carries ~48 MiB of media. The body's
 * JSON parse and base64 decode run on the event loop (roughly 10-20 ms per MiB on a small
 * machine), so this bound is also the longest stall one request can cause.
 */
export const CHAT_BODY_LIMIT_BYTES = 21 * 1024 * 1024;

export interface ChatRoutesDeps {
  runtime: RuntimeBackend;
  /** Shared tokenizer (loaded here when absent). */
  tokenizer?: QwenTokenizer;
  /** Transcripts of spoken replies for `{role: "assistant", audio: {id}}` (one per app when absent). */
  transcripts?: AudioTranscriptStore;
  /** Largest request body in bytes (default CHAT_BODY_LIMIT_BYTES); larger is a 413. */
  bodyLimit?: number;
}

export const CHAT_ROUTES: Readonly<Record<ChatDialect, string>> = {
  openai: '/v1/chat/completions',
  dashscope: '/compatible-mode/v1/chat/completions',
};

/** Aborts when the client closes the connection before the response has been sent in full. */
function clientGone(request: FastifyRequest, reply: FastifyReply): AbortController {
  const gone = new AbortController();
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) gone.abort(new ChatError(499, 'client_closed_request', 'the client closed the connection'));
  });
  return gone;
}

/** SSE text of a streamed completion; a failure mid-stream becomes an `error` event. */
async function* sseText(run: ChatRun, chunks: ChunkStream, onDone: (transcript: string) => void, log: FastifyRequest['log']): AsyncGenerator<string> {
  yield sseEvent(chunks.first());
  let transcript = '';
  try {
    for await (const e of run.events()) {
      if (e.type === 'text') transcript += e.delta;
      for (const c of chunks.next(e)) yield sseEvent(c);
      if (e.type === 'done') onDone(transcript);
    }
  } catch (err) {
    const e = toChatError(err);
    if (e.status >= 500) log.error({ err }, 'chat completion failed mid-stream');
    yield sseEvent(e.body());
    return;
  }
  yield SSE_DONE;
}

async function handle(dialect: ChatDialect, deps: Required<ChatRoutesDeps>, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  if (request.validationError) {
    const issues = ((request.validationError as Error & { validation?: SchemaIssue[] }).validation ?? []);
    return sendChatError(reply, issueToError(issues));
  }
  const body = request.body as ChatCompletionBody;
  const gone = clientGone(request, reply);
  let run: ChatRun;
  let options: ChatOptions;
  try {
    const caps = await deps.runtime.capabilities().catch((err: unknown) => {
      // The model could not be loaded (or the backend is down): the gateway cannot serve, say so.
      reply.log.error({ err }, 'runtime capabilities unavailable');
      throw new ChatError(503, 'runtime_unavailable', 'The model runtime is not available; see /readyz for the reason.');
    });
    options = resolveChatOptions(body, dialect, caps);
    const context = { capabilities: caps, transcripts: deps.transcripts, signal: gone.signal };
    if (deps.runtime.turn) {
      // A whole-turn engine (vLLM-Omni) renders the prompt and decides on reasoning itself.
      if (body.thinking?.budget_tokens !== undefined) {
        throw invalidRequest('unsupported_parameter', `'thinking.budget_tokens' needs a token-level runtime; this gateway serves turns through ${deps.runtime.kind}.`, 'thinking.budget_tokens');
      }
      run = await TurnCompletionRun.start(deps.runtime, await toTurnMessages(body.messages, context), options, gone.signal);
    } else {
      const messages = await toInputMessages(body.messages, context);
      const completion: CompletionDeps = { runtime: deps.runtime, tokenizer: deps.tokenizer };
      run = await CompletionRun.start(completion, messages, options, caps, gone.signal);
    }
  } catch (err) {
    return sendChatError(reply, gone.signal.aborted ? gone.signal.reason : err);
  }
  if (gone.signal.aborted) {
    run.close();
    return reply;
  }
  const active = run;
  gone.signal.addEventListener('abort', () => active.cancel(), { once: true });

  const id = newId('chatcmpl');
  const created = Math.floor(Date.now() / 1000);
  const audioId = options.speech ? newId('audio') : undefined;
  const expiresAt = deps.transcripts.expiryFromNow();
  /** Keeps a spoken reply's transcript so a later turn can name the audio by id. */
  const remember = (transcript: string): void => {
    if (audioId) deps.transcripts.put(audioId, transcript, expiresAt);
  };

  if (options.stream) {
    const chunks = new ChunkStream({
      id,
      created,
      model: options.model,
      dialect,
      includeUsage: options.includeUsage,
      ...(audioId ? { audio: { id: audioId, expiresAt } } : {}),
    });
    reply.header('content-type', 'text/event-stream; charset=utf-8').header('cache-control', 'no-cache').header('x-accel-buffering', 'no');
    return reply.send(Readable.from(sseText(active, chunks, remember, request.log), { objectMode: false }));
  }

  try {
    const collected = await collectReply(active.events());
    if (gone.signal.aborted) return reply;
    remember(collected.text);
    return reply.send(
      completionBody(collected, {
        id,
        created,
        model: options.model,
        ...(audioId && options.speech ? { audio: { id: audioId, format: options.speech.format, expiresAt } } : {}),
      }),
    );
  } catch (err) {
    return sendChatError(reply, err);
  }
}

/** Registers both chat completions routes on `app`. */
export function registerChatRoutes(app: FastifyInstance, deps: ChatRoutesDeps): void {
  const full: Required<ChatRoutesDeps> = {
    runtime: deps.runtime,
    tokenizer: deps.tokenizer ?? QwenTokenizer.load(),
    transcripts: deps.transcripts ?? new AudioTranscriptStore(),
    bodyLimit: deps.bodyLimit ?? CHAT_BODY_LIMIT_BYTES,
  };
  for (const dialect of Object.keys(CHAT_ROUTES) as ChatDialect[]) {
    app.post(
      CHAT_ROUTES[dialect],
      // TypeBox validates (ajv's type coercion would rewrite unions such as `content`); its
      // errors are reported by `issueToError`, hence attachValidation.
      { schema: { body: ChatCompletionBody }, validatorCompiler: TypeBoxValidatorCompiler, attachValidation: true, bodyLimit: full.bodyLimit },
      (request, reply) => handle(dialect, full, request, reply),
    );
  }
}
