// TMRoPE position ids: three rows (t, h, w) per token, float32, computed exactly as transformers'
// `get_rope_index` (modeling_qwen3_omni_moe.py) does, but item by item so that a sequence can be
// extended without recomputing its start. The reference builds a list of chunks (a text run, the
// start markers, the media positions, the end markers); two of its rules matter here:
//  - the start of the next chunk is `max(last chunk) + 1`, not the running maximum. For audio in
//    video the last chunk is the merge leftover, which can end below the video's h/w maximum, so
//    the end markers can get positions below earlier ones (the fixture audio_in_video_short_audio);
//  - every value is float32 (t rows of video are fractional for fps other than 1 or 2), so sums are
//    rounded with Math.fround at the points where torch rounds.
// rope_delta uses the global maximum: delta = max(all) + 1 - length.
import { FusionError } from './errors.js';
import { POSITION_ID_PER_SECONDS, SPATIAL_MERGE, checkGrid, checkSecondPerGrid, type Grid } from './placeholders.js';

const f32 = Math.fround;

/** Positions of one chunk, row-major: t[0..n), then h, then w. */
export interface PositionChunk {
  n: number;
  t: Float32Array;
  h: Float32Array;
  w: Float32Array;
  /** max over the three rows (what `llm_pos_ids_list[-1].max()` sees), -Infinity when empty. */
  max: number;
}

function chunk(n: number): PositionChunk {
  return { n, t: new Float32Array(n), h: new Float32Array(n), w: new Float32Array(n), max: -Infinity };
}

function finish(c: PositionChunk): PositionChunk {
  let m = -Infinity;
  for (let i = 0; i < c.n; i++) m = Math.max(m, c.t[i] as number, c.h[i] as number, c.w[i] as number);
  c.max = m;
  return c;
}

/** `arange(n) + start` on all three rows (text runs, markers, audio tokens). */
export function sequentialChunk(start: number, n: number): PositionChunk {
  const c = chunk(n);
  for (let k = 0; k < n; k++) {
    const v = f32(start + k);
    c.t[k] = v;
    c.h[k] = v;
    c.w[k] = v;
  }
  c.max = n > 0 ? f32(start + n - 1) : -Infinity;
  return c;
}

/**
 * `get_llm_pos_ids_for_vision`: token (ti, hi, wi) in raster order gets
 * t = start + ti*secondPerGrid*P, h = start + hi, w = start + wi. Images pass secondPerGrid 1
 * (the reference multiplies by the literal 1); videos pass their float32 second_per_grid.
 */
export function visionChunk(start: number, grid: Grid, secondPerGrid: number, positionIdPerSeconds: number): PositionChunk {
  checkGrid(grid);
  const gh = grid[1] / SPATIAL_MERGE;
  const gw = grid[2] / SPATIAL_MERGE;
  const c = chunk(grid[0] * gh * gw);
  const spg = f32(secondPerGrid);
  let i = 0;
  for (let ti = 0; ti < grid[0]; ti++) {
    // torch: (arange(t) * second_per_grid_f32) * P in float32, then + start in float32
    const tv = f32(f32(f32(ti * spg) * positionIdPerSeconds) + start);
    for (let hi = 0; hi < gh; hi++) {
      const hv = f32(hi + start);
      for (let wi = 0; wi < gw; wi++) {
        c.t[i] = tv;
        c.h[i] = hv;
        c.w[i] = f32(wi + start);
        i++;
      }
    }
  }
  return finish(c);
}

/** Which token comes next inside an audio-in-video block, as get_rope_index merges them. */
export type MergeOrder = ('video' | 'audio')[];

/**
 * Audio-in-video positions: video positions and audio positions `start + k` both from `start`,
 * merged by comparing t rows (video first on ties, leftovers video then audio). Returns the merged
 * positions and the chunk the reference appended last (its max starts the end markers).
 */
export function audioInVideoChunks(
  start: number,
  grid: Grid,
  secondPerGrid: number,
  audioTokens: number,
  positionIdPerSeconds: number,
): { merged: PositionChunk; lastChunkMax: number } {
  const video = visionChunk(start, grid, secondPerGrid, positionIdPerSeconds);
  const audio = sequentialChunk(start, audioTokens);
  const merged = chunk(video.n + audio.n);
  let j = 0;
  let k = 0;
  let i = 0;
  let lastChunkMax = -Infinity;
  const take = (src: PositionChunk, at: number): void => {
    merged.t[i] = src.t[at] as number;
    merged.h[i] = src.h[at] as number;
    merged.w[i] = src.w[at] as number;
    i++;
  };
  while (j < video.n && k < audio.n) {
    if ((video.t[j] as number) <= (audio.t[k] as number)) {
      lastChunkMax = Math.max(video.t[j] as number, video.h[j] as number, video.w[j] as number);
      take(video, j++);
    } else {
      lastChunkMax = audio.t[k] as number;
      take(audio, k++);
    }
  }
  if (j < video.n) {
    lastChunkMax = -Infinity;
    for (; j < video.n; j++) {
      lastChunkMax = Math.max(lastChunkMax, video.t[j] as number, video.h[j] as number, video.w[j] as number);
      take(video, j);
    }
  }
  if (k < audio.n) {
    lastChunkMax = audio.t[audio.n - 1] as number;
    for (; k < audio.n; k++) take(audio, k);
  }
  return { merged: finish(merged), lastChunkMax };
}

