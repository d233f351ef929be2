// RealtimeSession: the one session model behind every dialect and transport. It owns the
// effective configuration, the conversation, the input audio buffer with turn detection, pending
// image frames, the active response and the record of what each assistant item played. Client
// commands and VAD events run strictly one after another through one bounded queue, so events the
// client sent before `session.created` and turn events from the detector interleave in order.
import type { VadEvent } from '../../codecs/audio/vad_detector.js';
import { encodeAudioOutput } from '../../codecs/audio/output_encoder.js';
import type { QwenTokenizer } from '../../codecs/text/tokenizer.js';
import { buildModelInput, warmTextRuns, type InputMessage } from '../../fusion/model_input.js';
import type { RuntimeBackend, RuntimeCapabilities, TurnMessage, TurnRequest } from '../../runtime/contract.js';
import { EngineContext } from '../engine_context.js';
import { streamReply } from '../reply.js';
import { Conversation } from './conversation.js';
import { newId } from './ids.js';
import { InputAudio } from './input_audio.js';
import { DEFAULT_MEDIA_CACHE_BYTES, MediaCache, toInputMessages, toTurnMessages, type SampleStore } from './media.js';
import {
  ProtocolError,
  type ClientCommand,
  type ContentPart,
  type ConversationItem,
  type ItemInput,
  type ResponseOverrides,
  type ResponseState,
  type ServerEvent,
  type SessionConfig,
  type SessionPatch,
} from './model.js';
import type { PlaybackClock } from './playback.js';
import type { GatewayConfig } from '../../config/settings.js';
import type { KeyUsage } from '../auth/key_limits.js';
import type { TurnTrace } from '../turn_trace.js';
import { ResponseRun, templateOptions, type CancelReason } from './response.js';

/** OpenAI's built-in voice names: accepted as the model's default voice so OpenAI clients work unchanged. */
export const OPENAI_VOICES = ['alloy', 'ash', 'ballad', 'coral', 'echo', 'sage', 'shimmer', 'verse', 'marin', 'cedar'];

export interface SessionLimits {
  /** Tasks (client events, VAD events) waiting in the queue; beyond it an event is refused with an error. */
  maxQueuedEvents: number;
  /** Image frames held for the next user turn (oldest dropped first). */
  maxPendingImages: number;
  /** Bytes of featurized media (patches, log-mel features) kept for later turns; beyond it the least recently used are dropped and featurized again when needed. */
  maxCachedMediaBytes: number;
  /** Frames per second accepted from `input_image_buffer.append`. */
  maxImagesPerSecond: number;
  /** Audio held uncommitted, seconds. */
  maxBufferedAudioSeconds: number;
  /** How far speech is sent ahead of real time, ms. */
  playbackLeadMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = {
  maxQueuedEvents: 10_000,
  maxPendingImages: 8,
  maxCachedMediaBytes: DEFAULT_MEDIA_CACHE_BYTES,
  maxImagesPerSecond: 2,
  maxBufferedAudioSeconds: 900,
  playbackLeadMs: 300,
};

/** The limits a gateway's settings give its sessions (every transport), with a caller's overrides on top. */
export function configuredLimits(config: Pick<GatewayConfig, 'playbackLeadMs' | 'realtimeMediaCacheMb'>, overrides: Partial<SessionLimits> = {}): Partial<SessionLimits> {
  return { playbackLeadMs: config.playbackLeadMs, maxCachedMediaBytes: config.realtimeMediaCacheMb * 1024 * 1024, ...overrides };
}

export interface RealtimeSessionOptions {
  config: SessionConfig;
  runtime: RuntimeBackend;
  tokenizer: QwenTokenizer;
  /** Delivers a server event to the client (the transport renders it in its dialect). */
  send: (event: ServerEvent) => void;
  /** Ends the connection (after the events already sent). */
  close: (code: number, reason: string) => void;
  limits?: Partial<SessionLimits>;
  /** DashScope rule: an image needs audio appended before it. */
  imagesNeedAudio?: boolean;
  /** Observes barge-ins: speech start detected -> response cancelled (for metrics). */
  onBargeIn?: (info: { detectedAt: number; responseId: string }) => void;
  /** The API key's usage limits (requests, input audio, tokens), when the key has any. */
  keyUsage?: KeyUsage;
  /** A latency trace for a response whose turn ended at `startedAt` (performance.now() clock). */
  newTrace?: (responseId: string, startedAt: number) => TurnTrace;
}

interface AssistantAudio {
  clock: PlaybackClock;
  /** After a client truncate: the audio kept. */
  truncated?: Float32Array;
}

export class RealtimeSession {
  config: SessionConfig;
  readonly conversation = new Conversation();
  readonly limits: SessionLimits;
  private readonly input: InputAudio;
  private readonly samples: SampleStore = new WeakMap();
  private readonly media: MediaCache;
  private readonly audioOf = new Map<string, AssistantAudio>();
  /** Image frames waiting for the turn's commit (featurized as they arrive). */
  private pendingImages: (ContentPart & { type: 'input_image' })[] = [];
  /** Frames dropped at the pending bound before their patches were ready (not worth uploading). */
  private readonly droppedImages = new WeakSet<ContentPart>();
  private imageTimes: number[] = [];
  private audioAppended = false;
  private active: ResponseRun | undefined;
  private readonly outOfBand = new Set<ResponseRun>();
  /** A turn ended while a response was running (interrupt_response false): respond after it. */
  private pendingAutoResponse = false;
  /** Item id of the turn the detector is in (speech_started -> speech_stopped). */
  private turnItemId: string | undefined;
  private context: Promise<EngineContext> | undefined;
  private caps: Promise<RuntimeCapabilities> | undefined;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private audioOutputStarted = false;
  private closed = false;
  /** turn_detection.idle_timeout_ms: armed when a response ends, cleared by speech or a new response. */
  private idleTimer: NodeJS.Timeout | undefined;
  private idleFromMs = 0;
  /** Input transcriptions running on their own engine sessions (cancelled on close). */
  private readonly transcribing = new Set<EngineContext>();

