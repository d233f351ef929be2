// The in-process media edge: the client's peer connection terminates here, in libwebrtc through
// @roamhq/wrtc, which decodes Opus (and VP8/H.264) for us. Answers are returned with every ICE
// candidate gathered (no trickle: the client's POST gets one complete answer), host candidates
// always (loopback included), plus server-reflexive and relayed ones when STUN/TURN servers are
// configured. The native module is loaded on the first call, so a gateway that never takes a
// WebRTC call never starts libwebrtc's threads.
import { createRequire } from 'node:module';
import {
  InvalidOfferError,
  PLAYOUT_FRAME_SAMPLES,
  PLAYOUT_RATE,
  type AcceptedPeer,
  type EventChannel,
  type MediaEdge,
  type MediaPeer,
  type MediaPeerHandlers,
} from './media.js';

/** The data channel label the OpenAI WebRTC clients create. */
export const EVENTS_CHANNEL_LABEL = 'oai-events';

export interface IceServer {
  urls: string | string[];
  username?: string;
  credential?: string;
}

/** `--ice-servers`: a JSON list of RTCIceServer. Throws with what is wrong. */
export function parseIceServers(json: string): IceServer[] {
  if (!json.trim()) return [];
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (!Array.isArray(value)) throw new Error('expected a JSON list of { urls, username?, credential? }');
  return value.map((v: unknown, i): IceServer => {
    const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
    const urls = o.urls;
    const list = typeof urls === 'string' ? [urls] : Array.isArray(urls) ? urls : [];
    if (list.length === 0 || !list.every((u) => typeof u === 'string' && /^(stun|stuns|turn|turns):/.test(u))) {
      throw new Error(`[${i}].urls must be stun:, stuns:, turn: or turns: URLs`);
    }
    for (const k of ['username', 'credential'] as const) {
      if (o[k] !== undefined && typeof o[k] !== 'string') throw new Error(`[${i}].${k} must be a string`);
    }
    return { urls: urls as string | string[], ...(o.username !== undefined ? { username: o.username as string } : {}), ...(o.credential !== undefined ? { credential: o.credential as string } : {}) };
  });
}

export interface WrtcEdgeOptions {
  iceServers?: IceServer[];
  /** Longest wait for ICE gathering before answering with the candidates found so far (ms). */
  gatherTimeoutMs?: number;
  /** A peer not connected (with its events channel open) within this long is closed (ms). */
  connectTimeoutMs?: number;
  /** A peer `disconnected` for this long is closed (ms). */
  disconnectGraceMs?: number;
}

// ---- the parts of @roamhq/wrtc used here (its own typings assume the DOM library) ----------

interface WTrack {
  readonly kind: string;
  stop(): void;
}
interface WDataChannel {
  readonly label: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  binaryType: string;
  onopen: (() => void) | null;
  onclose: (() => void) | null;
  onmessage: ((e: { data: unknown }) => void) | null;
  send(data: string): void;
  close(): void;
}
interface WPeerConnection {
  readonly connectionState: string;
  readonly iceGatheringState: string;
  readonly localDescription: { type: string; sdp: string } | null;
  readonly sctp: { maxMessageSize: number } | null;
  ontrack: ((e: { track: WTrack }) => void) | null;
  ondatachannel: ((e: { channel: WDataChannel }) => void) | null;
  onconnectionstatechange: (() => void) | null;
  onicegatheringstatechange: (() => void) | null;
  setRemoteDescription(d: { type: 'offer'; sdp: string }): Promise<void>;
  createAnswer(): Promise<{ type: 'answer'; sdp: string }>;
  setLocalDescription(d: { type: 'answer'; sdp: string }): Promise<void>;
  getTransceivers(): { receiver: { track: WTrack } }[];
  addTrack(track: WTrack): unknown;
  close(): void;
}
interface WAudioData {
  samples: Int16Array;
  sampleRate: number;
  bitsPerSample?: number;
  channelCount?: number;
  numberOfFrames?: number;
}
interface WSink {
  stop(): void;
}
interface WAudioSink extends WSink {
  ondata: ((d: WAudioData) => void) | null;
}
interface WVideoSink extends WSink {
  onframe: ((e: { frame: { width: number; height: number; data: Uint8Array } }) => void) | null;
}
interface WrtcModule {
  RTCPeerConnection: new (config?: { iceServers?: IceServer[] }) => WPeerConnection;
  nonstandard: {
    RTCAudioSource: new () => { createTrack(): WTrack; onData(d: WAudioData): void };
    RTCAudioSink: new (track: WTrack) => WAudioSink;
    RTCVideoSink: new (track: WTrack) => WVideoSink;
  };
}

let loaded: WrtcModule | undefined;
/** @roamhq/wrtc, loaded on first use. */
export function wrtc(): WrtcModule {
  loaded ??= createRequire(import.meta.url)('@roamhq/wrtc') as WrtcModule;
  return loaded;
}

/** Rejects what is plainly not an SDP offer before libwebrtc sees it. */
export function checkOfferSdp(sdp: string): void {
  if (sdp.length === 0) throw new InvalidOfferError('the SDP offer is empty');
  if (!/^v=0\r?\n/.test(sdp)) throw new InvalidOfferError("the SDP offer must start with 'v=0'");
  if (!/\r?\nm=/.test(sdp)) throw new InvalidOfferError('the SDP offer has no media section');
}

export class WrtcEdge implements MediaEdge {
  constructor(private readonly options: WrtcEdgeOptions = {}) {}

  async accept(offerSdp: string, handlers: MediaPeerHandlers): Promise<AcceptedPeer> {
    checkOfferSdp(offerSdp);
    const peer = new WrtcPeer(wrtc(), this.options, handlers);
    try {
      const answerSdp = await peer.negotiate(offerSdp);
      return { peer, answerSdp };
    } catch (err) {
      peer.close();
      throw err;
    }
  }
}