export interface RopeConfig {
  positionIdPerSeconds: number;
}

export const DEFAULT_ROPE_CONFIG: RopeConfig = { positionIdPerSeconds: POSITION_ID_PER_SECONDS };

/**
 * Where the reference's loop stands after the chunks so far: `next` is the start of the next chunk,
 * `max` the running maximum (for rope_delta), `length` the token count.
 */
export interface RopeState {
  next: number;
  max: number;
  length: number;
}

export const INITIAL_ROPE_STATE: RopeState = { next: 0, max: -Infinity, length: 0 };

/** A media item as get_rope_index sees it. */
export type RopeItem =
  | { type: 'audio'; tokens: number }
  | { type: 'image'; grid: Grid }
  | { type: 'video'; grid: Grid; secondPerGrid: number }
  | { type: 'audioInVideo'; grid: Grid; secondPerGrid: number; audioTokens: number };

/** Positions of `n` text tokens from `state`, and the state after them. */
export function textPositions(state: RopeState, n: number): { chunks: PositionChunk[]; state: RopeState } {
  if (n === 0) return { chunks: [], state };
  const c = sequentialChunk(state.next, n);
  return { chunks: [c], state: { next: f32(c.max + 1), max: Math.max(state.max, c.max), length: state.length + n } };
}

/**
 * Positions of one media item including its start and end markers (one each, two each for audio
 * in video), and the state after it.
 */
export function itemPositions(
  state: RopeState,
  item: RopeItem,
  config: RopeConfig = DEFAULT_ROPE_CONFIG,
): { chunks: PositionChunk[]; state: RopeState } {
  const markers = item.type === 'audioInVideo' ? 2 : 1;
  const bos = sequentialChunk(state.next, markers);
  const mediaStart = f32(state.next + markers);
  let media: PositionChunk;
  let lastMax: number;
  switch (item.type) {
    case 'audio':
      if (!Number.isInteger(item.tokens) || item.tokens < 1) {
        throw new FusionError('audio_frames_invalid', 'an audio item needs at least one token', 'frames');
      }
      media = sequentialChunk(mediaStart, item.tokens);
      lastMax = media.max;
      break;
    case 'image':
      media = visionChunk(mediaStart, item.grid, 1, config.positionIdPerSeconds);
      lastMax = media.max;
      break;
    case 'video':
      checkSecondPerGrid(item.secondPerGrid);
      media = visionChunk(mediaStart, item.grid, item.secondPerGrid, config.positionIdPerSeconds);
      lastMax = media.max;
      break;
    case 'audioInVideo': {
      checkSecondPerGrid(item.secondPerGrid);
      if (!Number.isInteger(item.audioTokens) || item.audioTokens < 1) {
        throw new FusionError('audio_frames_invalid', 'the soundtrack needs at least one token', 'audioFrames');
      }
      const r = audioInVideoChunks(mediaStart, item.grid, item.secondPerGrid, item.audioTokens, config.positionIdPerSeconds);
      media = r.merged;
      lastMax = r.lastChunkMax;
      break;
    }
  }
  const eos = sequentialChunk(f32(lastMax + 1), markers);
  const max = Math.max(state.max, bos.max, media.max, eos.max);
  return {
    chunks: [bos, media, eos],
    state: { next: f32(eos.max + 1), max, length: state.length + 2 * markers + media.n },
  };
}

/** rope_delta = max position + 1 - sequence length (float32), 0 for an empty sequence. */
export function ropeDelta(state: RopeState): number {
  if (state.length === 0) return 0;
  return f32(f32(state.max + 1) - state.length);
}

/**
 * Position (same on all three rows) of generated token k (0-based) after a prompt of
 * `promptLength` tokens: its index plus rope_delta, i.e. max + 1 + k.
 */
export function generatedPosition(promptLength: number, delta: number, k: number): number {
  return f32(promptLength + k + delta);
}
