// Incremental model input: token ids and TMRoPE positions grow segment by segment (text ids, an
// audio clip, an image, a video) while a conversation goes on, so that appending while the user
// speaks never recomputes what is already there. Building in one go and building piece by piece
// give the same arrays (the reference recomputes everything with get_rope_index; its positions
// only ever depend on what came before, which is what makes this possible).
import { SPECIAL_IDS } from '../codecs/text/special_tokens.js';
import { FusionError } from './errors.js';
import {
  POSITION_ID_PER_SECONDS,
  audioPlaceholderCount,
  checkGrid,
  checkSecondPerGrid,
  imagePlaceholderCount,
  interleaveAudioInVideo,
  videoPlaceholderCount,
  type Grid,
} from './placeholders.js';
import {
  INITIAL_ROPE_STATE,
  generatedPosition,
  itemPositions,
  ropeDelta,
  textPositions,
  type PositionChunk,
  type RopeConfig,
  type RopeItem,
  type RopeState,
} from './rope.js';

/** One piece of model input, in sequence order. */
export type Segment =
  | { type: 'tokens'; ids: readonly number[] }
  | { type: 'audio'; frames: number }
  | { type: 'image'; grid: Grid }
  /** `audioFrames` set: the video's soundtrack, interleaved with it (use_audio_in_video). */
  | { type: 'video'; grid: Grid; secondPerGrid: number; audioFrames?: number };

export interface SequenceOptions {
  /** Rotary time units per second of media; the checkpoint's 13. */
  positionIdPerSeconds?: number;
}

export interface BuiltSequence {
  inputIds: Int32Array;
  /** 3 x length, row-major (t row, then h, then w), float32 as the reference returns them. */
  positionIds: Float32Array;
  length: number;
  /** max position + 1 - length (float32). */
  ropeDelta: number;
}

/** Ids that only media expansion may produce: in text they would be taken for media. */
const MEDIA_IDS: ReadonlySet<number> = new Set([
  SPECIAL_IDS.audioStart,
  SPECIAL_IDS.audioPad,
  SPECIAL_IDS.visionStart,
  SPECIAL_IDS.imagePad,
  SPECIAL_IDS.videoPad,
]);

/** Growable typed array with amortised doubling. */
class Grow<T extends Int32Array | Float32Array> {
  private buf: T;
  length = 0;
  constructor(private readonly make: (n: number) => T) {
    this.buf = make(256);
  }
  reserve(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let cap = this.buf.length;
    while (cap < this.length + extra) cap *= 2;
    const next = this.make(cap);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
  push(v: number): void {
    this.reserve(1);
    this.buf[this.length++] = v;
  }
  append(src: ArrayLike<number>): void {
    this.reserve(src.length);
    this.buf.set(src, this.length);
    this.length += src.length;
  }
  view(): T {
    return this.buf.subarray(0, this.length) as T;
  }
}

/** Ids of a media segment: markers plus placeholders in the processor's order. */
export function segmentIds(segment: Exclude<Segment, { type: 'tokens' }>, positionIdPerSeconds = POSITION_ID_PER_SECONDS): number[] {
  const S = SPECIAL_IDS;
  // start marker, n pads, end marker
  const wrap = (start: number, pad: number, n: number, end: number): number[] => {
    const out = new Array<number>(n + 2).fill(pad);
    out[0] = start;
    out[n + 1] = end;
    return out;
  };
  switch (segment.type) {
    case 'audio':
      return wrap(S.audioStart, S.audioPad, audioPlaceholderCount(segment.frames), S.audioEnd);
    case 'image':
      return wrap(S.visionStart, S.imagePad, imagePlaceholderCount(segment.grid), S.visionEnd);
    case 'video': {
      if (segment.audioFrames === undefined) {
        checkSecondPerGrid(segment.secondPerGrid);
        return wrap(S.visionStart, S.videoPad, videoPlaceholderCount(segment.grid), S.visionEnd);
      }
      const runs = interleaveAudioInVideo(
        segment.grid,
        audioPlaceholderCount(segment.audioFrames),
        segment.secondPerGrid,
        positionIdPerSeconds,
      );
      const out: number[] = [S.visionStart, S.audioStart];
      for (const r of runs) for (let i = 0; i < r.count; i++) out.push(r.kind === 'video' ? S.videoPad : S.audioPad);
      out.push(S.audioEnd, S.visionEnd);
      return out;
    }
  }
}

function ropeItemOf(segment: Exclude<Segment, { type: 'tokens' }>): RopeItem {
  switch (segment.type) {
    case 'audio':
      return { type: 'audio', tokens: audioPlaceholderCount(segment.frames) };
    case 'image':
      checkGrid(segment.grid);
      return { type: 'image', grid: segment.grid };
    case 'video':
      return segment.audioFrames === undefined
        ? { type: 'video', grid: segment.grid, secondPerGrid: segment.secondPerGrid }
        : {
            type: 'audioInVideo',
            grid: segment.grid,
            secondPerGrid: segment.secondPerGrid,
            audioTokens: audioPlaceholderCount(segment.audioFrames),
          };
  }
}

export class SequenceBuilder {
  private readonly ids = new Grow((n) => new Int32Array(n));
  private readonly rows = [0, 1, 2].map(() => new Grow((n) => new Float32Array(n)));
  private state: RopeState = INITIAL_ROPE_STATE;
  private readonly config: RopeConfig;

