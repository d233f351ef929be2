#!/usr/bin/env node
// A voice turn against Omni Gateway with the official `openai` package (GA realtime client):
// streams a WAV file as the user's turn, then saves the spoken reply to a WAV file and prints its
// transcript.
//
//   node examples/node-openai-client.mjs --in question.wav --out reply.wav \
//     [--url http://127.0.0.1:8080/v1] [--key sk-local] [--model qwen3-omni] [--max-tokens 64] \
//     [--vad] [--text] [--ca cert.pem] [--instructions "Be brief."]
//
// The SDK always dials `wss:` (realtime-protocol.md §1.2). For a plain-HTTP gateway URL this
// script hands `ws` a `createConnection` that opens plain TCP (the SDK never knows); for an
// https URL it uses TLS, trusting --ca for a self-signed certificate.
//
// Turn taking: by default the turn is manual (turn_detection null): the whole file is appended,
// then input_audio_buffer.commit + response.create. With --vad the file is streamed at real-time
// pace followed by a second of silence, and the gateway's server VAD ends the turn and answers.
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import OpenAI from 'openai';
import { OpenAIRealtimeWS } from 'openai/realtime/ws';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string', default: process.env.OMNI_URL ?? 'http://127.0.0.1:8080/v1' },
    key: { type: 'string', default: process.env.OMNI_API_KEY ?? 'sk-local' },
    model: { type: 'string', default: 'qwen3-omni' },
    in: { type: 'string' },
    out: { type: 'string', default: 'reply.wav' },
    'max-tokens': { type: 'string', default: '64' },
    instructions: { type: 'string' },
    vad: { type: 'boolean', default: false },
    text: { type: 'boolean', default: false },
    ca: { type: 'string' },
    timeout: { type: 'string', default: '120' },
  },
});
if (!args.in) {
  console.error('usage: node examples/node-openai-client.mjs --in question.wav [--out reply.wav] [--url http://127.0.0.1:8080/v1] [--key KEY] [--vad] [--text]');
  process.exit(2);
}

const RATE = 24000; // OpenAI realtime PCM is 24 kHz mono PCM16 LE

/** A PCM WAV (8/16/24/32-bit int or 32-bit float, any channels, any rate) as 24 kHz mono PCM16. */
function wavTo24kPcm16(bytes) {
  if (bytes.toString('latin1', 0, 4) !== 'RIFF' || bytes.toString('latin1', 8, 12) !== 'WAVE') throw new Error('not a RIFF/WAVE file');
  let fmt;
  let data;
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = bytes.toString('latin1', at, at + 4);
    const size = Math.min(bytes.readUInt32LE(at + 4), bytes.length - at - 8);
    if (id === 'fmt ') fmt = { format: bytes.readUInt16LE(at + 8), channels: bytes.readUInt16LE(at + 10), rate: bytes.readUInt32LE(at + 12), bits: bytes.readUInt16LE(at + 22) };
    if (id === 'data') data = bytes.subarray(at + 8, at + 8 + size);
    at += 8 + size + (size & 1);
  }
  if (!fmt || !data) throw new Error('WAV without fmt or data chunk');
  const step = fmt.bits / 8;
  const frames = Math.floor(data.length / (step * fmt.channels));
  const mono = new Float32Array(frames);
  for (let i = 0; i < frames; i++) {
    let sum = 0;
    for (let c = 0; c < fmt.channels; c++) {
      const o = (i * fmt.channels + c) * step;
      if (fmt.format === 3 && step === 4) sum += data.readFloatLE(o);
      else if (step === 1) sum += (data[o] - 128) / 128;
      else if (step === 2) sum += data.readInt16LE(o) / 32768;
      else if (step === 3) sum += data.readIntLE(o, 3) / 8388608;
      else if (step === 4) sum += data.readInt32LE(o) / 2147483648;
      else throw new Error(`unsupported WAV: ${fmt.bits}-bit`);
    }
    mono[i] = sum / fmt.channels;
  }
  // Linear resampling to 24 kHz: plenty for speech into a model that listens at 16 kHz.
  const outLen = Math.floor((frames * RATE) / fmt.rate);
  const pcm = Buffer.alloc(outLen * 2);
  for (let i = 0; i < outLen; i++) {
    const x = (i * fmt.rate) / RATE;
    const j = Math.floor(x);
    const a = mono[j] ?? 0;
    const b = mono[j + 1] ?? a;
    const v = a + (b - a) * (x - j);
    pcm.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v * 32768))), 2 * i);
  }
  return pcm;
}

