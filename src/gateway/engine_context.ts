// Keeps a runtime session's context equal to a conversation's model input with the least work:
// the longest prefix the engine already holds (same token ids, same media items) is kept, the
// rest is truncated and the new tail prefilled. Generated tokens are recorded as they stream, so a
// next turn that re-renders the reply the same way reuses it; one that renders it differently
// (reasoning dropped from earlier turns, re-tokenized text) re-prefills from the first difference.
import { commonPrefix, type InputMedia, type ModelInputPlan } from '../fusion/model_input.js';
import type { ChunkMedia, ModelChunk, RuntimeSession } from '../runtime/contract.js';

export interface SyncResult {
  /** Positions reused from what the engine held. */
  reused: number;
  /** Positions prefilled now. */
  prefilled: number;
}

export class EngineContext {
  /** Key per position the engine holds (token id, or a media item's key). */
  private keys: unknown[] = [];

  constructor(readonly session: RuntimeSession) {}

  get length(): number {
    return this.keys.length;
  }

  /** Makes the engine hold exactly `plan` (and at least its last token freshly fed, for logits). */
  async sync(plan: ModelInputPlan): Promise<SyncResult> {
    // A session that lost its context (a runtime node failed over to another) holds less than we
    // think: start over from nothing there.
    if (this.session.length !== this.keys.length) {
      if (this.session.length > 0) await this.session.truncate(0);
      this.keys.length = 0;
    }
    // Always prefill at least the last token: generation starts from the logits it leaves.
    let keep = Math.min(commonPrefix(this.keys, plan.keys), plan.length - 1);
    // Never cut a media run: step back to its start marker.
    for (const m of plan.media) if (m.start < keep && keep < m.end) keep = m.start;
    if (keep < this.keys.length) {
      await this.session.truncate(keep);
      this.keys.length = keep;
    }
    const chunk = sliceChunk(plan, keep);
    await this.session.append(chunk);
    for (let i = keep; i < plan.length; i++) this.keys.push(plan.keys[i]);
    return { reused: keep, prefilled: plan.length - keep };
  }

  /** Hints the runtime that `media` is coming (a remote one uploads it ahead; see RuntimeSession.prepare). */
  prepare(media: InputMedia): void {
    this.session.prepare?.(chunkMedia(media));
  }

  /** A token the engine generated (and fed back) after the last sync. */
  noteGenerated(id: number): void {
    this.keys.push(id);
  }

  /** Drops the context after `length` positions (e.g. a cancelled reply's unheard tail). */
  async truncate(length: number): Promise<void> {
    if (length >= this.keys.length) return;
    await this.session.truncate(length);
    this.keys.length = length;
  }
}

/** Positions `from`..end of a plan as one chunk with the media runs that start there. */
export function sliceChunk(plan: ModelInputPlan, from: number): ModelChunk {
  const n = plan.length - from;
  const positions = new Float32Array(3 * n);
  for (let r = 0; r < 3; r++) positions.set(plan.positions.subarray(r * plan.length + from, (r + 1) * plan.length), r * n);
  const media: ChunkMedia[] = plan.media.filter((m) => m.start >= from).map(({ media: m }) => chunkMedia(m));
  return { ids: plan.ids.subarray(from), positions, ...(media.length > 0 ? { media } : {}) };
}

/** The runtime's view of a featurized media item (the same arrays, no copy). */
function chunkMedia(m: InputMedia): ChunkMedia {
  return m.type === 'audio' ? { kind: 'audio', features: m.features, frames: m.frames } : { kind: 'image', pixelValues: m.pixelValues, grid: m.grid };
}
