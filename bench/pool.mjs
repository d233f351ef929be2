// Gateway-to-node overhead per turn: what a runtime node adds over the in-process native backend
// for one turn's model input (serialisation + loopback transfer + decode on the node + the reply).
//
// Turn: a 10 s audio clip's log-mel features (128 x 1000 float32, 512 KB) plus one 1080p image's
// patches (smart-resized to 1088 x 1920: grid 1 x 68 x 120, 8160 rows x 1536 float32 = 50 MB),
// with their placeholder ids and TMRoPE positions, as ONE append (the realtime session's sync).
//
// Measured (after warm-up, best-of and median of N runs):
//   inproc    append on a null runtime session in this process (the in-process backend's transfer cost: 0)
//   node      the same append through NodeRuntime -> RuntimeNodeServer (null runtime) in ANOTHER
//             process on loopback: encode, WebSocket write, kernel copy, reassembly, decode, OK reply
//   encode    encodeFrameParts alone (header + JSON; tensors are not copied)
//   staged    the same turn with the image uploaded ahead (protocol v2 STAGE, as the realtime session
//             does when a frame arrives): the turn's append carries the audio and a reference
//   tokens    a 64-token generate streamed back (per token), node vs in-process null engine
//   native    (with --native) append + 16 greedy tokens on the demo checkpoint: in-process vs node,
//             audio-only turn (the demo's vision tower makes the 1080p image a compute benchmark)
// The null runtime keeps engine compute out, so the figure is the protocol's own cost.
// Run: npx tsc -p tsconfig.build.json && node bench/pool.mjs [--runs N] [--native]
import { fork } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { NodeRuntime } from '../dist/runtime/node/client.js';
import { MessageType, chunkPayload, encodeFrameParts } from '../dist/runtime/node/protocol.js';
import { RuntimeNodeServer } from '../dist/runtime/node/server.js';

const args = process.argv.slice(2);
const SECRET = 'bench-secret';

/** A runtime that does nothing: the protocol's cost without the engine's. */
class NullRuntime {
  kind = 'native';
  health() {
    return Promise.resolve({ reachable: true, modelLoaded: true, model: 'null', detail: 'null runtime' });
  }
  capabilities() {
    return Promise.resolve({ audioIn: true, imageIn: true, videoIn: true, speechOut: false, voices: [], maxContext: 1 << 20 });
  }
  open() {
    let length = 0;
    return Promise.resolve({
      get length() {
        return length;
      },
      append(chunk) {
        length += chunk.ids.length;
        return Promise.resolve();
      },
      async *generate(req) {
        for (let i = 0; i < req.maxTokens; i++) {
          length++;
          yield { type: 'token', id: 1000 + i, thinking: false, forced: false };
        }
        yield { type: 'done', reason: 'length', usage: { promptTokens: length - req.maxTokens, outputTokens: req.maxTokens } };
      },
      cancel() {},
      truncate(n) {
        length = n;
        return Promise.resolve();
      },
      close() {},
    });
  }
  close() {
    return Promise.resolve();
  }
}

