// The embedded-device link `/v1/device` (docs/device-protocol.md) against a real gateway on the
// demo model: hello and welcome, authentication by header or hello key, one specific ERROR frame
// for every kind of malformed frame with the link kept up, the bounds (frame size, hello time,
// unread outbound bytes), and manual turns with PCM16 and Opus audio.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpusEncoderStream, OpusPacketDecoder } from '../src/codecs/audio/opus.js';
import { pcm16leToFloat32 } from '../src/codecs/audio/pcm.js';
import { loadConfig } from '../src/config/load.js';
import type { SettingKey } from '../src/config/settings.js';
import type { Gateway } from '../src/gateway/app.js';
import { encodeFrame, FrameType, registerDeviceRoutes } from '../src/gateway/device/index.js';
import { sharedTokenizer } from '../src/fusion/model_input.js';
import { DeviceClient, FRAME, type ServerEvent } from '../examples/device-sdk/device_client.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
const KEY = 'sk-device';

async function startDeviceGateway(): Promise<TestGateway> {
  const flags: Partial<Record<SettingKey, string>> = { modelCache: DEMO_CACHE, apiKeys: KEY };
  const config = loadConfig({ flags: { port: '0', logLevel: 'info', ...flags }, env: {} });
  const routes = (app: FastifyInstance, g: Gateway): void => {
    const deps = { config, runtime: g.runtime, connections: g.connections, tokenizer: sharedTokenizer(), sessions: g.realtimeSessions };
    // /v1/device is the gateway's own; a second mount has tight bounds.
    registerDeviceRoutes(app, { ...deps, path: '/test/device-tight', helloTimeoutMs: 300, maxOutboundBytes: 64 * 1024, maxFrameBytes: 4096 });
  };
  return startTestGateway(flags, { routes });
}

function speech16k(text: string): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'omni-device-'));
  execFileSync('espeak-ng', ['-w', join(dir, 's.wav'), text]);
  execFileSync('sox', [join(dir, 's.wav'), '-r', '16000', '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', join(dir, 's.raw')]);
  return readFileSync(join(dir, 's.raw'));
}

