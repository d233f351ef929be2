// The native engine behind the runtime contract: a checkpoint's thinker (MoE decoder) with its
// audio and vision encoders, all in native code off the event loop. A session appends chunks of
// model input (ids, TMRoPE positions, media), prefills them at once (so a runtime can prefill while
// the user still speaks), and generates replies through the shared decode loop; decode steps of
// all sessions of an engine are batched together (continuous batching).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nativeAddon, type NativeThinker, type NativeThinkerSession } from '../native/addon.js';
import { DecodeBatcher, type DecodeBatcherStats } from './batcher.js';
import { readThinkerCheckpoint, type ThinkerLoadSpec } from './checkpoint.js';
import { AudioEncoder, VisionEncoder } from './encoders.js';
import { RuntimeError } from './errors.js';
import { generateTokens, type GenerationIds, type Position3 } from './generation.js';
import { resolveSampling } from './sampling.js';
import { SpeechRun, SpeechStage, type SpeechOptions } from './speech.js';
import type { GenerateRequest as ContractGenerateRequest, ModelChunk, RuntimeCapabilities, RuntimeEvent, RuntimeSession } from './contract.js';

export type { ChunkMedia, ModelChunk, RuntimeEvent } from './contract.js';

export interface GenerateRequest extends ContractGenerateRequest {
  /** Overrides of the ids the loop needs (defaults from the checkpoint config and Qwen3's vocabulary). */
  ids?: Partial<GenerationIds>;
  /** Speech tuning (chunking, frame limits, talker sampling); used when `speech` is set. */
  speechOptions?: SpeechOptions;
  /** Called with each frame's 16 codec codes as the talker makes them (tests, the CLI's --json). */
  onCodecFrame?: (codes: Int32Array) => void;
}

export interface EngineOptions {
  /** Engine threads (default: one per core). */
  threads?: number;
  /** Most sessions decoded in one batched step (default 32). */
  maxBatch?: number;
}

/** Qwen3's `<think>` / `</think>`, used when the checkpoint has the real vocabulary. */
const QWEN3_THINK = { think: 151_667, thinkEnd: 151_668 };

export class NativeEngine {
  private readonly batcher: DecodeBatcher<NativeThinkerSession>;
  private readonly sessions = new Set<EngineSession>();
  private closed = false;

  private constructor(
    readonly dir: string,
    readonly spec: ThinkerLoadSpec,
    readonly thinker: NativeThinker,
    readonly audio: AudioEncoder | undefined,
    readonly vision: VisionEncoder | undefined,
    /** Talker, code predictor and code-to-wave, when the checkpoint has audio output. */
    readonly speech: SpeechStage | undefined,
    readonly config: Record<string, unknown>,
    options: EngineOptions,
  ) {
    this.batcher = new DecodeBatcher((steps) => this.thinker.decodeBatch(steps), options.maxBatch ?? 32);
  }

  /** Loads a checkpoint directory (the encoders when the checkpoint has them). */
  static async load(dir: string, options: EngineOptions = {}): Promise<NativeEngine> {
    const spec = await readThinkerCheckpoint(dir, { ...(options.threads ? { threads: options.threads } : {}) });
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    const thinkerConfig = (config.thinker_config ?? {}) as Record<string, unknown>;
    const encoderOptions = options.threads ? { threads: options.threads } : {};
    const none = Promise.resolve(undefined);
    // Audio output: a talker config and enable_audio_output not false (transformers' has_talker).
    const speaks = config.enable_audio_output !== false && config.talker_config !== undefined && config.code2wav_config !== undefined;
    const loads = await Promise.allSettled([
      nativeAddon().loadThinker(spec),
      thinkerConfig.audio_config ? AudioEncoder.load(dir, encoderOptions) : none,
      thinkerConfig.vision_config ? VisionEncoder.load(dir, encoderOptions) : none,
      speaks ? SpeechStage.load(dir, encoderOptions) : none,
    ]);
    const failed = loads.find((r) => r.status === 'rejected');
    if (failed) {
      // Unmap whatever did load: a thinker's weights can be gigabytes.
      for (const r of loads) if (r.status === 'fulfilled') r.value?.close();
      throw failed.reason;
    }
    const [thinker, audio, vision, speech] = loads.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [
      NativeThinker,
      AudioEncoder | undefined,
      VisionEncoder | undefined,
      SpeechStage | undefined,
    ];
    return new NativeEngine(dir, spec, thinker, audio, vision, speech, config, options);
  }