  constructor(private readonly options: RealtimeSessionOptions) {
    this.config = options.config;
    this.limits = { ...DEFAULT_SESSION_LIMITS, ...options.limits };
    this.media = new MediaCache(this.samples, this.limits.maxCachedMediaBytes);
    this.input = new InputAudio({
      format: this.config.inputFormat,
      turnDetection: this.config.turnDetection,
      maxSeconds: this.limits.maxBufferedAudioSeconds,
      onVad: (e) => this.enqueue(null, () => this.onVad(e)),
      onVadError: (e) => this.sendError(new ProtocolError('server_error', `voice activity detection failed: ${e.message}`, null, 'server_error'), null),
    });
  }

  /** Sends `session.created` and starts warming the runtime (model load, engine session). */
  start(): void {
    this.options.send({ type: 'session.created', session: this.config });
    this.capabilities().catch(() => undefined);
    // Whole-turn engines (vLLM-Omni) have no session to warm up.
    if (this.options.runtime.turn) return;
    this.engineContext().catch((err: unknown) => {
      if (this.closed) return;
      // Every engine is full (a runtime pool's admission control): try again later.
      if ((err as { code?: string }).code === 'server_busy') {
        this.sendError(new ProtocolError('server_busy', (err as Error).message, null, 'server_error'), null);
        this.options.close(1013, 'server_busy');
        return;
      }
      const e = err as Error;
      this.sendError(new ProtocolError('server_error', `the model is not available: ${e.message}`, null, 'server_error'), null);
      this.options.close(1011, 'server_error.server_error');
    });
  }

  /** Runs a client command after everything queued before it. */
  submit(command: ClientCommand): void {
    this.enqueue(command.eventId, () => this.handle(command));
  }

  /**
   * Parses and runs a client event in queue order: parsing sees the configuration every earlier
   * event left (a session.update before an append changes how the append is read).
   */
  submitWith(eventId: string | null, parse: (config: SessionConfig) => ClientCommand): void {
    if (this.queued > 0 || this.closed) {
      this.enqueue(eventId, () => this.handle(parse(this.config)));
      return;
    }
    // Nothing is waiting, so this event may be parsed now, against the configuration every
    // earlier event left. An audio append (nearly all of the traffic: one per 20 ms chunk) is
    // also handled now, synchronously, which spares the queue's three promises per chunk; it
    // sends nothing on success, and its error is the same `error` event the queue would send.
    let command: ClientCommand;
    try {
      command = parse(this.config);
      if (command.type === 'input_audio_buffer.append') {
        this.appendAudio(command.audio);
        return;
      }
    } catch (err) {
      this.sendError(err, eventId);
      return;
    }
    this.enqueue(eventId, () => this.handle(command));
  }

