// The native runtime end to end on the tiny checkpoint: raw media (log-mel features, patches) and
// ids/positions in, the audio and vision encoders, placeholder substitution with deepstack, the MoE
// decoder and the decode loop -- greedy replies must equal transformers' (test/fixtures/engine,
// scripts/engine_fixtures.py). Also batching across sessions, cancel and truncate.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RuntimeEvent as GenerationEvent } from '../src/runtime/contract.js';
import { NativeEngine, type ChunkMedia, type ModelChunk } from '../src/runtime/native_engine.js';

const FIX = join(import.meta.dirname, 'fixtures', 'engine');
interface TensorEntry { file: string; shape: number[] }
interface CaseEntry {
  tensors: Record<string, TensorEntry>;
  greedy: Record<string, { tokens: number[] }>;
}
const manifest = JSON.parse(readFileSync(join(FIX, 'goldens', 'manifest.json'), 'utf8')) as { cases: Record<string, CaseEntry> };

function load(entry: TensorEntry): Float32Array | Int32Array {
  const b = readFileSync(join(FIX, 'goldens', entry.file));
  const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  return entry.file.endsWith('.i32') ? new Int32Array(ab) : new Float32Array(ab);
}

function chunkOf(name: string): ModelChunk {
  const t = manifest.cases[name]!.tensors;
  const media: ChunkMedia[] = [];
  // Order within a kind is what matters; audio in video has one video and its soundtrack.
  if (t.input_features) {
    const frames = t.input_features.shape[2]!;
    media.push({ kind: 'audio', features: load(t.input_features) as Float32Array, frames });
  }
  const grid = (e: TensorEntry): [number, number, number] => Array.from(load(e)).slice(0, 3) as [number, number, number];
  if (t.pixel_values) media.push({ kind: 'image', pixelValues: load(t.pixel_values) as Float32Array, grid: grid(t.image_grid_thw!) });
  if (t.pixel_values_videos) media.push({ kind: 'video', pixelValues: load(t.pixel_values_videos) as Float32Array, grid: grid(t.video_grid_thw!) });
  return { ids: load(t.input_ids!) as Int32Array, positions: load(t.position_ids!) as Float32Array, media };
}

const tokensOf = (events: GenerationEvent[]): number[] => events.flatMap((e) => (e.type === 'token' ? [e.id] : []));
async function collect(gen: AsyncGenerator<GenerationEvent>): Promise<GenerationEvent[]> {
  const out: GenerationEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}

let engine: NativeEngine;
beforeAll(async () => {
  engine = await NativeEngine.load(join(FIX, 'tiny'), { threads: 2 });
});
afterAll(() => engine.close());

