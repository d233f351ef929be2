// The WebRTC edge's pure parts: the multipart reader of the calls endpoint, the offer sanity
// check, and the playout buffer that turns the session's speech into exact 10 ms track frames
// (started / stopped / cleared bookkeeping), driven by a fake clock.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { InvalidOfferError } from '../src/gateway/webrtc/media.js';
import { MultipartError, multipartBoundary, parseMultipart } from '../src/gateway/webrtc/multipart.js';
import { AudioPlayout } from '../src/gateway/webrtc/playout.js';
import { checkOfferSdp } from '../src/gateway/webrtc/wrtc_peer.js';

const CRLF = '\r\n';

describe('multipart/form-data', () => {
  it('reads the fields browsers and the openai SDK send', async () => {
    const form = new FormData();
    form.append('sdp', 'v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n');
    form.append('session', new Blob([JSON.stringify({ type: 'realtime' })], { type: 'application/json' }), '');
    const req = new Request('http://x/', { method: 'POST', body: form });
    const body = Buffer.from(await req.arrayBuffer());
    const parts = parseMultipart(body, req.headers.get('content-type')!);
    expect(parts.map((p) => p.name)).toEqual(['sdp', 'session']);
    expect(parts[0]!.data.toString()).toBe('v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n');
    expect(parts[0]!.contentType).toBeUndefined();
    expect(parts[1]!.contentType).toBe('application/json');
    expect(JSON.parse(parts[1]!.data.toString())).toEqual({ type: 'realtime' });
  });

  it('handles quoted boundaries, preamble, epilogue and empty parts', () => {
    const b = 'a b;c';
    const body = Buffer.from(
      ['preamble', `--${b}`, 'Content-Disposition: form-data; name="x;y"', '', '', `--${b}`, 'content-disposition: form-data; name=sdp', 'Content-Type: application/sdp', '', 'v=0', `--${b}--`, 'epilogue'].join(CRLF),
    );
    const parts = parseMultipart(body, `multipart/form-data; boundary="${b}"`);
    expect(parts).toHaveLength(2);
    expect(parts[0]).toMatchObject({ name: 'x;y' });
    expect(parts[0]!.data.length).toBe(0);
    expect(parts[1]).toMatchObject({ name: 'sdp', contentType: 'application/sdp' });
    expect(parts[1]!.data.toString()).toBe('v=0');
  });

  it('refuses malformed bodies', () => {
    const ct = 'multipart/form-data; boundary=XX';
    expect(() => multipartBoundary('application/json')).toThrow(MultipartError);
    expect(() => multipartBoundary('multipart/form-data')).toThrow(/no boundary/);
    expect(() => parseMultipart(Buffer.from('nothing here'), ct)).toThrow(/no boundary line/);
    expect(() => parseMultipart(Buffer.from(`--XX${CRLF}Content-Disposition: form-data; name=a${CRLF}${CRLF}open`), ct)).toThrow(/not closed/);
    expect(() => parseMultipart(Buffer.from(`--XX${CRLF}Content-Type: text/plain${CRLF}${CRLF}v${CRLF}--XX--`), ct)).toThrow(/Content-Disposition/);
    expect(() => parseMultipart(Buffer.from(`--XX${CRLF}Content-Disposition: form-data${CRLF}${CRLF}v${CRLF}--XX--`), ct)).toThrow(/no name/);
    const many = Array.from({ length: 20 }, (_, i) => `--XX${CRLF}Content-Disposition: form-data; name=f${i}${CRLF}${CRLF}v`).join(CRLF) + `${CRLF}--XX--`;
    expect(() => parseMultipart(Buffer.from(many), ct)).toThrow(/more than 16/);
  });
});

describe('offer check', () => {
  it('refuses what is not an SDP offer before libwebrtc sees it', () => {
    for (const sdp of ['', 'hello', 'v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n']) expect(() => checkOfferSdp(sdp)).toThrow(InvalidOfferError);
    expect(() => checkOfferSdp('v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n')).not.toThrow();
  });
});