  /** A token id the checkpoint's config names (e.g. 'audioTokenId', 'imEndTokenId'). */
  tokenId(name: string): number | undefined {
    return this.spec.tokenIds[name];
  }

  /** Ids the decode loop needs: stop at `<|im_end|>` (and the text eos), think markers of Qwen3. */
  generationIds(overrides: Partial<GenerationIds> = {}): GenerationIds {
    const stop = [this.tokenId('imEndTokenId'), this.tokenId('eosTokenId')].filter((v): v is number => v !== undefined);
    const realVocab = this.spec.vocabSize > QWEN3_THINK.thinkEnd;
    return {
      stop: overrides.stop ?? [...new Set(stop)],
      think: overrides.think ?? (realVocab ? QWEN3_THINK.think : -1),
      thinkEnd: overrides.thinkEnd ?? (realVocab ? QWEN3_THINK.thinkEnd : -1),
    };
  }

  open(options: { maxLength?: number } = {}): EngineSession {
    if (this.closed) throw new RuntimeError('session_closed', 'the engine is closed');
    const maxLength = options.maxLength ?? Math.min(this.spec.maxPositionEmbeddings, 32_768);
    const session = new EngineSession(this, this.thinker.newSession(maxLength), this.batcher, () => this.sessions.delete(session));
    this.sessions.add(session);
    return session;
  }

  /** What this checkpoint takes and gives. */
  capabilities(): RuntimeCapabilities {
    return {
      audioIn: this.audio !== undefined,
      imageIn: this.vision !== undefined,
      videoIn: this.vision !== undefined,
      speechOut: this.speech !== undefined,
      voices: this.speech?.voices ?? [],
      maxContext: Math.min(this.spec.maxPositionEmbeddings, 32_768),
    };
  }

  /** Decode batching so far (batches, steps, largest batch). */
  get batchStats(): Readonly<DecodeBatcherStats> {
    return this.batcher.stats;
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.sessions]) s.close();
    this.audio?.close();
    this.vision?.close();
    this.speech?.close();
    this.thinker.close();
  }
}

export class EngineSession implements RuntimeSession {
  private ids: number[] = [];
  /** t, h, w of every index, flat: a truncate re-feeds the new last token from these. */
  private positions: number[] = [];
  /** Largest position (over the three rows) of each index: decode continues after the prefix max. */
  private prefixMax: number[] = [];
  private logits: Float32Array | undefined;
  /** Thinker hidden_states[accept_hidden_layer] at media placeholders (talker prompts), by index. */
  private readonly mediaHidden = new Map<number, Float32Array>();
  private abort: AbortController | undefined;
  /** Counts cancel() calls, so a generate called before a cancel sees it even if not yet started. */
  private cancels = 0;
  private busy = false;
  private closed = false;

  constructor(
    private readonly engine: NativeEngine,
    private readonly native: NativeThinkerSession,
    private readonly batcher: DecodeBatcher<NativeThinkerSession>,
    private readonly onClose: () => void,
  ) {}

  /** Positions held (prompt and generated tokens). */
  get length(): number {
    return this.ids.length;
  }

  /** Position of the next token on all three rows: max position so far + 1. */
  get nextPosition(): number {
    return this.prefixMax.length === 0 ? 0 : this.prefixMax[this.prefixMax.length - 1]! + 1;
  }

