// Spoken replies end to end (thinker -> talker -> code predictor -> code-to-wave) through the
// runtime contract, against transformers' full generate on the tiny speech checkpoint: goldens of
// scripts/speech_chain_fixtures.py (test/fixtures/speech/chain). Greedy everywhere: the reply's
// tokens, every frame's 16 codec codes and the waveform (within 1e-4) must match; the streamed
// audio chunks must join into one gapless waveform equal to a one-shot render.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChunkMedia, RuntimeEvent } from '../src/runtime/contract.js';
import { RuntimeError } from '../src/runtime/errors.js';
import { NativeEngine, type GenerateRequest } from '../src/runtime/native_engine.js';
import { SpeechRun, type SpeechAudio } from '../src/runtime/speech.js';

const ROOT = join(import.meta.dirname, 'fixtures', 'speech');
const CHAIN = join(ROOT, 'chain');
const WAV_TOL = 1e-4;

interface Entry {
  file: string;
  shape: number[];
}
interface ChainCase {
  speaker: string;
  reply: number[];
  eos_id: number;
  frames: number;
  wav_len: number;
  codes_frames_x16: number[][];
  audio_frames?: number;
  tensors: Record<string, Entry>;
}
const manifest = JSON.parse(readFileSync(join(CHAIN, 'manifest.json'), 'utf8')) as { talker_max_new_tokens: number; cases: Record<string, ChainCase> };

function raw(e: Entry): Buffer {
  return readFileSync(join(CHAIN, e.file));
}
const f32 = (e: Entry) => {
  const b = raw(e);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};
const i32 = (e: Entry) => {
  const b = raw(e);
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  return worst;
}

function join32(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function media(c: ChainCase): ChunkMedia[] {
  const t = c.tensors;
  if (t.pixel_values) {
    const g = i32(t.image_grid_thw!);
    return [{ kind: 'image', pixelValues: f32(t.pixel_values), grid: [g[0]!, g[1]!, g[2]!] }];
  }
  if (t.audio_features) return [{ kind: 'audio', features: f32(t.audio_features), frames: c.audio_frames! }];
  return [];
}

async function collect(gen: AsyncGenerator<RuntimeEvent>, onEvent?: (e: RuntimeEvent) => void): Promise<RuntimeEvent[]> {
  const out: RuntimeEvent[] = [];
  for await (const e of gen) {
    out.push(e);
    onEvent?.(e);
  }
  return out;
}

let engine: NativeEngine;
beforeAll(async () => {
  engine = await NativeEngine.load(join(ROOT, 'tiny'), { threads: 2 });
});
afterAll(() => engine?.close());

async function openCase(name: string) {
  const c = manifest.cases[name]!;
  const s = engine.open({ maxLength: 256 });
  await s.append({ ids: i32(c.tensors.input_ids!), positions: f32(c.tensors.positions!), media: media(c) });
  return { c, s };
}

function request(c: ChainCase, extra: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    maxTokens: 32,
    speech: { voice: c.speaker },
    ids: { stop: [c.eos_id] },
    // transformers' talker_max_new_tokens steps: the last step's code has no residual codes.
    speechOptions: { maxFrames: manifest.talker_max_new_tokens - 1 },
    ...extra,
  };
}

describe('capabilities', () => {
  it('reports speech output and the voices of talker_config.speaker_id (default first)', () => {
    const caps = engine.capabilities();
    expect(caps.speechOut).toBe(true);
    expect(caps.voices).toEqual(['ethan', 'chelsie', 'aiden']);
  });
});

describe.each(Object.keys(manifest.cases))('chained reply equals transformers generate: %s', (name) => {
  it('tokens, codec codes frame by frame, waveform within 1e-4, chunks joined = one-shot render', async () => {
    const { c, s } = await openCase(name);
    const frames: number[][] = [];
    const events = await collect(s.generate(request(c, { onCodecFrame: (f) => frames.push([...f]) })));
    s.close();
    const tokens = events.filter((e) => e.type === 'token').map((e) => (e as { id: number }).id);
    expect(tokens).toEqual(c.reply);
    const done = events[events.length - 1]!;
    expect(done).toMatchObject({ type: 'done', reason: 'stop', stopId: c.eos_id });
    expect(frames).toEqual(c.codes_frames_x16);

    const audio = events.filter((e): e is Extract<RuntimeEvent, { type: 'audio' }> => e.type === 'audio');
    expect(audio.length).toBeGreaterThan(1);
    let offset = 0;
    for (const a of audio) {
      expect(a.sampleOffset).toBe(offset);
      offset += a.samples.length;
      expect(a.tokenStart).toBeLessThanOrEqual(a.tokenEnd);
      expect(a.tokenEnd).toBeLessThanOrEqual(c.reply.length);
    }
    expect(audio[audio.length - 1]!.tokenEnd).toBe(c.reply.length);
    // First chunk: 2 frames (1920 * 2 - 555 samples), then 4 frames (7680 samples) per chunk.
    expect(audio[0]!.samples.length).toBe(1920 * 2 - 555);
    expect(audio[1]!.samples.length).toBe(1920 * 4);
    const wav = join32(audio.map((a) => a.samples));
    const gold = f32(c.tensors.wav!);
    expect(wav.length).toBe(c.wav_len);
    expect(maxDiff(wav, gold)).toBeLessThan(WAV_TOL);
    const oneShot = await engine.speech!.code2wav.render(Int32Array.from(c.codes_frames_x16.flat()));
    expect(maxDiff(wav, oneShot)).toBeLessThan(WAV_TOL);
    // Audio and text interleave: the first audio event comes before the done event, after the first token.
    const firstAudio = events.findIndex((e) => e.type === 'audio');
    expect(firstAudio).toBeGreaterThan(events.findIndex((e) => e.type === 'token'));
    expect(events.findIndex((e) => e.type === 'done')).toBe(events.length - 1);
  });
});