  /** Reports a problem found before a command existed (bad JSON, unknown type...). */
  reject(error: ProtocolError, eventId: string | null): void {
    this.enqueue(eventId, () => {
      throw error;
    });
  }

  get activeResponse(): ResponseRun | undefined {
    return this.active;
  }

  /** Stops everything: responses cancelled, detector closed, engine session released. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.disarmIdle();
    for (const t of this.transcribing) t.session.cancel();
    this.active?.cancel('client_cancelled');
    for (const r of this.outOfBand) r.cancel('client_cancelled');
    this.input.close();
    void this.context?.then((c) => c.session.close()).catch(() => undefined);
  }

  private enqueue(eventId: string | null, task: () => void | Promise<void>): void {
    if (this.closed) return;
    if (this.queued >= this.limits.maxQueuedEvents) {
      this.sendError(new ProtocolError('rate_limit_exceeded', `more than ${this.limits.maxQueuedEvents} events are waiting; this one was dropped`, null), eventId);
      return;
    }
    this.queued++;
    this.queue = this.queue
      .then(task)
      .catch((err: unknown) => this.sendError(err, eventId))
      .finally(() => this.queued--);
  }

  private sendError(err: unknown, eventId: string | null): void {
    if (this.closed) return;
    const e = err as Error & { code?: string; param?: string };
    const pe =
      err instanceof ProtocolError
        ? err
        : e.code && /^[a-z_]+$/.test(e.code)
          ? new ProtocolError(e.code === 'audio_chunk_too_large' ? 'string_above_max_length' : 'invalid_value', e.message, e.param ?? null)
          : new ProtocolError('server_error', e.message, null, 'server_error');
    this.options.send({ type: 'error', error: pe.body(eventId) });
  }

  private capabilities(): Promise<RuntimeCapabilities> {
    this.caps ??= this.options.runtime.capabilities();
    return this.caps;
  }

  private engineContext(): Promise<EngineContext> {
    this.context ??= this.options.runtime.open().then((s) => {
      if (this.closed) s.close();
      return new EngineContext(s);
    });
    return this.context;
  }

  // ------------------------------------------------------------------------------------------
  // Client commands

  private async handle(c: ClientCommand): Promise<void> {
    switch (c.type) {
      case 'session.update':
        return this.update(c.patch);
      case 'input_audio_buffer.append':
        return this.appendAudio(c.audio);
      case 'input_audio_buffer.commit': {
        const samples = this.input.commitAll();
        this.turnItemId = undefined;
        this.commitTurn(newId('item'), samples);
        return;
      }
      case 'input_audio_buffer.clear':
        this.input.clear();
        this.turnItemId = undefined;
        this.options.send({ type: 'input_audio_buffer.cleared' });
        return;
      case 'input_image_buffer.append':
        return this.appendImage(c.image);
      case 'output_audio_buffer.clear': {
        const r = this.active;
        r?.clearAudio();
        this.options.send({ type: 'output_audio_buffer.cleared', response_id: r?.id ?? '' });
        return;
      }
      case 'conversation.item.create':
        return this.createItem(c.item, c.previousItemId);
      case 'conversation.item.retrieve':
        return this.retrieve(c.itemId);
      case 'conversation.item.truncate':
        return this.truncate(c.itemId, c.contentIndex, c.audioEndMs);
      case 'conversation.item.delete': {
        const item = this.conversation.get(c.itemId);
        this.conversation.delete(c.itemId);
        if (item?.type === 'message') for (const part of item.content) this.media.forget(part);
        this.audioOf.delete(c.itemId);
        this.options.send({ type: 'conversation.item.deleted', item_id: c.itemId });
        return;
      }
      case 'response.create':
        return this.createResponse(c.response);
      case 'response.cancel':
        return this.cancelResponse(c.responseId);
      case 'session.close':
        this.options.send({ type: 'session.finished' });
        this.options.close(1000, 'session finished');
        return;
    }
  }

  private appendAudio(audio: Buffer): void {
    this.options.keyUsage?.audioSeconds(audio.length / bytesPerSecond(this.config.inputFormat));
    this.input.append(audio);
    this.audioAppended = true;
  }

  private async update(patch: SessionPatch): Promise<void> {
    const next: SessionConfig = { ...this.config, ...patch, passthrough: { ...this.config.passthrough, ...patch.passthrough } };
    if (patch.voice !== undefined && patch.voice !== this.config.voice) {
      if (this.audioOutputStarted) {
        throw new ProtocolError('invalid_value', 'Cannot update a conversation\'s voice if assistant audio is present.', 'session.audio.output.voice');
      }
      await this.checkVoice(patch.voice, 'session.audio.output.voice');
    }
    if (patch.outputModalities?.includes('audio')) {
      const caps = await this.capabilities();
      if (!caps.speechOut) throw new ProtocolError('invalid_value', 'this model has no speech output; use output_modalities ["text"]', 'session.output_modalities');
    }
    this.input.configure(next.inputFormat, next.turnDetection);
    this.config = next;
    if (!next.turnDetection?.idleTimeoutMs) this.disarmIdle();
    this.options.send({ type: 'session.updated', session: this.config });
  }

  private async checkVoice(voice: string, param: string): Promise<void> {
    const caps = await this.capabilities();
    if (!caps.speechOut || caps.voices.includes(voice) || OPENAI_VOICES.includes(voice)) return;
    throw new ProtocolError('invalid_value', `unknown voice '${voice}'; this model's voices: ${caps.voices.join(', ')}`, param);
  }

  /** The runtime's name for a configured voice (OpenAI built-ins map to the model's default). */
  private async runtimeVoice(voice: string): Promise<string> {
    const caps = await this.capabilities();
    return caps.voices.includes(voice) ? voice : (caps.voices[0] ?? voice);
  }

