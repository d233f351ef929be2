// The /demo page in headless Chromium (Debian `chromium`, installed by .ci/run), driven over the
// DevTools protocol: fake camera and microphone (the microphone plays an espeak-ng WAV file in a
// loop), the page calls the gateway over WebRTC, gets session.created on the events channel,
// its speech makes VAD turns, the reply is heard on the remote track (inbound audio energy) with
// transcript events, and the interrupt button clears the playback; hangup ends the call.
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SettingKey } from '../src/config/settings.js';
import type { CallRegistry } from '../src/gateway/webrtc/index.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';
import { DEMO_CACHE } from './helpers/realtime.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`webrtc_browser: skipped, ${CHROMIUM} is absent (CI installs Debian chromium in .ci/run)`);

const API_KEY = 'sk-browser';
const FLAGS: Partial<Record<SettingKey, string>> = { modelCache: DEMO_CACHE, apiKeys: API_KEY, playbackLeadMs: '200' };

/** A minimal DevTools protocol client over the browser's WebSocket. */
class Cdp {
  private n = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private constructor(private readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const msg = JSON.parse((data as Buffer).toString('utf8')) as { id?: number; result?: unknown; error?: { message: string } };
      if (msg.id === undefined) return;
      const p = this.pending.get(msg.id);
      this.pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(msg.error.message));
      else p?.resolve(msg.result);
    });
  }
  static async connect(url: string): Promise<Cdp> {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    return new Cdp(ws);
  }
  send<T>(method: string, params: Record<string, unknown> = {}, sessionId?: string): Promise<T> {
    const id = ++this.n;
    this.ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
    return new Promise<T>((resolve, reject) => this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject }));
  }
  close(): void {
    this.ws.close();
  }
}

let gw: TestGateway;
let calls: CallRegistry;
let speechOut = false;
let chrome: ChildProcess | undefined;
let cdp: Cdp | undefined;
let profile = '';

