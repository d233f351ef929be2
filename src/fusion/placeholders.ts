// How many placeholder tokens each medium expands to, and in which order audio and video tokens
// alternate for a video with its soundtrack -- exactly as Qwen3OmniMoeProcessor's
// replace_multimodal_special_tokens does it (spec §3.3).
import { audioTokenCount } from '../codecs/audio/mel.js';
import { FusionError } from './errors.js';

/** Spatial merge of the vision encoder: 2x2 patches become one LLM token. */
export const SPATIAL_MERGE = 2;
/** Rotary time units per second of media (checkpoint `position_id_per_seconds`). */
export const POSITION_ID_PER_SECONDS = 13;

/** `image_grid_thw` / `video_grid_thw` row: temporal, height and width in 16-px patches. */
export type Grid = readonly [t: number, h: number, w: number];

export function checkGrid(grid: Grid, param = 'grid'): void {
  const [t, h, w] = grid;
  const ok = [t, h, w].every((v) => Number.isInteger(v) && v > 0) && h % SPATIAL_MERGE === 0 && w % SPATIAL_MERGE === 0;
  if (!ok) throw new FusionError('media_grid_invalid', `grid [${grid.join(', ')}] is not a valid patch grid`, param);
}

function checkFrames(frames: number, param = 'frames'): void {
  // Zero frames give zero audio tokens, and get_rope_index fails on an empty audio run.
  if (!Number.isInteger(frames) || frames < 1) {
    throw new FusionError('audio_frames_invalid', `audio needs at least one mel frame, got ${frames}`, param);
  }
}

/** `<|audio_pad|>` count for an audio clip of `frames` valid mel frames. */
export function audioPlaceholderCount(frames: number): number {
  checkFrames(frames);
  return audioTokenCount(frames);
}

/** LLM tokens per temporal step of a grid: (h/2)*(w/2). */
export function tokensPerTemporalPatch(grid: Grid): number {
  checkGrid(grid);
  return (grid[1] / SPATIAL_MERGE) * (grid[2] / SPATIAL_MERGE);
}

/** `<|image_pad|>` count: t*h*w/4 (t is 1 for images). */
export function imagePlaceholderCount(grid: Grid): number {
  return grid[0] * tokensPerTemporalPatch(grid);
}

/** `<|video_pad|>` count: t*h*w/4, h*w/4 per temporal patch of two frames. */
export function videoPlaceholderCount(grid: Grid): number {
  return grid[0] * tokensPerTemporalPatch(grid);
}

export function checkSecondPerGrid(secondPerGrid: number, param = 'secondPerGrid'): void {
  if (!Number.isFinite(secondPerGrid) || secondPerGrid <= 0) {
    throw new FusionError('second_per_grid_invalid', `second per grid must be > 0, got ${secondPerGrid}`, param);
  }
}

/** A run of consecutive placeholders of one kind inside an audio-in-video block. */
export interface PadRun {
  kind: 'video' | 'audio';
  count: number;
}

/**
 * Order of video and audio pads for a video with its soundtrack. Video token j (in t,h,w order)
 * has key t_j * secondPerGrid * P (float64 here, as numpy computes it in the processor), audio
 * token k has key k; the video token goes first while its key is <= the next audio key, leftovers
 * follow (video first). Returned as runs so a long block costs O(runs), not O(tokens).
 */
export function interleaveAudioInVideo(
  grid: Grid,
  audioTokens: number,
  secondPerGrid: number,
  positionIdPerSeconds = POSITION_ID_PER_SECONDS,
): PadRun[] {
  const perT = tokensPerTemporalPatch(grid);
  checkSecondPerGrid(secondPerGrid);
  const runs: PadRun[] = [];
  const push = (kind: PadRun['kind'], count: number): void => {
    if (count <= 0) return;
    const last = runs[runs.length - 1];
    if (last && last.kind === kind) last.count += count;
    else runs.push({ kind, count });
  };
  let k = 0;
  for (let t = 0; t < grid[0]; t++) {
    // Every token of temporal step t shares one key; audio tokens with a smaller key go first.
    const key = t * secondPerGrid * positionIdPerSeconds;
    let before = 0;
    while (k + before < audioTokens && k + before < key) before++;
    // Exact comparison (video goes first on ties): audio k precedes iff k < key.
    push('audio', before);
    k += before;
    push('video', perT);
  }
  push('audio', audioTokens - k);
  return runs;
}
