// Sessions of the native thinker: continuous batching, KV-cache truncation, chunked prefill, and
// the guards around them (session_busy, released / closed objects, full contexts, bad input), and
// that a long prefill leaves the event loop free. Batched and truncated paths are compared bit for
// bit with the plain ones: the engine computes each row the same way whatever shares its pass.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSafetensors, type Tensor } from '../src/codecs/safetensors.js';
import { nativeAddon, type NativeThinker, type NativeThinkerSession } from '../src/native/addon.js';
import { readThinkerCheckpoint } from '../src/runtime/checkpoint.js';
import { countAsyncWork } from './helpers/async-work.js';

const ROOT = join(import.meta.dirname, 'fixtures', 'engine');
const GOLDENS = join(ROOT, 'goldens');

function f32(file: string): Float32Array {
  const b = readFileSync(join(GOLDENS, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function i32(file: string): Int32Array {
  const b = readFileSync(join(GOLDENS, file));
  return new Int32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}
function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
function maxAbsDiff(a: Float32Array, b: Float32Array, offset = 0): number {
  let w = 0;
  for (let i = 0; i < a.length; i++) w = Math.max(w, Math.abs(a[i]! - b[offset + i]!));
  return w;
}
/** Text positions start..start+n-1 on all three rows. */
function textPositions(n: number, start = 0): Float32Array {
  const p = new Float32Array(3 * n);
  for (let r = 0; r < 3; r++) for (let i = 0; i < n; i++) p[r * n + i] = start + i;
  return p;
}
/** Columns [a, b) of a 3 x n position block. */
function slicePositions(p: Float32Array, n: number, a: number, b: number): Float32Array {
  return Float32Array.from([0, 1, 2].flatMap((r) => [...p.subarray(r * n + a, r * n + b)]));
}
async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => (e as { code?: string }).code,
  );
}
function codeOfSync(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}

const twoTurnIds = i32('two_turn.input_ids.i32');
const twoTurnPos = f32('two_turn.position_ids.f32');
const S2 = twoTurnIds.length; // 41

let thinker: NativeThinker;
beforeAll(async () => {
  thinker = await nativeAddon().loadThinker(await readThinkerCheckpoint(join(ROOT, 'tiny')));
});
afterAll(() => thinker?.close());

describe('batched decode (continuous batching)', () => {
  it('one decodeBatch step for 3 sessions gives, bit for bit, what each session gives alone', async () => {
    const prompts = [twoTurnIds.subarray(0, 12), twoTurnIds.subarray(5, 30), twoTurnIds.subarray(20, 27)];
    const open = async () =>
      Promise.all(
        prompts.map(async (ids) => {
          const s = thinker.newSession(64);
          return { s, logits: await s.prefill({ ids, positions: textPositions(ids.length) }) };
        }),
      );
    const alone = await open();
    const batched = await open();
    for (let step = 0; step < 5; step++) {
      const tokens = alone.map((a) => argmax(a.logits));
      for (const [i, a] of alone.entries()) {
        const p = a.s.length;
        a.logits = await a.s.decode(tokens[i]!, [p, p, p]);
      }
      const out = await thinker.decodeBatch(batched.map((b, i) => ({ session: b.s, token: tokens[i]!, position: [b.s.length, b.s.length, b.s.length] })));
      expect(out).toHaveLength(3);
      for (const [i, b] of batched.entries()) {
        b.logits = out[i]!;
        expect(b.logits).toEqual(alone[i]!.logits);
        expect(b.s.length).toBe(alone[i]!.s.length);
      }
    }
    expect(batched.map((b) => b.s.length)).toEqual([17, 30, 12]);
  });

  it('a chunked prefill gives, bit for bit, the logits of the one-shot prefill', async () => {
    const whole = await thinker.newSession(64).prefill({ ids: twoTurnIds, positions: twoTurnPos });
    const s = thinker.newSession(64);
    const cuts = [0, 7, 8, 30, S2];
    let last: Float32Array = new Float32Array(0);
    for (let i = 0; i + 1 < cuts.length; i++) {
      last = await s.prefill({ ids: twoTurnIds.subarray(cuts[i], cuts[i + 1]), positions: slicePositions(twoTurnPos, S2, cuts[i]!, cuts[i + 1]!) });
    }
    expect(s.length).toBe(S2);
    expect(last).toEqual(whole);
  });

  it('concurrent prefills of different sessions take turns and give their sequential results', async () => {
    const chunks = [0, 1, 2].map((k) => ({ ids: twoTurnIds.subarray(k * 10, k * 10 + 11), positions: textPositions(11, k) }));
    const together = await Promise.all(chunks.map((c) => thinker.newSession(16).prefill(c)));
    for (const [k, c] of chunks.entries()) expect(together[k]).toEqual(await thinker.newSession(16).prefill(c));
  });

  it('rejects a batch with a session twice, a foreign session or a bad token, and runs none of it', async () => {
    const a = thinker.newSession(8);
    const other = await nativeAddon().loadThinker(await readThinkerCheckpoint(join(ROOT, 'tiny')));
    const foreign = other.newSession(8);
    expect(await codeOf(thinker.decodeBatch([{ session: a, token: 5, position: [0, 0, 0] }, { session: a, token: 6, position: [1, 1, 1] }]))).toBe('thinker_input_invalid');
    expect(await codeOf(thinker.decodeBatch([{ session: foreign, token: 5, position: [0, 0, 0] }]))).toBe('thinker_input_invalid');
    expect(await codeOf(thinker.decodeBatch([{ session: a, token: 1024, position: [0, 0, 0] }]))).toBe('token_id_invalid');
    expect(await codeOf(thinker.decodeBatch([]))).toBe('thinker_input_invalid');
    expect(a.length).toBe(0);
    other.close();
  });
});

describe('KV-cache truncate', () => {
  const manifest = JSON.parse(readFileSync(join(GOLDENS, 'manifest.json'), 'utf8')) as {
    cases: { two_turn: { greedy: { drop_last_5: { prompt_len: number; tokens: number[]; decode_positions: number[] } } } };
  };
  const g = manifest.cases.two_turn.greedy.drop_last_5;

  it('prefill 41, truncate to 35, continue: bit for bit a fresh prefill of the shortened context, and the golden greedy tokens', async () => {
    const S = g.prompt_len; // 36
    const shortPos = f32('two_turn.gen_drop_last_5.position_ids.f32');
    const steps = f32('two_turn.gen_drop_last_5.step_logits.f32');
    const fresh = thinker.newSession(64);
    let a = await fresh.prefill({ ids: twoTurnIds.subarray(0, S), positions: shortPos });

    const cut = thinker.newSession(64);
    await cut.prefill({ ids: twoTurnIds, positions: twoTurnPos });
    cut.truncate(S - 1);
    expect(cut.length).toBe(S - 1);
    // Re-feed token 35 (the last prompt token of the shortened context) at its position.
    const p = shortPos[S - 1]!;
    let b = await cut.decode(twoTurnIds[S - 1]!, [p, p, p]);
    expect(b).toEqual(a);
    expect(maxAbsDiff(b, steps, 0)).toBeLessThan(1e-4);
    expect(maxAbsDiff(b, f32('two_turn.logits.f32'), (S - 1) * 1024)).toBeLessThan(1e-4);

    const tokens: number[] = [];
    for (let i = 0; i < g.tokens.length; i++) {
      tokens.push(argmax(b));
      if (i + 1 === g.tokens.length) break;
      const q = g.decode_positions[i]!;
      a = await fresh.decode(tokens[i]!, [q, q, q]);
      b = await cut.decode(tokens[i]!, [q, q, q]);
      expect(b).toEqual(a);
      expect(maxAbsDiff(b, steps, (i + 1) * 1024)).toBeLessThan(1e-4);
    }
    expect(tokens).toEqual(g.tokens);
  });

  it('truncate(0) empties the cache; lengths outside 0..length are rejected', async () => {
    const s = thinker.newSession(64);
    await s.prefill({ ids: twoTurnIds.subarray(0, 10), positions: textPositions(10) });
    expect(codeOfSync(() => s.truncate(11))).toBe('thinker_input_invalid');
    expect(codeOfSync(() => s.truncate(-1))).toBe('thinker_input_invalid');
    expect(codeOfSync(() => s.truncate(2.5))).toBe('thinker_input_invalid');
    s.truncate(0);
    expect(s.length).toBe(0);
    const again = await s.prefill({ ids: twoTurnIds.subarray(0, 10), positions: textPositions(10) });
    expect(again).toEqual(await thinker.newSession(16).prefill({ ids: twoTurnIds.subarray(0, 10), positions: textPositions(10) }));
  });
});

describe('session guards', () => {
  it('a second call on a busy session is rejected with session_busy and leaves the cache intact', async () => {
    const s = thinker.newSession(128);
    const first = s.prefill({ ids: twoTurnIds, positions: twoTurnPos });
    expect(await codeOf(s.prefill({ ids: twoTurnIds.subarray(0, 3), positions: textPositions(3) }))).toBe('session_busy');
    expect(await codeOf(s.decode(5, [0, 0, 0]))).toBe('session_busy');
    expect(await codeOf(thinker.decodeBatch([{ session: s, token: 5, position: [0, 0, 0] }]))).toBe('session_busy');
    expect(codeOfSync(() => s.truncate(0))).toBe('session_busy');
    expect(codeOfSync(() => s.release())).toBe('session_busy');
    const logits = await first;
    expect(s.length).toBe(S2);
    expect(logits).toEqual(await thinker.newSession(64).prefill({ ids: twoTurnIds, positions: twoTurnPos }));
    // Idle again: the next call runs.
    await s.decode(argmax(logits), [S2, S2, S2]);
    expect(s.length).toBe(S2 + 1);
  });

  it('a batch with one busy session is rejected whole: the idle sessions stay untouched and usable', async () => {
    const idle = thinker.newSession(16);
    const busy = thinker.newSession(64);
    const running = busy.prefill({ ids: twoTurnIds, positions: twoTurnPos });
    const code = await codeOf(
      thinker.decodeBatch([
        { session: idle, token: 5, position: [0, 0, 0] },
        { session: busy, token: 6, position: [41, 41, 41] },
      ]),
    );
    expect(code).toBe('session_busy');
    await running;
    expect(idle.length).toBe(0);
    await idle.decode(5, [0, 0, 0]);
    expect(idle.length).toBe(1);
  });

  it('released sessions and closed thinkers fail clearly; work in flight at close() completes', async () => {
    const own = await nativeAddon().loadThinker(await readThinkerCheckpoint(join(ROOT, 'tiny')));
    const s = own.newSession(64);
    const r = own.newSession(8);
    r.release();
    r.release(); // idempotent
    expect(await codeOf(r.decode(5, [0, 0, 0]))).toBe('session_released');
    expect(codeOfSync(() => r.truncate(0))).toBe('session_released');
    const inFlight = s.prefill({ ids: twoTurnIds, positions: twoTurnPos });
    own.close();
    expect((await inFlight).length).toBe(1024);
    expect(await codeOf(s.decode(5, [41, 41, 41]))).toBe('thinker_closed');
    expect(codeOfSync(() => own.newSession(8))).toBe('thinker_closed');
    expect(codeOfSync(() => own.embed(Int32Array.of(1)))).toBe('thinker_closed');
    expect(await codeOf(own.decodeBatch([{ session: s, token: 5, position: [0, 0, 0] }]))).toBe('thinker_closed');
  });

  it('a chunk past maxLength is rejected with thinker_context_full before anything runs', async () => {
    const s = thinker.newSession(10);
    await s.prefill({ ids: twoTurnIds.subarray(0, 8), positions: textPositions(8) });
    expect(await codeOf(s.prefill({ ids: twoTurnIds.subarray(0, 3), positions: textPositions(3, 8) }))).toBe('thinker_context_full');
    expect(s.length).toBe(8);
    await s.decode(5, [8, 8, 8]);
    await s.decode(5, [9, 9, 9]);
    expect(await codeOf(s.decode(5, [10, 10, 10]))).toBe('thinker_context_full');
    expect(await codeOf(thinker.decodeBatch([{ session: s, token: 5, position: [10, 10, 10] }]))).toBe('thinker_context_full');
  });

  it('bad chunks are rejected with coded errors', async () => {
    const s = thinker.newSession(16);
    const ids = Int32Array.of(1, 2, 3);
    expect(await codeOf(s.prefill({ ids: Int32Array.of(1, 1024), positions: textPositions(2) }))).toBe('token_id_invalid');
    expect(await codeOf(s.prefill({ ids, positions: textPositions(2) }))).toBe('thinker_input_invalid');
    expect(await codeOf(s.prefill({ ids, positions: Float32Array.of(0, 1, NaN, 0, 1, 2, 0, 1, 2) }))).toBe('thinker_input_invalid');
    expect(await codeOf(s.prefill({ ids: new Int32Array(0), positions: new Float32Array(0) }))).toBe('thinker_input_invalid');
    expect(await codeOf(s.prefill({ ids, positions: textPositions(3), media: { indices: Int32Array.of(3), embeds: new Float32Array(64) } }))).toBe('thinker_input_invalid');
    expect(await codeOf(s.prefill({ ids, positions: textPositions(3), media: { indices: Int32Array.of(0), embeds: new Float32Array(63) } }))).toBe('thinker_input_invalid');
    expect(await codeOf(s.prefill({ ids, positions: textPositions(3), deepstack: { indices: Int32Array.of(0), layers: [new Float32Array(64), new Float32Array(64), new Float32Array(64)] } }))).toBe('thinker_input_invalid');
    expect(await codeOf(s.decode(-1, [0, 0, 0]))).toBe('token_id_invalid');
    expect(await codeOf(s.decode(1, [0, 0] as unknown as [number, number, number]))).toBe('thinker_input_invalid');
    expect(codeOfSync(() => thinker.newSession(0))).toBe('thinker_input_invalid');
    expect(s.length).toBe(0);
  });
});

// A random checkpoint of the real layout, large enough that a long prefill takes a while.
function writeRandomCheckpoint(dir: string): void {
  const config = JSON.parse(readFileSync(join(ROOT, 'tiny', 'config.json'), 'utf8')) as { thinker_config: { text_config: Record<string, unknown> } };
  const H = 256, L = 3, heads = 4, kv = 2, hd = 64, V = 2048, E = 8, I = 128;
  Object.assign(config.thinker_config.text_config, {
    hidden_size: H, num_hidden_layers: L, num_attention_heads: heads, num_key_value_heads: kv, head_dim: hd, vocab_size: V,
    num_experts: E, num_experts_per_tok: 2, moe_intermediate_size: I, mlp_only_layers: [1], intermediate_size: 256,
    rope_parameters: { rope_type: 'default', rope_theta: 1e6, mrope_section: [12, 10, 10], interleaved: true },
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  let seed = 12345;
  const rand = (shape: number[], scale: number, base = 0): Tensor => {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      x[i] = base + ((seed / 2 ** 32) * 2 - 1) * scale;
    }
    return { dtype: 'F32', shape, data: new Uint8Array(x.buffer) };
  };
  const t: Record<string, Tensor> = {
    'thinker.model.embed_tokens.weight': rand([V, H], 0.5),
    'thinker.model.norm.weight': rand([H], 0.1, 1),
    'thinker.lm_head.weight': rand([V, H], 1 / 16),
  };
  for (let l = 0; l < L; l++) {
    const p = `thinker.model.layers.${l}.`;
    t[`${p}input_layernorm.weight`] = rand([H], 0.1, 1);
    t[`${p}post_attention_layernorm.weight`] = rand([H], 0.1, 1);
    t[`${p}self_attn.q_proj.weight`] = rand([heads * hd, H], 1 / 16);
    t[`${p}self_attn.k_proj.weight`] = rand([kv * hd, H], 1 / 16);
    t[`${p}self_attn.v_proj.weight`] = rand([kv * hd, H], 1 / 16);
    t[`${p}self_attn.o_proj.weight`] = rand([H, heads * hd], 1 / 16);
    t[`${p}self_attn.q_norm.weight`] = rand([hd], 0.1, 1);
    t[`${p}self_attn.k_norm.weight`] = rand([hd], 0.1, 1);
    if (l === 1) {
      t[`${p}mlp.gate_proj.weight`] = rand([256, H], 1 / 16);
      t[`${p}mlp.up_proj.weight`] = rand([256, H], 1 / 16);
      t[`${p}mlp.down_proj.weight`] = rand([H, 256], 1 / 16);
      continue;
    }
    t[`${p}mlp.gate.weight`] = rand([E, H], 1 / 16);
    for (let e = 0; e < E; e++) {
      t[`${p}mlp.experts.${e}.gate_proj.weight`] = rand([I, H], 1 / 16);
      t[`${p}mlp.experts.${e}.up_proj.weight`] = rand([I, H], 1 / 16);
      t[`${p}mlp.experts.${e}.down_proj.weight`] = rand([H, I], 1 / 11);
    }
  }
  writeFileSync(join(dir, 'model.safetensors'), encodeSafetensors(t));
}

describe('a larger random checkpoint (dense + MoE layers)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'omni-thinker-'));
  let big: NativeThinker;
  let session: NativeThinkerSession;
  beforeAll(async () => {
    writeRandomCheckpoint(dir);
    big = await nativeAddon().loadThinker(await readThinkerCheckpoint(dir, { threads: 1 }));
    session = big.newSession(4096);
  });
  afterAll(() => {
    big?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('gives the same logits, bit for bit, on 1 thread and on a pool of 3 (prefill and batched decode)', async () => {
    const pooled = await nativeAddon().loadThinker(await readThinkerCheckpoint(dir, { threads: 3 }));
    expect(pooled.threads).toBe(3);
    const ids = Int32Array.from({ length: 300 }, (_, i) => (i * 104729) % 2048);
    const run = async (t: NativeThinker) => {
      const a = t.newSession(512);
      const b = t.newSession(512);
      const out = [await a.prefill({ ids, positions: textPositions(300) }), await b.prefill({ ids: ids.subarray(0, 77), positions: textPositions(77) })];
      out.push(...(await t.decodeBatch([{ session: a, token: 9, position: [300, 300, 300] }, { session: b, token: 10, position: [77, 77, 77] }])));
      a.release();
      b.release();
      return out;
    };
    const one = await run(big);
    expect(await run(pooled)).toEqual(one);
    pooled.close();
  });

  it('stays free during a long prefill: timers keep firing, the work is queued off the loop', async () => {
    const n = 2000;
    const ids = Int32Array.from({ length: n }, (_, i) => (i * 7919) % 2048);
    let ticks = 0;
    let last = performance.now();
    let worstGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      worstGap = Math.max(worstGap, now - last);
      last = now;
      ticks++;
    }, 2);
    const t0 = performance.now();
    const { result, queued } = await countAsyncWork('omni.thinker', () => session.prefill({ ids, positions: textPositions(n) }));
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    expect(queued).toBe(1);
    expect(result).toHaveLength(2048);
    expect(result.every(Number.isFinite)).toBe(true);
    expect(session.length).toBe(n);
    expect(elapsed).toBeGreaterThan(50); // long enough for the loop to be tested
    expect(ticks).toBeGreaterThan(elapsed / 20);
    expect(worstGap).toBeLessThan(Math.max(50, elapsed / 2));
    console.log(`prefill ${n} tokens: ${elapsed.toFixed(0)} ms (${((n / elapsed) * 1000).toFixed(0)} tok/s), ${ticks} timer ticks, worst gap ${worstGap.toFixed(1)} ms`);
  });
});
