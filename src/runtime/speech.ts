// Spoken replies: Qwen3-Omni's talker (MoE decoder -> layer-0 codec code per 80 ms frame), code
// predictor (the 15 residual codes of the frame) and code-to-wave (24 kHz samples), chained behind
// the thinker's reply as transformers' Qwen3OmniMoeForConditionalGeneration.generate chains them,
// but streamed: the talker starts once the first reply token exists and takes in one more reply
// token per frame, and code-to-wave renders the frames in small causal chunks as they come.
//
// Talker prompt (spec 8.1 step 2, transformers' _get_talker_user_parts / _get_talker_assistant_parts):
//   user part   every token of every user turn of the context (system and assistant turns dropped):
//               text -> text_projection(thinker token embedding), audio/image/video placeholders ->
//               hidden_projection(thinker hidden_states[accept_hidden_layer] at that position)
//   assistant   text side  text_projection(<|im_start|> assistant \n), 4 x tts_pad, tts_bos, first reply token
//               codec side 3 zero rows, codec_embedding(nothink, think_bos, think_eos, speaker, pad, bos)
//   step s      sum of the frame's 16 code embeddings + text_projection(reply token s + 1), then
//               tts_eos once, then tts_pad
// Rotary: transformers runs get_rope_index over the user part's ids followed by 9 tts_pad ids. The
// dropped turns are text, each dropped token shifts everything after it by one, so the user part's
// positions are the thinker's minus the number of dropped positions before them; the assistant rows
// continue at max + 1, and step s sits at max + 10 + s on all three rows.
import type { NativeCodePredictor, NativeTalker } from '../native/addon.js';
import { configError } from './checkpoint.js';
import { Code2Wav, CODE2WAV_SAMPLE_RATE, type Code2WavStream } from './code2wav.js';
import { RuntimeError } from './errors.js';
import { resolveSampling, Sampler, type SamplingParams } from './sampling.js';
import { readCodePredictorCheckpoint, readTalkerCheckpoint, type TalkerLoadSpec } from './talker.js';
import { nativeAddon } from '../native/addon.js';

export { CODE2WAV_SAMPLE_RATE as SPEECH_SAMPLE_RATE };

/** transformers' generate defaults for the talker (talker_top_k 50, temperature 0.9, repetition penalty 1.05). */
const TALKER_SAMPLING = { temperature: 0.9, topK: 50, topP: 1, repetitionPenalty: 1.05 } as const;
/** transformers' code predictor when the talker samples (top_k 50, top_p 0.8, its default temperature 1). */
const PREDICTOR_SAMPLING = { temperature: 1, topK: 50, topP: 0.8 } as const;
/** transformers' default talker_max_new_tokens (4096 steps, the last without residual codes). */
const MAX_FRAMES = 4095;

export interface SpeechOptions {
  /** Frames in the first code-to-wave chunk (default 2: 1920 * 2 - 555 samples, 137 ms). */
  firstChunkFrames?: number;
  /** Frames per later chunk (default 4, 320 ms). */
  chunkFrames?: number;
  /** Most frames of one reply (default transformers' 4095; see also framesPerToken). */
  maxFrames?: number;
  /**
   * Once the text is complete, at most this many frames per spoken token (default 12, about 1 s),
   * and at least 25: a talker that never says codec_eos (random weights) cannot run for minutes.
   */
  framesPerToken?: number;
  /** Layer-0 code choice; default greedy when the reply is greedy, else transformers' talker sampling. */
  sampling?: SamplingParams;
  /** Called with each frame's codes (layer 0, then the 15 residual codes) as they are made. */
  onFrame?: (codes: Int32Array) => void;
}

export interface SpeechAudio {
  type: 'audio';
  samples: Float32Array;
  sampleOffset: number;
  tokenStart: number;
  tokenEnd: number;
}

/** The thinker context a reply is spoken from (the session's state when generate starts). */
export interface SpeechContext {
  /** Ids of the context (prompt of this reply), positions t, h, w per index (flat). */
  ids: readonly number[];
  positions: readonly number[];
  /** hidden_states[accept_hidden_layer] of the media placeholder positions of the context. */
  mediaHidden: ReadonlyMap<number, Float32Array>;
  /** Thinker token embeddings (rows x thinker hidden). */
  embed(ids: Int32Array): Float32Array;
  /** Placeholder ids whose rows go through hidden_projection. */
  mediaIds: ReadonlySet<number>;
}

