// Spoken replies: the native chain (thinker -> talker -> code predictor -> streaming code-to-wave)
// against transformers' Qwen3OmniMoeForConditionalGeneration.generate with audio output, on CPU.
//
// Checkpoints:
//   tiny  test/fixtures/speech/tiny (f32; talker hidden 64, 2 layers, 4 experts; code2wav hidden 32, decoder 32)
//   mid   bench-results/speech-mid-bf16/ (bf16, random weights, generated once): thinker of the demo
//         'small' size, talker hidden 512, 6 layers, 32 experts top-4 + shared expert, code predictor 5
//         layers, code2wav hidden 512, 8 layers, decoder_dim 768 (the released model: 1024 / 8 / 1536)
// Measured (threads = nproc): a reply of REPLY greedy tokens (no stop id) spoken with FRAMES codec
// frames (talker frame cap; the random talker rarely says codec_eos), 3 runs after a warm-up, best run:
//   first audio   time from the first reply token event to the first audio event (the first chunk is
//                 2 frames: 1920 * 2 - 555 samples; target: within 3 frames of work)
//   RTF           (last audio event - first token event) / seconds of audio (thinker running alongside)
//   per frame     talker + code predictor + code-to-wave time per frame after the first chunk
// transformers (scripts/speech_bench_reference.py in .venv-ref, float32) runs the same prompt with
// thinker_min/max_new_tokens = REPLY and talker_min/max_new_tokens = FRAMES + 1; its audio exists only
// when generate returns, so its first audio comes after all the work.
// Run: npm run build:ts && node bench/speech.mjs
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFileWriter } from '../dist/codecs/safetensors.js';
import { demoModelConfig, demoModelTensors } from '../dist/runtime/demo_model.js';
import { NativeEngine } from '../dist/runtime/native_engine.js';

const root = join(import.meta.dirname, '..');
const out = join(root, 'bench-results');
mkdirSync(out, { recursive: true });
const threads = availableParallelism();
const REPLY = 16;
const FRAMES = 40;
const RUNS = 3;
const load0 = loadavg();

// ---------------------------------------------------------------- mid checkpoint (generated once)
function midConfig() {
  const c = demoModelConfig('small');
  const t = c.talker_config;
  Object.assign(t.text_config, {
    hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 6, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64,
    num_experts: 32, num_experts_per_tok: 4, moe_intermediate_size: 256, shared_expert_intermediate_size: 512,
  });
  t.text_config.rope_parameters = { ...t.text_config.rope_parameters, mrope_section: [12, 10, 10] };
  Object.assign(t.code_predictor_config, { hidden_size: 512, intermediate_size: 1536, num_hidden_layers: 5, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 64 });
  Object.assign(c.code2wav_config, { hidden_size: 512, intermediate_size: 1024, num_hidden_layers: 8, num_attention_heads: 8, num_key_value_heads: 8, decoder_dim: 768 });
  c.omni_gateway_demo = { size: 'bench-speech-mid', note: 'random weights, written by bench/speech.mjs' };
  return c;
}

/** bf16 checkpoint with the demo model's init rules (norms 1, biases and Snake alpha/beta 0, damped vocoder). */
async function writeCheckpoint(dir, config) {
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
    const isZero = name.endsWith('.bias') || name.endsWith('.alpha') || name.endsWith('.beta');
    const fanIn = shape.length > 1 ? shape.slice(1).reduce((a, b) => a * b, 1) : 1;
    let damp = /layer_scale\.scale$|\.gamma$/.test(name) ? 0.01 : /^code2wav\.decoder\.\d+\.block\.\d+\.conv2\./.test(name) ? 0.3 : 1;
    if (/^code2wav\.decoder\.\d+\.conv\.weight$/.test(name) && !name.startsWith('code2wav.decoder.0.')) damp *= 0.15;
    const scale = 2 * damp * Math.sqrt(3 / fanIn);
    for (let at = 0; at < count; at += slice) {
      const m = Math.min(slice, count - at);
      const o = new Uint16Array(m);
      if (isNorm) o.fill(0x3f80);
      else if (!isZero) {
        for (let i = 0; i < m; i++) {
          x ^= x << 13;
          x ^= x >>> 17;
          x ^= x << 5;
          f[i] = ((x >>> 0) / 4294967296 - 0.5) * scale;
        }
        for (let i = 0; i < m; i++) o[i] = bits[i] >>> 16;
      }
      await writer.append(name, new Uint8Array(o.buffer));
      bytes += o.byteLength;
    }
  }
  await writer.close();
  renameSync(tmp, join(dir, 'model.safetensors'));
  writeFileSync(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`); // last: marks it complete
  return bytes;
}

const tinyDir = join(root, 'test', 'fixtures', 'speech', 'tiny');
const midDir = join(out, 'speech-mid-bf16');
const mid = midConfig();
const midText = `${JSON.stringify(mid, null, 2)}\n`;
if (!existsSync(join(midDir, 'config.json')) || readFileSync(join(midDir, 'config.json'), 'utf8') !== midText) {
  const t0 = performance.now();
  console.log(`generating the mid checkpoint in ${midDir} ...`);
  const bytes = await writeCheckpoint(midDir, mid);
  console.log(`  ${(bytes / 1e6).toFixed(0)} MB in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
}

