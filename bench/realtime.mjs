// Realtime load: N concurrent sessions streaming speech in 20 ms chunks with server VAD on, each
// turn answered with speech; the next utterance barges in while the answer still plays.
// Reports, per run: event-loop delay p50/p99 in the gateway process, turn-end (speech_stopped) to
// first audio delta, and barge-in stop latency (speech_started to the last audio delta of the
// interrupted response, and to its response.done), all measured at the client over loopback.
// Runtime `instant` (default) answers at once, so the figures are the gateway's own overhead;
// `native` runs the demo checkpoint (model time included).
// Run: npm run build:ts && node bench/realtime.mjs [sessions=200] [seconds=20] [instant|native]
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { f, pct } from './percentile.mjs';

const sessions = Number(process.argv[2] ?? 200);
const seconds = Number(process.argv[3] ?? 20);
const mode = process.argv[4] ?? 'instant';

// Speech at 24 kHz PCM16 (the GA input format), then 1.2 s of silence: one turn per ~3 s.
const dir = mkdtempSync(join(tmpdir(), 'omni-bench-rt-'));
execFileSync('espeak-ng', ['-w', join(dir, 'a.wav'), 'What is the weather like in Paris today?']);
execFileSync('sox', [join(dir, 'a.wav'), '-r', '24000', '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', join(dir, 'a.raw')]);
const speech = readFileSync(join(dir, 'a.raw'));
const silence = Buffer.alloc(24_000 * 2 * 1.2);
const loop = Buffer.concat([silence.subarray(0, 24_000), speech, silence]);
const CHUNK = 960; // 20 ms at 24 kHz PCM16
const chunks = [];
// Encoded once, as the UTF-8 bytes of the text frame, so sending costs the load generator no
// string conversion per chunk (the gateway receives the same text frames).
for (let i = 0; i + CHUNK <= loop.length; i += CHUNK) chunks.push(Buffer.from(JSON.stringify({ type: 'input_audio_buffer.append', audio: loop.subarray(i, i + CHUNK).toString('base64') })));

// SERVER_PROF=1: CPU profiles of the gateway (main thread and VAD worker) in /tmp/rtprof.
// SERVER_NODE_ARGS: more node flags for the gateway (e.g. --trace-gc).
const execArgv = [...(process.env.SERVER_PROF ? ['--cpu-prof', '--cpu-prof-dir=/tmp/rtprof'] : []), ...(process.env.SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [])];
const server = fork(new URL('./realtime_server.mjs', import.meta.url), [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
const ask = (msg) => new Promise((resolve) => { server.once('message', resolve); server.send(msg); });
const { url } = await new Promise((resolve) => server.once('message', resolve));
const wsUrl = `${url.replace('http', 'ws')}/v1/realtime?model=qwen3-omni`;

const turnToAudio = [];
const stopToLastAudio = [];
const stopToDone = [];
let errors = 0;
let responses = 0;

function connect(i) {
  return new Promise((resolve, reject) => {
    // A zero masking key (allowed: RFC 6455 only requires that a key is sent) spares the load
    // generator XOR-ing every frame it sends; the gateway unmasks as it would any frame.
    const ws = new WebSocket(wsUrl, { generateMask: () => {} });
    const s = { ws, at: (i * 7) % chunks.length, stoppedAt: 0, active: undefined, lastAudio: new Map(), bargeAt: undefined, bargeResp: undefined };
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], max_output_tokens: 64, audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 400, prefix_padding_ms: 200 } } } } }));
      resolve(s);
    });
    ws.on('error', reject);
    ws.on('message', (data) => {
      const now = performance.now();
      // Audio deltas are most of the traffic: read their type and response id from the head of
      // the frame instead of parsing tens of kB of JSON.
      const head = data.toString('latin1', 0, 200);
      if (head.includes('"type":"response.output_audio.delta"')) {
        const id = /"response_id":"([^"]+)"/.exec(head)?.[1];
        if (id !== undefined) {
          if (s.first && s.stoppedAt) turnToAudio.push(now - s.stoppedAt);
          s.first = false;
          s.lastAudio.set(id, now);
          return;
        }
      }
      const e = JSON.parse(data);
      switch (e.type) {
        case 'input_audio_buffer.speech_started':
          if (s.active) {
            s.bargeAt = now;
            s.bargeResp = s.active;
          }
          break;
        case 'input_audio_buffer.speech_stopped':
          s.stoppedAt = now;
          break;
        case 'response.created':
          s.active = e.response.id;
          s.first = true;
          break;
        case 'response.output_audio.delta':
          if (s.first && s.stoppedAt) turnToAudio.push(now - s.stoppedAt);
          s.first = false;
          s.lastAudio.set(e.response_id, now);
          break;
        case 'response.done':
          responses++;
          if (s.bargeResp === e.response.id && s.bargeAt !== undefined) {
            const last = s.lastAudio.get(e.response.id) ?? s.bargeAt;
            stopToLastAudio.push(Math.max(0, last - s.bargeAt));
            stopToDone.push(now - s.bargeAt);
            s.bargeAt = undefined;
          }
          s.lastAudio.delete(e.response.id);
          if (s.active === e.response.id) s.active = undefined;
          break;
        case 'error':
          errors++;
          if (errors <= 5) console.error('error event:', e.error.code, e.error.message);
          break;
      }
    });
  });
}