export class SpeechStage {
  private specials: Promise<{ bos: Float32Array; eos: Float32Array; pad: Float32Array }> | undefined;
  private closed = false;

  private constructor(
    readonly spec: TalkerLoadSpec,
    readonly talker: NativeTalker,
    readonly predictor: NativeCodePredictor,
    readonly code2wav: Code2Wav,
  ) {}

  /** Loads talker, code predictor and code-to-wave of a checkpoint with audio output. */
  static async load(dir: string, options: { threads?: number } = {}): Promise<SpeechStage> {
    const spec = await readTalkerCheckpoint(dir, options);
    for (const k of ['imStartTokenId', 'userTokenId', 'assistantTokenId', 'ttsBosTokenId', 'ttsEosTokenId', 'ttsPadTokenId']) {
      if (spec.promptIds[k] === undefined) throw configError(k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), 'is missing: the talker prompt needs it');
    }
    for (const k of ['codecBosId', 'codecEosTokenId', 'codecPadId', 'codecNothinkId', 'codecThinkBosId', 'codecThinkEosId']) {
      if (spec.codecIds[k] === undefined) throw configError(`talker_config.${k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)}`, 'is missing: the talker prompt needs it');
    }
    if (Object.keys(spec.speakerIds).length === 0) throw configError('talker_config.speaker_id', 'names no voice');
    const loads = await Promise.allSettled([
      nativeAddon().loadTalker(spec),
      readCodePredictorCheckpoint(dir, options).then((s) => nativeAddon().loadCodePredictor(s)),
      Code2Wav.load(dir, options),
    ]);
    const failed = loads.find((r) => r.status === 'rejected');
    if (failed) {
      for (const r of loads) if (r.status === 'fulfilled') r.value.close();
      throw failed.reason;
    }
    const [talker, predictor, c2w] = loads.map((r) => (r as PromiseFulfilledResult<unknown>).value) as [NativeTalker, NativeCodePredictor, Code2Wav];
    return new SpeechStage(spec, talker, predictor, c2w);
  }

  /** Voice names; the first is the default (transformers' default speaker "Ethan" when present). */
  get voices(): string[] {
    // By codec id (config.json's key order is not meaningful), transformers' default first.
    const ids = this.spec.speakerIds;
    const names = Object.keys(ids).sort((a, b) => ids[a]! - ids[b]! || (a < b ? -1 : 1));
    const i = names.indexOf('ethan');
    return i > 0 ? [names[i]!, ...names.slice(0, i), ...names.slice(i + 1)] : names;
  }

  /** Speaker codec id of a voice (case-insensitive); RuntimeError voice_unknown listing the valid ones. */
  speakerId(voice: string | undefined): number {
    const name = (voice ?? this.voices[0]!).toLowerCase();
    const id = this.spec.speakerIds[name];
    if (id === undefined) {
      throw new RuntimeError('voice_unknown', `unknown voice ${JSON.stringify(voice)}; this model's voices are ${this.voices.join(', ')}`, 'voice');
    }
    return id;
  }

  /** text_projection of tts_bos, tts_eos, tts_pad (once per stage). */
  ttsSpecials(embed: (ids: Int32Array) => Float32Array): Promise<{ bos: Float32Array; eos: Float32Array; pad: Float32Array }> {
    this.specials ??= (async () => {
      const p = this.spec.promptIds;
      const rows = await this.talker.project(embed(Int32Array.of(p.ttsBosTokenId!, p.ttsEosTokenId!, p.ttsPadTokenId!)), 0);
      const H = this.spec.hiddenSize;
      return { bos: rows.slice(0, H), eos: rows.slice(H, 2 * H), pad: rows.slice(2 * H, 3 * H) };
    })();
    return this.specials;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.talker.close();
    this.predictor.close();
    this.code2wav.close();
  }
}

