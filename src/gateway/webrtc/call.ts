// One WebRTC call: a RealtimeSession (GA dialect) bound to a media peer. Client events arrive on
// the `oai-events` channel (and on sideband WebSockets); server events go back on it rendered by
// the GA dialect, except the audio deltas: model speech is played on the peer's audio track at
// real-time pace (playout.ts), with `output_audio_buffer.started/stopped/cleared` telling the
// client where playback is. The microphone track feeds `input_audio_buffer.append` in whatever
// input format the session has, the camera track feeds `input_image_buffer.append` about once a
// second. A call ends on hangup, `session.close`, the peer going away, session expiry or shutdown;
// ending releases the session, the peer and every sideband socket.
import type { QwenTokenizer } from '../../codecs/text/tokenizer.js';
import { AudioOutputEncoder } from '../../codecs/audio/output_encoder.js';
import { int16ToFloat32 } from '../../codecs/audio/sample_convert.js';
import type { RuntimeBackend } from '../../runtime/contract.js';
import { clientEventId, gaDialect } from '../realtime/dialects/index.js';
import { newId } from '../realtime/ids.js';
import { TurnTrace, type TurnTiming } from '../turn_trace.js';
import { ProtocolError, type AudioFormat, type ClientCommand, type ServerEvent, type SessionConfig } from '../realtime/model.js';
import { RealtimeSession, type SessionLimits } from '../realtime/session.js';
import { CameraSampler } from './camera.js';
import type { MediaEdge, MediaPeer, PcmFrame } from './media.js';
import { AudioPlayout } from './playout.js';

/** Data-channel bytes a client may leave unread before the call is ended. */
export const MAX_CHANNEL_BUFFERED_BYTES = 16 * 1024 * 1024;
/** Server events held until the events channel opens. */
const MAX_EARLY_EVENTS = 4096;
/** Microphone audio is appended in blocks of this many ms. */
const MIC_BLOCK_MS = 20;

/** A wire event as the GA dialect renders it, with its event_id. */
export type WireEvent = Record<string, unknown> & { type: string; event_id: string };

/** What a sideband connection holds while attached to a call. */
export interface SidebandAttachment {
  /** A parsed client event (JSON value), run like one from the data channel. */
  submit(value: unknown): void;
  /** A raw text frame: parsed, or answered with `invalid_json`. */
  submitText(text: string): void;
  /** Reports a problem with a frame (e.g. binary) as an `error` event. */
  reject(error: ProtocolError): void;
  /** Stops observing; the call goes on. */
  detach(): void;
}

/** What the WebSocket transport needs of a call to attach a sideband connection. */
export interface SidebandTarget {
  readonly id: string;
  /**
   * Observes every server event of the call (rendered, GA; audio deltas excluded) from now on,
   * and lets the caller send client events. `onEnd` runs once when the call ends.
   */
  attach(send: (wire: WireEvent) => void, onEnd: (reason: string) => void): SidebandAttachment;
}

export interface CallOptions {
  config: SessionConfig;
  runtime: RuntimeBackend;
  tokenizer: QwenTokenizer;
  edge: MediaEdge;
  offerSdp: string;
  limits?: Partial<SessionLimits>;
  /** Longest call, minutes (session expiry). */
  maxMinutes: number;
  /** Camera pictures per second into the session (default 1). */
  cameraFps?: number;
  onBargeIn?: (info: { detectedAt: number; responseId: string }) => void;
  /** Runs once when the call has ended and released everything. */
  onEnded?: (call: RtcCall, reason: string) => void;
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
}