function spawnNode(kind) {
  const child = fork(new URL(import.meta.url).pathname, ['--serve', kind], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  return new Promise((resolve) => child.once('message', (m) => resolve({ child, url: m.url, sinkPort: m.sinkPort })));
}

function stats(ms) {
  const s = [...ms].sort((a, b) => a - b);
  return { best: s[0], median: s[Math.floor(s.length / 2)], p90: s[Math.floor(s.length * 0.9)] };
}
const fmt = (x) => x.toFixed(2);

function turn(withImage) {
  let seed = 7;
  const rnd = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const frames = 1000;
  const features = new Float32Array(128 * frames);
  for (let i = 0; i < features.length; i++) features[i] = rnd();
  const grid = [1, 68, 120];
  const pixelValues = new Float32Array(withImage ? grid[0] * grid[1] * grid[2] * 1536 : 0);
  for (let i = 0; i < pixelValues.length; i += 97) pixelValues[i] = rnd();
  // Placeholder runs: 10 s of audio -> 130 tokens; the image -> 68 * 120 / 4 = 2040 tokens; plus text.
  const n = 130 + (withImage ? 2040 : 0) + 40;
  const ids = new Int32Array(n).fill(151_646);
  const positions = new Float32Array(3 * n);
  for (let r = 0; r < 3; r++) for (let i = 0; i < n; i++) positions[r * n + i] = i;
  const media = [{ kind: 'audio', features, frames }];
  if (withImage) media.push({ kind: 'image', pixelValues, grid });
  return { ids, positions, media };
}

const bytesOf = (chunk) => chunk.ids.byteLength + chunk.positions.byteLength + chunk.media.reduce((n, m) => n + (m.kind === 'audio' ? m.features.byteLength : m.pixelValues.byteLength), 0);

async function timeAppends(session, chunk, runs, warmup = 3) {
  const ms = [];
  for (let i = 0; i < runs + warmup; i++) {
    await session.truncate(0);
    const t0 = performance.now();
    await session.append(chunk);
    if (i >= warmup) ms.push(performance.now() - t0);
  }
  return stats(ms);
}

async function timeTokens(session, runs) {
  const ms = [];
  for (let i = 0; i < runs + 2; i++) {
    const t0 = performance.now();
    let n = 0;
    for await (const e of session.generate({ maxTokens: 64 })) if (e.type === 'token') n++;
    if (i >= 2) ms.push((performance.now() - t0) / n);
  }
  return stats(ms);
}

async function main() {
  const runs = Number(args[args.indexOf('--runs') + 1]) || 30;
  const out = [];
  const row = (what, inproc, node, rawTcp) => {
    out.push({
      what,
      inproc: fmt(inproc.median),
      node: fmt(node.median),
      nodeBest: fmt(node.best),
      nodeP90: fmt(node.p90),
      added: fmt(node.median - inproc.median),
      ...(rawTcp ? { rawTcp: fmt(rawTcp.median), overRaw: fmt(node.median - rawTcp.median) } : {}),
    });
  };

  const { child, url, sinkPort } = await spawnNode('null');
  const { connect } = await import('node:net');
  const raw = connect(sinkPort, '127.0.0.1');
  raw.setNoDelay(true);
  await new Promise((r) => raw.once('connect', r));
  /** The floor: the same bytes over a plain TCP socket to the same process, gathered into one buffer, 1-byte ack. */
  const timeRaw = async (chunk) => {
    const parts = encodeFrameParts({ type: MessageType.APPEND, session: 1, request: 1, ...chunkPayload(chunk) });
    const n = parts.reduce((a, p) => a + p.length, 0);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(n);
    const ms = [];
    for (let i = 0; i < runs + 3; i++) {
      const t0 = performance.now();
      raw.cork();
      raw.write(len);
      for (const p of parts) raw.write(p);
      raw.uncork();
      await new Promise((r) => raw.once('data', r));
      if (i >= 3) ms.push(performance.now() - t0);
    }
    return stats(ms);
  };
  const client = new NodeRuntime({ url, secret: SECRET });
  const remote = await client.open();
  const local = await new NullRuntime().open();

  // A fresh link is slow for its first megabytes: V8 has not optimised either process's receive
  // path yet (0.5 MB appends take ~5 ms, dropping to ~0.5 ms once hot). Shown once, then the link
  // is warmed (200 audio appends, as a gateway's first minutes of turns would) before measuring.
  {
    const audio = turn(false);
    const cold = await timeAppends(remote, audio, 20, 0);
    await timeAppends(remote, audio, 200, 0);
    row(`append: 10 s audio turn on a cold link (first 20 appends after connect)`, await timeAppends(local, audio, 20, 0), cold);
  }

  {
    const n = 40;
    const small = { ids: new Int32Array(n).fill(9), positions: new Float32Array(3 * n), media: [] };
    row('append: 40 text tokens (round-trip latency)', await timeAppends(local, small, runs), await timeAppends(remote, small, runs), await timeRaw(small));
  }
  for (const [label, withImage] of [
    ['10 s audio turn (128 x 1000 features)', false],
    ['10 s audio + one 1080p image (1 x 68 x 120 patches)', true],
  ]) {
    const chunk = turn(withImage);
    const MB = bytesOf(chunk) / 1e6;
    const enc = [];
    const { meta, tensors } = chunkPayload(chunk);
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now();
      encodeFrameParts({ type: MessageType.APPEND, session: 1, request: 1, meta, tensors });
      enc.push(performance.now() - t0);
    }
    const inproc = await timeAppends(local, chunk, runs);
    const node = await timeAppends(remote, chunk, runs);
    row(`append: ${label}, ${MB.toFixed(2)} MB`, inproc, node, await timeRaw(chunk));
    out.at(-1).encode = fmt(stats(enc).median);
    out.at(-1).GBps = (MB / 1e3 / (node.median / 1e3)).toFixed(2);
  }
  {
    // The realtime session prepares an image when it arrives (RuntimeSession.prepare): the node
    // gets its patches while the user is still speaking, and the turn's append names them.
    const chunk = turn(true);
    const image = chunk.media[1];
    remote.prepare(image);
    await remote.append(chunk); // waits for the upload (warm-up; off the turn's critical path)
    const inproc = await timeAppends(local, chunk, runs);
    const node = await timeAppends(remote, chunk, runs);
    row(`append: the same turn, image staged when it arrived (${(image.pixelValues.byteLength / 1e6).toFixed(1)} MB ahead; the append sends ${(bytesOf(chunk) / 1e6 - image.pixelValues.byteLength / 1e6).toFixed(2)} MB)`, inproc, node);
  }
  row('generate: per streamed token (64 tokens)', await timeTokens(local, runs), await timeTokens(remote, runs));
  await client.close();
  raw.destroy();
  child.kill();

  if (args.includes('--native')) {
    const { NativeRuntime } = await import('../dist/runtime/native.js');
    const rt = new NativeRuntime({ model: '', modelCache: join(tmpdir(), 'omni-test-demo-cache') });
    await rt.start();
    const n = await spawnNode('native');
    const c = new NodeRuntime({ url: n.url, secret: SECRET });
    const audioTurn = turn(false);
    // The demo checkpoint's audio placeholders: build the turn through fusion instead of the raw ids.
    const { buildModelInput } = await import('../dist/fusion/model_input.js');
    const { sliceChunk } = await import('../dist/gateway/engine_context.js');
    const plan = await buildModelInput([{ role: 'user', content: [{ type: 'audio', features: audioTurn.media[0].features, frames: 1000, key: {} }, { type: 'text', text: 'Answer.' }] }]);
    const chunk = sliceChunk(plan, 0);
    const timeTurn = async (rtx) => {
      const ms = [];
      for (let i = 0; i < Math.min(runs, 8) + 1; i++) {
        const s = await rtx.open();
        const t0 = performance.now();
        await s.append(chunk);
        for await (const _ of s.generate({ maxTokens: 16, sampling: { temperature: 0 } }));
        if (i >= 1) ms.push(performance.now() - t0);
        s.close();
      }
      return stats(ms);
    };
    row('native demo engine: audio turn append + 16 greedy tokens', await timeTurn(rt), await timeTurn(c));
    await c.close();
    n.child.kill();
    await rt.close();
  }

  console.log(`runtime node overhead on loopback (node in another process), ${runs} runs, medians in ms`);
  console.table(out);
}