function pcm16Wav(pcm, rate) {
  const h = Buffer.alloc(44);
  h.write('RIFF', 0, 'latin1');
  h.writeUInt32LE(36 + pcm.length, 4);
  h.write('WAVEfmt ', 8, 'latin1');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20);
  h.writeUInt16LE(1, 22);
  h.writeUInt32LE(rate, 24);
  h.writeUInt32LE(rate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'latin1');
  h.writeUInt32LE(pcm.length, 40);
  return Buffer.concat([h, pcm]);
}

const base = new URL(args.url);
const client = new OpenAI({ apiKey: args.key, baseURL: base.toString().replace(/\/$/, '') });
const options =
  base.protocol === 'http:'
    ? { createConnection: () => net.connect({ host: base.hostname, port: Number(base.port || 80) }) }
    : args.ca
      ? { ca: readFileSync(args.ca) }
      : {};
const rt = new OpenAIRealtimeWS({ model: args.model, options }, client);

const audio = [];
let transcript = '';
let failed = false;
const timer = setTimeout(() => {
  console.error(`no response.done within ${args.timeout} s`);
  process.exit(1);
}, Number(args.timeout) * 1000);

rt.on('error', (err) => {
  // Gateway errors are events; the session stays open unless the gateway closes it.
  console.error(`error: ${err.message}`);
  failed = true;
});
rt.on('event', (event) => {
  switch (event.type) {
    case 'session.created':
      console.log(`session ${event.session.id} (${event.session.model})`);
      break;
    case 'input_audio_buffer.speech_started':
    case 'input_audio_buffer.speech_stopped':
    case 'input_audio_buffer.committed':
      console.log(event.type);
      break;
    case 'response.output_audio.delta':
      audio.push(Buffer.from(event.delta, 'base64'));
      break;
    case 'response.output_audio_transcript.delta':
    case 'response.output_text.delta':
      transcript += event.delta;
      process.stdout.write(event.delta);
      break;
    case 'response.done': {
      clearTimeout(timer);
      process.stdout.write('\n');
      const pcm = Buffer.concat(audio);
      writeFileSync(args.out, pcm16Wav(pcm, RATE));
      const r = event.response;
      console.log(`response ${r.id}: ${r.status}${r.status_details?.reason ? ` (${r.status_details.reason})` : ''}; ${(pcm.length / 2 / RATE).toFixed(2)} s of audio -> ${args.out}`);
      console.log(`transcript: ${transcript}`);
      rt.close();
      process.exitCode = failed || (r.status !== 'completed' && r.status !== 'incomplete') ? 1 : 0;
      break;
    }
  }
});

await new Promise((resolve, reject) => {
  rt.socket.once('open', resolve);
  rt.socket.once('error', reject);
});

const maxTokens = Number(args['max-tokens']);
rt.send({
  type: 'session.update',
  session: {
    type: 'realtime',
    output_modalities: [args.text ? 'text' : 'audio'],
    max_output_tokens: maxTokens,
    ...(args.instructions ? { instructions: args.instructions } : {}),
    audio: { input: { format: { type: 'audio/pcm', rate: RATE }, turn_detection: args.vad ? { type: 'server_vad', silence_duration_ms: 400 } : null } },
  },
});

const pcm = wavTo24kPcm16(readFileSync(args.in));
const chunk = (RATE / 50) * 2; // 20 ms
if (args.vad) {
  // Real-time pace, as a microphone would, then silence so the VAD hears the end of the turn.
  const stream = Buffer.concat([pcm, Buffer.alloc(RATE * 2)]);
  for (let i = 0; i < stream.length; i += chunk) {
    rt.send({ type: 'input_audio_buffer.append', audio: stream.subarray(i, i + chunk).toString('base64') });
    await new Promise((r) => setTimeout(r, 20));
  }
} else {
  for (let i = 0; i < pcm.length; i += chunk * 10) rt.send({ type: 'input_audio_buffer.append', audio: pcm.subarray(i, i + chunk * 10).toString('base64') });
  rt.send({ type: 'input_audio_buffer.commit' });
  rt.send({ type: 'response.create', response: { max_output_tokens: maxTokens } });
}