/** A raw device socket that records every frame (before and after the hello). */
class RawDevice {
  readonly frames: { type: number; json?: ServerEvent; bytes: Buffer }[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters = new Set<() => void>();

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const type = data[0]!;
      const payload = data.subarray(5);
      const json = type === FRAME.AUDIO_OUT ? undefined : (JSON.parse(payload.toString('utf8')) as ServerEvent);
      this.frames.push({ type, bytes: data, ...(json ? { json } : {}) });
      for (const w of this.waiters) w();
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    ws.on('error', () => undefined);
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<RawDevice> {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    const dev = new RawDevice(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    return dev;
  }

  send(type: number, payload: Uint8Array | string = new Uint8Array(0)): void {
    this.ws.send(encodeFrame(type, typeof payload === 'string' ? Buffer.from(payload) : payload));
  }

  hello(h: Record<string, unknown> = {}): void {
    this.send(FrameType.HELLO, JSON.stringify({ version: 1, ...h }));
  }

  get errors(): ServerEvent[] {
    return this.frames.filter((f) => f.type === FRAME.ERROR).map((f) => f.json!);
  }

  async waitFor(pred: (f: RawDevice['frames'][number]) => boolean, ms = 20_000): Promise<RawDevice['frames'][number]> {
    const t0 = Date.now();
    for (;;) {
      const hit = this.frames.find(pred);
      if (hit) return hit;
      if (Date.now() - t0 > ms) throw new Error(`timed out; frames: ${this.frames.map((f) => f.json?.type ?? f.type).join(', ')}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 50);
        this.waiters.add(() => {
          clearTimeout(t);
          r();
        });
      });
      this.waiters.clear();
    }
  }

  /** Waits until `n` error frames have arrived; returns them. */
  async errorsAtLeast(n: number): Promise<ServerEvent[]> {
    await this.waitFor(() => this.errors.length >= n);
    return this.errors;
  }
}

const err = (e: ServerEvent): { code: string | null; param: string | null; message: string } => e.error as { code: string | null; param: string | null; message: string };

let gw: TestGateway;
let url: string;
let speechOut = false;

beforeAll(async () => {
  gw = await startDeviceGateway();
  url = `${gw.wsUrl}/v1/device`;
  speechOut = (await gw.gateway.runtime.capabilities()).speechOut;
}, 120_000);

afterAll(async () => {
  await gw?.gateway.close();
});

describe('hello and authentication', () => {
  it('a hello with the key in the header gets the welcome, then session.created showing the device formats', async () => {
    const dev = await RawDevice.open(url, { authorization: `Bearer ${KEY}` });
    dev.hello({ audio_in: { codec: 'opus', rate: 48000 }, audio_out: { codec: 'pcm16', rate: 16000 } });
    await dev.waitFor((f) => f.json?.type === 'session.created');
    expect(dev.frames[0]!.type).toBe(FRAME.WELCOME);
    const welcome = dev.frames[0]!.json!;
    expect(welcome).toMatchObject({ type: 'welcome', version: 1, model: 'qwen3-omni', audio_in: { type: 'audio/opus', rate: 48000 }, audio_out: { type: 'audio/pcm', rate: 16000 } });
    expect(welcome.limits).toMatchObject({ max_frame_bytes: 1024 * 1024, max_outbound_bytes: 1024 * 1024 });
    const created = dev.frames[1]!;
    expect(created.type).toBe(FRAME.EVENT);
    const session = created.json!.session as { id: string; audio: { input: { format: unknown }; output: { format: unknown } } };
    expect(session.id).toBe(welcome.session_id);
    expect(session.audio.input.format).toEqual({ type: 'audio/opus', rate: 48000 });
    expect(session.audio.output.format).toEqual({ type: 'audio/pcm', rate: 16000 });
    dev.ws.close();
  });

  it('devices that cannot set headers put the key in the hello', async () => {
    const client = await DeviceClient.connect({ url, apiKey: KEY, keyIn: 'hello' });
    await client.waitFor('session.created');
    expect(client.welcome.audio_in).toEqual({ type: 'audio/pcm', rate: 16000 });
    expect(client.welcome.audio_out).toEqual({ type: 'audio/pcm', rate: 24000 });
    expect(await client.close()).toMatchObject({ code: 1000 });
  });

  it('a wrong header key is refused at once: ERROR, close 3000', async () => {
    const dev = await RawDevice.open(url, { authorization: 'Bearer sk-wrong' });
    expect(await dev.closed).toEqual({ code: 3000, reason: 'invalid_request_error.invalid_api_key' });
    expect(dev.frames.map((f) => f.type)).toEqual([FRAME.ERROR]);
    expect(err(dev.errors[0]!).code).toBe('invalid_api_key');
  });

  it('no key, or a wrong hello key, closes 3000 after the hello', async () => {
    const none = await RawDevice.open(url);
    none.hello();
    expect((await none.closed).code).toBe(3000);
    expect(err(none.errors[0]!).message).toMatch(/Missing bearer/);
    const wrong = await RawDevice.open(url);
    wrong.hello({ key: 'sk-nope' });
    expect(await wrong.closed).toEqual({ code: 3000, reason: 'invalid_request_error.invalid_api_key' });
  });

  it('a bad hello gets a specific error and the device may try again', async () => {
    const dev = await RawDevice.open(url, { authorization: `Bearer ${KEY}` });
    dev.send(FrameType.HELLO, '{not json');
    dev.hello({ version: 2 });
    dev.send(FrameType.HELLO, JSON.stringify({ audio_in: { codec: 'pcm16' } }));
    dev.hello({ audio_in: { codec: 'flac' } });
    dev.hello({ audio_in: { codec: 'pcm16', rate: 44100 } });
    dev.hello({ audio_out: { codec: 'opus', rate: 48000, frame_ms: 15 } });
    dev.hello({ audio_out: { codec: 'pcm16', bitrate: 24000 } });
    dev.hello({ mic: true });
    dev.hello({ model: 'gpt-4o' });
    dev.send(FrameType.EVENT, JSON.stringify({ type: 'response.create' }));
    const errors = await dev.errorsAtLeast(10);
    expect(errors.map((e) => [err(e).code, err(e).param])).toEqual([
      ['invalid_json', 'hello'],
      ['unsupported_version', 'hello.version'],
      ['missing_required_parameter', 'hello.version'],
      ['invalid_value', 'hello.audio_in.codec'],
      ['invalid_value', 'hello.audio_in.rate'],
      ['invalid_value', 'hello.audio_out.frame_ms'],
      ['invalid_value', 'hello.audio_out.bitrate'],
      ['unknown_parameter', 'hello.mic'],
      ['invalid_model', 'hello.model'],
      ['hello_required', 'frame.type'],
    ]);
    dev.hello({ model: 'qwen3-omni' });
    await dev.waitFor((f) => f.type === FRAME.WELCOME);
    dev.hello();
    const again = await dev.errorsAtLeast(11);
    expect(err(again[10]!).code).toBe('unexpected_hello');
    dev.ws.close();
  });

  it('no hello in time: ERROR hello_timeout, close 4000', async () => {
    const dev = await RawDevice.open(`${gw.wsUrl}/test/device-tight`, { authorization: `Bearer ${KEY}` });
    expect(await dev.closed).toEqual({ code: 4000, reason: 'invalid_request_error.hello_timeout' });
    expect(err(dev.errors[0]!).code).toBe('hello_timeout');
  });
});

describe('malformed frames', () => {
  it('every malformed frame gets one specific ERROR frame, in order, and the link stays up', async () => {
    const dev = await RawDevice.open(url, { authorization: `Bearer ${KEY}` });
    dev.hello();
    await dev.waitFor((f) => f.json?.type === 'session.created');
    const header = (type: number, declared: number, actual: number): Buffer => {
      const b = Buffer.alloc(5 + actual, 1);
      b[0] = type;
      b.writeUInt32BE(declared, 1);
      return b;
    };
    dev.ws.send('{"type":"response.create"}'); // text message
    dev.ws.send(Buffer.from([0x03, 0x00])); // shorter than the header
    dev.ws.send(header(0x04, 100, 10)); // declares more than it carries
    dev.ws.send(header(0x04, 4, 10)); // declares less than it carries
    dev.ws.send(header(0x04, 0xffffffff, 10)); // declares 4 GiB
    dev.ws.send(header(0x06, 2 * 1024 * 1024, 2 * 1024 * 1024)); // over the 1 MiB cap
    dev.send(0x42, 'x'); // unknown type
    dev.send(FrameType.AUDIO_OUT, Buffer.alloc(4)); // gateway -> device type
    dev.send(FrameType.EVENT, '{"type":'); // bad JSON
    dev.send(FrameType.EVENT, '[1,2]'); // not an object
    dev.send(FrameType.EVENT, JSON.stringify({ type: 'bogus.event', event_id: 'c1' })); // unknown type
    dev.send(FrameType.EVENT, JSON.stringify({ type: 'input_audio_buffer.append', audio: 'AAAA' })); // base64 audio
    dev.send(FrameType.EVENT, JSON.stringify({ type: 'session.update', session: { type: 'realtime', audio: { output: { format: { type: 'audio/pcm', rate: 24000 } } } } }));
    dev.send(FrameType.AUDIO_IN, Buffer.alloc(3)); // odd PCM16
    dev.send(FrameType.AUDIO_IN); // empty
    dev.send(FrameType.JPEG, Buffer.from('GIF89a')); // not a JPEG
    dev.send(FrameType.EVENT, JSON.stringify({ type: 'response.cancel', event_id: 'probe' })); // nothing active
    const errors = await dev.errorsAtLeast(17);
    expect(errors.map((e) => [err(e).code, err(e).param])).toEqual([
      ['invalid_event', 'frame'],
      ['frame_truncated', 'frame'],
      ['frame_length_mismatch', 'frame.length'],
      ['frame_length_mismatch', 'frame.length'],
      ['frame_too_large', 'frame.length'],
      ['frame_too_large', 'frame.length'],
      ['unknown_frame_type', 'frame.type'],
      ['unexpected_frame_type', 'frame.type'],
      ['invalid_json', 'payload'],
      ['invalid_json', null],
      ['invalid_value', 'type'],
      ['use_binary_frame', 'type'],
      ['invalid_value', 'session.audio.output.format'],
      ['invalid_audio_frame', 'payload'],
      ['invalid_audio_frame', 'payload'],
      ['invalid_image', 'payload'],
      ['response_cancel_not_active', null],
    ]);
    expect((errors[10]!.error as { event_id: string }).event_id).toBe('c1');
    expect((errors[16]!.error as { event_id: string }).event_id).toBe('probe');
    expect(dev.ws.readyState).toBe(WebSocket.OPEN);
    dev.ws.close();
  });

  it('a bad Opus packet is refused without touching the decoder; good packets still decode', async () => {
    const client = await DeviceClient.connect({ url, apiKey: KEY, audioIn: { codec: 'opus', rate: 48000 } });
    client.sendAudio(Buffer.from([0x03, 0x00])); // code 3 with 0 frames
    client.sendAudio(Buffer.from([0x01, 0x01, 0x02, 0x03])); // code 1 with an odd payload (3 bytes)
    const enc = new OpusEncoderStream({ sampleRate: 48000, inputSampleRate: 16000 });
    for (const p of enc.push(new Float32Array(1600))) client.sendAudio(p);
    client.sendEvent({ type: 'input_audio_buffer.clear' });
    await client.waitFor('input_audio_buffer.cleared');
    const errors = client.received.filter((e) => e.type === 'error').map((e) => err(e));
    expect(errors.map((e) => [e.code, e.param])).toEqual([
      ['opus_packet_invalid', 'payload'],
      ['opus_packet_invalid', 'payload'],
    ]);
    expect(errors[0]!.message).toMatch(/0 frames/);
    await client.close();
  });
});

describe('bounds', () => {
  it('a frame over the link cap is refused; the link stays up', async () => {
    const dev = await RawDevice.open(`${gw.wsUrl}/test/device-tight`, { authorization: `Bearer ${KEY}` });
    dev.hello();
    await dev.waitFor((f) => f.type === FRAME.WELCOME);
    expect((dev.frames[0]!.json!.limits as { max_frame_bytes: number }).max_frame_bytes).toBe(4096);
    dev.send(FrameType.AUDIO_IN, Buffer.alloc(4092)); // 4097 bytes with the header
    dev.send(FrameType.AUDIO_IN, Buffer.alloc(4090)); // 4095: fine
    dev.send(FrameType.EVENT, JSON.stringify({ type: 'response.cancel' }));
    const errors = await dev.errorsAtLeast(2);
    expect(errors.map((e) => err(e).code)).toEqual(['frame_too_large', 'response_cancel_not_active']);
    dev.ws.close();
  });

  it('a device that stops reading is closed 1013 once the unread bytes pass the bound', async () => {
    const dev = await RawDevice.open(`${gw.wsUrl}/test/device-tight`, { authorization: `Bearer ${KEY}` });
    dev.hello();
    await dev.waitFor((f) => f.type === FRAME.WELCOME);
    const raw = (dev.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
    // Each refused frame is answered with a ~250-byte ERROR frame. Rounds of not reading while
    // sending ever more bad frames, until the socket buffers on both ends are full and the unread
    // bytes pass the link's 64 KiB bound; the close frame waits behind them, so read between rounds.
    const bad = encodeFrame(0x42, Buffer.alloc(1));
    let closedYet = false;
    void dev.closed.then(() => (closedYet = true));
    for (let round = 1; round <= 8 && !closedYet; round++) {
      raw.pause();
      for (let i = 0; i < 20_000 * round; i++) dev.ws.send(bad);
      await new Promise((r) => setTimeout(r, 300));
      raw.resume();
      await Promise.race([dev.closed, new Promise((r) => setTimeout(r, 500))]);
    }
    const closed = await dev.closed;
    expect(closed).toEqual({ code: 1013, reason: 'device is not reading fast enough' });
  }, 60_000);
});

describe('turns', () => {
  it('manual turn with PCM16 16 kHz: commit + response.create, text reply, GA event order', async () => {
    const client = await DeviceClient.connect({ url, apiKey: KEY, audioIn: { codec: 'pcm16', rate: 16000 } });
    client.sendEvent({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'], audio: { input: { turn_detection: null } } } });
    const pcm = speech16k('Hello there, how are you?');
    for (let i = 0; i < pcm.length; i += 640) client.sendAudio(pcm.subarray(i, i + 640));
    client.sendEvent({ type: 'input_audio_buffer.commit' });
    client.sendEvent({ type: 'response.create', response: { max_output_tokens: 6 } });
    const done = await client.waitFor('response.done', 60_000);
    const types = client.received.map((e) => e.type);
    const order = ['session.created', 'session.updated', 'input_audio_buffer.committed', 'conversation.item.added', 'conversation.item.done', 'response.created', 'response.output_item.added', 'response.content_part.added', 'response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.done'];
    let at = -1;
    for (const t of order) {
      const next = types.indexOf(t, at + 1);
      expect(next, `${t} after ${order[order.indexOf(t) - 1]}; got ${types.join(', ')}`).toBeGreaterThan(at);
      at = next;
    }
    expect(types).not.toContain('error');
    expect((done.response as { status: string }).status).toMatch(/completed|incomplete/);
    await client.close();
  }, 90_000);

  it('Opus both ways: Opus mic audio in, Opus packets of the negotiated duration out (when the model speaks)', async (ctx) => {
    if (!speechOut) ctx.skip();
    const client = await DeviceClient.connect({ url, apiKey: KEY, audioIn: { codec: 'opus', rate: 48000 }, audioOut: { codec: 'opus', rate: 48000, frameMs: 20 } });
    const packets: Buffer[] = [];
    client.on('audio', (p) => packets.push(Buffer.from(p)));
    client.sendEvent({ type: 'session.update', session: { type: 'realtime', output_modalities: ['audio'], audio: { input: { turn_detection: null } } } });
    const enc = new OpusEncoderStream({ sampleRate: 48000, inputSampleRate: 16000 });
    const pcm = pcm16leToFloat32(speech16k('Good morning.'));
    for (const p of [...enc.push(pcm), ...enc.flush().packets]) client.sendAudio(p);
    client.sendEvent({ type: 'input_audio_buffer.commit' });
    client.sendEvent({ type: 'response.create', response: { max_output_tokens: 12 } });
    await client.waitFor('response.done', 90_000);
    expect(client.received.filter((e) => e.type === 'error')).toEqual([]);
    expect(client.received.some((e) => e.type === 'response.output_audio.delta')).toBe(false);
    expect(packets.length).toBeGreaterThan(0);
    const dec = new OpusPacketDecoder({ sampleRate: 48000 });
    for (const p of packets) expect(dec.decode(p).length).toBe(960);
    await client.close();
  }, 120_000);
});

describe('endings', () => {
  it('session.close: the gateway closes 1000', async () => {
    const client = await DeviceClient.connect({ url, apiKey: KEY });
    client.sendEvent({ type: 'session.close' });
    expect(await client.closed).toEqual({ code: 1000, reason: 'session finished' });
  });

  it('gateway shutdown: ERROR server_shutting_down, close 1001 (runs last: it stops the gateway)', async () => {
    const client = await DeviceClient.connect({ url, apiKey: KEY });
    await client.waitFor('session.created');
    const closing = gw.gateway.close('test shutdown');
    expect(await client.closed).toMatchObject({ code: 1001 });
    const last = client.received.at(-1)!;
    expect(last.type).toBe('error');
    expect(err(last).code).toBe('server_shutting_down');
    await closing;
  });
});