  /**
   * Appends model input and prefills it (media are encoded first). Rejects with RuntimeError
   * segment_invalid / modality_unsupported / session_busy, or the engine's coded error.
   */
  async append(chunk: ModelChunk): Promise<void> {
    this.enter();
    try {
      const n = chunk.ids.length;
      if (n === 0) throw new RuntimeError('segment_invalid', 'a chunk needs at least one token', 'ids');
      if (chunk.positions.length !== 3 * n) {
        throw new RuntimeError('segment_invalid', `positions must hold 3 x ${n} values, got ${chunk.positions.length}`, 'positions');
      }
      const embeds = await this.mediaEmbeddings(chunk);
      const speech = this.engine.speech;
      const media = speech ? this.mediaIndices(chunk.ids) : [];
      if (speech && media.length > 0) {
        // The talker prompt takes the thinker's hidden state of media rows at accept_hidden_layer.
        const out = await this.native.prefill({
          ids: chunk.ids,
          positions: chunk.positions,
          ...embeds,
          capture: { layer: speech.spec.acceptHiddenLayer, indices: Int32Array.from(media) },
        });
        this.logits = out.logits;
        const H = this.engine.spec.hiddenSize;
        const base = this.ids.length;
        media.forEach((i, k) => this.mediaHidden.set(base + i, out.captured.slice(k * H, (k + 1) * H)));
      } else {
        this.logits = await this.native.prefill({ ids: chunk.ids, positions: chunk.positions, ...embeds });
      }
      for (let i = 0; i < n; i++) {
        const m = Math.max(chunk.positions[i]!, chunk.positions[n + i]!, chunk.positions[2 * n + i]!);
        this.prefixMax.push(Math.max(m, this.prefixMax[this.prefixMax.length - 1] ?? -Infinity));
        this.ids.push(chunk.ids[i]!);
        this.positions.push(chunk.positions[i]!, chunk.positions[n + i]!, chunk.positions[2 * n + i]!);
      }
    } finally {
      this.leave();
    }
  }

  /**
   * Streams one reply: token events, then done. Generated tokens stay in the context. The reply is
   * capped at the room left in the session (done reason `length`); a cancel() made after this call,
   * even before the stream is first read, ends it with reason `cancelled`.
   */
  generate(request: GenerateRequest): AsyncGenerator<RuntimeEvent> {
    return this.runGenerate(request, this.cancels);
  }

  private async *runGenerate(request: GenerateRequest, cancelsAtCall: number): AsyncGenerator<RuntimeEvent> {
    this.enter();
    try {
      if (!this.logits) throw new RuntimeError('generation_invalid', 'append a prompt before generating', 'prompt');
      const ids = this.engine.generationIds(request.ids);
      const thinking = request.thinking ?? { enabled: ids.think >= 0, budgetTokens: null };
      // Checked before any event: a voice or checkpoint that cannot speak fails the call.
      const speech = request.speech ? this.engine.speech : undefined;
      if (request.speech && !speech) {
        throw new RuntimeError('modality_unsupported', 'this checkpoint has no talker / code-to-wave stage: it cannot speak', 'speech');
      }
      const speakerId = speech?.speakerId(request.speech?.voice);
      this.abort = new AbortController();
      if (this.cancels !== cancelsAtCall) this.abort.abort(new RuntimeError('cancelled', 'the response was cancelled'));
      // Every streamed token is fed back and takes a position: never ask for more than is left.
      const room = this.native.maxLength - this.ids.length;
      if (room < 1) throw new RuntimeError('context_full', `the session holds ${this.ids.length} of ${this.native.maxLength} positions; truncate it or open a new one`, 'session');
      const target = {
        step: async (token: number, position: Position3): Promise<Float32Array> => {
          const logits = await this.batcher.step(this.native, token, position);
          this.ids.push(token);
          this.positions.push(...position);
          this.prefixMax.push(Math.max(position[0], this.prefixMax[this.prefixMax.length - 1] ?? -Infinity));
          this.logits = logits;
          return logits;
        },
      };
      const sampling = resolveSampling(request.sampling);
      const tokens = generateTokens(
        target,
        { logits: Float32Array.from(this.logits), nextPosition: this.nextPosition, context: this.ids, promptTokens: this.ids.length },
        {
          maxTokens: Math.min(request.maxTokens, room),
          sampling,
          thinking,
          stopThinkingIds: request.stopThinkingIds ?? [ids.thinkEnd],
          ids,
          signal: this.abort.signal,
        },
      );
      if (!speech || speakerId === undefined) {
        yield* tokens;
        return;
      }
      yield* this.speak(tokens, speech, speakerId, request, sampling.greedy, sampling.seed, this.abort.signal);
    } finally {
      this.abort = undefined;
      this.leave();
    }
  }