  private appendImage(image: Buffer): void {
    if (this.options.imagesNeedAudio && !this.audioAppended) {
      throw new ProtocolError('image_before_audio', 'Error append image before append audio.', 'image');
    }
    const now = performance.now();
    this.imageTimes = this.imageTimes.filter((t) => now - t < 1000);
    if (this.imageTimes.length >= this.limits.maxImagesPerSecond) {
      throw new ProtocolError('rate_limit_exceeded', `more than ${this.limits.maxImagesPerSecond} image frames per second; this frame was dropped`, 'image');
    }
    this.imageTimes.push(now);
    const part: ContentPart & { type: 'input_image' } = { type: 'input_image', image, mime: sniffMime(image), detail: 'auto' };
    this.pendingImages.push(part);
    // Video frames are the first thing dropped at the bound: keep the newest.
    if (this.pendingImages.length > this.limits.maxPendingImages) {
      const dropped = this.pendingImages.shift()!;
      this.droppedImages.add(dropped);
      this.media.forget(dropped);
    }
    this.featurizeEarly(part);
  }

  /**
   * Patches of a frame are computed when it arrives, not when the turn ends, and a remote runtime
   * gets them ahead of the turn's append (RuntimeSession.prepare). A failure is reported when
   * the response uses the frame (featurize does not cache failures).
   */
  private featurizeEarly(part: ContentPart & { type: 'input_image' }): void {
    // Whole-turn engines (vLLM-Omni) take the image bytes, never our patches.
    if (this.options.runtime.turn) return;
    const context = this.context;
    void this.media.featurize(part, this.config.inputFormat, 'image').then(
      (media) => {
        if (this.droppedImages.has(part)) return;
        void context?.then((c) => c.prepare(media)).catch(() => undefined);
      },
      () => undefined,
    );
  }

  /** A finished user turn: its item (pending frames, then the audio), events, and maybe a response. */
  private commitTurn(itemId: string, samples: Float32Array, auto = false, turnEndedAt = performance.now()): void {
    const audio: ContentPart & { type: 'input_audio' } = { type: 'input_audio', transcript: null };
    this.samples.set(audio, samples);
    const images: ContentPart[] = this.pendingImages;
    this.pendingImages = [];
    const item: ConversationItem = { id: itemId, type: 'message', role: 'user', status: 'completed', content: [...images, audio] };
    let previous: string | null;
    try {
      previous = this.conversation.insert(item);
    } catch (err) {
      for (const image of images) this.media.forget(image); // the frames go with the refused turn
      throw err;
    }
    this.options.send({ type: 'input_audio_buffer.committed', item_id: itemId, previous_item_id: previous });
    this.announceItem(item, previous);
    // Features are computed now, while nothing waits on them.
    void this.media.featurize(audio, this.config.inputFormat, 'item').catch(() => undefined);
    if (this.config.transcription) void this.transcribe(itemId, audio, samples.length);
    if (auto && this.config.turnDetection?.createResponse) {
      if (this.active) this.pendingAutoResponse = true;
      else void this.startResponse({}, turnEndedAt).catch((err: unknown) => this.sendError(err, null));
    }
  }