describe('native runtime on the tiny checkpoint (greedy == transformers)', () => {
  for (const name of ['text', 'audio', 'image', 'video', 'audio_in_video', 'two_turn']) {
    it(`${name}: raw media in, the reference's 8 greedy tokens out`, async () => {
      const s = engine.open({ maxLength: 256 });
      await s.append(chunkOf(name));
      const events = await collect(s.generate({ maxTokens: 8, ids: { stop: [] } }));
      expect(tokensOf(events)).toEqual(manifest.cases[name]!.greedy.full!.tokens);
      expect(events.at(-1)).toMatchObject({ type: 'done', reason: 'length', usage: { outputTokens: 8 } });
      s.close();
    });
  }

  it('sessions generating at once are batched and give the same tokens as alone', async () => {
    const names = ['text', 'image', 'two_turn'];
    const sessions = names.map(() => engine.open({ maxLength: 256 }));
    await Promise.all(sessions.map((s, i) => s.append(chunkOf(names[i]!))));
    const before = engine.batchStats.largestBatch;
    const results = await Promise.all(sessions.map((s) => collect(s.generate({ maxTokens: 8, ids: { stop: [] } }))));
    expect(Math.max(before, engine.batchStats.largestBatch)).toBe(3);
    results.forEach((events, i) => expect(tokensOf(events)).toEqual(manifest.cases[names[i]!]!.greedy.full!.tokens));
    for (const s of sessions) s.close();
  });

  it('truncate then generate equals a fresh prefill of the shorter context', async () => {
    const s = engine.open({ maxLength: 256 });
    await s.append(chunkOf('two_turn'));
    await s.truncate(s.length - 5);
    const events = await collect(s.generate({ maxTokens: 8, ids: { stop: [] } }));
    expect(tokensOf(events)).toEqual(manifest.cases.two_turn!.greedy.drop_last_5!.tokens);
    s.close();
  });

  it('cancel ends the stream before the next step; the session stays usable', async () => {
    const s = engine.open({ maxLength: 256 });
    await s.append(chunkOf('text'));
    const events: GenerationEvent[] = [];
    for await (const e of s.generate({ maxTokens: 50, ids: { stop: [] } })) {
      events.push(e);
      if (events.length === 2) s.cancel();
    }
    expect(events.at(-1)).toMatchObject({ type: 'done', reason: 'cancelled' });
    expect(tokensOf(events)).toHaveLength(2);
    expect(s.length).toBe(20 + 2); // both streamed tokens are in the context; no step after the cancel
    s.close();
  });

  it('rejects a second call while busy, media without placeholders, and use after close', async () => {
    const s = engine.open({ maxLength: 256 });
    const first = s.append(chunkOf('text'));
    await expect(s.append(chunkOf('text'))).rejects.toMatchObject({ code: 'session_busy' });
    await first;
    const bad = chunkOf('text');
    await expect(s.append({ ...bad, media: chunkOf('image').media })).rejects.toMatchObject({ code: 'segment_invalid', param: 'media' });
    await expect(s.append({ ids: Int32Array.of(1, 2), positions: new Float32Array(5) })).rejects.toMatchObject({ param: 'positions' });
    s.close();
    await expect(s.append(chunkOf('text'))).rejects.toMatchObject({ code: 'session_closed' });
  });

  it('a session out of room ends its reply with length and never fails the others in its batch', async () => {
    const small = engine.open({ maxLength: 23 }); // 20 prompt tokens + 3
    const big = engine.open({ maxLength: 256 });
    await Promise.all([small.append(chunkOf('text')), big.append(chunkOf('text'))]);
    const [a, b] = await Promise.all([
      collect(small.generate({ maxTokens: 8, ids: { stop: [] } })),
      collect(big.generate({ maxTokens: 8, ids: { stop: [] } })),
    ]);
    expect(a.at(-1)).toMatchObject({ type: 'done', reason: 'length' });
    expect(tokensOf(a)).toEqual(manifest.cases.text!.greedy.full!.tokens.slice(0, 3));
    expect(tokensOf(b)).toEqual(manifest.cases.text!.greedy.full!.tokens);
    await expect(collect(small.generate({ maxTokens: 8 }))).rejects.toMatchObject({ code: 'context_full' });
    small.close();
    big.close();
  });

  it('a cancel made before the stream is first read still cancels it', async () => {
    const s = engine.open({ maxLength: 256 });
    await s.append(chunkOf('text'));
    const gen = s.generate({ maxTokens: 8, ids: { stop: [] } });
    s.cancel();
    const events = await collect(gen);
    expect(events).toEqual([expect.objectContaining({ type: 'done', reason: 'cancelled' })]);
    s.close();
  });

  it('closing a session mid-reply ends the stream as cancelled and frees the session', async () => {
    const s = engine.open({ maxLength: 256 });
    await s.append(chunkOf('text'));
    const events: GenerationEvent[] = [];
    for await (const e of s.generate({ maxTokens: 50, ids: { stop: [] } })) {
      events.push(e);
      if (events.length === 1) s.close();
    }
    expect(events.at(-1)).toMatchObject({ type: 'done', reason: 'cancelled' });
    expect(engine.activeSessions).toBe(0);
  });
});
