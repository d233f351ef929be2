// Parity with the reference: conversations rebuilt from grids / frame counts give the same
// input_ids as Qwen3OmniMoeProcessor (real Qwen3 BPE) and the same position ids / rope_deltas as
// get_rope_index. Fixtures from scripts/fusion_fixtures.py.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { QwenTokenizer } from '../src/codecs/text/tokenizer.js';
import { ropeIndex } from '../src/fusion/rope_index.js';
import { SequenceBuilder, buildSequence } from '../src/fusion/sequence.js';
import { layout, renderLayout, tokenizeLayout, type ChatMessage, type ContentPart, type TemplateOptions } from '../src/fusion/template.js';
import type { Grid } from '../src/fusion/placeholders.js';

interface Fixture {
  name: string;
  messages: ChatMessage[];
  options: TemplateOptions;
  use_audio_in_video: boolean;
  rendered: string;
  media: { audio_frames: number[]; image_grid_thw: Grid[]; video_grid_thw: Grid[]; video_second_per_grid: number[] };
  input_ids: number[];
  position_ids: number[][];
  rope_delta: number;
}

const dir = new URL('./fixtures/fusion/', import.meta.url);
const fixtures = readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(new URL(f, dir), 'utf8')) as Fixture);
const tok = QwenTokenizer.load();
const encode = (texts: readonly string[]): Promise<number[][]> => tok.encodeBatch(texts);

function rows(flat: Float32Array, n: number): number[][] {
  return [0, 1, 2].map((r) => Array.from(flat.subarray(r * n, (r + 1) * n)));
}

describe('fusion fixtures', () => {
  it('covers the required cases', () => {
    const names = fixtures.map((f) => f.name);
    for (const n of ['text_only', 'audio_only', 'image_text', 'video', 'multi_image', 'audio_in_video', 'multi_turn']) {
      expect(names).toContain(n);
    }
  });

  describe.each(fixtures.map((f) => [f.name, f] as const))('%s', (_name, fx) => {
    it('renders the same template string', () => {
      expect(renderLayout(layout(fx.messages, fx.options))).toBe(fx.rendered);
    });

    it('builds the same ids and positions from segments', async () => {
      const segments = await tokenizeLayout(layout(fx.messages, fx.options), encode);
      const built = buildSequence(segments);
      expect(Array.from(built.inputIds)).toEqual(fx.input_ids);
      expect(rows(built.positionIds, built.length)).toEqual(fx.position_ids);
      expect(built.ropeDelta).toBe(fx.rope_delta);
    });

    it('builds the same ids and positions when appended one segment at a time', async () => {
      const segments = await tokenizeLayout(layout(fx.messages, fx.options), encode);
      const b = new SequenceBuilder();
      for (const s of segments) b.appendSegment(s);
      const built = b.build();
      expect(Array.from(built.inputIds)).toEqual(fx.input_ids);
      expect(rows(built.positionIds, built.length)).toEqual(fx.position_ids);
    });

    it('get_rope_index over the reference ids gives the reference positions', () => {
      const r = ropeIndex(fx.input_ids, {
        audioFrames: fx.media.audio_frames,
        imageGrids: fx.media.image_grid_thw,
        videoGrids: fx.media.video_grid_thw,
        secondPerGrids: fx.media.video_second_per_grid,
        useAudioInVideo: fx.use_audio_in_video,
      });
      expect(rows(r.positionIds, fx.input_ids.length)).toEqual(fx.position_ids);
      expect(r.ropeDelta).toBe(fx.rope_delta);
    });
  });

  it('audio_in_video_short_audio: end markers continue from the last merged chunk, below the video max', () => {
    const fx = fixtures.find((f) => f.name === 'audio_in_video_short_audio') as Fixture;
    const end = fx.input_ids.indexOf(151670);
    const before = Math.max(...fx.position_ids.map((r) => Math.max(...r.slice(0, end))));
    expect(fx.position_ids[0]?.[end]).toBeLessThan(before);
  });
});

interface RandomCase {
  segments: ContentPart[];
  input_ids: number[];
  position_ids: number[][];
  rope_delta: number;
}

describe('random sequences through the processor expansion and get_rope_index', () => {
  const cases = JSON.parse(readFileSync(new URL('random/random_sequences.json', dir), 'utf8')) as RandomCase[];

  it.each(cases.map((c, i) => [i, c] as const))('case %i', async (_i, c) => {
    const messages: ChatMessage[] = [{ role: 'user', content: c.segments }];
    const segments = await tokenizeLayout(layout(messages), encode);
    const built = buildSequence(segments);
    expect(Array.from(built.inputIds)).toEqual(c.input_ids);
    expect(rows(built.positionIds, built.length)).toEqual(c.position_ids);
    expect(built.ropeDelta).toBe(c.rope_delta);
  });
});