  private announceItem(item: ConversationItem, previous: string | null): void {
    this.options.send({ type: 'conversation.item.added', item, previous_item_id: previous });
    this.options.send({ type: 'conversation.item.done', item, previous_item_id: previous });
  }

  private async createItem(input: ItemInput, previousItemId: string | null | undefined): Promise<void> {
    const item = this.itemFrom(input);
    if (item.type === 'function_call_output' && !this.conversation.findCall(item.callId)) {
      throw new ProtocolError('invalid_value', `no function_call item has call_id '${item.callId}'`, 'item.call_id');
    }
    if (previousItemId && previousItemId !== 'root' && !this.conversation.get(previousItemId)) {
      throw new ProtocolError('invalid_value', `previous_item_id '${previousItemId}' does not exist in the conversation`, 'previous_item_id');
    }
    // Media are checked before the item is added: a bad image is refused, not kept.
    let previous: string | null;
    try {
      if (item.type === 'message') {
        for (const [j, part] of item.content.entries()) {
          if (part.type === 'input_audio' || part.type === 'input_image') await this.media.featurize(part, this.config.inputFormat, `item.content[${j}]`);
        }
      }
      previous = this.conversation.insert(item, previousItemId);
    } catch (err) {
      if (item.type === 'message') for (const part of item.content) this.media.forget(part);
      throw err;
    }
    this.announceItem(item, previous);
  }

  private itemFrom(input: ItemInput): ConversationItem {
    const id = input.id ?? newId('item');
    switch (input.type) {
      case 'message':
        return { id, type: 'message', role: input.role, status: 'completed', content: input.content };
      case 'function_call':
        return { id, type: 'function_call', status: 'completed', callId: input.callId, name: input.name, arguments: input.arguments };
      case 'function_call_output':
        return { id, type: 'function_call_output', status: 'completed', callId: input.callId, output: input.output };
    }
  }

  private retrieve(itemId: string): void {
    const item = this.conversation.get(itemId);
    if (!item) throw new ProtocolError('invalid_value', `item '${itemId}' does not exist in the conversation`, 'item_id');
    if (item.type !== 'message') {
      this.options.send({ type: 'conversation.item.retrieved', item });
      return;
    }
    const f = this.config.inputFormat;
    const content = item.content.map((part): ContentPart => {
      if (part.type !== 'input_audio' || part.audio) return part;
      const s = this.samples.get(part);
      return s ? { ...part, audio: encodeAudioOutput(s, f.encoding, f.rate, 16_000) } : part;
    });
    const assistant = this.audioOf.get(itemId);
    const o = this.config.outputFormat;
    const audio = assistant ? encodeAudioOutput(assistant.truncated ?? assistant.clock.samples(), o.encoding, o.rate) : undefined;
    this.options.send({ type: 'conversation.item.retrieved', item: { ...item, content }, ...(audio ? { audio } : {}) });
  }

  private truncate(itemId: string, contentIndex: number, audioEndMs: number): void {
    const item = this.conversation.get(itemId);
    if (!item) throw new ProtocolError('invalid_value', `item '${itemId}' does not exist in the conversation`, 'item_id');
    if (item.type !== 'message' || item.role !== 'assistant') {
      throw new ProtocolError('invalid_value', 'only assistant message items can be truncated', 'item_id');
    }
    const part = item.content[contentIndex];
    if (!part || part.type !== 'output_audio') {
      throw new ProtocolError('invalid_value', `content_index ${contentIndex} of item '${itemId}' is not assistant audio`, 'content_index');
    }
    const audio = this.audioOf.get(itemId);
    const samples = audio?.truncated ?? audio?.clock.samples() ?? new Float32Array(0);
    const lengthMs = Math.floor((samples.length / 24_000) * 1000);
    if (audioEndMs > lengthMs) {
      throw new ProtocolError('invalid_value', `Audio content of ${lengthMs}ms is already shorter than ${audioEndMs}ms`, 'audio_end_ms');
    }
    if (audio) {
      part.transcript = part.transcript.slice(0, audio.clock.textHeard(audioEndMs));
      audio.truncated = samples.slice(0, Math.round((audioEndMs / 1000) * 24_000));
    }
    this.options.send({ type: 'conversation.item.truncated', item_id: itemId, content_index: contentIndex, audio_end_ms: audioEndMs });
  }