const clients = [];
for (let i = 0; i < sessions; i++) clients.push(await connect(i));
await new Promise((r) => setTimeout(r, 500));
server.send('reset');
const t0 = performance.now();
const cpu0 = process.cpuUsage();
// CPU time of the gateway process (all threads) and of its main thread (the event loop), from
// /proc: robust to other load on the machine where the loop-delay percentiles are not.
const ticks = (path) => {
  try {
    const f = readFileSync(path, 'utf8').split(') ')[1].split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return Number.NaN;
  }
};
const gw0 = { all: ticks(`/proc/${server.pid}/stat`), main: ticks(`/proc/${server.pid}/task/${server.pid}/stat`) };
// STAGGER=1: each client keeps its own 20 ms clock, the N clocks spread evenly over the 20 ms
// period (independent clients: their chunks arrive spread out). Default: every client sends its
// chunk in the same tick (all N chunks arrive as one burst every 20 ms, the worst case).
const stagger = process.env.STAGGER === '1';
clients.forEach((c, i) => (c.next = t0 + (stagger ? (20 * i) / sessions : 0)));
let next = t0;
await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now();
    if (stagger) {
      // Real-time pace per client: a late tick sends what each client owes.
      for (const c of clients) {
        while (c.next <= now) {
          c.ws.send(chunks[c.at], { binary: false });
          c.at = (c.at + 1) % chunks.length;
          c.next += 20;
        }
      }
      if (now - t0 >= seconds * 1000) return resolve();
      setTimeout(tick, 1);
      return;
    }
    // Real-time pace: catch up on late ticks so every session sends 50 chunks per second.
    while (next <= now) {
      for (const c of clients) {
        c.ws.send(chunks[c.at], { binary: false });
        c.at = (c.at + 1) % chunks.length;
      }
      next += 20;
    }
    if (now - t0 >= seconds * 1000) return resolve();
    setTimeout(tick, Math.max(0, next - performance.now()));
  };
  tick();
});
const genCpu = process.cpuUsage(cpu0);
const gwSec = (performance.now() - t0) / 1000;
const gwMain = (ticks(`/proc/${server.pid}/task/${server.pid}/stat`) - gw0.main) / gwSec;
const gwAll = (ticks(`/proc/${server.pid}/stat`) - gw0.all) / gwSec;
const genPct = ((genCpu.user + genCpu.system) / 1e3 / (performance.now() - t0)) * 100;
const stats = await ask('stats');
// Where each turn's time went inside the gateway: the mean of each stage of omni_turn_stage_seconds
// (features, fusion, queue, prefill, first token, first audio chunk, encode, send), from /metrics.
const stageMeans = [];
try {
  const text = await (await fetch(`${url}/metrics`)).text();
  const sums = new Map();
  for (const m of text.matchAll(/^omni_turn_stage_seconds_(sum|count)\{stage="([^"]+)"\} (\S+)$/gm)) {
    const e = sums.get(m[2]) ?? { sum: 0, count: 0 };
    e[m[1]] = Number(m[3]);
    sums.set(m[2], e);
  }
  // Median as the histogram's bucket: the smallest upper bound holding half the turns.
  const buckets = new Map();
  for (const m of text.matchAll(/^omni_turn_stage_seconds_bucket\{le="([^"]+)",stage="([^"]+)"\} (\S+)$/gm)) {
    if (!buckets.has(m[2])) buckets.set(m[2], []);
    buckets.get(m[2]).push([Number(m[1]), Number(m[3])]);
  }
  for (const [stage, { sum, count }] of sums) {
    if (count === 0) continue;
    const half = (buckets.get(stage) ?? []).sort((a, b) => a[0] - b[0]).find(([, n]) => n >= count / 2)?.[0];
    stageMeans.push(`${stage} ${((1000 * sum) / count).toFixed(2)}${half !== undefined ? ` (p50 <= ${1000 * half})` : ''}`);
  }
} catch (err) {
  stageMeans.push(`(metrics unavailable: ${err.message})`);
}
for (const c of clients) c.ws.close();
server.send('stop');

console.log(`runtime ${mode}, ${sessions} sessions x ${seconds} s of 20 ms chunks (${stagger ? 'clients staggered over the 20 ms period' : 'all clients in the same tick'}; server VAD, spoken replies)`);
console.log(`chunks streamed: ${sessions * Math.round(seconds * 50)} (${Math.round(sessions * seconds * 31.25)} VAD frames' worth); load generator CPU ${genPct.toFixed(0)}% of a core`);
console.log(`gateway CPU: main thread ${gwMain.toFixed(0)}% of a core, whole process ${gwAll.toFixed(0)}% (clock ticks of 10 ms)`);
console.log(`event-loop delay (gateway): p50 ${f(stats.p50)} ms, p99 ${f(stats.p99)} ms, max ${f(stats.max)} ms; rss ${stats.rssMb.toFixed(0)} MB`);
console.log(`VAD: ${stats.vad.frames} frames in ${stats.vad.runs} batched runs (largest ${stats.vad.largestBatch})`);
console.log(`turns answered: ${turnToAudio.length}; responses done: ${responses}; error events: ${errors}`);
console.log(`turn end -> first audio delta: p50 ${f(pct(turnToAudio, 50))} ms, p99 ${f(pct(turnToAudio, 99))} ms`);
console.log(`  gateway turn stages, mean ms and median bucket (omni_turn_stage_seconds): ${stageMeans.join(', ') || 'none recorded'}`);
console.log(`barge-ins: ${stopToLastAudio.length}; speech_started -> last audio delta: p50 ${f(pct(stopToLastAudio, 50))} ms, p99 ${f(pct(stopToLastAudio, 99))} ms; -> response.done: p50 ${f(pct(stopToDone, 50))} ms, p99 ${f(pct(stopToDone, 99))} ms`);
process.exit(0);
