// Runtime nodes: the wire protocol (frames round trip bit for bit, malformed frames are refused
// with FrameError and nothing else), and the client/server pair on loopback over a real native
// engine (the demo checkpoint): greedy tokens bit-identical to the in-process engine, media
// appends, cancel, truncate, authentication, version negotiation, admission, heartbeats.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { buildModelInput, type InputMessage } from '../src/fusion/model_input.js';
import { sliceChunk } from '../src/gateway/engine_context.js';
import type { GenerateRequest, ModelChunk, RuntimeEvent, RuntimeSession } from '../src/runtime/contract.js';
import { NativeRuntime } from '../src/runtime/native.js';
import { NodeRuntime } from '../src/runtime/node/client.js';
import {
  FrameError,
  LIMITS,
  MessageType,
  chunkOf,
  chunkPayload,
  decodeFrame,
  encodeFrame,
  encodeFrameParts,
  eventFrame,
  eventOf,
  generatePayload,
  generateRequestOf,
  stagePayload,
  stagedOf,
  type Frame,
  type Tensor,
} from '../src/runtime/node/protocol.js';
import { RuntimeNodeServer, secretMatches } from '../src/runtime/node/server.js';

const DEMO_CACHE = join(tmpdir(), 'omni-test-demo-cache');
const SECRET = 'node-test-secret';

const typeValues = Object.values(MessageType);
const tensorArb: fc.Arbitrary<Tensor> = fc.oneof(
  fc.array(fc.float({ noDefaultInfinity: false }), { maxLength: 40 }).map((a) => Float32Array.from(a)),
  fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 40 }).map((a) => Int32Array.from(a)),
);
const frameArb: fc.Arbitrary<Frame> = fc.record({
  type: fc.constantFrom(...typeValues),
  session: fc.nat({ max: 0xffff_ffff }),
  request: fc.nat({ max: 0xffff_ffff }),
  meta: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 })).map((m) => JSON.parse(JSON.stringify(m)) as Record<string, unknown>),
  tensors: fc.array(tensorArb, { maxLength: 5 }),
});