  constructor(options: SequenceOptions = {}) {
    this.config = { positionIdPerSeconds: options.positionIdPerSeconds ?? POSITION_ID_PER_SECONDS };
  }

  get length(): number {
    return this.ids.length;
  }

  /**
   * Token ids of text (template text, role headers, user text, earlier replies). Text between two
   * special tokens must come in one call's worth of tokenization: BPE merges across a split.
   */
  appendTokens(ids: readonly number[]): this {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0) throw new FusionError('message_invalid', `invalid token id ${id}`, 'ids');
      if (MEDIA_IDS.has(id)) {
        throw new FusionError('text_contains_media_token', `token ${id} is a media marker and cannot appear in text`, 'ids');
      }
    }
    const r = textPositions(this.state, ids.length);
    this.ids.append(ids);
    this.push(r.chunks, r.state);
    return this;
  }

  appendAudio(frames: number): this {
    return this.appendSegment({ type: 'audio', frames });
  }

  appendImage(grid: Grid): this {
    return this.appendSegment({ type: 'image', grid });
  }

  /** A video; with `audioFrames`, its soundtrack interleaved (use_audio_in_video). */
  appendVideo(grid: Grid, secondPerGrid: number, audioFrames?: number): this {
    return this.appendSegment(
      audioFrames === undefined ? { type: 'video', grid, secondPerGrid } : { type: 'video', grid, secondPerGrid, audioFrames },
    );
  }

  appendSegment(segment: Segment): this {
    if (segment.type === 'tokens') return this.appendTokens(segment.ids);
    // Compute everything before touching the arrays so that a bad segment leaves them unchanged.
    const ids = segmentIds(segment, this.config.positionIdPerSeconds);
    const r = itemPositions(this.state, ropeItemOf(segment), this.config);
    this.ids.append(ids);
    this.push(r.chunks, r.state);
    return this;
  }

  appendSegments(segments: readonly Segment[]): this {
    for (const s of segments) this.appendSegment(s);
    return this;
  }

  get ropeDelta(): number {
    return ropeDelta(this.state);
  }

  /** Position of generated token k (0-based) if generation started now. */
  generatedPosition(k: number): number {
    return generatedPosition(this.length, this.ropeDelta, k);
  }

  /** A copy of the sequence so far. */
  build(): BuiltSequence {
    const n = this.length;
    const positionIds = new Float32Array(3 * n);
    this.rows.forEach((row, r) => positionIds.set(row.view(), r * n));
    return { inputIds: this.ids.view().slice(), positionIds, length: n, ropeDelta: this.ropeDelta };
  }

  private push(chunks: PositionChunk[], state: RopeState): void {
    const [t, h, w] = this.rows as [Grow<Float32Array>, Grow<Float32Array>, Grow<Float32Array>];
    for (const c of chunks) {
      t.append(c.t);
      h.append(c.h);
      w.append(c.w);
    }
    this.state = state;
  }
}

/** One-shot build of a whole segment list. */
export function buildSequence(segments: readonly Segment[], options: SequenceOptions = {}): BuiltSequence {
  return new SequenceBuilder(options).appendSegments(segments).build();
}
