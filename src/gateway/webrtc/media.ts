// The media edge of a WebRTC call, as the call sees it. A call (call.ts) binds one RealtimeSession
// to one `MediaPeer`: a JSON events channel (`oai-events`), the caller's microphone as PCM frames,
// optional camera frames as I420, and a 48 kHz mono output the call writes 10 ms frames to. The
// call never touches RTP, SDP or ICE; a `MediaEdge` turns an SDP offer into a connected peer.
//
// This is the seam for an SFU: `WrtcEdge` (wrtc_peer.ts) terminates the client's peer connection
// in this process with libwebrtc; an SFU adapter (mediasoup, ...) would implement the same two
// interfaces on top of the SFU's transports (see docs/webrtc.md).

/** One block of decoded microphone audio: interleaved signed 16-bit samples. */
export interface PcmFrame {
  samples: Int16Array;
  sampleRate: number;
  channelCount: number;
}

/** One decoded camera frame: I420 (BT.601 limited range), width * height luma then two quarter planes. */
export interface I420Frame {
  data: Uint8Array;
  width: number;
  height: number;
}

/** The JSON events channel (the client's `oai-events` data channel). */
export interface EventChannel {
  /** True once messages can be sent. */
  readonly open: boolean;
  /** Bytes queued and not yet handed to the network. */
  readonly bufferedAmount: number;
  /** Largest message the channel carries (SCTP max-message-size). */
  readonly maxMessageSize: number;
  send(text: string): void;
}

export interface MediaPeerHandlers {
  /** The events channel opened (messages may be sent from now on). */
  onChannelOpen(): void;
  /** A text message from the client on the events channel. */
  onChannelMessage(text: string): void;
  /** A binary message on the events channel (refused by the call). */
  onChannelBinary(): void;
  /** Decoded microphone audio, in arrival order (any rate and channel count). */
  onAudio(frame: PcmFrame): void;
  /** A decoded camera frame with its arrival time (performance.now ms). */
  onVideo(frame: I420Frame, atMs: number): void;
  /** The peer is gone for good (closed, failed, or never connected in time). Called once. */
  onClosed(reason: string): void;
}

/** A connected (or connecting) remote participant, bound to one call. */
export interface MediaPeer {
  readonly channel: EventChannel;
  /** Writes one 10 ms frame of 48 kHz mono speech (480 samples) to the client's audio track. */
  writeAudio(frame: Int16Array): void;
  /** Releases everything (peer connection, sinks, sources). Idempotent; does not call onClosed. */
  close(): void;
}

export interface AcceptedPeer {
  peer: MediaPeer;
  /** The SDP answer to return to the client. */
  answerSdp: string;
}

/** Turns a client's SDP offer into a peer. Throws `InvalidOfferError` for an offer it cannot use. */
export interface MediaEdge {
  accept(offerSdp: string, handlers: MediaPeerHandlers): Promise<AcceptedPeer>;
}

export class InvalidOfferError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidOfferError';
  }
}

/** Output audio the peer plays: 48 kHz mono, 10 ms frames. */
export const PLAYOUT_RATE = 48_000;
export const PLAYOUT_FRAME_SAMPLES = 480;
export const PLAYOUT_FRAME_MS = 10;