if (args[0] === '--serve') {
  // Child: a runtime node over the null runtime (or the demo checkpoint) on a free loopback port.
  let runtime = new NullRuntime();
  if (args[1] === 'native') {
    const { NativeRuntime } = await import('../dist/runtime/native.js');
    runtime = new NativeRuntime({ model: '', modelCache: join(tmpdir(), 'omni-test-demo-cache') });
    await runtime.start();
  }
  const server = new RuntimeNodeServer({ runtime, secret: SECRET });
  const { url } = await server.listen('127.0.0.1', 0);
  // A raw TCP sink beside it: reads a 4-byte length then that many bytes, answers one byte (the floor).
  const { createServer } = await import('node:net');
  const sink = createServer((sock) => {
    sock.setNoDelay(true);
    let want = -1;
    let have = 0;
    let head = Buffer.alloc(0);
    sock.on('data', (d) => {
      while (d.length > 0) {
        if (want < 0) {
          head = Buffer.concat([head, d]);
          if (head.length < 4) return;
          want = head.readUInt32LE(0);
          d = head.subarray(4);
          head = Buffer.alloc(0);
          have = 0;
          // Gather into one buffer as the WebSocket receiver does (one copy).
          sock.buf = Buffer.allocUnsafe(want);
        }
        const take = Math.min(d.length, want - have);
        d.copy(sock.buf, have, 0, take);
        have += take;
        d = d.subarray(take);
        if (have === want) {
          want = -1;
          sock.write('k');
        }
      }
    });
  });
  await new Promise((r) => sink.listen(0, '127.0.0.1', r));
  process.send({ url, sinkPort: sink.address().port });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}