  // ------------------------------------------------------------------------------------------
  // Responses

  private async createResponse(overrides: ResponseOverrides): Promise<void> {
    if (overrides.conversation !== 'none' && this.active) {
      throw new ProtocolError(
        'conversation_already_has_active_response',
        `Conversation already has an active response in progress: ${this.active.id}. Wait until the response is finished before creating a new one.`,
        null,
      );
    }
    if (overrides.voice !== undefined) await this.checkVoice(overrides.voice, 'response.voice');
    const modalities = overrides.outputModalities ?? this.config.outputModalities;
    if (modalities.includes('audio') && !(await this.capabilities()).speechOut) {
      throw new ProtocolError('invalid_value', 'this model has no speech output; use output_modalities ["text"]', 'response.output_modalities');
    }
    await this.startResponse(overrides);
  }

  private async startResponse(o: ResponseOverrides, startedAt = performance.now()): Promise<void> {
    // Every response counts against the key's request budget, automatic ones included.
    this.options.keyUsage?.request();
    const c = this.config;
    if (o.conversation !== 'none') this.disarmIdle();
    const outOfBand = o.conversation === 'none';
    const state: ResponseState = {
      id: newId('resp'),
      status: 'in_progress',
      statusDetails: null,
      output: [],
      conversationId: outOfBand ? null : `conv_${c.id.slice(5)}`,
      outputModalities: o.outputModalities ?? c.outputModalities,
      maxOutputTokens: o.maxOutputTokens !== undefined ? o.maxOutputTokens : c.maxOutputTokens,
      voice: o.voice ?? c.voice,
      outputFormat: o.outputFormat ?? c.outputFormat,
      sampling: { ...c.sampling, ...o.sampling },
      usage: null,
      metadata: o.metadata ?? null,
    };
    const instructions = o.instructions ?? c.instructions;
    const inputItems = o.input ? this.resolveInput(o.input) : undefined;
    const format = c.inputFormat;
    const messages = (): Promise<InputMessage[]> => toInputMessages(inputItems ?? this.conversation.all(), instructions, this.media, format);
    const turnMessages = (): TurnMessage[] => toTurnMessages(inputItems ?? this.conversation.all(), instructions, this.media, format);
    const runtime = this.options.runtime;
    const voice = await this.runtimeVoice(state.voice);
    const run = new ResponseRun(
      { state, messages, turnMessages, tools: o.tools ?? c.tools, toolChoice: o.toolChoice ?? c.toolChoice, thinking: o.thinking !== undefined ? o.thinking : c.thinking, voice },
      {
        emit: (e) => {
          if (e.type === 'response.output_audio.delta') this.audioOutputStarted = true;
          this.options.send(e);
        },
        addItem: (item) => ({ previousItemId: this.conversation.insert(item) }),
        context: () => (outOfBand ? this.options.runtime.open().then((s) => new EngineContext(s)) : this.engineContext()),
        ...(runtime.turn ? { turn: (request: TurnRequest) => runtime.turn!(request) } : {}),
        tokenizer: this.options.tokenizer,
        playbackLeadMs: this.limits.playbackLeadMs,
        keepAudio: (itemId, clock) => {
          if (!outOfBand) this.audioOf.set(itemId, { clock });
        },
        ...(this.options.newTrace ? { trace: this.options.newTrace(state.id, startedAt) } : {}),
      },
    );
    if (outOfBand) {
      this.outOfBand.add(run);
      void run.finished().finally(() => {
        this.outOfBand.delete(run);
        const used = run.plan.state.usage;
        if (used) this.options.keyUsage?.chargeTokens(used.totalTokens);
      });
      return;
    }
    this.active = run;
    void run.finished().then(() => this.afterResponse(run));
  }

