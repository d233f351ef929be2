// WebRTC calls under load: N concurrent calls (libwebrtc peers from @roamhq/wrtc in this process)
// each speaking espeak-ng speech into its microphone track in 10 ms frames at real time; the
// gateway (its own process, instant runtime: answers at once with a tone, so what is measured is
// the gateway and the WebRTC media path, not the model) detects each turn and speaks back on the
// call's track. Reports the gateway's event-loop delay, and mouth-to-ear overhead: from the
// `input_audio_buffer.speech_stopped` event on the data channel to the first loud frame of the
// answer on the client's remote track (Opus encode, RTP over loopback, jitter buffer, decode
// included).
// Run: npm run build:ts && node bench/webrtc.mjs [calls=10] [seconds=20]
import { execFileSync, fork } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { f, pct } from './percentile.mjs';

const wrtc = createRequire(import.meta.url)('@roamhq/wrtc');
const calls = Number(process.argv[2] ?? 10);
const seconds = Number(process.argv[3] ?? 20);

const dir = mkdtempSync(join(tmpdir(), 'omni-bench-webrtc-'));
execFileSync('espeak-ng', ['-w', join(dir, 'a.wav'), 'What is the weather like in Paris today?']);
execFileSync('sox', [join(dir, 'a.wav'), '-r', '48000', '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', join(dir, 'a.raw')]);
const raw = readFileSync(join(dir, 'a.raw'));
const speech = new Int16Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length - (raw.length % 2)));
// One loop: 1 s of silence, the sentence, 1.5 s of silence (the answer plays, then the next turn barges in).
const loop = new Int16Array(48_000 + speech.length + 72_000);
loop.set(speech, 48_000);

const server = fork(new URL('./realtime_server.mjs', import.meta.url), ['instant'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
const ask = (msg) => new Promise((resolve) => { server.once('message', resolve); server.send(msg); });
const { url } = await new Promise((resolve) => server.once('message', resolve));

const mouthToEar = [];
let errors = 0;

async function call(i) {
  const pc = new wrtc.RTCPeerConnection();
  const source = new wrtc.nonstandard.RTCAudioSource();
  pc.addTrack(source.createTrack());
  const c = { pc, source, at: (i * 4_800) % loop.length, stoppedAt: 0, waiting: false, sink: undefined };
  pc.ontrack = ({ track }) => {
    if (track.kind !== 'audio') return;
    c.sink = new wrtc.nonstandard.RTCAudioSink(track);
    c.sink.ondata = ({ samples }) => {
      if (!c.waiting) return;
      let max = 0;
      for (const s of samples) max = Math.max(max, Math.abs(s));
      if (max > 300) {
        mouthToEar.push(performance.now() - c.stoppedAt);
        c.waiting = false;
      }
    };
  };
  const dc = pc.createDataChannel('oai-events');
  const open = new Promise((resolve) => (dc.onopen = resolve));
  dc.onmessage = ({ data }) => {
    const e = JSON.parse(data);
    if (e.type === 'input_audio_buffer.speech_stopped') {
      c.stoppedAt = performance.now();
      c.waiting = true;
    } else if (e.type === 'error') {
      errors++;
      if (errors <= 5) console.error('error event:', e.error.code, e.error.message);
    }
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, 3000);
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && (clearTimeout(t), resolve());
  });
  const res = await fetch(`${url}/v1/realtime/calls`, { method: 'POST', headers: { 'content-type': 'application/sdp' }, body: pc.localDescription.sdp });
  if (res.status !== 201) throw new Error(`call ${i}: HTTP ${res.status} ${await res.text()}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: await res.text() });
  await open;
  dc.send(JSON.stringify({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], max_output_tokens: 64, audio: { input: { turn_detection: { type: 'server_vad', silence_duration_ms: 400, prefix_padding_ms: 200 } } } } }));
  return c;
}

const peers = [];
for (let i = 0; i < calls; i++) peers.push(await call(i));
await new Promise((r) => setTimeout(r, 500));
server.send('reset');
const t0 = performance.now();
let sent = 0;
await new Promise((resolve) => {
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - t0) / 10);
    while (sent < due) {
      sent++;
      for (const p of peers) {
        const frame = new Int16Array(480);
        frame.set(loop.subarray(p.at, Math.min(p.at + 480, loop.length)));
        p.at = (p.at + 480) % (loop.length - 480);
        p.source.onData({ samples: frame, sampleRate: 48_000, bitsPerSample: 16, channelCount: 1, numberOfFrames: 480 });
      }
    }
    if (performance.now() - t0 >= seconds * 1000) {
      clearInterval(timer);
      resolve();
    }
  }, 10);
});
const stats = await ask('stats');
for (const p of peers) {
  p.sink?.stop();
  p.pc.close();
}
server.send('stop');

console.log(`${calls} WebRTC calls x ${seconds} s (server VAD, spoken replies, instant runtime)`);
console.log(`event-loop delay (gateway): p50 ${f(stats.p50)} ms, p99 ${f(stats.p99)} ms, max ${f(stats.max)} ms; rss ${stats.rssMb.toFixed(0)} MB; live sessions ${stats.sessions}`);
console.log(`turns answered on the track: ${mouthToEar.length}; error events: ${errors}`);
console.log(`speech_stopped -> first loud frame of the answer on the client track: p50 ${f(pct(mouthToEar, 50))} ms, p99 ${f(pct(mouthToEar, 99))} ms`);
setTimeout(() => process.exit(0), 200);