describe('AudioPlayout', () => {
  afterEach(() => vi.useRealTimers());

  function setup() {
    vi.useFakeTimers();
    let now = 0;
    const frames: Int16Array[] = [];
    const log: string[] = [];
    const playout = new AudioPlayout({
      write: (f) => frames.push(f.slice()),
      onStarted: (id) => log.push(`started ${id} @${frames.length}`),
      onStopped: (id) => log.push(`stopped ${id} @${frames.length}`),
      now: () => now,
    });
    const advance = (ms: number) => {
      for (let i = 0; i < ms; i++) {
        now += 1;
        vi.advanceTimersByTime(1);
      }
    };
    playout.start();
    return { playout, frames, log, advance };
  }

  /** `ms` of a 24 kHz PCM16 tone. */
  const tone = (ms: number) => {
    const n = (24_000 * ms) / 1000;
    const b = Buffer.alloc(n * 2);
    for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(10_000 * Math.sin((2 * Math.PI * 440 * i) / 24_000)), i * 2);
    return b;
  };
  const loud = (f: Int16Array) => f.some((s) => Math.abs(s) > 1000);
  const fmt = { encoding: 'pcm16' as const, rate: 24_000 };

  it('writes exact 10 ms frames of silence at real time, then the speech, then stopped after it drains', () => {
    const { playout, frames, log, advance } = setup();
    advance(100);
    expect(frames).toHaveLength(10);
    expect(frames.every((f) => f.length === 480 && !loud(f))).toBe(true);
    playout.begin('r1', fmt);
    playout.push('r1', tone(200), fmt);
    playout.push('r1', tone(100), fmt);
    advance(50);
    expect(log).toEqual(['started r1 @10']);
    playout.finish('r1');
    advance(400);
    expect(frames).toHaveLength(55);
    const speech = frames.slice(10).filter(loud).length;
    expect(speech).toBeGreaterThanOrEqual(29);
    expect(speech).toBeLessThanOrEqual(31);
    expect(log[1]).toMatch(/^stopped r1 @4[01]$/);
    expect(playout.queuedMs).toBe(0);
  });

  it('clear() drops queued speech at once and ignores the rest of the cleared response', () => {
    const { playout, frames, log, advance } = setup();
    playout.begin('r1', fmt);
    playout.push('r1', tone(1000), fmt);
    advance(100);
    expect(playout.current).toBe('r1');
    expect(playout.clear()).toBe('r1');
    playout.push('r1', tone(500), fmt);
    playout.finish('r1');
    const before = frames.length;
    advance(200);
    expect(frames.slice(before).some(loud)).toBe(false);
    expect(log).toEqual(['started r1 @0']);
    // A new response plays normally.
    playout.begin('r2', fmt);
    playout.push('r2', tone(50), fmt);
    playout.finish('r2');
    advance(100);
    expect(log.slice(1).map((l) => l.split(' @')[0])).toEqual(['started r2', 'stopped r2']);
  });

  it('a response with no audio never starts or stops; G.711 audio is decoded', () => {
    const { playout, frames, log, advance } = setup();
    playout.begin('text', fmt);
    playout.finish('text');
    const ulaw = { encoding: 'g711_ulaw' as const, rate: 8000 };
    playout.begin('r', ulaw);
    // μ-law 0x80 is a large positive sample, 0x00 a large negative one.
    playout.push('r', Buffer.from(Array.from({ length: 800 }, (_, i) => (i % 8 < 4 ? 0x80 : 0x00))), ulaw);
    playout.finish('r');
    advance(200);
    expect(frames.filter(loud).length).toBeGreaterThanOrEqual(9);
    expect(log.map((l) => l.split(' @')[0])).toEqual(['started r', 'stopped r']);
  });

  it('restarts its schedule after a stall instead of bursting', () => {
    const { playout, frames } = setup();
    playout.close();
    const p2 = new AudioPlayout({ write: (f) => frames.push(f), onStarted: () => {}, onStopped: () => {}, now: () => t, maxCatchUpFrames: 5 });
    let t = 0;
    p2.start();
    t = 1000;
    vi.advanceTimersByTime(10);
    expect(frames.length).toBeLessThanOrEqual(2);
    p2.close();
  });
});