class WrtcPeer implements MediaPeer {
  readonly channel: EventChannel;
  private readonly pc: WPeerConnection;
  private readonly source: { createTrack(): WTrack; onData(d: WAudioData): void };
  private readonly outTrack: WTrack;
  private readonly sinks: WSink[] = [];
  private dc: WDataChannel | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private disconnectTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private ended = false;
  private channelOpened = false;

  constructor(
    w: WrtcModule,
    private readonly options: WrtcEdgeOptions,
    private readonly handlers: MediaPeerHandlers,
  ) {
    this.pc = new w.RTCPeerConnection(options.iceServers?.length ? { iceServers: options.iceServers } : {});
    this.source = new w.nonstandard.RTCAudioSource();
    this.outTrack = this.source.createTrack();
    const dc = (): WDataChannel | undefined => this.dc;
    const pc = this.pc;
    this.channel = {
      get open() {
        return dc()?.readyState === 'open';
      },
      get bufferedAmount() {
        return dc()?.bufferedAmount ?? 0;
      },
      get maxMessageSize() {
        return pc.sctp?.maxMessageSize || 65_536;
      },
      send(text: string) {
        const channel = dc();
        if (channel?.readyState !== 'open') return;
        try {
          channel.send(text);
        } catch {
          // Closing under us, or libwebrtc's send queue is full: the call sees bufferedAmount.
        }
      },
    };

    this.pc.ontrack = ({ track }) => {
      if (this.closed) return;
      if (track.kind === 'audio') {
        const sink = new w.nonstandard.RTCAudioSink(track);
        sink.ondata = (d) => {
          if (!this.closed) this.handlers.onAudio({ samples: d.samples, sampleRate: d.sampleRate, channelCount: d.channelCount ?? 1 });
        };
        this.sinks.push(sink);
      } else if (track.kind === 'video') {
        const sink = new w.nonstandard.RTCVideoSink(track);
        sink.onframe = ({ frame }) => {
          if (!this.closed) this.handlers.onVideo({ data: frame.data, width: frame.width, height: frame.height }, performance.now());
        };
        this.sinks.push(sink);
      }
    };
    this.pc.ondatachannel = ({ channel }) => {
      if (this.closed || channel.label !== EVENTS_CHANNEL_LABEL || this.dc) return;
      this.dc = channel;
      channel.binaryType = 'arraybuffer';
      channel.onopen = () => this.channelOpen();
      channel.onclose = () => this.end('data channel closed');
      channel.onmessage = ({ data }) => {
        if (this.closed) return;
        if (typeof data === 'string') this.handlers.onChannelMessage(data);
        else this.handlers.onChannelBinary();
      };
      if (channel.readyState === 'open') queueMicrotask(() => this.channelOpen());
    };
    this.pc.onconnectionstatechange = () => {
      const state = this.pc.connectionState;
      if (state === 'failed' || state === 'closed') return this.end(`peer connection ${state}`);
      if (state === 'disconnected') {
        this.disconnectTimer ??= setTimeout(() => this.end('peer connection disconnected'), this.options.disconnectGraceMs ?? 10_000);
      } else if (state === 'connected') {
        clearTimeout(this.disconnectTimer);
        this.disconnectTimer = undefined;
      }
    };
    this.connectTimer = setTimeout(() => {
      if (!this.channelOpened) this.end('the call did not connect in time');
    }, options.connectTimeoutMs ?? 30_000);
  }

  async negotiate(offerSdp: string): Promise<string> {
    try {
      await this.pc.setRemoteDescription({ type: 'offer', sdp: offerSdp });
    } catch (err) {
      throw new InvalidOfferError(`invalid SDP offer: ${(err as Error).message}`);
    }
    // Model speech goes out on the offer's audio m-line (addTrack reuses its transceiver).
    if (this.pc.getTransceivers().some((t) => t.receiver.track.kind === 'audio')) this.pc.addTrack(this.outTrack);
    let answer: { type: 'answer'; sdp: string };
    try {
      answer = await this.pc.createAnswer();
      await this.pc.setLocalDescription(answer);
    } catch (err) {
      throw new InvalidOfferError(`cannot answer the SDP offer: ${(err as Error).message}`);
    }
    await this.gathered();
    return this.pc.localDescription?.sdp ?? answer.sdp;
  }

  writeAudio(frame: Int16Array): void {
    if (this.closed) return;
    this.source.onData({ samples: frame, sampleRate: PLAYOUT_RATE, bitsPerSample: 16, channelCount: 1, numberOfFrames: PLAYOUT_FRAME_SAMPLES });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.ended = true;
    clearTimeout(this.connectTimer);
    clearTimeout(this.disconnectTimer);
    // Sinks first: their callbacks must not run against a closing connection.
    for (const s of this.sinks) s.stop();
    this.outTrack.stop();
    if (this.dc) {
      this.dc.onclose = null;
      this.dc.onmessage = null;
      this.dc.close();
    }
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }

  private channelOpen(): void {
    if (this.channelOpened || this.closed) return;
    this.channelOpened = true;
    clearTimeout(this.connectTimer);
    this.handlers.onChannelOpen();
  }

  private end(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.handlers.onClosed(reason);
  }

  private gathered(): Promise<void> {
    if (this.pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, this.options.gatherTimeoutMs ?? 3_000);
      const pc = this.pc;
      pc.onicegatheringstatechange = () => {
        if (pc.iceGatheringState === 'complete') done();
      };
      function done(): void {
        clearTimeout(timer);
        pc.onicegatheringstatechange = null;
        resolve();
      }
    });
  }
}
