// A WebRTC client for the gateway's calls endpoint, built on @roamhq/wrtc like a browser would use
// its own stack: a microphone track fed in real time (10 ms frames of 48 kHz speech or silence),
// the `oai-events` data channel created before the offer, and a sink on the remote track that
// measures the speech the gateway plays.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access, @typescript-eslint/no-unsafe-call, @typescript-eslint/no-unsafe-assignment -- @roamhq/wrtc's own typings need the DOM library; server events are free-form JSON */
const wrtc: any = createRequire(import.meta.url)('@roamhq/wrtc');

export type Wire = Record<string, any> & { type: string };

/** espeak-ng speech as 48 kHz mono PCM16. */
export function speech48k(text: string): Int16Array {
  const dir = mkdtempSync(join(tmpdir(), 'omni-webrtc-'));
  const wav = join(dir, 'speech.wav');
  const raw = join(dir, 'speech.raw');
  execFileSync('espeak-ng', ['-w', wav, text]);
  execFileSync('sox', [wav, '-r', '48000', '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', raw]);
  const bytes = readFileSync(raw);
  return new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length - (bytes.length % 2)));
}

export interface OfferOptions {
  /** Add a microphone track (default true). */
  audio?: boolean;
  /** Add a synthetic camera track (default false). */
  video?: boolean;
}

export class WebRtcTestClient {
  readonly pc: any;
  readonly dc: any;
  readonly events: Wire[] = [];
  readonly eventTimes: number[] = [];
  /** Remote (gateway) audio: frames received and those carrying sound. */
  readonly remote = { frames: 0, loudFrames: 0, maxAbs: 0, lastLoudAt: 0 };
  channelOpen: Promise<void>;
  channelClosed: Promise<void>;
  private readonly source: any;
  private readonly videoSource: any;
  private mic: Int16Array[] = [];
  private micTimer: NodeJS.Timeout | undefined;
  private videoTimer: NodeJS.Timeout | undefined;
  private sinks: any[] = [];
  private waiters = new Set<() => void>();

  constructor(options: OfferOptions = {}) {
    this.pc = new wrtc.RTCPeerConnection();
    this.source = new wrtc.nonstandard.RTCAudioSource();
    if (options.audio ?? true) this.pc.addTrack(this.source.createTrack());
    if (options.video) {
      this.videoSource = new wrtc.nonstandard.RTCVideoSource();
      this.pc.addTrack(this.videoSource.createTrack());
    }
    this.pc.ontrack = ({ track }: { track: any }) => {
      if (track.kind !== 'audio') return;
      const sink = new wrtc.nonstandard.RTCAudioSink(track);
      sink.ondata = ({ samples }: { samples: Int16Array }) => {
        this.remote.frames++;
        let max = 0;
        for (const s of samples) max = Math.max(max, Math.abs(s));
        this.remote.maxAbs = Math.max(this.remote.maxAbs, max);
        if (max > 300) {
          this.remote.loudFrames++;
          this.remote.lastLoudAt = performance.now();
        }
      };
      this.sinks.push(sink);
    };
    this.dc = this.pc.createDataChannel('oai-events');
    this.channelOpen = new Promise((resolve) => (this.dc.onopen = () => resolve()));
    this.channelClosed = new Promise((resolve) => (this.dc.onclose = () => resolve()));
    this.dc.onmessage = ({ data }: { data: string }) => {
      this.events.push(JSON.parse(data) as Wire);
      this.eventTimes.push(performance.now());
      for (const w of this.waiters) w();
    };
  }

  /** The offer with every candidate gathered. */
  async offer(): Promise<string> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    if (this.pc.iceGatheringState !== 'complete') {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 3000);
        this.pc.onicegatheringstatechange = () => {
          if (this.pc.iceGatheringState === 'complete') {
            clearTimeout(t);
            resolve();
          }
        };
      });
    }
    return this.pc.localDescription.sdp as string;
  }

  async accept(answerSdp: string): Promise<void> {
    await this.pc.setRemoteDescription({ type: 'answer', sdp: answerSdp });
  }

  /** Starts the microphone: 10 ms frames at real time, queued speech or silence. */
  startMic(): void {
    const t0 = performance.now();
    let sent = 0;
    this.micTimer = setInterval(() => {
      const due = Math.floor((performance.now() - t0) / 10);
      while (sent < due) {
        sent++;
        const frame = this.mic.shift() ?? new Int16Array(480);
        this.source.onData({ samples: frame, sampleRate: 48_000, bitsPerSample: 16, channelCount: 1, numberOfFrames: 480 });
      }
    }, 10);
  }

  /** Queues speech on the microphone; resolves when it has all been sent. */
  say(pcm48k: Int16Array): Promise<void> {
    for (let i = 0; i < pcm48k.length; i += 480) {
      const frame = new Int16Array(480);
      frame.set(pcm48k.subarray(i, Math.min(i + 480, pcm48k.length)));
      this.mic.push(frame);
    }
    return new Promise((resolve) => {
      const check = setInterval(() => {
        if (this.mic.length === 0) {
          clearInterval(check);
          resolve();
        }
      }, 10);
    });
  }

  /** Sends a synthetic 320x240 camera picture at `fps`. */
  startCamera(fps = 15): void {
    const width = 320;
    const height = 240;
    let n = 0;
    this.videoTimer = setInterval(() => {
      const data = new Uint8ClampedArray(width * height * 1.5);
      data.fill(40 + ((n++ * 7) % 180), 0, width * height);
      data.fill(128, width * height);
      this.videoSource.onFrame({ width, height, data });
    }, 1000 / fps);
  }

  send(event: Record<string, unknown>): void {
    this.dc.send(JSON.stringify(event));
  }

  /** The first event (from index `from`) matching `pred`. */
  async waitFor(pred: string | ((e: Wire) => boolean), ms = 30_000, from = 0): Promise<Wire> {
    const match = typeof pred === 'string' ? (e: Wire) => e.type === pred : pred;
    const t0 = Date.now();
    for (;;) {
      const hit = this.events.slice(from).find(match);
      if (hit) return hit;
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting; last events: ${this.events.slice(-40).map((e) => e.type).join(', ')}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 50);
        const self = this.waiters;
        self.add(done);
        function done(): void {
          clearTimeout(t);
          self.delete(done);
          resolve();
        }
      });
    }
  }

  close(): void {
    clearInterval(this.micTimer);
    clearInterval(this.videoTimer);
    for (const s of this.sinks) s.stop();
    this.sinks = [];
    this.pc.close();
  }
}
