// get_rope_index over a finished id sequence (one sample, no padding), for ids that came from
// elsewhere (the reference processor, a stored prompt). Media items are found the way the reference
// finds them -- `<|audio_start|>`, `<|vision_start|>` followed by an image pad, a video pad, or (for
// audio in video) `<|audio_start|>` -- and consume the audio / image / video lists in order. Unlike
// the reference, the pad run of every item is checked against its expected length.
import { SPECIAL_IDS } from '../codecs/text/special_tokens.js';
import { FusionError } from './errors.js';
import { audioPlaceholderCount, imagePlaceholderCount, videoPlaceholderCount, type Grid } from './placeholders.js';
import {
  DEFAULT_ROPE_CONFIG,
  INITIAL_ROPE_STATE,
  itemPositions,
  ropeDelta,
  textPositions,
  type PositionChunk,
  type RopeConfig,
  type RopeItem,
  type RopeState,
} from './rope.js';

export interface RopeMedia {
  /** Valid mel frames per audio clip (feature_attention_mask.sum(-1)), in order of appearance. */
  audioFrames?: readonly number[];
  imageGrids?: readonly Grid[];
  videoGrids?: readonly Grid[];
  /** video_second_per_grid, one per video. */
  secondPerGrids?: readonly number[];
  useAudioInVideo?: boolean;
}

export interface RopeIndexResult {
  /** 3 x length, row-major, float32. */
  positionIds: Float32Array;
  ropeDelta: number;
}

function take<T>(list: readonly T[] | undefined, i: number, what: string): T {
  const v = list?.[i];
  if (v === undefined) throw new FusionError('media_count_mismatch', `the ids have more ${what} than given`, what);
  return v;
}

export function ropeIndex(ids: ArrayLike<number>, media: RopeMedia = {}, config: RopeConfig = DEFAULT_ROPE_CONFIG): RopeIndexResult {
  const S = SPECIAL_IDS;
  const n = ids.length;
  const chunks: PositionChunk[] = [];
  let state: RopeState = INITIAL_ROPE_STATE;
  let ai = 0;
  let ii = 0;
  let vi = 0;
  let textStart = 0;
  let i = 0;
  const expectRun = (from: number, count: number, ok: (id: number) => boolean, what: string): void => {
    for (let k = from; k < from + count; k++) {
      if (k >= n || !ok(ids[k] as number)) throw new FusionError('media_count_mismatch', `${what} pads do not match its size`, 'ids');
    }
  };
  while (i < n) {
    const id = ids[i] as number;
    const nextId = ids[i + 1];
    let item: RopeItem | null = null;
    let len = 0;
    if (id === S.audioStart) {
      const tokens = audioPlaceholderCount(take(media.audioFrames, ai++, 'audio'));
      expectRun(i + 1, tokens, (x) => x === S.audioPad, 'audio');
      item = { type: 'audio', tokens };
      len = tokens + 2;
    } else if (id === S.visionStart && nextId === S.imagePad) {
      const grid = take(media.imageGrids, ii++, 'image');
      len = imagePlaceholderCount(grid);
      expectRun(i + 1, len, (x) => x === S.imagePad, 'image');
      item = { type: 'image', grid };
      len += 2;
    } else if (id === S.visionStart && nextId === S.videoPad && !media.useAudioInVideo) {
      const grid = take(media.videoGrids, vi, 'video');
      const secondPerGrid = take(media.secondPerGrids, vi++, 'video');
      len = videoPlaceholderCount(grid);
      expectRun(i + 1, len, (x) => x === S.videoPad, 'video');
      item = { type: 'video', grid, secondPerGrid };
      len += 2;
    } else if (id === S.visionStart && nextId === S.audioStart && media.useAudioInVideo) {
      const grid = take(media.videoGrids, vi, 'video');
      const secondPerGrid = take(media.secondPerGrids, vi++, 'video');
      const audioTokens = audioPlaceholderCount(take(media.audioFrames, ai++, 'audio'));
      const body = videoPlaceholderCount(grid) + audioTokens;
      expectRun(i + 2, body, (x) => x === S.videoPad || x === S.audioPad, 'audio-in-video');
      item = { type: 'audioInVideo', grid, secondPerGrid, audioTokens };
      len = body + 4;
    } else if (id === S.visionStart || id === S.imagePad || id === S.videoPad || id === S.audioPad) {
      throw new FusionError('media_count_mismatch', `unexpected media token ${id} at ${i}`, 'ids');
    }
    if (item === null) {
      i++;
      continue;
    }
    const text = textPositions(state, i - textStart);
    chunks.push(...text.chunks);
    const r = itemPositions(text.state, item, config);
    chunks.push(...r.chunks);
    state = r.state;
    i += len;
    textStart = i;
  }
  const tail = textPositions(state, n - textStart);
  chunks.push(...tail.chunks);
  state = tail.state;
  if (ai !== (media.audioFrames?.length ?? 0) || ii !== (media.imageGrids?.length ?? 0) || vi !== (media.videoGrids?.length ?? 0)) {
    throw new FusionError('media_count_mismatch', 'more media given than the ids reference', 'media');
  }
  const positionIds = new Float32Array(3 * n);
  let at = 0;
  for (const c of chunks) {
    positionIds.set(c.t, at);
    positionIds.set(c.h, n + at);
    positionIds.set(c.w, 2 * n + at);
    at += c.n;
  }
  return { positionIds, ropeDelta: ropeDelta(state) };
}
