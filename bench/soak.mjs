// Bounded soak: N realtime sessions talk for M minutes (espeak-ng speech looped in 20 ms chunks,
// server VAD, spoken replies, barge-ins whenever the next utterance starts before the answer
// ends), and every client reconnects after a few turns. Every 10 s it prints the gateway's RSS,
// heap, event-loop delay, live sessions and error counts; at the end, the growth of RSS between
// the first and the last minute and every error event seen. Exit code 1 on any error event or
// unexpected close.
// Run: npm run build:ts && node bench/soak.mjs [minutes=30] [sessions=20] [instant|native]
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

const minutes = Number(process.argv[2] ?? 30);
const sessions = Number(process.argv[3] ?? 20);
const mode = process.argv[4] ?? 'instant';
const TURNS_PER_CONNECTION = 4;

const dir = mkdtempSync(join(tmpdir(), 'omni-soak-'));
execFileSync('espeak-ng', ['-w', join(dir, 'a.wav'), 'Tell me something about the weather in Paris.']);
execFileSync('sox', [join(dir, 'a.wav'), '-r', '24000', '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', join(dir, 'a.raw')]);
const speech = readFileSync(join(dir, 'a.raw'));
const loop = Buffer.concat([Buffer.alloc(24_000), speech, Buffer.alloc(24_000 * 2)]);
const chunks = [];
for (let i = 0; i + 960 <= loop.length; i += 960) chunks.push(JSON.stringify({ type: 'input_audio_buffer.append', audio: loop.subarray(i, i + 960).toString('base64') }));

const server = fork(new URL('./realtime_server.mjs', import.meta.url), [mode], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const { url } = await new Promise((resolve) => server.once('message', resolve));
const ask = (msg) => new Promise((resolve) => { server.once('message', resolve); server.send(msg); });
const wsUrl = `${url.replace('http', 'ws')}/v1/realtime?model=qwen3-omni`;

const errors = [];
let unexpectedCloses = 0;
let turns = 0;
let bargeIns = 0;
let reconnects = 0;

function open(client) {
  const ws = new WebSocket(wsUrl);
  client.ws = ws;
  client.turns = 0;
  client.ready = false;
  ws.on('open', () => {
    ws.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], max_output_tokens: 48, audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 400 } } } } }));
    client.ready = true;
  });
  ws.on('message', (data) => {
    const e = JSON.parse(data);
    if (e.type === 'error') errors.push(`${e.error.code}: ${e.error.message}`);
    if (e.type === 'response.done') {
      turns++;
      if (e.response.status_details?.reason === 'turn_detected') bargeIns++;
      if (++client.turns >= TURNS_PER_CONNECTION) {
        reconnects++;
        client.ready = false;
        ws.close(1000);
        setTimeout(() => open(client), 50);
      }
    }
  });
  ws.on('close', (code) => {
    if (code !== 1000 && code !== 1005 && !client.stopping) unexpectedCloses++;
  });
  ws.on('error', (err) => errors.push(`socket: ${err.message}`));
}

const clients = Array.from({ length: sessions }, (_, i) => ({ at: (i * 13) % chunks.length }));
for (const c of clients) open(c);
server.send('reset');
const t0 = performance.now();
const samples = [];
const report = setInterval(async () => {
  const s = await ask('stats');
  const min = (performance.now() - t0) / 60_000;
  samples.push({ min, rss: s.rssMb, heap: s.heapMb });
  console.log(`${min.toFixed(1)} min: rss ${s.rssMb.toFixed(0)} MB, heap ${s.heapMb?.toFixed(0)} MB, loop p99 ${s.p99.toFixed(1)} ms, live sessions ${s.sessions}, turns ${turns}, barge-ins ${bargeIns}, reconnects ${reconnects}, errors ${errors.length}, unexpected closes ${unexpectedCloses}`);
  server.send('reset');
}, 10_000);
let next = t0;
await new Promise((resolve) => {
  const tick = () => {
    const now = performance.now();
    while (next <= now) {
      for (const c of clients) {
        if (c.ready && c.ws.readyState === WebSocket.OPEN) c.ws.send(chunks[c.at]);
        c.at = (c.at + 1) % chunks.length;
      }
      next += 20;
    }
    if (now - t0 >= minutes * 60_000) return resolve();
    setTimeout(tick, Math.max(0, next - performance.now()));
  };
  tick();
});
clearInterval(report);
for (const c of clients) {
  c.stopping = true;
  c.ws.close(1000);
}
const firstMin = samples.filter((s) => s.min <= 1.01);
const lastMin = samples.filter((s) => s.min >= minutes - 1);
const avg = (a) => a.reduce((n, s) => n + s.rss, 0) / Math.max(1, a.length);
console.log(`soak done: ${minutes} min, ${sessions} sessions (${mode}); turns ${turns}, barge-ins ${bargeIns}, reconnects ${reconnects}`);
console.log(`rss first minute ${avg(firstMin).toFixed(0)} MB, last minute ${avg(lastMin).toFixed(0)} MB`);
console.log(`error events ${errors.length}, unexpected closes ${unexpectedCloses}`);
for (const e of [...new Set(errors)].slice(0, 20)) console.log(`  ${e}`);
server.send('stop');
process.exit(errors.length > 0 || unexpectedCloses > 0 ? 1 : 0);