/** The talker-prompt rows of the user turns and their rotary positions (3 rows), from the thinker context. */
async function userPart(stage: SpeechStage, ctx: SpeechContext): Promise<{ embeds: Float32Array; positions: number[][]; maxPosition: number }> {
  const p = stage.spec.promptIds;
  const { ids } = ctx;
  const user: number[] = [];
  let start = 0; // transformers clamps "no <|im_start|> yet" to index 0
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] === p.imStartTokenId) start = i;
    if (ids[start + 1] === p.userTokenId) user.push(i);
  }
  const H = stage.spec.hiddenSize;
  const embeds = new Float32Array(user.length * H);
  const row = new Map(user.map((i, k) => [i, k]));
  const text = user.filter((i) => !ctx.mediaIds.has(ids[i]!));
  const media = user.filter((i) => ctx.mediaIds.has(ids[i]!));
  if (text.length > 0) {
    const rows = await stage.talker.project(ctx.embed(Int32Array.from(text, (i) => ids[i]!)), 0);
    text.forEach((i, k) => embeds.set(rows.subarray(k * H, (k + 1) * H), row.get(i)! * H));
  }
  if (media.length > 0) {
    const Ht = stage.spec.thinkerHiddenSize;
    const hidden = new Float32Array(media.length * Ht);
    media.forEach((i, k) => {
      const h = ctx.mediaHidden.get(i);
      if (!h) throw new RuntimeError('engine_failed', `no thinker hidden state kept for the media position ${i}; the talker prompt cannot be built`);
      hidden.set(h, k * Ht);
    });
    const rows = await stage.talker.project(hidden, 1);
    media.forEach((i, k) => embeds.set(rows.subarray(k * H, (k + 1) * H), row.get(i)! * H));
  }
  const positions: number[][] = [[], [], []];
  let maxPosition = -1;
  user.forEach((i, k) => {
    const dropped = i - k;
    for (let r = 0; r < 3; r++) {
      const v = ctx.positions[3 * i + r]! - dropped;
      positions[r]!.push(v);
      maxPosition = Math.max(maxPosition, v);
    }
  });
  return { embeds, positions, maxPosition };
}

/**
 * One spoken reply. Feed it the reply's tokens as they come (`token`), then `finish()`; audio
 * chunks arrive through `onAudio` in order. `done` settles when the last chunk was delivered (or
 * the run was cancelled); it rejects when a stage failed.
 */
export class SpeechRun {
  readonly done: Promise<void>;
  /** Codec codes so far, frames x 16 (frame-major). */
  readonly frames: Int32Array[] = [];
  private readonly assistant: number[];
  /** Reply-token index of assistant[k] is k - replyStart. */
  private readonly replyStart: number;
  private replyTokens = 0;
  private finished = false;
  private wake: (() => void) | undefined;
  private readonly sampler: Sampler;
  /** Residual-code sampler; undefined = greedy (the native 15-step loop in one call). */
  private readonly residualSampler: Sampler | undefined;
  private readonly options: Required<Omit<SpeechOptions, 'sampling' | 'onFrame'>>;
  private readonly onFrame: ((codes: Int32Array) => void) | undefined;
  private samples = 0;
  private stream: Code2WavStream | undefined;
  private render: Promise<void> = Promise.resolve();

  constructor(
    private readonly stage: SpeechStage,
    private readonly ctx: SpeechContext,
    private readonly speakerId: number,
    private readonly signal: AbortSignal,
    private readonly onAudio: (event: SpeechAudio) => void,
    options: SpeechOptions & { replyGreedy?: boolean; seed?: number } = {},
  ) {
    const p = stage.spec.promptIds;
    let a = -1;
    for (let i = ctx.ids.length - 2; i >= 0; i--) {
      if (ctx.ids[i] === p.imStartTokenId && ctx.ids[i + 1] === p.assistantTokenId) {
        a = i;
        break;
      }
    }
    if (a < 0) throw new RuntimeError('generation_invalid', 'speech needs a prompt that opens the assistant turn (<|im_start|>assistant)', 'speech');
    this.assistant = ctx.ids.slice(a);
    this.replyStart = this.assistant.length;
    this.options = {
      firstChunkFrames: options.firstChunkFrames ?? 2,
      chunkFrames: options.chunkFrames ?? 4,
      maxFrames: options.maxFrames ?? MAX_FRAMES,
      framesPerToken: options.framesPerToken ?? 12,
    };
    for (const [k, v] of Object.entries(this.options)) {
      if (!Number.isSafeInteger(v) || v < 1) throw new RuntimeError('generation_invalid', `speech ${k} must be a positive integer, got ${v}`, k);
    }
    this.onFrame = options.onFrame;
    const V = stage.spec.vocabSize;
    const eos = stage.spec.codecIds.codecEosTokenId!;
    // transformers suppresses [vocab - 1024, vocab) except codec_eos: only codes and EOS remain.
    const suppressIds = Array.from({ length: Math.min(1024, V) }, (_, k) => V - Math.min(1024, V) + k).filter((id) => id !== eos);
    const base = options.sampling ?? (options.replyGreedy === false ? { ...TALKER_SAMPLING } : { temperature: 0, repetitionPenalty: TALKER_SAMPLING.repetitionPenalty });
    const layer0 = resolveSampling({ ...base, suppressIds, ...(options.seed !== undefined && base.seed === undefined ? { seed: options.seed } : {}) });
    this.sampler = new Sampler(layer0);
    // As transformers: the code predictor samples exactly when the talker does.
    this.residualSampler = layer0.greedy ? undefined : new Sampler(resolveSampling({ ...PREDICTOR_SAMPLING, seed: (layer0.seed + 1) >>> 0 }));
    this.done = this.run();
    this.done.catch(() => {}); // the owner awaits it; never an unhandled rejection
  }