  /**
   * The token stream with the reply spoken alongside: the talker runs on the native threads while
   * the thinker goes on, audio events are passed on as soon as they are ready (between tokens, or
   * while waiting for the next one), and `done` comes last, after the last audio event. After a
   * cancel no audio event is passed on.
   */
  private async *speak(
    tokens: AsyncGenerator<RuntimeEvent>,
    speech: SpeechStage,
    speakerId: number,
    request: GenerateRequest,
    replyGreedy: boolean,
    seed: number,
    signal: AbortSignal,
  ): AsyncGenerator<RuntimeEvent> {
    const audio: RuntimeEvent[] = [];
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    // The talker stops on a cancel, on an error and when the consumer stops reading.
    const stop = new AbortController();
    const onAbort = () => {
      stop.abort(signal.reason);
      poke();
    };
    signal.addEventListener('abort', onAbort);
    const thinker = this.engine.thinker;
    const mediaIds = new Set([this.engine.tokenId('audioTokenId'), this.engine.tokenId('imageTokenId'), this.engine.tokenId('videoTokenId')].filter((v): v is number => v !== undefined));
    const run = new SpeechRun(
      speech,
      { ids: [...this.ids], positions: [...this.positions], mediaHidden: new Map(this.mediaHidden), embed: (ids) => thinker.embed(ids), mediaIds },
      speakerId,
      stop.signal,
      (event) => {
        audio.push(event);
        poke();
      },
      { ...request.speechOptions, replyGreedy, seed, ...(request.onCodecFrame ? { onFrame: request.onCodecFrame } : {}) },
    );
    let speechDone = false;
    let speechError: unknown;
    run.done.then(
      () => {
        speechDone = true;
        poke();
      },
      (err: unknown) => {
        speechDone = true;
        speechError = err;
        poke();
      },
    );
    let done: RuntimeEvent | undefined;
    let next: Promise<IteratorResult<RuntimeEvent>> | undefined = tokens.next();
    let ready: IteratorResult<RuntimeEvent> | undefined;
    next.then((r) => {
      ready = r;
      poke();
    }, poke);
    let completed = false;
    try {
      while (true) {
        if (signal.aborted) audio.length = 0;
        while (audio.length > 0) yield audio.shift()!;
        if (speechError !== undefined) throw speechError instanceof Error ? speechError : new RuntimeError('engine_failed', 'the speech stages failed', 'speech', { cause: speechError });
        if (ready) {
          const r = ready;
          ready = undefined;
          if (r.done) {
            next = undefined;
          } else if (r.value.type === 'done') {
            done = r.value;
            run.finish();
            next = undefined;
          } else {
            if (r.value.type === 'token') run.token(r.value.id);
            yield r.value;
            next = tokens.next();
            next.then((x) => {
              ready = x;
              poke();
            }, poke);
          }
          continue;
        }
        if (next) {
          // A rejected thinker step surfaces here (the promise settles without `ready`).
          const settled = await Promise.race([next.then(() => 'thinker' as const), new Promise<'other'>((resolve) => (wake = () => resolve('other')))]);
          if (settled === 'thinker' && !ready) await Promise.resolve();
          continue;
        }
        if (speechDone || signal.aborted) break;
        await new Promise<void>((resolve) => (wake = resolve));
      }
      completed = true;
    } finally {
      signal.removeEventListener('abort', onAbort);
      run.finish();
      if (!completed) stop.abort(new RuntimeError('cancelled', 'the response ended'));
      if (!next) void tokens.return(undefined).catch(() => {});
    }
    if (signal.aborted) {
      audio.length = 0;
      // The thinker's reply may have ended before the cancel: the response as a whole was cancelled.
      if (done && done.type === 'done' && done.reason !== 'cancelled') done = { ...done, reason: 'cancelled' };
      await run.done.catch(() => {});
    }
    if (done) yield done;
  }

