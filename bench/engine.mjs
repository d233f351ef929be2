// The native thinker engine (MoE text decoder) against Python transformers on CPU, side by side on
// the same checkpoint and prompts, plus decode speed against this machine's memory bandwidth.
//
// Two checkpoints, each measured on both sides:
//   tiny  the committed golden-test checkpoint test/fixtures/engine/tiny (f32, hidden 64, 2 layers,
//         4 experts top-2, vocab 1024): the issue's decode-speed comparison. Weights sit in cache, so
//         this measures each engine's per-token machinery (dispatch, routing, attention, sampling loop).
//   mid   a mid-size bf16 Qwen3-Omni thinker with random weights (hidden 1024, 8 layers, 16 heads
//         x 128, 2 KV heads, 32 experts top-4, moe_intermediate 512, vocab 32768; tiny audio / vision
//         towers), generated once into bench-results/engine-mid-bf16/ by the generator below: decode
//         is bound by memory bandwidth there, and the bench reports weight bytes per token over it.
// Measured, threads = nproc on both sides:
//   prefill   a 512-token text prompt, positions = arange on all three rows
//   decode    greedy, 64 tokens, one session (the gateway's loop: every generated token is fed: 64 steps)
//             (3 runs of fresh session + prefill + decode after a warm-up; the table shows the best run)
//   batch     8 sessions (128-token prompts each) decoding 64 tokens together (continuous batching)
//   bandwidth memory copy (Buffer.copy = memmove) and read (Buffer.indexOf of an absent byte = memchr),
//             1 thread and nproc worker threads at once; decode bytes per token over that.
// The reference side is scripts/engine_bench_reference.py in .venv-ref (float32 and bfloat16 weights).
// Run: npm run build:ts && node bench/engine.mjs [all|tiny|mid]   (default all)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { SafetensorsFileWriter } from '../dist/codecs/safetensors.js';
import { nativeAddon } from '../dist/native/addon.js';
import { demoModelConfig, demoModelTensors } from '../dist/runtime/demo_model.js';
import { NativeEngine } from '../dist/runtime/native_engine.js';

const root = join(import.meta.dirname, '..');
const out = join(root, 'bench-results');
mkdirSync(out, { recursive: true });
const threads = availableParallelism();
const PROMPT = 512;
const DECODE = 64;
const BATCH = 8;
const BATCH_PROMPT = 128;
const VOCAB = 32_768;
const GB = 1e9;

// ---------------------------------------------------------------- mid-size checkpoint (generated once)
const MID = {
  hidden_size: 1024, intermediate_size: 2048, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 2, head_dim: 128,
  num_experts: 32, num_experts_per_tok: 4, moe_intermediate_size: 512,
};

function midConfig() {
  const c = demoModelConfig('tiny', VOCAB);
  const th = c.thinker_config;
  Object.assign(th.text_config, MID);
  th.text_config.rope_parameters = { ...th.text_config.rope_parameters, mrope_section: [24, 20, 20] };
  // The real special ids lie past a 32768 vocabulary; transformers needs the pad id inside it (nn.Embedding
  // padding_idx). Nothing here uses the others (the bench generates with no stop ids).
  th.text_config.pad_token_id = 0;
  th.audio_config.output_dim = MID.hidden_size;
  th.vision_config.out_hidden_size = MID.hidden_size;
  c.omni_gateway_demo = { size: 'bench-mid', note: 'random weights, written by bench/engine.mjs' };
  return c;
}