  /** The next reply token (every token event of the reply, in order). */
  token(id: number): void {
    if (this.finished) return;
    this.assistant.push(id);
    this.replyTokens++;
    this.poke();
  }

  /** The reply is complete (stop id, length or cancel): the text ends with tts_eos. */
  finish(): void {
    this.finished = true;
    this.poke();
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Resolves once assistant[index] exists or the reply is complete; true when it exists. */
  private async textAt(index: number): Promise<boolean> {
    while (this.assistant.length <= index && !this.finished && !this.signal.aborted) {
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (this.signal.aborted) resolve();
      });
    }
    return this.assistant.length > index;
  }

  private async run(): Promise<void> {
    const onAbort = () => this.poke();
    this.signal.addEventListener('abort', onAbort);
    const session = this.stage.talker.newSession(1 << 20);
    try {
      await this.talk(session);
      await this.render;
    } finally {
      this.signal.removeEventListener('abort', onAbort);
      // A step may still be in flight on a cancel path that threw: release when it is done.
      try {
        session.release();
      } catch {
        /* busy or released: freed with the talker */
      }
    }
  }

  private async talk(session: ReturnType<NativeTalker['newSession']>): Promise<void> {
    const { stage, ctx } = this;
    const s = stage.spec;
    const H = s.hiddenSize;
    const c = s.codecIds;
    // The user part needs no reply: project it while the thinker makes the first token.
    const specialsP = stage.ttsSpecials((ids) => ctx.embed(ids));
    const userP = userPart(stage, ctx);
    const early = Promise.all([specialsP, userP]);
    early.catch(() => {}); // awaited below, or abandoned when there is nothing to say
    if (!(await this.textAt(3)) || this.signal.aborted) return; // no reply text: nothing to say
    const [specials, user] = await early;
    const head = await stage.talker.project(ctx.embed(Int32Array.from(this.assistant.slice(0, 4))), 0);
    const codec = stage.talker.embed(Int32Array.of(c.codecNothinkId!, c.codecThinkBosId!, c.codecThinkEosId!, this.speakerId, c.codecPadId!, c.codecBosId!));
    const U = user.embeds.length / H;
    const L = U + 9;
    const embeds = new Float32Array(L * H);
    embeds.set(user.embeds, 0);
    const textSide = [head.subarray(0, H), head.subarray(H, 2 * H), head.subarray(2 * H, 3 * H), specials.pad, specials.pad, specials.pad, specials.pad, specials.bos, head.subarray(3 * H, 4 * H)];
    for (let k = 0; k < 9; k++) {
      const row = embeds.subarray((U + k) * H, (U + k + 1) * H);
      row.set(textSide[k]!);
      if (k >= 3) for (let h = 0; h < H; h++) row[h]! += codec[(k - 3) * H + h]!;
    }
    const positions = new Float32Array(3 * L);
    for (let r = 0; r < 3; r++) {
      positions.set(user.positions[r]!, r * L);
      for (let k = 0; k < 9; k++) positions[r * L + U + k] = user.maxPosition + 1 + k;
    }
    if (this.signal.aborted) return;
    let out = await session.prefill({ embeds, positions });
    const codes0: number[] = [];
    const eos = c.codecEosTokenId!;
    for (let step = 0; ; step++) {
      if (this.signal.aborted) return;
      const code0 = this.sampler.pick(out.logits, codes0);
      codes0.push(code0);
      if (code0 === eos) break;
      const first = stage.talker.embed(Int32Array.of(code0));
      const prefill = new Float32Array(2 * H);
      prefill.set(out.hidden, 0);
      prefill.set(first, H);
      const residual = await this.residuals(prefill);
      if (this.signal.aborted) return;
      const frame = new Int32Array(1 + residual.length);
      frame[0] = code0;
      frame.set(residual, 1);
      this.frames.push(frame);
      this.onFrame?.(frame);
      this.queueRender(false);
      if (this.frames.length >= this.frameCap()) break;
      // Next input: the 16 code embeddings summed in order, then this step's text.
      const next = first;
      for (let k = 0; k < residual.length; k++) {
        const e = stage.predictor.embed(Int32Array.of(residual[k]!), k);
        for (let h = 0; h < H; h++) next[h]! += e[h]!;
      }
      const text = await this.trailing(step, specials);
      if (this.signal.aborted) return;
      for (let h = 0; h < H; h++) next[h]! += text[h]!;
      const p = user.maxPosition + 10 + step;
      out = await session.decode(next, [p, p, p]);
    }
    this.queueRender(true);
  }

  /**
   * The 15 residual codes of a frame from [talker hidden, embedding of its layer-0 code]: greedy in
   * one native call, or sampled step by step (head g gives code g + 1; code g + 1 is fed back
   * through embedding table g at position 2 + g).
   */
  private async residuals(prefill: Float32Array): Promise<Int32Array> {
    const p = this.stage.predictor;
    if (!this.residualSampler) return (await p.generate(prefill)).codes;
    const G = p.numHeads;
    const s = p.newSession(G + 2);
    try {
      let logits = await s.prefill({ embeds: prefill, positions: Float32Array.of(0, 1, 0, 1, 0, 1) });
      const codes = new Int32Array(G);
      for (let g = 0; g < G; g++) {
        codes[g] = this.residualSampler.pick(logits, []);
        if (g + 1 < G) logits = await s.decode(p.embed(Int32Array.of(codes[g]!), g), [2 + g, 2 + g, 2 + g], g + 1);
      }
      return codes;
    } finally {
      s.release();
    }
  }

  /** Frame limit: maxFrames, and once the text is complete a bound from its length. */
  private frameCap(): number {
    if (!this.finished) return this.options.maxFrames;
    return Math.min(this.options.maxFrames, Math.max(25, this.options.framesPerToken * this.replyTokens));
  }

  /** Text of talker step `step`: reply text at assistant[4 + step], then tts_eos once, then tts_pad. */
  private async trailing(step: number, specials: { eos: Float32Array; pad: Float32Array }): Promise<Float32Array> {
    const k = 4 + step;
    if (await this.textAt(k)) return this.stage.talker.project(this.ctx.embed(Int32Array.of(this.assistant[k]!)), 0);
    return k === this.assistant.length ? specials.eos : specials.pad;
  }

  private rendered = 0;

  /** Sends the frames not yet rendered to code-to-wave when a chunk is due (or `last`). */
  private queueRender(last: boolean): void {
    const pending = this.frames.length - this.rendered;
    const due = this.rendered === 0 ? this.options.firstChunkFrames : this.options.chunkFrames;
    if (pending === 0 || (!last && pending < due)) return;
    const from = this.rendered;
    const to = this.frames.length;
    this.rendered = to;
    const q = this.stage.code2wav.numQuantizers;
    const codes = new Int32Array((to - from) * q);
    for (let f = from; f < to; f++) codes.set(this.frames[f]!, (f - from) * q);
    // Chunks render one after the other (a stream is causal), while the talker computes the next frames.
    this.render = this.render.then(async () => {
      if (this.signal.aborted) return;
      this.stream ??= this.stage.code2wav.stream();
      const samples = await this.stream.push(codes, to - from);
      if (this.signal.aborted || samples.length === 0) return;
      // Frame f was made from reply token f (the prompt's first text row, then one per step).
      const span = (f: number) => Math.max(0, Math.min(this.replyTokens, f + 3 - this.replyStart));
      const tokenEnd = last && this.finished ? this.replyTokens : span(to);
      this.onAudio({ type: 'audio', samples, sampleOffset: this.samples, tokenStart: Math.min(span(from), tokenEnd), tokenEnd });
      this.samples += samples.length;
    });
  }
}
