// The gateway process of bench/realtime.mjs: a real gateway on a loopback port, with either the
// native runtime (demo checkpoint: model time included) or `instant` -- a runtime that answers at
// once with a fixed reply and a tone -- so what is measured is the gateway's own work: decoding,
// VAD, features, fusion, event encoding, pacing and sending. Reports event-loop delay over IPC.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { loadConfig } from '../dist/config/load.js';
import { buildGateway } from '../dist/gateway/app.js';
import { createRuntime } from '../dist/runtime/create.js';
import { sharedTokenizer } from '../dist/fusion/model_input.js';
import { getSharedVadBatcher } from '../dist/codecs/audio/vad_batcher.js';

const mode = process.argv[2] ?? 'instant';
const config = loadConfig({ flags: { port: '0', logLevel: 'warn', playbackLeadMs: process.env.LEAD_MS ?? '300' }, env: {} });

/** Instant runtime: the reply's tokens and speech arrive as fast as the loop hands them out. */
function instantRuntime() {
  const reply = sharedTokenizer().encodeSync?.('Sure, the weather today is sunny with a light breeze.') ?? [39_814, 11, 279, 9104, 3351, 374, 39698, 448, 264, 3100, 45712, 13];
  const chunk = new Float32Array(1920 * 4).map((_, i) => 0.2 * Math.sin((2 * Math.PI * 220 * i) / 24_000));
  const frames = 40; // 40 chunks of 320 ms = 12.8 s of speech
  const tick = () => new Promise((r) => setImmediate(r));
  return {
    kind: 'native',
    async health() {
      return { reachable: true, modelLoaded: true, detail: 'instant bench runtime' };
    },
    async capabilities() {
      return { audioIn: true, imageIn: true, videoIn: true, speechOut: true, voices: ['Cherry'], maxContext: 32_768 };
    },
    async open() {
      let length = 0;
      let cancelled = false;
      return {
        get length() {
          return length;
        },
        async append(chunk) {
          length += chunk.ids.length;
        },
        async *generate() {
          cancelled = false;
          let t = 0;
          for (let f = 0; f < frames; f++) {
            await tick();
            if (cancelled) break;
            if (t < reply.length) {
              yield { type: 'token', id: reply[t++], thinking: false, forced: false };
              length++;
            }
            yield { type: 'audio', samples: chunk, sampleOffset: f * chunk.length, tokenStart: 0, tokenEnd: t };
          }
          yield { type: 'done', reason: cancelled ? 'cancelled' : 'stop', usage: { promptTokens: length, outputTokens: t, thinkingTokens: 0 } };
        },
        cancel() {
          cancelled = true;
        },
        async truncate(n) {
          length = n;
        },
        close() {},
      };
    },
    async close() {},
  };
}

const runtime = mode === 'native' ? createRuntime(config) : instantRuntime();
if (mode === 'native') await runtime.start();
const gw = await buildGateway({ config, runtime });
const url = await gw.app.listen({ host: '127.0.0.1', port: 0 });
const h = monitorEventLoopDelay({ resolution: 1 });
process.on('message', (m) => {
  if (m === 'reset') {
    h.reset();
    h.enable();
  } else if (m === 'stats') {
    process.send({ p50: h.percentile(50) / 1e6, p99: h.percentile(99) / 1e6, max: h.max / 1e6, rssMb: process.memoryUsage().rss / 2 ** 20, heapMb: process.memoryUsage().heapUsed / 2 ** 20, sessions: gw.realtimeSessions.size, vad: { ...getSharedVadBatcher().stats } });
  } else if (m === 'stop') {
    void gw.close().then(() => process.exit(0));
  }
});
process.send({ url });