async function launchChromium(wav: string): Promise<Cdp> {
  profile = mkdtempSync(join(tmpdir(), 'omni-chromium-'));
  chrome = spawn(
    CHROMIUM,
    [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
      `--user-data-dir=${profile}`,
      '--remote-debugging-port=0',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
      '--autoplay-policy=no-user-gesture-required',
      'about:blank',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  chrome.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const portFile = join(profile, 'DevToolsActivePort');
  for (let i = 0; i < 300 && !existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(portFile)) throw new Error(`chromium did not start: ${stderr.slice(-2000)}`);
  const [port, path] = readFileSync(portFile, 'utf8').trim().split('\n');
  return Cdp.connect(`ws://127.0.0.1:${port}${path}`);
}

beforeAll(async () => {
  if (!haveChromium) return;
  gw = await startTestGateway(FLAGS);
  calls = gw.gateway.calls;
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
  // The fake microphone loops this file: a sentence, then silence that ends the VAD turn and
  // leaves the reply time to start before the sentence comes round again.
  const dir = mkdtempSync(join(tmpdir(), 'omni-browser-'));
  execFileSync('espeak-ng', ['-w', join(dir, 'raw.wav'), 'Hello there, what can you tell me about the weather in Paris?']);
  const wav = join(dir, 'speech.wav');
  execFileSync('sox', [join(dir, 'raw.wav'), '-r', '48000', '-c', '1', '-b', '16', wav, 'pad', '0.5', '10']);
  cdp = await launchChromium(wav);
}, 120_000);

afterAll(async () => {
  if (chrome && chrome.exitCode === null) {
    const exited = new Promise((r) => chrome!.once('exit', r));
    await cdp?.send('Browser.close').catch(() => undefined);
    const timer = setTimeout(() => chrome?.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
  cdp?.close();
  // Chromium's helper processes may still be writing the profile for a moment.
  if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  await gw?.gateway.close();
});

describe.skipIf(!haveChromium)('/demo in headless Chromium', () => {
  it('serves the page and its script', async () => {
    const page = await fetch(`${gw.url}/demo`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    expect(await page.text()).toContain('/demo/app.js');
    const js = await fetch(`${gw.url}/demo/app.js`);
    expect(js.headers.get('content-type')).toMatch(/javascript/);
  });

  it('calls over WebRTC with fake media: session.created, speech turns, the reply on the track, interrupt, hangup', async (ctx) => {
    const c = cdp!;
    const { targetId } = await c.send<{ targetId: string }>('Target.createTarget', { url: `${gw.url}/demo?autostart=1&camera=1&max_tokens=300&key=${API_KEY}` });
    const { sessionId } = await c.send<{ sessionId: string }>('Target.attachToTarget', { targetId, flatten: true });
    const evaluate = async <T>(expression: string): Promise<T> => {
      const r = await c.send<{ result: { value: T }; exceptionDetails?: { text: string } }>('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true }, sessionId);
      if (r.exceptionDetails) throw new Error(`page: ${r.exceptionDetails.text}`);
      return r.result.value;
    };
    const types = () => evaluate<string[]>('window.omniDemo ? window.omniDemo.events.map((e) => e.type) : []');
    const waitFor = async (type: string, ms: number): Promise<void> => {
      const t0 = Date.now();
      while (Date.now() - t0 < ms) {
        if ((await types()).includes(type)) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      const status = await evaluate<string>('window.omniDemo ? window.omniDemo.status + " " + JSON.stringify(window.omniDemo.error) : "no page state"');
      throw new Error(`timed out waiting for ${type}; page: ${status}; last events: ${(await types()).slice(-40).join(', ')}`);
    };

    await waitFor('session.created', 20_000);
    expect((await types())[0]).toBe('session.created');
    expect(await evaluate<string>('window.omniDemo.status')).toBe('connected');
    expect(calls.size).toBe(1);
    const call = calls.all()[0]!;

    // The fake microphone's speech makes VAD turns.
    await waitFor('input_audio_buffer.speech_started', 20_000);
    await waitFor('input_audio_buffer.committed', 20_000);
    await waitFor('response.created', 20_000);
    if (!speechOut) {
      await ctx.annotate('the model has no speech output: audio checks skipped');
    } else {
      await waitFor('output_audio_buffer.started', 60_000);
      await waitFor('response.output_audio_transcript.delta', 10_000);
      // Non-silent audio arrived on the page's remote track.
      let energy = 0;
      for (let i = 0; i < 50 && energy <= 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        energy = (await evaluate<{ totalAudioEnergy: number } | null>('window.omniDemo.inboundAudio()'))?.totalAudioEnergy ?? 0;
      }
      expect(energy).toBeGreaterThan(0);
      // The page shows where the turn's latency went (omni.turn.latency, sent at the first audio).
      await waitFor('omni.turn.latency', 10_000);
      expect(await evaluate<string>('document.getElementById("latency").textContent')).toMatch(/^first audio after \d+ ms: features .* send /);
      // Barge in with the interrupt button.
      await evaluate('document.getElementById("interrupt").click()');
      await waitFor('output_audio_buffer.cleared', 10_000);
      const sent = await evaluate<string[]>('window.omniDemo.sent.map((e) => e.type)');
      expect(sent).toEqual(expect.arrayContaining(['response.cancel', 'output_audio_buffer.clear']));
    }
    // The camera was sampled into the session's image input.
    expect(call.session.conversation.all().some((item) => item.type === 'message' && item.content.some((p) => p.type === 'input_image'))).toBe(true);
    expect((await types()).some((t) => t === 'response.output_audio.delta')).toBe(false);

    await evaluate('window.omniDemo.hangup()');
    for (let i = 0; i < 100 && calls.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(calls.size).toBe(0);
    expect(await evaluate<string>('window.omniDemo.status')).toBe('hung up');
    await c.send('Target.closeTarget', { targetId });
  }, 150_000);
});