/** Writes config.json + model.safetensors (bf16; norms 1, biases 0, others uniform with variance 1/fan_in). */
async function writeMidCheckpoint(dir, config) {
  mkdirSync(dir, { recursive: true });
  const tensors = demoModelTensors(config);
  const tmp = join(dir, 'model.safetensors.partial');
  const writer = await SafetensorsFileWriter.create(tmp, tensors.map(([name, shape]) => [name, { dtype: 'BF16', shape }]), { format: 'pt' });
  const slice = 1 << 20;
  const f = new Float32Array(slice);
  const bits = new Uint32Array(f.buffer);
  let x = 0x9e3779b9;
  let bytes = 0;
  for (const [name, shape] of tensors) {
    const count = shape.reduce((a, b) => a * b, 1);
    const isNorm = /norm|ln_q|ln_post|layer_norm/.test(name) && name.endsWith('.weight');
    const isBias = name.endsWith('.bias');
    const fanIn = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    const scale = 2 * Math.sqrt(3 / fanIn);
    for (let at = 0; at < count; at += slice) {
      const m = Math.min(slice, count - at);
      const o = new Uint16Array(m);
      if (isNorm) o.fill(0x3f80);
      else if (!isBias) {
        for (let i = 0; i < m; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          f[i] = ((x >>> 0) / 4294967296 - 0.5) * scale;
        }
        for (let i = 0; i < m; i++) o[i] = bits[i] >>> 16; // bf16 by truncation (random data anyway)
      }
      await writer.append(name, new Uint8Array(o.buffer));
      bytes += o.byteLength;
    }
  }
  await writer.close();
  renameSync(tmp, join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`); // last: marks the checkpoint complete
  return bytes;
}

const which = process.argv[2] ?? 'all';
if (!['all', 'tiny', 'mid'].includes(which)) {
  console.error(`usage: node bench/engine.mjs [all|tiny|mid] (got ${which})`);
  process.exit(2);
}
const tinyDir = join(root, 'test', 'fixtures', 'engine', 'tiny');
const midDir = join(out, 'engine-mid-bf16');
// tiny: more decode steps, because one step takes well under a millisecond on our side.
const CASES = {
  tiny: { dir: tinyDir, vocab: 1024, prompt: PROMPT, decode: 256, batchDecode: DECODE, bandwidth: false },
  mid: { dir: midDir, vocab: VOCAB, prompt: PROMPT, decode: DECODE, batchDecode: DECODE, bandwidth: true },
};
if (which !== 'tiny') {
  const config = midConfig();
  const configText = `${JSON.stringify(config, null, 2)}\n`;
  if (!existsSync(join(midDir, 'config.json')) || readFileSync(join(midDir, 'config.json'), 'utf8') !== configText) {
    const t0 = performance.now();
    console.log(`generating the mid-size checkpoint in ${midDir} ...`);
    const bytes = await writeMidCheckpoint(midDir, config);
    console.log(`  ${(bytes / 1e6).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

// ---------------------------------------------------------------- memory bandwidth
// Each worker owns its buffers (touched first, so no zero-page tricks), waits for the common start,
// then copies / scans them `reps` times. Aggregate = all bytes / the slowest worker's time.
const BW_WORKER = `
const { workerData, parentPort } = require('node:worker_threads');
const { bytes, reps, mode, flag } = workerData;
const src = Buffer.allocUnsafeSlow(bytes).fill(7);
const dst = Buffer.allocUnsafeSlow(bytes).fill(3);
src.copy(dst); src.indexOf(1);
const f = new Int32Array(flag);
Atomics.add(f, 1, 1);
Atomics.wait(f, 0, 0);
const t0 = process.hrtime.bigint();
for (let r = 0; r < reps; r++) { if (mode === 'copy') src.copy(dst); else if (src.indexOf(1) !== -1) throw new Error('found'); }
parentPort.postMessage(Number(process.hrtime.bigint() - t0) / 1e9);
`;

async function bandwidth(mode, workers, bytes = 256 << 20, reps = 8) {
  const flag = new SharedArrayBuffer(8);
  const f = new Int32Array(flag);
  const ws = Array.from({ length: workers }, () => new Worker(BW_WORKER, { eval: true, workerData: { bytes, reps, mode, flag } }));
  const done = ws.map((w) => new Promise((res, rej) => { w.once('message', res); w.once('error', rej); }));
  while (Atomics.load(f, 1) < workers) await new Promise((r) => setTimeout(r, 5));
  Atomics.store(f, 0, 1);
  Atomics.notify(f, 0);
  const secs = await Promise.all(done);
  await Promise.all(ws.map((w) => w.terminate()));
  return (workers * bytes * reps) / Math.max(...secs) / GB; // bytes copied (or scanned) per second
}

// ---------------------------------------------------------------- prompts
function prompt(n, seed, vocab) {
  const ids = new Int32Array(n);
  for (let i = 0; i < n; i++) ids[i] = 100 + ((i * 7919 + seed * 104_729) % (vocab - 200));
  return ids;
}
function arangePositions(n) {
  const p = new Float32Array(3 * n);
  for (let r = 0; r < 3; r++) for (let i = 0; i < n; i++) p[r * n + i] = i;
  return p;
}

// Where the weights live after load (the engine copies the decoder's matrices into anonymous memory
// with transparent huge pages when they fit, OMNI_ENGINE_WEIGHTS=map|copy|auto): AnonHugePages of this
// process (the engine's copy; 0 = read in place from the mapped file) and its resident set.
function memoryFacts() {
  if (process.platform !== 'linux') return null;
  const kb = (text, key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0) * 1024;
  const status = readFileSync('/proc/self/status', 'utf8');
  let huge = 0;
  for (const m of readFileSync('/proc/self/smaps', 'utf8').matchAll(/^AnonHugePages:\s+(\d+) kB/gm)) huge += Number(m[1]) * 1024;
  return { anonHugePages: huge, rssAnon: kb(status, 'RssAnon'), rssFile: kb(status, 'RssFile') };
}

// ---------------------------------------------------------------- ours
async function drain(session, request) {
  const tokens = [];
  for await (const ev of session.generate(request)) if (ev.type === 'token') tokens.push(ev.id);
  return tokens;
}

// RUNS x (fresh session, prefill, greedy decode) after a warm-up; the report takes the best run of
// each (the machine is shared and noisy). Then BATCH sessions decoding together.
const RUNS = 3;
async function measureOurs(c, ids, batchIds) {
  const engine = await NativeEngine.load(c.dir, { threads });
  const gen = { maxTokens: c.decode, sampling: { temperature: 0 }, ids: { stop: [] } };
  {
    const s = engine.open({ maxLength: 1024 }); // warm-up: maps and touches the weights
    await s.append({ ids, positions: arangePositions(ids.length) });
    await drain(s, { ...gen, maxTokens: 4 });
    s.close();
  }
  const memory = c.bandwidth ? memoryFacts() : null;
  const prefillRuns = [];
  const decodeRuns = [];
  let tokens = [];
  for (let i = 0; i < RUNS; i++) {
    const session = engine.open({ maxLength: 1024 });
    let t0 = performance.now();
    await session.append({ ids, positions: arangePositions(ids.length) });
    prefillRuns.push((performance.now() - t0) / 1000);
    const steps0 = engine.batchStats.steps;
    t0 = performance.now();
    tokens = await drain(session, gen);
    decodeRuns.push({ s: (performance.now() - t0) / 1000, steps: engine.batchStats.steps - steps0 });
    session.close();
  }

  const batchSessions = batchIds.map(() => engine.open({ maxLength: 1024 }));
  for (const [b, s] of batchSessions.entries()) await s.append({ ids: batchIds[b], positions: arangePositions(batchIds[b].length) });
  const steps0 = engine.batchStats.steps;
  const batches0 = engine.batchStats.batches;
  const t0 = performance.now();
  await Promise.all(batchSessions.map((s) => drain(s, { ...gen, maxTokens: c.batchDecode })));
  const batchS = (performance.now() - t0) / 1000;
  const batchSteps = engine.batchStats.steps - steps0;
  const batchPasses = engine.batchStats.batches - batches0;
  for (const s of batchSessions) s.close();

  // Bytes read per decoded token, from the mapped tensors' sizes: every text-decoder tensor in full
  // (q/k/v/o, router, norms, final norm, lm_head) except the experts (top-k of num_experts per layer)
  // and the embedding (one row). The KV cache read (f32) is counted apart.
  const spec = engine.spec;
  const bytes = { active: 0, lmHead: 0, experts: 0, attn: 0, kv: 0 };
  for (const t of spec.tensors) {
    if (/\.mlp\.experts\./.test(t.key)) {
      bytes.active += (t.bytes * spec.numExpertsPerTok) / spec.numExperts;
      bytes.experts += (t.bytes * spec.numExpertsPerTok) / spec.numExperts;
    } else if (t.key === 'model.embed_tokens.weight') bytes.active += t.bytes / spec.vocabSize;
    else {
      bytes.active += t.bytes;
      if (t.key === 'lm_head.weight') bytes.lmHead += t.bytes;
      if (/self_attn\.[qkvo]_proj/.test(t.key)) bytes.attn += t.bytes;
    }
  }
  bytes.meanContext = ids.length + c.decode / 2;
  bytes.kv = spec.numLayers * 2 * spec.numKvHeads * spec.headDim * 4 * bytes.meanContext;
  bytes.numExpertsPerTok = spec.numExpertsPerTok;
  engine.close();
  return {
    prefillRuns, decodeRuns, tokens, batchS, batchSteps, batchPasses, memory, bytes,
    prefill: ids.length / Math.min(...prefillRuns),
    decode: Math.max(...decodeRuns.map((r) => r.steps / r.s)),
    batch: batchSteps / batchS,
  };
}

// ---------------------------------------------------------------- transformers
const python = join(root, '.venv-ref', 'bin', 'python');
function measureReference(name, c, ids, batchIds) {
  const ref = {};
  if (!existsSync(python)) return ref;
  const promptFile = join(out, `engine_bench_prompt_${name}.json`);
  writeFileSync(promptFile, JSON.stringify({
    threads, ids: [...ids], decode_tokens: c.decode, batch_ids: batchIds.map((x) => [...x]), batch_decode_tokens: c.batchDecode,
  }));
  for (const dtype of ['float32', 'bfloat16']) {
    console.log(`running transformers on ${name} (${dtype}, ${threads} threads) ...`);
    const r = spawnSync(python, [join(root, 'scripts', 'engine_bench_reference.py'), c.dir, promptFile, '--dtype', dtype], {
      encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, OMP_NUM_THREADS: String(threads) },
    });
    if (r.status !== 0) {
      console.log(`  reference failed (exit ${r.status}):\n${r.stderr.split('\n').slice(-15).join('\n')}`);
      continue;
    }
    const x = JSON.parse(r.stdout.trim().split('\n').pop());
    // tok/s, named as on our side (x.batch is the reference's batch size)
    x.rate = {
      prefill: x.prefill_tokens / Math.min(...x.prefill_s),
      decode: Math.max(...x.decode_s.map((s) => x.decode_steps / s)),
      batch: (x.batch * x.batch_decode_steps) / x.batch_decode_s,
    };
    ref[dtype] = x;
  }
  return ref;
}

// ---------------------------------------------------------------- report
const fmt = (v, d = 1) => (v === undefined ? '-' : v.toFixed(d));
function report(name, c, ours, ref) {
  console.log(`\n## ${name}: ${c.dir} (vocab ${c.vocab})`);
  if (ours.memory) console.log(`engine weights after load (OMNI_ENGINE_WEIGHTS=${process.env.OMNI_ENGINE_WEIGHTS ?? 'auto'}): ${(ours.memory.anonHugePages / 1e6).toFixed(0)} MB in anonymous huge pages (whole process); RSS anonymous ${(ours.memory.rssAnon / 1e6).toFixed(0)} MB, file-backed ${(ours.memory.rssFile / 1e6).toFixed(0)} MB`);
  if (!existsSync(python)) console.log(`.venv-ref is missing (${python}): transformers side skipped, only our engine is measured.`);
  if (ref.float32) console.log(`transformers ${ref.float32.transformers}, torch ${ref.float32.torch}, torch.set_num_threads(${ref.float32.threads}), experts implementation ${ref.float32.experts_implementation ?? 'default (eager loop over hit experts)'}`);
  const cols = ['ours', ...Object.keys(ref).map((k) => `transformers ${k}`), ...Object.keys(ref).map((k) => `ours / ${k}`)];
  const row = (label, key) => [label, fmt(ours[key]), ...Object.values(ref).map((t) => fmt(t.rate[key])), ...Object.values(ref).map((t) => `${fmt(ours[key] / t.rate[key], 2)}x`)];
  const rows = [
    [`prefill ${c.prompt} tokens (tok/s)`, 'prefill'],
    [`decode 1 session, ${c.decode} tokens (tok/s)`, 'decode'],
    [`decode ${BATCH} sessions x ${c.batchDecode} (total tok/s)`, 'batch'],
  ].map(([l, k]) => row(l, k));
  console.log(`\n| measure | ${cols.join(' | ')} |\n|---|${cols.map(() => '---:').join('|')}|`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);
  console.log(`\nours: prefill runs ${ours.prefillRuns.map((s) => s.toFixed(3)).join(', ')} s; decode ${ours.decodeRuns[0].steps} steps in ${ours.decodeRuns.map((r) => r.s.toFixed(3)).join(', ')} s; batch ${ours.batchSteps} steps in ${ours.batchPasses} passes (${ours.batchS.toFixed(3)} s)`);
  for (const [k, r] of Object.entries(ref)) {
    console.log(`transformers ${k}: load ${r.load_s.toFixed(1)} s; prefill runs ${r.prefill_s.map((s) => s.toFixed(3)).join(', ')} s; decode ${r.decode_steps} steps in ${r.decode_s.map((x) => x.toFixed(3)).join(', ')} s; batch ${r.batch} x ${r.batch_decode_steps} in ${r.batch_decode_s.toFixed(3)} s`);
  }
  if (ref.float32) {
    let same = 0;
    while (same < ours.tokens.length && ours.tokens[same] === ref.float32.tokens[same]) same++;
    console.log(`greedy tokens equal to transformers float32 for the first ${same} of ${ours.tokens.length}`);
  }
  const best = Math.max(...Object.values(ref).map((t) => t.rate.decode));
  if (Object.keys(ref).length) console.log(`decode, ours over the faster transformers run: ${fmt(ours.decode / best, 2)}x${name === 'tiny' ? ` -> target >= 5x ${ours.decode / best >= 5 ? 'met' : 'NOT met'}` : ''}`);
}

function reportBandwidth(ours, bw) {
  const b = ours.bytes;
  const perToken = b.active + b.kv;
  const achieved = (ours.decode * b.active) / GB;
  const achievedKv = (ours.decode * perToken) / GB;
  console.log(`\nmemory bandwidth (bytes moved per second; copy = bytes copied, each read once and written once):`);
  console.log(`  copy ${fmt(bw.copy1)} GB/s (1 thread), ${fmt(bw[`copy${threads}`])} GB/s (${threads} threads); read ${fmt(bw.read1)} GB/s (1 thread), ${fmt(bw[`read${threads}`])} GB/s (${threads} threads)`);
  console.log(`active weights per decoded token: ${(b.active / 1e6).toFixed(1)} MB = attention q/k/v/o ${(b.attn / 1e6).toFixed(1)} + top-${b.numExpertsPerTok} experts ${(b.experts / 1e6).toFixed(1)} + lm_head ${(b.lmHead / 1e6).toFixed(1)} + router/norms/embedding row ${((b.active - b.attn - b.experts - b.lmHead) / 1e6).toFixed(2)}; KV cache read at mean context ${b.meanContext}: ${(b.kv / 1e6).toFixed(1)} MB (f32)`);
  const limCopy = bw[`copy${threads}`];
  const limRead = bw[`read${threads}`];
  console.log(`decode ${fmt(ours.decode)} tok/s x ${(b.active / 1e6).toFixed(1)} MB = ${fmt(achieved, 2)} GB/s of weights (${fmt(achievedKv, 2)} GB/s with the KV cache)`);
  console.log(`  = ${fmt((100 * achieved) / limCopy)}% of the copy bandwidth (${fmt(limCopy)} GB/s), ${fmt((100 * achieved) / limRead)}% of the read bandwidth (${fmt(limRead)} GB/s); with KV ${fmt((100 * achievedKv) / limCopy)}% / ${fmt((100 * achievedKv) / limRead)}%`);
  console.log(`  target >= 50% of the bandwidth limit: vs copy (bytes copied/s) ${achieved / limCopy >= 0.5 ? 'met' : 'NOT met'}; vs copy traffic (read + write = 2 x ${fmt(limCopy)} GB/s) ${achieved / (2 * limCopy) >= 0.5 ? 'met' : 'NOT met'} (${fmt((100 * achieved) / (2 * limCopy))}%); vs read (decode only reads weights) ${achieved / limRead >= 0.5 ? 'met' : 'NOT met'}`);
}

// ---------------------------------------------------------------- run
const load0 = loadavg();
const results = {};
let bw;
for (const name of which === 'all' ? ['tiny', 'mid'] : [which]) {
  const c = CASES[name];
  if (c.bandwidth && !bw) {
    bw = {};
    for (const mode of ['copy', 'read']) {
      for (const n of [...new Set([1, threads])]) {
        const runs = [];
        for (let i = 0; i < 3; i++) runs.push(await bandwidth(mode, n));
        bw[`${mode}${n}`] = Math.max(...runs);
      }
    }
  }
  const ids = prompt(c.prompt, 1, c.vocab);
  const batchIds = Array.from({ length: BATCH }, (_, b) => prompt(BATCH_PROMPT, 10 + b, c.vocab));
  console.log(`measuring our engine on ${name} ...`);
  const ours = await measureOurs(c, ids, batchIds);
  const ref = measureReference(name, c, ids, batchIds);
  results[name] = { ours, ref };
}

const load1 = loadavg();
console.log(`\nmachine: ${threads} CPUs (nproc), ${cpus()[0]?.model}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB; load average ${load0.map((v) => v.toFixed(2)).join(' ')} at start, ${load1.map((v) => v.toFixed(2)).join(' ')} at end`);
console.log(`engine kernels: ${nativeAddon().thinkerKernelLevel}, threads ${threads}`);
for (const [name, { ours, ref }] of Object.entries(results)) {
  report(name, CASES[name], ours, ref);
  if (CASES[name].bandwidth) reportBandwidth(ours, bw);
}

writeFileSync(join(out, 'engine.json'), `${JSON.stringify({
  threads, cpu: cpus()[0]?.model, load: { start: load0, end: load1 }, bandwidth: bw,
  results: Object.fromEntries(Object.entries(results).map(([k, { ours, ref }]) => [k, { ours, reference: ref }])),
}, null, 1)}\n`);