describe('voices and checkpoints without speech', () => {
  it('an unknown voice is a coded error listing the valid ones, before any event', async () => {
    const { c, s } = await openCase('text');
    let err: unknown;
    try {
      await collect(s.generate(request(c, { speech: { voice: 'Zed' } })));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(RuntimeError);
    expect(err).toMatchObject({ code: 'voice_unknown', param: 'voice' });
    expect((err as Error).message).toContain('ethan, chelsie, aiden');
    // The session is still usable, and the voice name is case-insensitive.
    const events = await collect(s.generate(request(c, { speech: { voice: 'ETHAN' }, maxTokens: 2 })));
    expect(events.some((e) => e.type === 'audio')).toBe(true);
    s.close();
  });

  it('a checkpoint without a talker reports speechOut false and rejects a speech request', async () => {
    const plain = await NativeEngine.load(join(import.meta.dirname, 'fixtures', 'engine', 'tiny'), { threads: 1 });
    try {
      expect(plain.capabilities()).toMatchObject({ speechOut: false, voices: [] });
      const s = plain.open({ maxLength: 64 });
      await s.append({ ids: Int32Array.of(1, 2, 3), positions: Float32Array.of(0, 1, 2, 0, 1, 2, 0, 1, 2) });
      await expect(collect(s.generate({ maxTokens: 2, speech: {} }))).rejects.toMatchObject({ code: 'modality_unsupported', param: 'speech' });
      s.close();
    } finally {
      plain.close();
    }
  });
});

describe('streaming', () => {
  it('the talker speaks before the reply is complete: two reply tokens give the first chunk', async () => {
    const c = manifest.cases.text!;
    const ids = [...i32(c.tensors.input_ids!)];
    const pos = f32(c.tensors.positions!);
    const S = ids.length;
    const positions = Array.from({ length: 3 * S }, (_, k) => pos[(k % 3) * S + Math.floor(k / 3)]!);
    const audio: SpeechAudio[] = [];
    const frames: number[][] = [];
    let first: (() => void) | undefined;
    const firstAudio = new Promise<void>((resolve) => (first = resolve));
    const abort = new AbortController();
    const run = new SpeechRun(
      engine.speech!,
      { ids, positions, mediaHidden: new Map(), embed: (x) => engine.thinker.embed(x), mediaIds: new Set([7, 8, 17]) },
      engine.speech!.speakerId(c.speaker),
      abort.signal,
      (e) => {
        audio.push(e);
        first?.();
      },
      { onFrame: (f) => frames.push([...f]) },
    );
    run.token(c.reply[0]!);
    run.token(c.reply[1]!);
    await firstAudio; // finish() not called: the rest of the reply does not exist yet
    expect(audio[0]!.samples.length).toBe(1920 * 2 - 555);
    expect(audio[0]).toMatchObject({ sampleOffset: 0, tokenStart: 0, tokenEnd: 2 });
    expect(frames.slice(0, 2)).toEqual(c.codes_frames_x16.slice(0, 2));
    expect(frames.length).toBeLessThanOrEqual(3); // frame 2 needs reply token 2
    for (const id of c.reply.slice(2)) run.token(id);
    run.finish();
    abort.abort(); // the frame cap is transformers' 4095: stop here
    await run.done;
  });

  it('speech needs a prompt that opens the assistant turn', async () => {
    const s = engine.open({ maxLength: 64 });
    await s.append({ ids: Int32Array.of(2, 21, 10, 100, 3, 10), positions: Float32Array.from({ length: 18 }, (_, k) => k % 6) });
    await expect(collect(s.generate({ maxTokens: 2, speech: {} }))).rejects.toMatchObject({ code: 'generation_invalid', param: 'speech' });
    s.close();
  });

  it('sampled speech (a sampled reply) is reproducible with a seed', async () => {
    const codes: number[][][] = [];
    for (let k = 0; k < 2; k++) {
      const { c, s } = await openCase('text');
      const frames: number[][] = [];
      await collect(s.generate(request(c, { sampling: { temperature: 0.8, seed: 11 }, onCodecFrame: (f) => frames.push([...f]) })));
      s.close();
      codes.push(frames);
    }
    expect(codes[0]!.length).toBeGreaterThan(0);
    expect(codes[1]).toEqual(codes[0]);
    // Residual codes sampled too (top-k 50, top-p 0.8), all inside the codebook.
    for (const f of codes[0]!) for (const v of f) expect(v >= 0 && v < 128).toBe(true);
  });
});

describe('cancel', () => {
  it('stops talker and code-to-wave at once: no audio event after cancel(), done cancelled', async () => {
    const { c, s } = await openCase('multiturn');
    let cancelledAt = -1;
    const events = await collect(s.generate(request(c, { speechOptions: { maxFrames: 200, framesPerToken: 100 } })), (e) => {
      if (e.type === 'audio' && cancelledAt < 0) {
        s.cancel();
        cancelledAt = 0;
      } else if (cancelledAt >= 0) {
        cancelledAt++;
      }
    });
    const first = events.findIndex((e) => e.type === 'audio');
    expect(first).toBeGreaterThanOrEqual(0);
    expect(events.slice(first + 1).some((e) => e.type === 'audio')).toBe(false);
    expect(events[events.length - 1]).toMatchObject({ type: 'done', reason: 'cancelled' });
    // The session serves the next reply right away.
    const again = await collect(s.generate(request(c, { maxTokens: 2 })));
    expect(again[again.length - 1]!.type).toBe('done');
    s.close();
  });
});