  /** Stops a running generate before its next engine step; its stream ends with reason cancelled. */
  cancel(): void {
    this.cancels++;
    this.abort?.abort(new RuntimeError('cancelled', 'the response was cancelled'));
  }

  /**
   * Drops everything after the first `length` positions (unheard output after a barge-in). The
   * new last token is fed again so the session can generate right away; the result equals a fresh
   * prefill of the shortened context.
   */
  async truncate(length: number): Promise<void> {
    if (!Number.isSafeInteger(length) || length < 0 || length > this.ids.length) {
      throw new RuntimeError('segment_invalid', `truncate length must be an integer from 0 to ${this.ids.length}, got ${length}`, 'length');
    }
    const lastId = this.ids[length - 1];
    const e = this.engine;
    if (lastId !== undefined && [e.tokenId('audioTokenId'), e.tokenId('imageTokenId'), e.tokenId('videoTokenId')].includes(lastId)) {
      throw new RuntimeError('segment_invalid', 'cannot truncate inside media: cut before or after the whole item', 'length');
    }
    this.enter();
    try {
      const keep = Math.max(0, length - 1);
      this.native.truncate(keep);
      const last = this.ids[length - 1];
      const pos = this.positions.slice(3 * keep, 3 * length);
      this.ids.length = keep;
      this.positions.length = 3 * keep;
      for (const i of this.mediaHidden.keys()) if (i >= keep) this.mediaHidden.delete(i);
      this.prefixMax.length = keep;
      this.logits = undefined;
      if (last === undefined) return;
      this.logits = await this.native.prefill({ ids: Int32Array.of(last), positions: Float32Array.from(pos) });
      this.ids.push(last);
      this.positions.push(...pos);
      this.prefixMax.push(Math.max(pos[0]!, pos[1]!, pos[2]!, this.prefixMax[keep - 1] ?? -Infinity));
    } finally {
      this.leave();
    }
  }

  close(): void {
    if (this.closed) return;
    this.cancel();
    this.closed = true;
    if (!this.busy) this.release();
    this.onClose();
  }

  /** Ends a call; a session closed meanwhile frees its native KV cache now. */
  private leave(): void {
    this.busy = false;
    if (this.closed) this.release();
  }

  private release(): void {
    try {
      this.native.release();
    } catch {
      // already released, or the engine is closed: nothing left to free
    }
  }

  private enter(): void {
    if (this.closed) throw new RuntimeError('session_closed', 'the session is closed', 'session');
    if (this.busy) throw new RuntimeError('session_busy', 'the session is already prefilling or generating', 'session');
    this.busy = true;
  }

  /** Chunk indices of audio / image / video placeholders. */
  private mediaIndices(ids: Int32Array): number[] {
    const e = this.engine;
    const pads = new Set([e.tokenId('audioTokenId'), e.tokenId('imageTokenId'), e.tokenId('videoTokenId')].filter((v) => v !== undefined));
    const out: number[] = [];
    ids.forEach((id, i) => {
      if (pads.has(id)) out.push(i);
    });
    return out;
  }