/** `<|im_start|>user\n` 32 text ids `<|im_end|>\n<|im_start|>assistant\n` in the checkpoint's ids. */
function prompt(dir) {
  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  const vocab = c.thinker_config.text_config.vocab_size;
  const nl = vocab > 151_000 ? 198 : 10;
  const text = Array.from({ length: 32 }, (_, i) => (vocab > 151_000 ? 1000 + 37 * i : 100 + i));
  return [c.im_start_token_id, c.user_token_id, nl, ...text, c.im_end_token_id, nl, c.im_start_token_id, c.assistant_token_id, nl];
}

// ---------------------------------------------------------------- ours
async function ours(dir) {
  const engine = await NativeEngine.load(dir, { threads });
  const ids = Int32Array.from(prompt(dir));
  const positions = new Float32Array(3 * ids.length);
  for (let r = 0; r < 3; r++) for (let i = 0; i < ids.length; i++) positions[r * ids.length + i] = i;
  const runs = [];
  for (let run = 0; run <= RUNS; run++) {
    const s = engine.open({ maxLength: ids.length + REPLY + 8 });
    await s.append({ ids, positions });
    const t0 = performance.now();
    let firstToken = 0;
    let firstAudio = 0;
    let lastAudio = 0;
    let samples = 0;
    let frames = 0;
    let firstChunkSamples = 0;
    for await (const e of s.generate({
      maxTokens: REPLY,
      ids: { stop: [] },
      speech: {},
      speechOptions: { maxFrames: FRAMES, framesPerToken: 1e6 },
      onCodecFrame: () => void frames++,
    })) {
      const now = performance.now();
      if (e.type === 'token' && !firstToken) firstToken = now;
      if (e.type === 'audio') {
        if (!firstAudio) {
          firstAudio = now;
          firstChunkSamples = e.samples.length;
        }
        lastAudio = now;
        samples += e.samples.length;
      }
    }
    s.close();
    const audioS = samples / 24_000;
    const r = {
      first_token_ms: firstToken - t0,
      first_audio_after_first_token_ms: firstAudio - firstToken,
      first_chunk_samples: firstChunkSamples,
      frames,
      audio_s: audioS,
      rtf: (lastAudio - firstToken) / 1000 / audioS,
      per_frame_ms: (lastAudio - firstAudio) / Math.max(1, frames - 2),
    };
    if (run > 0) runs.push(r);
  }
  engine.close();
  return { runs, best: runs.reduce((a, b) => (b.rtf < a.rtf ? b : a)) };
}

// ---------------------------------------------------------------- transformers
const python = join(root, '.venv-ref', 'bin', 'python');
function reference(dir, name) {
  if (!existsSync(python)) return undefined;
  const promptFile = join(out, `speech_bench_prompt_${name}.json`);
  writeFileSync(promptFile, JSON.stringify({ threads, ids: prompt(dir), reply_tokens: REPLY, frames: FRAMES, speaker: 'Ethan', runs: RUNS }));
  console.log(`running transformers on ${name} (${threads} threads) ...`);
  const r = spawnSync(python, [join(root, 'scripts', 'speech_bench_reference.py'), dir, promptFile], {
    encoding: 'utf8', maxBuffer: 64 << 20, env: { ...process.env, OMP_NUM_THREADS: String(threads) },
  });
  if (r.status !== 0) {
    console.log(`  reference failed (exit ${r.status}):\n${r.stderr.split('\n').slice(-15).join('\n')}`);
    return undefined;
  }
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const results = {};
for (const [name, dir] of [['tiny', tinyDir], ['mid', midDir]]) {
  console.log(`measuring our engine on ${name} ...`);
  results[name] = { ours: await ours(dir) };
}
if (!existsSync(python)) console.log(`\n.venv-ref is missing (${python}): transformers side skipped, only our engine is measured.`);
for (const [name, dir] of [['tiny', tinyDir], ['mid', midDir]]) {
  if (name === 'mid' && process.env.SPEECH_BENCH_MID_REFERENCE !== '1') continue; // minutes of torch: opt in
  results[name].transformers = reference(dir, name);
}

// ---------------------------------------------------------------- report
const load1 = loadavg();
const ms = (v) => (v === undefined ? '-' : `${v.toFixed(0)} ms`);
console.log(`\nspeech output: reply of ${REPLY} tokens spoken as ${FRAMES} frames (${((FRAMES * 1920 - 555) / 24000).toFixed(2)} s), ${threads} threads (${cpus()[0]?.model ?? 'cpu'}), load ${load0[0].toFixed(2)} -> ${load1[0].toFixed(2)}`);
console.log('| checkpoint | engine | first audio after first token | real-time factor | per frame (talker + predictor + code2wav) |');
console.log('|---|---|---|---|---|');
for (const [name, r] of Object.entries(results)) {
  const o = r.ours.best;
  console.log(`| ${name} | ours (streaming, chunks 2 + 4 frames) | ${ms(o.first_audio_after_first_token_ms)} | ${o.rtf.toFixed(3)} | ${o.per_frame_ms.toFixed(1)} ms |`);
  const t = r.transformers?.best;
  if (t) {
    console.log(`| ${name} | transformers generate (f32, not streaming) | ${ms(t.first_audio_after_first_token_s * 1000)} | ${t.rtf.toFixed(3)} | ${((t.speech_s * 1000) / t.frames).toFixed(1)} ms |`);
  }
}
writeFileSync(join(out, 'speech.json'), `${JSON.stringify({ threads, reply: REPLY, frames: FRAMES, load: [load0[0], load1[0]], results }, null, 1)}\n`);