export class RtcCall implements SidebandTarget {
  readonly id = newId('rtc');
  readonly session: RealtimeSession;
  readonly createdAt = Date.now();
  answerSdp = '';
  private peer: MediaPeer | undefined;
  private readonly playout: AudioPlayout;
  private readonly camera: CameraSampler;
  private readonly early: string[] = [];
  private readonly observers = new Map<symbol, { send: (wire: WireEvent) => void; onEnd: (reason: string) => void }>();
  private readonly formats = new Map<string, AudioFormat>();
  /** The last response that had speech (names a `cleared` that came after it finished). */
  private lastSpoken = '';
  private n = 0;
  private channelOpen = false;
  private ended = false;
  private endReason = '';
  private expiry: NodeJS.Timeout | undefined;
  // Microphone: mono floats gathered into blocks, encoded in the session's input format.
  private mic: Float32Array[] = [];
  private micSamples = 0;
  private micRate = 0;
  private micEncoder: AudioOutputEncoder | undefined;

  private constructor(private readonly options: CallOptions) {
    this.playout = new AudioPlayout({
      write: (frame) => this.peer?.writeAudio(frame),
      onStarted: (responseId) => this.emitOwn({ type: 'output_audio_buffer.started', response_id: responseId }),
      onStopped: (responseId) => this.emitOwn({ type: 'output_audio_buffer.stopped', response_id: responseId }),
    });
    this.camera = new CameraSampler({
      fps: options.cameraFps ?? 1,
      onImage: (image) => this.session.submit({ type: 'input_image_buffer.append', image, eventId: null }),
      onError: (err) => options.log?.warn({ callId: this.id, err: err.message }, 'camera frame dropped'),
    });
    this.session = new RealtimeSession({
      config: options.config,
      runtime: options.runtime,
      tokenizer: options.tokenizer,
      send: (event) => this.onServerEvent(event),
      // session.close: its last events leave on the channel before the peer is closed.
      close: (_code, reason) => void setTimeout(() => this.end(reason), 100),
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.onBargeIn ? { onBargeIn: options.onBargeIn } : {}),
      newTrace: (responseId, startedAt) => new TurnTrace(startedAt, (timing) => this.emitLatency(responseId, timing)),
    });
  }

  /**
   * Gateway extension event `omni.turn.latency` on the channel: where the last turn's latency went
   * (the /demo page shows it). Clients that do not know the type ignore it.
   */
  private emitLatency(responseId: string, timing: TurnTiming): void {
    if (this.ended) return;
    const ms = (v: number): number => Math.round(v * 10) / 10;
    this.deliver([
      {
        type: 'omni.turn.latency',
        event_id: `event_${(++this.n).toString(36)}${newId('event').slice(6, 14)}`,
        response_id: responseId,
        first_audio_ms: timing.firstAudioMs !== undefined ? ms(timing.firstAudioMs) : null,
        total_ms: ms(timing.totalMs),
        stages: Object.fromEntries(Object.entries(timing.stages).map(([k, v]) => [k, ms(v)])),
      },
    ]);
  }

  /** Answers the offer and starts the session. Throws InvalidOfferError for an unusable offer. */
  static async open(options: CallOptions): Promise<RtcCall> {
    const call = new RtcCall(options);
    let accepted: Awaited<ReturnType<MediaEdge['accept']>>;
    try {
      accepted = await options.edge.accept(options.offerSdp, {
        onChannelOpen: () => call.onChannelOpen(),
        onChannelMessage: (text) => call.submitText(text),
        onChannelBinary: () => call.session.reject(new ProtocolError('invalid_event', 'Expected a text message; binary messages are not supported.', null), null),
        onAudio: (frame) => call.onMic(frame),
        onVideo: (frame, atMs) => call.camera.push(frame, atMs),
        onClosed: (reason) => call.end(reason),
      });
    } catch (err) {
      call.ended = true;
      call.session.close();
      call.playout.close();
      call.camera.close();
      throw err;
    }
    const { peer, answerSdp } = accepted;
    call.peer = peer;
    call.answerSdp = answerSdp;
    // session.created is the first event; it waits in `early` until the channel opens.
    call.session.start();
    call.playout.start();
    call.expiry = setTimeout(() => {
      call.session.reject(new ProtocolError('session_expired', `Your session hit the maximum duration of ${options.maxMinutes} minutes.`, null), null);
      setTimeout(() => call.end('session expired'), 100);
    }, options.maxMinutes * 60_000);
    call.expiry.unref?.();
    return call;
  }

  get isEnded(): boolean {
    return this.ended;
  }

  /** Number of sideband connections attached. */
  get sidebands(): number {
    return this.observers.size;
  }

  /** A client event as a JSON value, from any channel. */
  submit(value: unknown): void {
    if (this.ended) return;
    this.session.submitWith(clientEventId(value), (config) => gaDialect.parse(value, config));
  }

  submitText(text: string): void {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      this.session.reject(new ProtocolError('invalid_json', `Invalid event: failed to parse JSON value: ${(err as Error).message}`, null), null);
      return;
    }
    this.submit(value);
  }

  attach(send: (wire: WireEvent) => void, onEnd: (reason: string) => void): SidebandAttachment {
    const key = Symbol('sideband');
    if (this.ended) queueMicrotask(() => onEnd(this.endReason));
    else this.observers.set(key, { send, onEnd });
    return {
      submit: (value) => this.submit(value),
      submitText: (text) => this.submitText(text),
      reject: (error) => this.session.reject(error, null),
      detach: () => void this.observers.delete(key),
    };
  }

  /** Ends the call: session closed, media released, sideband sockets told. Idempotent. */
  end(reason: string, notice?: ProtocolError): void {
    if (this.ended) return;
    if (notice) this.deliver(this.render({ type: 'error', error: notice.body(null) }));
    this.ended = true;
    this.endReason = reason;
    clearTimeout(this.expiry);
    this.session.close();
    this.playout.close();
    this.camera.close();
    // A notice needs a moment to leave on the channel before the peer closes.
    if (notice && this.peer) setTimeout(() => this.peer?.close(), 100);
    else this.peer?.close();
    const observers = [...this.observers.values()];
    this.observers.clear();
    for (const o of observers) o.onEnd(reason);
    this.options.log?.info({ callId: this.id, reason }, 'webrtc call ended');
    this.options.onEnded?.(this, reason);
  }

  // ------------------------------------------------------------------------------------------

  private onChannelOpen(): void {
    if (this.ended) return;
    this.channelOpen = true;
    const early = this.early.splice(0);
    for (const text of early) this.peer?.channel.send(text);
  }

  private onMic(frame: PcmFrame): void {
    if (this.ended || frame.samples.length === 0) return;
    const channels = Math.max(1, frame.channelCount);
    let mono: Float32Array;
    if (channels === 1) mono = int16ToFloat32(frame.samples);
    else {
      const n = Math.floor(frame.samples.length / channels);
      mono = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        let sum = 0;
        for (let c = 0; c < channels; c++) sum += frame.samples[i * channels + c]!;
        mono[i] = sum / channels / 32768;
      }
    }
    if (this.micRate !== frame.sampleRate) {
      this.mic = [];
      this.micSamples = 0;
      this.micRate = frame.sampleRate;
      this.micEncoder = undefined;
    }
    this.mic.push(mono);
    this.micSamples += mono.length;
    if (this.micSamples * 1000 < MIC_BLOCK_MS * frame.sampleRate) return;
    const block = new Float32Array(this.micSamples);
    let at = 0;
    for (const part of this.mic) {
      block.set(part, at);
      at += part.length;
    }
    this.mic = [];
    this.micSamples = 0;
    const rate = frame.sampleRate;
    // Encoded when the session reaches it, in the input format it has then.
    this.session.submitWith(null, (config): ClientCommand => ({ type: 'input_audio_buffer.append', audio: this.encodeMic(block, rate, config.inputFormat), eventId: null }));
  }

  private encodeMic(samples: Float32Array, rate: number, format: AudioFormat): Buffer {
    const e = this.micEncoder;
    if (!e || e.format !== format.encoding || e.sampleRate !== format.rate || e.inputSampleRate !== rate) {
      this.micEncoder = new AudioOutputEncoder({ format: format.encoding, sampleRate: format.rate, inputSampleRate: rate });
    }
    return this.micEncoder!.push(samples);
  }

  /** Every event the session sends passes here. */
  private onServerEvent(event: ServerEvent): void {
    if (this.ended) return;
    switch (event.type) {
      case 'response.created':
        this.formats.set(event.response.id, event.response.outputFormat);
        this.playout.begin(event.response.id, event.response.outputFormat);
        break;
      case 'response.output_audio.delta':
        // Speech goes out on the track, never on the channel.
        this.lastSpoken = event.response_id;
        this.playout.push(event.response_id, event.audio, this.formats.get(event.response_id) ?? this.session.config.outputFormat);
        return;
      case 'response.done':
        this.formats.delete(event.response.id);
        this.playout.finish(event.response.id);
        break;
      case 'output_audio_buffer.cleared': {
        // The session's answer to the client's output_audio_buffer.clear: drop what is queued now.
        const cleared = this.playout.clear();
        const responseId = event.response_id || cleared || this.lastSpoken;
        this.deliver(this.render({ ...event, response_id: responseId }));
        return;
      }
      case 'input_audio_buffer.speech_started':
        this.deliver(this.render(event));
        this.bargeIn();
        return;
      default:
        break;
    }
    this.deliver(this.render(event));
  }

  /**
   * The user started talking: with interrupt_response the session cancels the active response
   * (right after this event); the audio already queued for the track is dropped at once.
   */
  private bargeIn(): void {
    if (!this.session.config.turnDetection?.interruptResponse) return;
    const active = this.session.activeResponse?.id;
    const playing = this.playout.current;
    const cleared = this.playout.clear();
    if (active) this.playout.drop(active);
    const responseId = cleared ?? playing;
    if (responseId) this.emitOwn({ type: 'output_audio_buffer.cleared', response_id: responseId });
  }

  /** Events the call itself originates (playback state). */
  private emitOwn(event: ServerEvent): void {
    if (this.ended) return;
    this.deliver(this.render(event));
  }

  private render(event: ServerEvent): WireEvent[] {
    return gaDialect.render(event).map((wire) => {
      const { type, ...rest } = wire as { type: string };
      return { type, event_id: `event_${(++this.n).toString(36)}${newId('event').slice(6, 14)}`, ...rest };
    });
  }

  private deliver(wires: WireEvent[]): void {
    for (const wire of wires) {
      for (const o of this.observers.values()) o.send(wire);
      let text = JSON.stringify(wire);
      const channel = this.peer?.channel;
      if (channel && text.length > channel.maxMessageSize) {
        const error = new ProtocolError('event_too_large', `a ${wire.type} event of ${text.length} bytes does not fit in a data channel message; use a sideband WebSocket (GET /v1/realtime?call_id=${this.id})`, null, 'server_error');
        text = JSON.stringify(this.render({ type: 'error', error: error.body(null) })[0]);
      }
      if (!this.channelOpen || !channel) {
        if (this.early.length < MAX_EARLY_EVENTS) this.early.push(text);
        continue;
      }
      channel.send(text);
      if (channel.bufferedAmount > MAX_CHANNEL_BUFFERED_BYTES) {
        queueMicrotask(() => this.end('client is not reading fast enough'));
        return;
      }
    }
  }
}

/** Live calls by id: the sideband WebSocket and the hangup route find calls here. */
export class CallRegistry {
  private readonly calls = new Map<string, RtcCall>();

  get(callId: string): RtcCall | undefined {
    return this.calls.get(callId);
  }

  get size(): number {
    return this.calls.size;
  }

  all(): RtcCall[] {
    return [...this.calls.values()];
  }

  add(call: RtcCall): void {
    this.calls.set(call.id, call);
  }

  delete(call: RtcCall): void {
    if (this.calls.get(call.id) === call) this.calls.delete(call.id);
  }

  /** Ends every call (shutdown). */
  closeAll(reason: string, notice?: ProtocolError): void {
    for (const call of this.all()) call.end(reason, notice);
  }
}