  /** Encodes the chunk's media and lays their rows onto the placeholder positions. */
  private async mediaEmbeddings(chunk: ModelChunk): Promise<{
    media?: { indices: Int32Array; embeds: Float32Array };
    deepstack?: { indices: Int32Array; layers: Float32Array[] };
  }> {
    const media = chunk.media ?? [];
    if (media.length === 0) return {};
    const e = this.engine;
    const hidden = e.spec.hiddenSize;
    const padId = { audio: e.tokenId('audioTokenId'), image: e.tokenId('imageTokenId'), video: e.tokenId('videoTokenId') };
    const rows: Record<'audio' | 'image' | 'video', Float32Array[]> = { audio: [], image: [], video: [] };
    const deep: Record<'image' | 'video', Float32Array[][]> = { image: [], video: [] };
    for (const [i, m] of media.entries()) {
      if (m.kind === 'audio') {
        if (!e.audio) throw new RuntimeError('modality_unsupported', 'this checkpoint has no audio encoder', `media[${i}]`);
        rows.audio.push(await e.audio.encode(m.features, m.frames));
      } else {
        if (!e.vision) throw new RuntimeError('modality_unsupported', 'this checkpoint has no vision encoder', `media[${i}]`);
        const v = await e.vision.encode(m.pixelValues, [m.grid]);
        rows[m.kind].push(v.embeds);
        deep[m.kind].push(v.deepstack);
      }
    }
    // Walk the ids: each placeholder takes the next row of its kind, in order.
    const next = { audio: { item: 0, row: 0 }, image: { item: 0, row: 0 }, video: { item: 0, row: 0 } };
    const indices: number[] = [];
    const visual: number[] = [];
    const out: Float32Array[] = [];
    const deepRows: Float32Array[][] = [];
    const layers = deep.image[0]?.length ?? deep.video[0]?.length ?? 0;
    for (let i = 0; i < chunk.ids.length; i++) {
      const id = chunk.ids[i]!;
      const kind = id === padId.audio ? 'audio' : id === padId.image ? 'image' : id === padId.video ? 'video' : undefined;
      if (!kind) continue;
      const cur = next[kind];
      const item = rows[kind][cur.item];
      if (!item) throw new RuntimeError('segment_invalid', `more ${kind} placeholders than ${kind} embeddings in the chunk`, 'media');
      out.push(item.subarray(cur.row * hidden, (cur.row + 1) * hidden));
      indices.push(i);
      if (kind !== 'audio') {
        visual.push(i);
        deepRows.push(deep[kind][cur.item]!.map((layer) => layer.subarray(cur.row * hidden, (cur.row + 1) * hidden)));
      }
      cur.row++;
      if (cur.row * hidden === item.length) {
        cur.item++;
        cur.row = 0;
      }
    }
    for (const kind of ['audio', 'image', 'video'] as const) {
      if (next[kind].item !== rows[kind].length) {
        throw new RuntimeError('segment_invalid', `the ${kind} embeddings do not match the ${kind} placeholders in the chunk`, 'media');
      }
    }
    const embeds = new Float32Array(out.length * hidden);
    out.forEach((r, k) => embeds.set(r, k * hidden));
    const result: { media: { indices: Int32Array; embeds: Float32Array }; deepstack?: { indices: Int32Array; layers: Float32Array[] } } = {
      media: { indices: Int32Array.from(indices), embeds },
    };
    if (visual.length > 0 && layers > 0) {
      const ds = Array.from({ length: layers }, (_, l) => {
        const a = new Float32Array(visual.length * hidden);
        deepRows.forEach((r, k) => a.set(r[l]!, k * hidden));
        return a;
      });
      result.deepstack = { indices: Int32Array.from(visual), layers: ds };
    }
    return result;
  }
}