/** Same bits (NaN payloads included). */
function sameBits(a: Tensor, b: Tensor): boolean {
  if (a.constructor !== b.constructor || a.length !== b.length) return false;
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

describe('runtime protocol frames', () => {
  it('round-trips any frame bit for bit, from one buffer or concatenated parts', () => {
    fc.assert(
      fc.property(frameArb, (f) => {
        const one = encodeFrame(f);
        expect(one.length % 8).toBe(0);
        expect(Buffer.compare(one, Buffer.concat(encodeFrameParts(f)))).toBe(0);
        const back = decodeFrame(one);
        expect(back.type).toBe(f.type);
        expect(back.session).toBe(f.session);
        expect(back.request).toBe(f.request);
        expect(back.meta).toEqual(f.meta);
        expect(back.tensors.length).toBe(f.tensors.length);
        f.tensors.forEach((t, i) => expect(sameBits(t, back.tensors[i]!)).toBe(true));
      }),
      { numRuns: 300 },
    );
  });

  it('views tensors in place when aligned, copies when not', () => {
    const f: Frame = { type: MessageType.APPEND, session: 1, request: 2, meta: {}, tensors: [Float32Array.from([1, 2, 3])] };
    const buf = encodeFrame(f);
    const aligned = decodeFrame(buf);
    expect(aligned.tensors[0]!.buffer).toBe(buf.buffer);
    const shifted = Buffer.alloc(buf.length + 1);
    buf.copy(shifted, 1);
    const odd = decodeFrame(shifted.subarray(1));
    expect(odd.tensors[0]!.buffer).not.toBe(shifted.buffer);
    expect([...odd.tensors[0]!]).toEqual([1, 2, 3]);
  });

  it('refuses malformed input with FrameError only: random bytes, truncations, flipped bytes', () => {
    const decodeOrFrameError = (b: Uint8Array) => {
      try {
        decodeFrame(b);
      } catch (err) {
        if (!(err instanceof FrameError)) throw err;
      }
    };
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => decodeOrFrameError(b)), { numRuns: 500 });
    fc.assert(
      fc.property(frameArb, fc.nat(), fc.nat(), fc.integer({ min: 1, max: 255 }), (f, cut, at, x) => {
        const buf = encodeFrame(f);
        // Any strict prefix shorter than the unpadded content fails; so does extra data.
        const prefix = buf.subarray(0, cut % buf.length);
        decodeOrFrameError(prefix);
        expect(() => decodeFrame(Buffer.concat([buf, Buffer.alloc(8)]))).toThrow(FrameError);
        const flipped = Buffer.from(buf);
        flipped[at % buf.length]! ^= x;
        decodeOrFrameError(flipped);
      }),
      { numRuns: 300 },
    );
  });

  it('names what is wrong', () => {
    const good = encodeFrame({ type: MessageType.OK, session: 0, request: 1, meta: { a: 1 }, tensors: [Int32Array.from([1])] });
    const bad = (patch: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      patch(b);
      try {
        decodeFrame(b);
        return 'decoded';
      } catch (err) {
        expect(err).toBeInstanceOf(FrameError);
        return (err as Error).message;
      }
    };
    expect(bad((b) => (b[0] = 0))).toMatch(/magic/);
    expect(bad((b) => (b[2] = 9))).toMatch(/version 9/);
    expect(bad((b) => (b[3] = 99))).toMatch(/unknown message type/);
    expect(bad((b) => b.writeUInt32LE(LIMITS.maxMetaBytes + 1, 12))).toMatch(/meta of/);
    expect(bad((b) => b.writeUInt32LE(LIMITS.maxTensors + 1, 16))).toMatch(/tensors exceed/);
    expect(bad((b) => (b[20] = 7))).toMatch(/dtype/);
    expect(bad((b) => b.writeUInt32LE(1000, 24))).toMatch(/past the end/);
    expect(bad((b) => (b[28] = 0x7b + 1))).toMatch(/JSON/);
  });

  it('carries chunks, generate requests and events', () => {
    const chunk: ModelChunk = {
      ids: Int32Array.from([1, 2, 3]),
      positions: Float32Array.from([0, 1, 2, 0, 1, 2, 0, 1, 2]),
      media: [
        { kind: 'audio', features: new Float32Array(128 * 4).fill(0.5), frames: 4 },
        { kind: 'image', pixelValues: new Float32Array(1176 * 4).fill(-1), grid: [1, 2, 2] },
      ],
    };
    const p = chunkPayload(chunk);
    const back = chunkOf(decodeFrame(encodeFrame({ type: MessageType.APPEND, session: 1, request: 1, ...p })));
    expect([...back.ids]).toEqual([1, 2, 3]);
    expect(back.media?.[0]).toMatchObject({ kind: 'audio', frames: 4 });
    expect(back.media?.[1]).toMatchObject({ kind: 'image', grid: [1, 2, 2] });
    expect(() => chunkOf({ meta: { media: [{ kind: 'smell' }] }, tensors: [...p.tensors.slice(0, 3)] })).toThrow(FrameError);
    expect(() => chunkOf({ meta: {}, tensors: [p.tensors[1]!, p.tensors[1]!] })).toThrow(/ids must be i32/);

    const req: GenerateRequest = { maxTokens: 5, sampling: { temperature: 0 }, thinking: { enabled: true, budgetTokens: 3 }, stopThinkingIds: [1, 2], speech: { voice: 'x' } };
    expect(generateRequestOf(generatePayload(req, true))).toEqual({ request: req, cancelled: true });
    expect(() => generateRequestOf({})).toThrow(FrameError);

    const events: RuntimeEvent[] = [
      { type: 'token', id: 7, thinking: true, forced: false },
      { type: 'audio', samples: Float32Array.from([0.25, -0.5]), sampleOffset: 480, tokenStart: 0, tokenEnd: 1 },
      { type: 'done', reason: 'stop', stopId: 2, usage: { promptTokens: 3, outputTokens: 1 } as never },
    ];
    for (const e of events) expect(eventOf(decodeFrame(encodeFrame(eventFrame(1, 2, e, 9))))).toEqual(e);
  });

  it('carries staged media by reference (v2): no tensor in the append, the staged one in the chunk', () => {
    const image = { kind: 'image' as const, pixelValues: new Float32Array(1536 * 4).fill(0.25), grid: [1, 2, 2] as const };
    const audio = { kind: 'audio' as const, features: new Float32Array(128 * 3).fill(-0.5), frames: 3 };
    const stage = decodeFrame(encodeFrame({ type: MessageType.STAGE, session: 1, request: 1, ...stagePayload(7, image) }));
    const staged = stagedOf(stage);
    expect(staged.ref).toBe(7);
    expect(staged.media).toMatchObject({ kind: 'image', grid: [1, 2, 2] });
    const chunk: ModelChunk = { ids: Int32Array.from([1, 2]), positions: new Float32Array(6), media: [audio, image] };
    const p = chunkPayload(chunk, (m) => (m === image ? 7 : undefined));
    expect(p.tensors).toHaveLength(3); // ids, positions, the audio: the image is a reference
    expect(p.meta.media).toEqual([
      { kind: 'audio', frames: 3 },
      { kind: 'image', grid: [1, 2, 2], ref: 7 },
    ]);
    const frame = decodeFrame(encodeFrame({ type: MessageType.APPEND, session: 1, request: 2, ...p }));
    const back = chunkOf(frame, (ref) => (ref === 7 ? staged.media : undefined));
    expect(back.media?.[1]).toBe(staged.media);
    expect(sameBits((back.media?.[0] as { features: Float32Array }).features, audio.features)).toBe(true);
    // A reference the session does not hold, or of another kind or shape, is refused.
    expect(() => chunkOf(frame)).toThrow(/no staged media 7/);
    expect(() => chunkOf(frame, () => ({ ...image, grid: [1, 4, 4] }))).toThrow(/another shape/);
    expect(() => chunkOf(frame, () => audio)).toThrow(/another shape/);
    expect(() => chunkOf({ meta: { media: [{ kind: 'image', grid: [1, 2, 2], ref: 0 }] }, tensors: p.tensors.slice(0, 2) }, () => image)).toThrow(/ref must be a positive integer/);
    expect(() => stagedOf({ meta: { ref: 1, kind: 'image', grid: [1, 2, 2] }, tensors: [] })).toThrow(/exactly one tensor/);
    expect(() => stagedOf({ meta: { kind: 'audio', frames: 1 }, tensors: [new Float32Array(128)] })).toThrow(/positive integer ref/);
  });

  it('compares secrets in constant time, whatever their lengths', () => {
    expect(secretMatches('abc', 'abc')).toBe(true);
    expect(secretMatches('abd', 'abc')).toBe(false);
    expect(secretMatches('', 'abc')).toBe(false);
    expect(secretMatches('abcd', 'abc')).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

async function collect(gen: AsyncGenerator<RuntimeEvent>): Promise<RuntimeEvent[]> {
  const out: RuntimeEvent[] = [];
  for await (const e of gen) out.push(e);
  return out;
}
const tokensOf = (events: RuntimeEvent[]) => events.flatMap((e) => (e.type === 'token' ? [e.id] : []));
const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => (e as { code?: string }).code,
  );

/** A conversation with text, a short audio clip and a small image, as fusion builds it. */
async function mediaChunk(): Promise<ModelChunk> {
  let s = 1;
  const rnd = () => ((s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31) * 2 - 1;
  const frames = 120;
  const features = Float32Array.from({ length: 128 * frames }, rnd);
  const pixelValues = Float32Array.from({ length: 16 * 1536 }, rnd);
  const messages: InputMessage[] = [
    { role: 'system', content: 'You are a helpful assistant.' },
    {
      role: 'user',
      content: [
        { type: 'audio', features, frames, key: {} },
        { type: 'image', pixelValues, grid: [1, 4, 4], key: {} },
        { type: 'text', text: 'What do you hear and see?' },
      ],
    },
  ];
  return sliceChunk(await buildModelInput(messages), 0);
}

describe('runtime node over loopback (native engine, demo checkpoint)', () => {
  let runtime: NativeRuntime;
  let server: RuntimeNodeServer;
  let url: string;
  let client: NodeRuntime;

  beforeAll(async () => {
    runtime = new NativeRuntime({ model: '', modelCache: DEMO_CACHE });
    await runtime.start();
    server = new RuntimeNodeServer({ runtime, secret: SECRET, maxSessions: 3, heartbeatMs: 100 });
    url = (await server.listen('127.0.0.1', 0)).url;
    client = new NodeRuntime({ url, secret: SECRET, heartbeatMs: 100 });
  }, 120_000);

  afterAll(async () => {
    await client?.close();
    await server?.close();
    await runtime?.close();
  });

  it('answers health and capabilities like the in-process engine', async () => {
    const h = await client.health(2_000);
    expect(h).toMatchObject({ reachable: true, modelLoaded: true });
    expect(h.detail).toMatch(/demo checkpoint/);
    expect(await client.capabilities()).toEqual(await runtime.capabilities());
    expect(client.hello).toMatchObject({ version: 2, maxSessions: 3 });
    // Plain HTTP: /healthz for probes and load balancers; anything else asks for an upgrade.
    const res = await fetch(`${url.replace('ws:', 'http:')}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ reachable: true, modelLoaded: true, load: { maxSessions: 3 } });
    expect((await fetch(`${url.replace('ws:', 'http:')}/`)).status).toBe(426);
  });

  it('generates bit-identical greedy tokens to the in-process engine (text, audio and image input)', async () => {
    const chunk = await mediaChunk();
    const req: GenerateRequest = { maxTokens: 12, sampling: { temperature: 0 } };
    const local = await runtime.open();
    await local.append(chunk);
    const expected = await collect(local.generate(req));
    const remote = await client.open();
    await remote.append(chunk);
    expect(remote.length).toBe(chunk.ids.length);
    const got = await collect(remote.generate(req));
    expect(tokensOf(got)).toEqual(tokensOf(expected));
    expect(got.at(-1)).toEqual(expected.at(-1));
    expect(remote.length).toBe(local.length);
    // A second turn on the same context stays identical too.
    const more: ModelChunk = { ids: Int32Array.from([151_645, 198]), positions: Float32Array.from({ length: 6 }, (_, i) => 1000 + (i % 2)) };
    await local.append(more);
    await remote.append(more);
    expect(tokensOf(await collect(remote.generate(req)))).toEqual(tokensOf(await collect(local.generate(req))));
    // Truncate back and regenerate: same as the engine after the same truncate.
    await local.truncate(chunk.ids.length);
    await remote.truncate(chunk.ids.length);
    expect(remote.length).toBe(chunk.ids.length);
    expect(tokensOf(await collect(remote.generate(req)))).toEqual(tokensOf(await collect(local.generate(req))));
    local.close();
    remote.close();
  });

  /** The media chunk, its image, and the greedy tokens the in-process engine gives for it. */
  async function stagingCase(maxTokens: number) {
    const chunk = await mediaChunk();
    const image = chunk.media!.find((m) => m.kind === 'image')!;
    const imageBytes = (image as { pixelValues: Float32Array }).pixelValues.byteLength;
    const req: GenerateRequest = { maxTokens, sampling: { temperature: 0 } };
    const local = await runtime.open();
    await local.append(chunk);
    const expected = tokensOf(await collect(local.generate(req)));
    local.close();
    return { chunk, image, imageBytes, req, expected };
  }

  it('stages media ahead of the append: the append sends a reference, tokens stay bit-identical', async () => {
    const { chunk, image, imageBytes, req, expected } = await stagingCase(12);

    const inline = await client.open();
    let before = client.bytesSent;
    await inline.append(chunk);
    const inlineBytes = client.bytesSent - before;
    inline.close();

    const remote = await client.open();
    remote.prepare(image);
    remote.prepare(image); // once only
    expect(remote.staged).toBe(imageBytes);
    before = client.bytesSent;
    await remote.append(chunk);
    // Less by the image's bytes (give or take a heartbeat PING and the ref in the meta).
    expect(inlineBytes - (client.bytesSent - before)).toBeGreaterThan(imageBytes - 512);
    expect(tokensOf(await collect(remote.generate(req)))).toEqual(expected);
    // The node keeps it: a re-prefill after a truncate names it again.
    await remote.truncate(0);
    before = client.bytesSent;
    await remote.append(chunk);
    expect(client.bytesSent - before).toBeLessThan(inlineBytes - imageBytes + 1024);
    expect(tokensOf(await collect(remote.generate(req)))).toEqual(expected);
    remote.close();
  });

  it('staging within bounds: the oldest is unstaged past the budget; a node that refuses gets the media inline', async () => {
    const { chunk, image, imageBytes, req, expected } = await stagingCase(6);
    // Client budget of one image: staging a second one unstages the first.
    const small = new NodeRuntime({ url, secret: SECRET, stageBudgetBytes: imageBytes + 1000 });
    const s1 = await small.open();
    s1.prepare(image);
    s1.prepare({ kind: 'image', pixelValues: new Float32Array(imageBytes / 4), grid: [1, 4, 4] });
    expect(s1.staged).toBe(imageBytes);
    let before = small.bytesSent;
    await s1.append(chunk);
    expect(small.bytesSent - before).toBeGreaterThan(imageBytes);
    expect(tokensOf(await collect(s1.generate(req)))).toEqual(expected);
    s1.close();
    await small.close();
    // A node whose bound is below the item refuses the STAGE: the append carries it inline.
    const tight = new RuntimeNodeServer({ runtime, secret: SECRET, maxStagedBytes: 1024 });
    const tightUrl = (await tight.listen('127.0.0.1', 0)).url;
    const c = new NodeRuntime({ url: tightUrl, secret: SECRET });
    const s2 = await c.open();
    s2.prepare(image);
    before = c.bytesSent;
    await s2.append(chunk);
    expect(c.bytesSent - before).toBeGreaterThan(imageBytes);
    expect(s2.staged).toBe(0);
    expect(tokensOf(await collect(s2.generate(req)))).toEqual(expected);
    s2.close();
    await c.close();
    await tight.close();
  });

  it('a version-1 connection cannot stage (STAGE answered segment_invalid) and still appends inline', async () => {
    const ws = new WebSocket(url, ['omni-runtime.v1'], { headers: { authorization: `Bearer ${SECRET}` } });
    const frames: Frame[] = [];
    ws.on('message', (d: Buffer) => frames.push(decodeFrame(d)));
    await new Promise((r) => ws.once('open', r));
    expect(ws.protocol).toBe('omni-runtime.v1');
    const next = async (type: number) => {
      for (let i = 0; i < 200; i++) {
        const k = frames.findIndex((f) => f.type === type);
        if (k >= 0) return frames.splice(k, 1)[0]!;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no frame of type ${type}`);
    };
    expect((await next(MessageType.HELLO)).meta.version).toBe(1);
    ws.send(encodeFrame({ type: MessageType.OPEN, session: 0, request: 1, meta: {}, tensors: [] }, 1));
    const opened = await next(MessageType.OK);
    const image = { kind: 'image' as const, pixelValues: new Float32Array(1536 * 16), grid: [1, 4, 4] as const };
    ws.send(encodeFrame({ type: MessageType.STAGE, session: opened.session, request: 2, ...stagePayload(1, image) }, 1));
    const refused = await next(MessageType.ERROR);
    expect(refused.meta).toMatchObject({ code: 'segment_invalid' });
    expect(String(refused.meta.message)).toMatch(/version 2/);
    ws.close();
  });

  it('streams speech: audio events bit-identical to the in-process engine', async () => {
    const caps = await client.capabilities();
    expect(caps.speechOut).toBe(true);
    const chunk = sliceChunk(await buildModelInput([{ role: 'user', content: 'Say hello.' }]), 0);
    const req: GenerateRequest = { maxTokens: 6, sampling: { temperature: 0 }, speech: {} };
    const run = async (rt: { open(): Promise<RuntimeSession> }) => {
      const s = await rt.open();
      await s.append(chunk);
      const events = await collect(s.generate(req));
      s.close();
      return events;
    };
    const local = await run(runtime);
    const remote = await run(client);
    const audio = (ev: RuntimeEvent[]) => ev.filter((e) => e.type === 'audio');
    expect(audio(local).length).toBeGreaterThan(0);
    // Tokens and audio come from concurrent stages: compare each stream, not their interleaving.
    expect(tokensOf(remote)).toEqual(tokensOf(local));
    expect(audio(remote)).toEqual(audio(local));
    expect(remote.at(-1)).toEqual(local.at(-1));
  }, 60_000);

  it('cancels: before the stream starts and mid-stream; coded engine errors come back coded', async () => {
    const chunk = await mediaChunk();
    const s = await client.open();
    await s.append(chunk);
    const early = s.generate({ maxTokens: 50, sampling: { temperature: 0 } });
    s.cancel();
    const e1 = await collect(early);
    expect(e1.at(-1)).toMatchObject({ type: 'done', reason: 'cancelled' });
    const running = s.generate({ maxTokens: 2000, sampling: { temperature: 0 } });
    const seen: RuntimeEvent[] = [];
    for await (const e of running) {
      seen.push(e);
      if (seen.length === 2) s.cancel();
    }
    expect(seen.at(-1)).toMatchObject({ type: 'done', reason: 'cancelled' });
    expect(await codeOf(collect(s.generate({ maxTokens: 5, sampling: { temperature: -1 } })))).toBe('sampling_invalid');
    expect(await codeOf(s.truncate(s.length + 5))).toBe('segment_invalid');
    expect(await codeOf(s.append({ ids: new Int32Array(0), positions: new Float32Array(0) }))).toBe('segment_invalid');
    s.close();
    expect(await codeOf(s.append(chunk))).toBe('session_closed');
  });

  it('admits at most maxSessions sessions, then answers server_busy; a close frees a place', async () => {
    const open: RuntimeSession[] = [];
    for (let i = 0; i < 3; i++) open.push(await client.open());
    expect(await codeOf(client.open())).toBe('server_busy');
    await new Promise((r) => setTimeout(r, 250));
    expect(client.load).toMatchObject({ activeSessions: 3, maxSessions: 3 });
    open.pop()!.close();
    const again = await client.open();
    open.push(again);
    for (const s of open) s.close();
  });

  it('refuses a wrong or missing secret, and a client without a common protocol version', async () => {
    const bad = new NodeRuntime({ url, secret: 'wrong', connectTimeoutMs: 2_000 });
    const err = (await bad.open().then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    ))!;
    expect(err).toMatchObject({ code: 'engine_failed' });
    expect(err.message).toMatch(/401/);
    expect(err.message).not.toContain('wrong');
    expect((await bad.health(1_000)).reachable).toBe(false);
    await bad.close();
    const none = new NodeRuntime({ url, connectTimeoutMs: 2_000 });
    expect(await codeOf(none.open())).toBe('engine_failed');
    await none.close();
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(url, ['omni-runtime.v99'], { headers: { authorization: `Bearer ${SECRET}` } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(400);
  });

  it('closes the sessions of a gateway that disconnects', async () => {
    const c2 = new NodeRuntime({ url, secret: SECRET });
    await c2.open();
    await c2.open();
    expect(server.load.activeSessions).toBe(2);
    await c2.close();
    await new Promise((r) => setTimeout(r, 100));
    expect(server.load.activeSessions).toBe(0);
  });
});

describe('runtime node heartbeats', () => {
  it('a node that goes silent is declared dead and its generate fails with engine_failed', async () => {
    // A fake node: says hello, opens a session, starts a generate, then never sends another frame.
    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', handleProtocols: () => 'omni-runtime.v1' });
    await new Promise((r) => wss.once('listening', r));
    wss.on('connection', (ws) => {
      const send = (f: Frame) => ws.send(encodeFrame(f));
      send({ type: MessageType.HELLO, session: 0, request: 0, meta: { version: 1, nodeId: 'fake', model: '', heartbeatMs: 100, maxSessions: 0, maxPayload: 1 << 20 }, tensors: [] });
      ws.on('message', (data: Buffer) => {
        const f = decodeFrame(data);
        if (f.type === MessageType.OPEN) send({ type: MessageType.OK, session: 5, request: f.request, meta: { length: 0 }, tensors: [] });
        if (f.type === MessageType.GENERATE) send({ type: MessageType.TOKEN, session: 5, request: f.request, meta: { id: 42 }, tensors: [] });
      });
    });
    const port = (wss.address() as { port: number }).port;
    const client = new NodeRuntime({ url: `ws://127.0.0.1:${port}`, heartbeatMs: 50, deadAfterMs: 300 });
    const s = await client.open();
    const t0 = performance.now();
    const events: RuntimeEvent[] = [];
    const err = await (async () => {
      for await (const e of s.generate({ maxTokens: 10 })) events.push(e);
    })().catch((e: unknown) => e as Error & { code: string });
    const ms = performance.now() - t0;
    expect(events).toEqual([{ type: 'token', id: 42, thinking: false, forced: false }]);
    expect(err).toMatchObject({ code: 'engine_failed' });
    expect(err!.message).toMatch(/heartbeat/);
    expect(ms).toBeGreaterThanOrEqual(250);
    expect(ms).toBeLessThan(1_000);
    expect(s.lost).toBe(true);
    expect(client.state).not.toBe('up');
    await client.close();
    wss.close();
  });
});

describe('omni-gateway runtime: command line', () => {
  it('takes --listen and the node settings; refuses gateway-only options', async () => {
    const { parseCommandLine, UsageError } = await import('../src/cli/args.js');
    const cli = parseCommandLine(['runtime', '--listen', '0.0.0.0:7001', '--model', '/m', '--runtime-secret', 's', '--node-max-sessions', '4']);
    expect(cli.command).toBe('runtime');
    expect(cli.runtimeNode).toEqual({ host: '0.0.0.0', port: 7001 });
    expect(cli.flags).toMatchObject({ model: '/m', runtimeSecret: 's', nodeMaxSessions: '4' });
    expect(parseCommandLine(['runtime', '--listen', '[::]:0']).runtimeNode).toEqual({ host: '::', port: 0 });
    expect(parseCommandLine(['runtime']).runtimeNode).toEqual({ host: '127.0.0.1', port: 7000 });
    expect(() => parseCommandLine(['runtime', '--listen', 'host:99999'])).toThrow(UsageError);
    expect(() => parseCommandLine(['runtime', '--port', '1'])).toThrow(/applies to serve, not runtime/);
    expect(() => parseCommandLine(['serve', '--listen', '1'])).toThrow(/applies to runtime/);
    const serve = parseCommandLine(['--runtime', 'pool', '--runtime-nodes', 'ws://a:1,ws://b:2', '--node-max-sessions', '1']);
    expect(serve.flags).toMatchObject({ runtime: 'pool', runtimeNodes: 'ws://a:1,ws://b:2', nodeMaxSessions: '1' });
  });
});