  private afterResponse(run: ResponseRun): void {
    const used = run.plan.state.usage;
    if (used) this.options.keyUsage?.chargeTokens(used.totalTokens);
    if (this.active !== run) return;
    this.active = undefined;
    if (this.closed) return;
    this.armIdle();
    // A context that failed to open was already reported (the response failed, the socket closes):
    // there is nothing to count, and the rejection must not go unhandled.
    void this.context
      ?.then((ctx) => {
        const room = ctx.session.length;
        return this.capabilities().then((caps) => {
          if (this.closed) return;
          // The key's budgets when it has any; otherwise the context window left in the session.
          const key = this.options.keyUsage?.report() ?? [];
          const rateLimits = key.length > 0 ? key : [{ name: 'tokens' as const, limit: caps.maxContext, remaining: Math.max(0, caps.maxContext - room), reset_seconds: 0 }];
          this.options.send({ type: 'rate_limits.updated', rate_limits: rateLimits });
        });
      })
      .catch(() => undefined);
    if (this.pendingAutoResponse) {
      this.pendingAutoResponse = false;
      this.enqueue(null, () => this.startResponse({}));
    } else if (!this.options.runtime.turn) {
      void this.warmNextTurn();
    }
  }

  /**
   * While the user takes their turn, the next response's text runs (the history with this reply as
   * a past turn) go into the tokenizer's cache, so the turn's end has only new text to tokenize.
   */
  private async warmNextTurn(): Promise<void> {
    const c = this.config;
    try {
      const messages = await toInputMessages(this.conversation.all(), c.instructions, this.media, c.inputFormat);
      await warmTextRuns(messages, templateOptions(c));
    } catch {
      // Only a warm-up: the next response featurizes and tokenizes again and reports any problem.
    }
  }

  private resolveInput(input: NonNullable<ResponseOverrides['input']>): ConversationItem[] {
    return input.map((entry, i) => {
      if ('reference' in entry) {
        const item = this.conversation.get(entry.reference);
        if (!item) throw new ProtocolError('invalid_value', `item_reference '${entry.reference}' does not exist in the conversation`, `response.input[${i}].id`);
        return item;
      }
      return this.itemFrom(entry);
    });
  }

  private cancelResponse(responseId: string | undefined): void {
    if (responseId !== undefined) {
      const run = this.active?.id === responseId ? this.active : [...this.outOfBand].find((r) => r.id === responseId);
      if (!run) throw new ProtocolError('invalid_value', `no active response has id '${responseId}'`, 'response_id');
      run.cancel('client_cancelled');
      return;
    }
    if (!this.active) throw new ProtocolError('response_cancel_not_active', 'Cancellation failed: no active response found', null);
    this.active.cancel('client_cancelled');
  }

  // ------------------------------------------------------------------------------------------
  // Turn detection

  private onVad(e: VadEvent): void {
    const t = this.config.turnDetection;
    if (e.type === 'speech_started') {
      this.disarmIdle();
      this.turnItemId = newId('item');
      this.options.send({ type: 'input_audio_buffer.speech_started', item_id: this.turnItemId, audio_start_ms: Math.round(e.audioStartMs) });
      const run = this.active;
      if (run && t?.interruptResponse) this.bargeIn(run, 'turn_detected', performance.now());
      this.pendingStart = e.audioStartSample;
      return;
    }
    const itemId = this.turnItemId ?? newId('item');
    this.turnItemId = undefined;
    this.options.send({ type: 'input_audio_buffer.speech_stopped', item_id: itemId, audio_end_ms: Math.round(e.audioEndMs) });
    const samples = this.input.commitRange(this.pendingStart, e.audioEndSample);
    if (samples.length < 160) return;
    this.commitTurn(itemId, samples, true);
  }

  private pendingStart = 0;

  // ------------------------------------------------------------------------------------------
  // Idle timeout (turn_detection.idle_timeout_ms): no speech for that long after a response ends
  // gives `input_audio_buffer.timeout_triggered` for the silent span, commits what the buffer
  // holds as the user's turn (OpenAI commits it even if silent) and responds, so the model can
  // prompt the user to go on. Wall-clock time, as OpenAI counts it from the end of the response.

