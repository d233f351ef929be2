// Qwen3-Omni code-to-wave decoder, native on CPU, against the transformers goldens of
// test/fixtures/speech (README there, section (a)): tiny code2wav (hidden 32, 1 layer, sliding
// window 8, real upsample rates 8/5/4/3 -> 1920 samples per frame) over 12 frames of codes.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CheckpointError } from '../src/runtime/checkpoint.js';
import { Code2Wav, Code2WavError, readCode2WavCheckpoint } from '../src/runtime/code2wav.js';
import { countAsyncWork } from './helpers/async-work.js';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'speech');
const GOLDENS = join(FIXTURES, 'goldens');
const TINY = join(FIXTURES, 'tiny');

function f32(name: string): Float32Array {
  const b = readFileSync(join(GOLDENS, name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function i32(name: string): Int32Array {
  const b = readFileSync(join(GOLDENS, name));
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const Q = 16;
const FRAMES = 12;
// Golden codes are [16, 12] (row = quantizer); the decoder takes frames x 16 (frame-major).
const codesQT = i32('code2wav.codes.i32');
const codes = new Int32Array(FRAMES * Q);
for (let q = 0; q < Q; q++) for (let t = 0; t < FRAMES; t++) codes[t * Q + q] = codesQT[q * FRAMES + t]!;
const frameSlice = (c: Int32Array, a: number, b: number) => c.slice(a * Q, b * Q);

/** max |a - b| / max |b| */
function relErr(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / Math.max(m, 1e-30);
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// Deterministic pseudo-random codes (longer than the golden, to cross the sliding window many times).
function randomCodes(frames: number, codebook: number, seed: number): Int32Array {
  const c = new Int32Array(frames * Q);
  let s = seed >>> 0;
  for (let i = 0; i < c.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    c[i] = s % codebook;
  }
  return c;
}

let c2w: Code2Wav;
beforeAll(async () => {
  c2w = await Code2Wav.load(TINY, { threads: 2 });
});
afterAll(() => c2w?.close());

describe('load spec', () => {
  it('reads every size from code2wav_config', async () => {
    const spec = await readCode2WavCheckpoint(TINY);
    expect(spec).toMatchObject({
      codebookSize: 128,
      numQuantizers: 16,
      hiddenSize: 32,
      numLayers: 1,
      numHeads: 2,
      numKvHeads: 2,
      headDim: 16,
      slidingWindow: 8,
      decoderDim: 32,
      upsampleRates: [8, 5, 4, 3],
      upsamplingRatios: [2, 2],
    });
    expect(spec.tensors.every((t) => t.name === `code2wav.${t.key}`)).toBe(true);
    expect(c2w.samplesPerFrame).toBe(1920);
    expect(c2w.sampleRate).toBe(24000);
  });

  it('rejects a missing checkpoint with a checkpoint code', async () => {
    await expect(readCode2WavCheckpoint(join(FIXTURES, 'nope'))).rejects.toBeInstanceOf(CheckpointError);
  });
});

describe('goldens', () => {
  it('renders the golden waveform within 1e-4 of max |wav|', async () => {
    const wav = await c2w.render(codes, FRAMES);
    const golden = f32('code2wav.wav.f32');
    expect(wav.length).toBe(22485);
    const err = relErr(wav, golden);
    console.log(`code2wav golden: max abs err / max |wav| = ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
  });

  it('follows 1920 * n - 555 samples per call', async () => {
    for (const n of [1, 2, 5]) {
      const wav = await c2w.render(frameSlice(codes, 0, n), n);
      expect(wav.length).toBe(1920 * n - 555);
      expect(c2w.sampleCount(n)).toBe(1920 * n - 555);
    }
    expect((await c2w.render(new Int32Array(0), 0)).length).toBe(0);
  });

  it('reproduces chunked_decode(5, 3) from chunk renders', async () => {
    // Each chunk = render(codes[start - ctx, end))[ctx * 1920:], the reference's chunked decode.
    const plan = [
      [0, 5, 0],
      [5, 10, 3],
      [10, 12, 3],
    ] as const;
    const parts: Float32Array[] = [];
    for (const [start, end, ctx] of plan) {
      const w = await c2w.render(frameSlice(codes, start - ctx, end));
      parts.push(w.subarray(ctx * 1920));
    }
    const err = relErr(concat(parts), f32('code2wav.chunked_c5_l3.wav.f32'));
    expect(err).toBeLessThan(1e-4);
  });
});

describe('streaming', () => {
  it('joined pushes equal the one-shot render (golden codes, several chunkings)', async () => {
    const full = await c2w.render(codes, FRAMES);
    for (const sizes of [[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [3, 4, 5], [2, 10], [12]]) {
      const s = c2w.stream();
      const parts: Float32Array[] = [];
      let at = 0;
      for (const n of sizes) {
        const p = await s.push(frameSlice(codes, at, at + n), n);
        at += n;
        expect(p.length).toBe(at === n ? 1920 * n - 555 : 1920 * n);
        parts.push(p);
      }
      parts.push(await s.flush());
      const joined = concat(parts);
      const err = relErr(joined, full);
      expect(err).toBeLessThan(1e-4);
    }
  });

  it('first chunk leaves after one frame, long streams stay exact past the window', async () => {
    const long = randomCodes(60, 128, 7);
    const full = await c2w.render(long);
    const s = c2w.stream();
    const first = await s.push(frameSlice(long, 0, 1));
    expect(first.length).toBe(1365);
    // Pushes issued without awaiting still apply in call order.
    const pending: Promise<Float32Array>[] = [];
    for (let t = 1; t < 60; t += 7) pending.push(s.push(frameSlice(long, t, Math.min(60, t + 7))));
    const parts = [first, ...(await Promise.all(pending))];
    const err = relErr(concat(parts), full);
    console.log(`code2wav stream (60 frames, 7-frame pushes) vs one-shot: ${err.toExponential(2)}`);
    expect(err).toBeLessThan(1e-4);
    expect(s.frames).toBe(60);
    expect(s.samples).toBe(1920 * 60 - 555);
    expect((await s.flush()).length).toBe(0);
    await expect(s.push(frameSlice(long, 0, 1))).rejects.toMatchObject({ code: 'code2wav_stream_finished' });
  });
});

// Rewrites the tiny checkpoint's code2wav tensors as BF16 (round to nearest even) and, next to it,
// the same rounded values widened back to F32: the two must decode identically.
function writeBf16Pair(root: string): { bf16: string; f32: string } {
  const buf = readFileSync(join(TINY, 'model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const base = 8 + n;
  const out = { bf16: join(root, 'bf16'), f32: join(root, 'f32') };
  const write = (dir: string, dtype: 'BF16' | 'F32') => {
    const hdr: Record<string, unknown> = {};
    const chunks: Buffer[] = [];
    let at = 0;
    for (const [name, t] of Object.entries(header)) {
      if (!name.startsWith('code2wav.')) continue;
      const src = new Float32Array(buf.buffer.slice(buf.byteOffset + base + t.data_offsets[0], buf.byteOffset + base + t.data_offsets[1]));
      const bits = new Uint32Array(src.buffer);
      const data = dtype === 'BF16' ? Buffer.alloc(src.length * 2) : Buffer.alloc(src.length * 4);
      for (let i = 0; i < src.length; i++) {
        const u = bits[i]!;
        const r = (u + 0x7fff + ((u >>> 16) & 1)) >>> 16; // round to nearest even
        if (dtype === 'BF16') data.writeUInt16LE(r, i * 2);
        else data.writeUInt32LE((r << 16) >>> 0, i * 4);
      }
      hdr[name] = { dtype, shape: t.shape, data_offsets: [at, at + data.length] };
      at += data.length;
      chunks.push(data);
    }
    let json = JSON.stringify(hdr);
    json += ' '.repeat((8 - (json.length % 8)) % 8); // keep the data 8-byte aligned, as safetensors does
    const h = Buffer.from(json);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.safetensors'), Buffer.concat([len, h, ...chunks]));
    writeFileSync(join(dir, 'config.json'), readFileSync(join(TINY, 'config.json')));
  };
  write(out.bf16, 'BF16');
  write(out.f32, 'F32');
  return out;
}

describe('stored dtypes', () => {
  it('decodes BF16 weights as their F32 widening', async () => {
    const root = mkdtempSync(join(tmpdir(), 'c2w-bf16-'));
    try {
      const dirs = writeBf16Pair(root);
      const bf = await Code2Wav.load(dirs.bf16, { threads: 2 });
      const fp = await Code2Wav.load(dirs.f32, { threads: 2 });
      expect(bf.spec.tensors.every((t) => t.dtype === 'BF16')).toBe(true);
      const a = await bf.render(codes);
      const b = await fp.render(codes);
      expect(relErr(a, b)).toBeLessThan(1e-5);
      // Rounding the weights moves the waveform, but not far from the F32 golden.
      expect(relErr(a, f32('code2wav.wav.f32'))).toBeLessThan(0.2);
      bf.close();
      fp.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('bad codes', () => {
  it('rejects out-of-range ids and wrong lengths with codes', async () => {
    const bad = codes.slice();
    bad[5] = 128;
    await expect(c2w.render(bad, FRAMES)).rejects.toMatchObject({ code: 'code2wav_code_out_of_range', param: 'codes' });
    bad[5] = -1;
    await expect(c2w.render(bad, FRAMES)).rejects.toBeInstanceOf(Code2WavError);
    await expect(c2w.render(codes, FRAMES + 1)).rejects.toMatchObject({ code: 'code2wav_codes_invalid' });
    await expect(c2w.render(codes.subarray(0, 17))).rejects.toMatchObject({ code: 'code2wav_codes_invalid', param: 'codes' });
    await expect(c2w.render(new Float32Array(16) as unknown as Int32Array)).rejects.toMatchObject({ code: 'code2wav_codes_invalid' });
    await expect(c2w.stream().push(bad, FRAMES)).rejects.toMatchObject({ code: 'code2wav_code_out_of_range' });
  });

  it('native checks too (bypassing the TS wrapper)', () => {
    const handle = (c2w as unknown as { handle: { render(c: Int32Array, f: number): Promise<Float32Array> } }).handle;
    const bad = codes.slice();
    bad[0] = 4096;
    expect(() => handle.render(bad, FRAMES)).toThrow(expect.objectContaining({ code: 'code2wav_codes_invalid' }));
    expect(() => handle.render(codes, 3)).toThrow(expect.objectContaining({ code: 'code2wav_codes_invalid' }));
  });

  it('rejects use after close', async () => {
    const other = await Code2Wav.load(TINY, { threads: 1 });
    other.close();
    await expect(other.render(codes)).rejects.toMatchObject({ code: 'code2wav_closed' });
  });
});

describe('off the event loop', () => {
  it('queues renders, pushes and loads as async work', async () => {
    const r = await countAsyncWork('omni.code2wavRender', () => c2w.render(codes));
    expect(r.queued).toBe(1);
    const s = c2w.stream();
    const p = await countAsyncWork('omni.code2wavPush', () => s.push(codes));
    expect(p.queued).toBe(1);
    const l = await countAsyncWork('omni.loadCode2Wav', () => Code2Wav.load(TINY, { threads: 1 }));
    expect(l.queued).toBe(1);
    l.result.close();
  });

  it('keeps the event loop turning during a long render', async () => {
    const long = randomCodes(400, 128, 11);
    let ticks = 0;
    const timer = setInterval(() => ticks++, 0);
    const started = performance.now();
    const wav = await c2w.render(long);
    const elapsed = performance.now() - started;
    clearInterval(timer);
    expect(wav.length).toBe(1920 * 400 - 555);
    if (elapsed > 5) expect(ticks).toBeGreaterThan(0);
  });
});