  private armIdle(): void {
    this.disarmIdle();
    const ms = this.config.turnDetection?.idleTimeoutMs;
    if (!ms) return;
    this.idleFromMs = this.input.totalMs;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.enqueue(null, () => this.onIdle());
    }, ms);
  }

  private disarmIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  private onIdle(): void {
    const t = this.config.turnDetection;
    if (this.closed || !t?.idleTimeoutMs || this.active || this.input.speaking) return;
    const itemId = newId('item');
    this.options.send({ type: 'input_audio_buffer.timeout_triggered', item_id: itemId, audio_start_ms: Math.round(this.idleFromMs), audio_end_ms: Math.round(this.input.totalMs) });
    const samples = this.input.takeBuffered();
    // Under 10 ms cannot be featurized: respond without a new user item then.
    if (samples.length >= 160) this.commitTurn(itemId, samples, true);
    else if (t.createResponse) void this.startResponse({}).catch((err: unknown) => this.sendError(err, null));
  }

  // ------------------------------------------------------------------------------------------
  // Input transcription (audio.input.transcription): the committed audio is transcribed by the
  // model itself on its own engine session, off the conversation, streaming
  // `...input_audio_transcription.delta` then exactly one `completed` (or one `failed`). It runs
  // beside responses, so its events may interleave with theirs (§7.9).

  private async transcribe(itemId: string, part: ContentPart & { type: 'input_audio' }, samples16k: number): Promise<void> {
    const t = this.config.transcription!;
    let ctx: EngineContext | undefined;
    let text = '';
    try {
      const audio = await this.media.featurize(part, this.config.inputFormat, 'item');
      let prompt = 'Transcribe the audio verbatim. Reply with the transcript only.';
      if (t.language) prompt += ` The language is ${t.language}.`;
      if (t.prompt) prompt += ` Context: ${t.prompt}`;
      const plan = await buildModelInput([{ role: 'user', content: [audio, { type: 'text', text: prompt }] }], { enableThinking: false });
      ctx = new EngineContext(await this.options.runtime.open());
      this.transcribing.add(ctx);
      if (this.closed) return;
      await ctx.sync(plan);
      // About 4 tokens per second of speech is typical; the bound keeps a babbling model short.
      const maxTokens = Math.min(448, 16 + Math.ceil((samples16k / 16_000) * 8));
      const contentIndex = this.contentIndexOf(itemId, part);
      let usage = { type: 'tokens' as const, input_tokens: plan.length, output_tokens: 0, total_tokens: plan.length };
      for await (const e of streamReply(ctx, this.options.tokenizer, { maxTokens })) {
        if (e.type === 'text' && e.delta) {
          text += e.delta;
          if (!this.closed) this.options.send({ type: 'conversation.item.input_audio_transcription.delta', item_id: itemId, content_index: contentIndex, delta: e.delta });
        } else if (e.type === 'done') {
          if (e.reason === 'cancelled') throw new Error('transcription cancelled');
          const { promptTokens, outputTokens } = e.usage;
          usage = { type: 'tokens', input_tokens: promptTokens, output_tokens: outputTokens, total_tokens: promptTokens + outputTokens };
        }
      }
      if (this.closed) return;
      part.transcript = text;
      this.options.send({ type: 'conversation.item.input_audio_transcription.completed', item_id: itemId, content_index: contentIndex, transcript: text, usage });
    } catch (err) {
      if (this.closed) return;
      this.options.send({
        type: 'conversation.item.input_audio_transcription.failed',
        item_id: itemId,
        content_index: this.contentIndexOf(itemId, part),
        error: new ProtocolError('transcription_failed', `input audio transcription failed: ${(err as Error).message}`, null, 'server_error').body(null),
      });
    } finally {
      if (ctx) {
        this.transcribing.delete(ctx);
        ctx.session.close();
      }
    }
  }

  /** Index of the audio part in its item (frames committed with the turn come before it). */
  private contentIndexOf(itemId: string, part: ContentPart): number {
    const item = this.conversation.get(itemId);
    const i = item?.type === 'message' ? item.content.indexOf(part) : -1;
    return i < 0 ? 0 : i;
  }

  private bargeIn(run: ResponseRun, reason: CancelReason, detectedAtMs: number): void {
    run.cancel(reason);
    this.options.onBargeIn?.({ detectedAt: detectedAtMs, responseId: run.id });
  }
}

function bytesPerSecond(f: { encoding: string; rate: number }): number {
  return f.encoding === 'pcm16' ? f.rate * 2 : f.rate;
}

function sniffMime(bytes: Buffer): string {
  return bytes[0] === 0x89 && bytes[1] === 0x50 ? 'image/png' : 'image/jpeg';
}
