// Opus for the WebRTC and device transports: raw packets (no container) in, 16 kHz mono float for
// the model out; the talker's 24 kHz float in, Opus packets out. libopus 1.3.1 through
// @discordjs/opus; packet structure is checked here first (RFC 6716 §3) so that a malformed packet
// is rejected with a precise message and never reaches the decoder state.
//
// What @discordjs/opus offers and how it is used:
// - One native object holds a lazily created encoder and decoder at the rate and channel count
//   given to the constructor; `decode` is `opus_decode` into int16. A decoder made with 1 channel
//   downmixes stereo streams inside libopus, so no JavaScript loop touches samples.
// - No packet loss concealment call: an empty buffer runs the PLC, but for the binding's fixed
//   buffer of 5760 samples (360 ms at 16 kHz), which would run the decoder state far ahead of the
//   timeline. Instead a lost stretch is decoded as TOC-only packets: libopus treats frames of 0 or
//   1 bytes as lost (DTX) and conceals exactly the duration their TOC byte states.
// - No getters for CTLs: the encoder look-ahead is the libopus constant (2.5 ms + 4 ms delay
//   compensation for the voip and audio applications).
import opus from '@discordjs/opus';
import { CodecError } from '../errors.js';
import { float32ToPcm16le, pcm16leToFloat32 } from './pcm.js';
import { createResamplerFor } from './resample.js';
import { concatFloat32 } from './sample_convert.js';
import type { Resampler } from './resample.js';

type Binding = InstanceType<typeof opus.OpusEncoder>;

// opus_defines.h
const OPUS_SET_APPLICATION_REQUEST = 4000;
const OPUS_SET_COMPLEXITY_REQUEST = 4010;
const OPUS_RESET_STATE = 4028;
const OPUS_APPLICATION_VOIP = 2048;
const OPUS_APPLICATION_AUDIO = 2049;

/** libopus's reference rate: TOC durations are counted in 48 kHz samples. */
const OPUS_TOC_RATE = 48000;
/** RFC 6716 §3.2.1 [R2]: no frame is longer than 1275 bytes. */
const MAX_FRAME_BYTES = 1275;
/** RFC 6716 §3.2.5 [R5]: no packet lasts longer than 120 ms (5760 samples at 48 kHz). */
const MAX_PACKET_SAMPLES_48K = 5760;

export const OPUS_DECODER_RATES = [8000, 12000, 16000, 24000, 48000] as const;
export const OPUS_ENCODER_RATES = [16000, 24000, 48000] as const;
export const OPUS_FRAME_DURATIONS_MS = [10, 20, 40, 60] as const;
/** The model's input rate, the decoder's default output. */
export const OPUS_MODEL_INPUT_RATE = 16000;
/** The talker's output rate, the encoder's default input. */
export const OPUS_MODEL_OUTPUT_RATE = 24000;
/** Longest stretch one `decodeLost` call conceals; a longer gap is several calls or a new stream. */
export const OPUS_MAX_CONCEAL_MS = 60_000;
/**
 * Longest stretch of a gap that runs libopus's PLC (a multiple of 20 ms). libopus fades its
 * concealment to silence well within it, so the rest of a longer gap is zeros, not 60 s of PLC work.
 */
export const OPUS_PLC_MAX_MS = 200;

export type OpusMode = 'silk' | 'hybrid' | 'celt';
export type OpusBandwidth = 'narrowband' | 'mediumband' | 'wideband' | 'superwideband' | 'fullband';
export type OpusApplication = 'voip' | 'audio';

/** What the TOC byte says (RFC 6716 §3.1). */
export interface OpusToc {
  /** 0..31, the row of RFC 6716 Table 2. */
  config: number;
  mode: OpusMode;
  bandwidth: OpusBandwidth;
  stereo: boolean;
  /** Frame count code c: 0 one frame, 1 two equal, 2 two different, 3 signalled count. */
  code: 0 | 1 | 2 | 3;
  /** Duration of each frame in 48 kHz samples (120 = 2.5 ms ... 2880 = 60 ms). */
  frameSamples48k: number;
}

/** A packet whose framing passed RFC 6716 §3.2 [R1]-[R7]. */
export interface OpusPacketInfo extends OpusToc {
  frameCount: number;
  /** Byte length of each frame (0 marks a frame the decoder conceals, as for DTX). */
  frameBytes: number[];
  /** Code 3 only: frames of individual lengths. */
  vbr: boolean;
  /** Code 3 only: padding bytes after the frames (length bytes not counted). */
  paddingBytes: number;
  /** Whole packet in 48 kHz samples; at rate R it is `samples48k * R / 48000` samples. */
  samples48k: number;
  durationMs: number;
}

const SILK_BANDWIDTHS: readonly OpusBandwidth[] = ['narrowband', 'mediumband', 'wideband'];
const HYBRID_BANDWIDTHS: readonly OpusBandwidth[] = ['superwideband', 'fullband'];
const CELT_BANDWIDTHS: readonly OpusBandwidth[] = ['narrowband', 'wideband', 'superwideband', 'fullband'];
const SILK_FRAME_SAMPLES = [480, 960, 1920, 2880] as const;
const HYBRID_FRAME_SAMPLES = [480, 960] as const;
const CELT_FRAME_SAMPLES = [120, 240, 480, 960] as const;

/** Decodes a TOC byte; every byte value is a valid TOC. */
export function parseOpusToc(toc: number): OpusToc {
  if (!Number.isInteger(toc) || toc < 0 || toc > 255) throw new RangeError(`a TOC is one byte (got ${toc})`);
  const config = toc >> 3;
  const stereo = (toc & 0x04) !== 0;
  const code = (toc & 0x03) as 0 | 1 | 2 | 3;
  if (config < 12) {
    return { config, mode: 'silk', bandwidth: SILK_BANDWIDTHS[config >> 2]!, stereo, code, frameSamples48k: SILK_FRAME_SAMPLES[config & 3]! };
  }
  if (config < 16) {
    const i = config - 12;
    return { config, mode: 'hybrid', bandwidth: HYBRID_BANDWIDTHS[i >> 1]!, stereo, code, frameSamples48k: HYBRID_FRAME_SAMPLES[i & 1]! };
  }
  const i = config - 16;
  return { config, mode: 'celt', bandwidth: CELT_BANDWIDTHS[i >> 2]!, stereo, code, frameSamples48k: CELT_FRAME_SAMPLES[i & 3]! };
}

function invalid(message: string): CodecError {
  return new CodecError('opus_packet_invalid', message, 'packet');
}

/** RFC 6716 §3.2.1 frame length: one byte below 252, else two bytes (first + 4 * second). */
function readFrameLength(packet: Uint8Array, at: number, what: string): { length: number; bytes: number } {
  const first = packet[at];
  if (first === undefined) throw invalid(`Opus packet ends before the length of ${what}`);
  if (first < 252) return { length: first, bytes: 1 };
  const second = packet[at + 1];
  if (second === undefined) throw invalid(`Opus packet ends inside the two-byte length of ${what}`);
  return { length: first + 4 * second, bytes: 2 };
}

/**
 * Parses and checks the framing of one packet as libopus's `opus_packet_parse` does; throws
 * CodecError `opus_packet_invalid` (param `packet`) naming the rule that failed.
 */
export function parseOpusPacket(packet: Uint8Array): OpusPacketInfo {
  if (!(packet instanceof Uint8Array)) throw invalid('an Opus packet must be a Uint8Array or Buffer');
  const n = packet.length;
  if (n === 0) throw invalid('empty Opus packet (a packet holds at least its TOC byte)');
  const toc = parseOpusToc(packet[0]!);
  let frameBytes: number[];
  let vbr = false;
  let paddingBytes = 0;
  switch (toc.code) {
    case 0:
      frameBytes = [n - 1];
      break;
    case 1:
      if ((n - 1) % 2 !== 0) throw invalid(`Opus code 1 packet needs an even payload for its two equal frames (got ${n - 1} bytes)`);
      frameBytes = [(n - 1) / 2, (n - 1) / 2];
      break;
    case 2: {
      const first = readFrameLength(packet, 1, 'frame 1');
      const rest = n - 1 - first.bytes;
      if (first.length > rest) throw invalid(`Opus code 2 packet: frame 1 length ${first.length} exceeds the ${rest} bytes left`);
      frameBytes = [first.length, rest - first.length];
      break;
    }
    case 3: {
      if (n < 2) throw invalid('Opus code 3 packet ends before its frame count byte');
      const countByte = packet[1]!;
      vbr = (countByte & 0x80) !== 0;
      const padded = (countByte & 0x40) !== 0;
      const count = countByte & 0x3f;
      if (count === 0) throw invalid('Opus code 3 packet signals 0 frames');
      if (count * toc.frameSamples48k > MAX_PACKET_SAMPLES_48K) {
        throw invalid(`Opus packet of ${count} x ${toc.frameSamples48k / 48} ms frames is longer than 120 ms`);
      }
      let at = 2;
      let left = n - 2;
      if (padded) {
        // Each length byte of 255 adds 254 bytes and says another length byte follows.
        for (;;) {
          const p = packet[at];
          if (p === undefined) throw invalid('Opus code 3 packet ends inside its padding length');
          at++;
          left--;
          paddingBytes += p === 255 ? 254 : p;
          if (p !== 255) break;
        }
        left -= paddingBytes;
        if (left < 0) throw invalid(`Opus code 3 packet padding (${paddingBytes} bytes) is longer than the packet`);
      }
      frameBytes = [];
      if (vbr) {
        for (let i = 0; i < count - 1; i++) {
          const len = readFrameLength(packet, at, `frame ${i + 1}`);
          at += len.bytes;
          left -= len.bytes;
          if (len.length > left) throw invalid(`Opus code 3 packet: frame ${i + 1} length ${len.length} exceeds the ${Math.max(left, 0)} bytes left`);
          frameBytes.push(len.length);
          left -= len.length;
        }
        frameBytes.push(left);
      } else {
        if (left % count !== 0) throw invalid(`Opus code 3 CBR packet: ${left} bytes do not split into ${count} equal frames`);
        for (let i = 0; i < count; i++) frameBytes.push(left / count);
      }
      break;
    }
  }
  for (let i = 0; i < frameBytes.length; i++) {
    if (frameBytes[i]! > MAX_FRAME_BYTES) throw invalid(`Opus frame ${i + 1} is ${frameBytes[i]} bytes, over the 1275-byte limit`);
  }
  const samples48k = frameBytes.length * toc.frameSamples48k;
  return { ...toc, frameCount: frameBytes.length, frameBytes, vbr, paddingBytes, samples48k, durationMs: samples48k / 48 };
}

/** Samples the packet decodes to at `sampleRate` (one of the libopus decoder rates). */
export function opusPacketSamples(packet: Uint8Array, sampleRate: number): number {
  checkRate(sampleRate, OPUS_DECODER_RATES, 'sampleRate');
  return (parseOpusPacket(packet).samples48k * sampleRate) / OPUS_TOC_RATE;
}

function checkRate(rate: number, allowed: readonly number[], param: string): void {
  if (!allowed.includes(rate)) {
    throw new CodecError('audio_sample_rate_unsupported', `Opus ${param} must be one of ${allowed.join(', ')} Hz (got ${String(rate)})`, param);
  }
}

function optionError(param: string, message: string): CodecError {
  return new CodecError('audio_option_invalid', message, param);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

export interface OpusDecoderOptions {
  /** Output rate in Hz, decoded at directly by libopus (default 16000, the model's). */
  sampleRate?: number;
}

export interface OpusDecoderStats {
  /** Packets decoded (not counting lost ones). */
  packets: number;
  bytesIn: number;
  /** Packets rejected as malformed; they leave the decoder state untouched. */
  invalidPackets: number;
  /** Packets concealed: one per `null`, and for `decodeLost` the gap over the last packet duration. */
  lostPackets: number;
  /** Every sample returned, concealment included. */
  samplesOut: number;
  /** Samples produced by packet loss concealment. */
  concealedSamples: number;
}

/**
 * Raw Opus packets (RTP payloads, device frames) to mono float samples at 16 kHz (or another
 * libopus rate). Every packet yields exactly the duration its TOC states; a lost packet yields
 * libopus's concealment for exactly the lost duration, so the timeline never drifts.
 */
export class OpusPacketDecoder {
  readonly sampleRate: number;
  private readonly native: Binding;
  /** Last good packet's duration in output samples: what a `null` packet conceals. */
  private lastPacketSamples: number;
  private lastStereo = false;
  private readonly counters: OpusDecoderStats = { packets: 0, bytesIn: 0, invalidPackets: 0, lostPackets: 0, samplesOut: 0, concealedSamples: 0 };

  constructor(options: OpusDecoderOptions = {}) {
    this.sampleRate = options.sampleRate ?? OPUS_MODEL_INPUT_RATE;
    checkRate(this.sampleRate, OPUS_DECODER_RATES, 'sampleRate');
    this.native = new opus.OpusEncoder(this.sampleRate, 1);
    this.lastPacketSamples = this.sampleRate / 50;
  }

  get stats(): Readonly<OpusDecoderStats> {
    return { ...this.counters };
  }

  /** One packet's samples; `null` stands for a lost packet as long as the last one received. */
  decode(packet: Uint8Array | null): Float32Array {
    if (packet === null) return this.conceal(this.lastPacketSamples, 1);
    let info: OpusPacketInfo;
    try {
      info = parseOpusPacket(packet);
    } catch (err) {
      this.counters.invalidPackets++;
      throw err;
    }
    const expected = (info.samples48k * this.sampleRate) / OPUS_TOC_RATE;
    let pcm: Buffer;
    try {
      pcm = this.native.decode(asBuffer(packet));
    } catch (err) {
      this.counters.invalidPackets++;
      throw new CodecError('opus_packet_invalid', `libopus rejected the packet: ${(err as Error).message}`, 'packet', { cause: err });
    }
    // libopus returns exactly the TOC duration for a packet it accepts; anything else is a broken build.
    if (pcm.length !== expected * 2) throw new Error(`libopus decoded ${pcm.length / 2} samples where the TOC says ${expected}`);
    this.counters.packets++;
    this.counters.bytesIn += packet.length;
    this.counters.samplesOut += expected;
    this.lastPacketSamples = expected;
    this.lastStereo = info.stereo;
    return pcm16leToFloat32(pcm);
  }

  /**
   * Conceals a gap of `durationMs` (a positive multiple of 2.5 ms, at most OPUS_MAX_CONCEAL_MS) with
   * libopus's PLC; before any packet arrived that is silence. The output length is always exact; in
   * SILK mode libopus 1.3.1 conceals a 2.5/5/7.5 ms remainder by running 10 ms of SILK PLC, so keep
   * gaps to multiples of 10 ms there when you can. `lostPackets` grows by the gap over the last
   * packet's duration, rounded (at least 1).
   */
  decodeLost(durationMs: number): Float32Array {
    if (typeof durationMs !== 'number' || !Number.isFinite(durationMs) || durationMs <= 0 || durationMs > OPUS_MAX_CONCEAL_MS) {
      throw optionError('durationMs', `lost duration must be above 0 and at most ${OPUS_MAX_CONCEAL_MS} ms (got ${String(durationMs)})`);
    }
    const quarterMs = durationMs / 2.5;
    if (!Number.isInteger(quarterMs)) throw optionError('durationMs', `lost duration must be a multiple of 2.5 ms, as Opus frames are (got ${durationMs})`);
    const samples = (quarterMs * this.sampleRate) / 400;
    return this.conceal(samples, Math.max(1, Math.round(samples / this.lastPacketSamples)));
  }

  /** Forgets the stream (decoder state, last packet duration); counters keep running. */
  reset(): void {
    this.native.applyDecoderCTL(OPUS_RESET_STATE, 0);
    this.lastPacketSamples = this.sampleRate / 50;
    this.lastStereo = false;
  }

  private conceal(samples: number, packets: number): Float32Array {
    const quarter = this.sampleRate / 400; // 2.5 ms
    const allUnits = samples / quarter;
    let units = Math.min(allUnits, OPUS_PLC_MAX_MS / 2.5);
    const parts: Float32Array[] = [];
    const stereo = this.lastStereo ? 0x04 : 0;
    // Up to six 20 ms frames per synthetic packet: TOC (CELT FB 20 ms, code 3) + CBR count byte and
    // no payload, i.e. six 0-byte frames. The PLC runs in the mode of the last real packet; the
    // TOC's mode is only bookkeeping that the next real packet overwrites.
    while (units >= 8) {
      const frames = Math.min(6, Math.floor(units / 8));
      parts.push(this.decodeSynthetic(Buffer.from([(31 << 3) | stereo | 3, frames]), frames * 8 * quarter));
      units -= frames * 8;
    }
    // The rest (< 20 ms) as single 0-byte frames of 10, 5 and 2.5 ms (CELT FB configs 30, 29, 28).
    for (const [config, size] of [[30, 4], [29, 2], [28, 1]] as const) {
      if (units >= size) {
        parts.push(this.decodeSynthetic(Buffer.from([(config << 3) | stereo]), size * quarter));
        units -= size;
      }
    }
    // Past OPUS_PLC_MAX_MS the concealment has faded out: silence for the rest, to the exact length.
    const concealedUnits = Math.min(allUnits, OPUS_PLC_MAX_MS / 2.5);
    if (allUnits > concealedUnits) parts.push(new Float32Array((allUnits - concealedUnits) * quarter));
    this.counters.lostPackets += packets;
    this.counters.samplesOut += samples;
    this.counters.concealedSamples += samples;
    return concatFloat32(parts);
  }

  private decodeSynthetic(packet: Buffer, expected: number): Float32Array {
    const pcm = this.native.decode(packet);
    if (pcm.length !== expected * 2) throw new Error(`libopus concealed ${pcm.length / 2} samples where ${expected} were asked for`);
    return pcm16leToFloat32(pcm);
  }
}

export interface OpusEncoderOptions {
  /** Encoder rate in Hz: 48000 (default; what WebRTC signals), 24000 or 16000. */
  sampleRate?: number;
  /** Rate of the samples pushed in (default 24000, the talker's); resampled when it differs. */
  inputSampleRate?: number;
  /** Frame duration: 10, 20 (default), 40 or 60 ms. */
  frameMs?: number;
  /** Target bitrate in bits per second, 6000 to 510000 (default 32000, wideband speech). */
  bitrate?: number;
  /** 'voip' (default: tuned for speech intelligibility) or 'audio' (fidelity to the waveform). */
  application?: OpusApplication;
  /** Encoder complexity 0 (cheapest) to 10 (libopus default). */
  complexity?: number;
}

export interface OpusFlushResult {
  packets: Buffer[];
  /** Silent samples (at the encoder rate) appended after the last pushed sample. */
  paddingSamples: number;
}

export interface OpusEncoderStats {
  packets: number;
  bytesOut: number;
  /** Samples pushed, at the input rate. */
  samplesIn: number;
  /** Samples encoded, at the encoder rate, padding included. */
  samplesEncoded: number;
  paddingSamples: number;
}

/**
 * Model speech (float, 24 kHz, any chunk size) to Opus packets of one fixed frame duration.
 * Partial frames wait for the next push, so the packets depend only on the samples, never on how
 * they were chunked. The only buffer is one frame of PCM (plus the resampler's fixed look-ahead).
 */
export class OpusEncoderStream {
  readonly sampleRate: number;
  readonly inputSampleRate: number;
  readonly frameMs: number;
  /** Samples per frame at the encoder rate. */
  readonly frameSamples: number;
  readonly bitrate: number;
  readonly application: OpusApplication;
  /** libopus's algorithmic delay at the encoder rate: decoded audio lags the input by this much. */
  readonly lookaheadSamples: number;
  private readonly native: Binding;
  private readonly resampler: Resampler | undefined;
  private readonly frameBytes: number;
  /** PCM16 LE of the current partial frame. */
  private readonly pending: Buffer;
  private pendingBytes = 0;
  /** Pushed samples (encoder rate) not yet followed by a look-ahead's worth of encoded audio. */
  private unsettled = false;
  private readonly counters: OpusEncoderStats = { packets: 0, bytesOut: 0, samplesIn: 0, samplesEncoded: 0, paddingSamples: 0 };

  constructor(options: OpusEncoderOptions = {}) {
    this.sampleRate = options.sampleRate ?? 48000;
    checkRate(this.sampleRate, OPUS_ENCODER_RATES, 'sampleRate');
    this.inputSampleRate = options.inputSampleRate ?? OPUS_MODEL_OUTPUT_RATE;
    if (!Number.isSafeInteger(this.inputSampleRate) || this.inputSampleRate <= 0) {
      throw new CodecError('audio_sample_rate_unsupported', `inputSampleRate must be a positive integer in Hz (got ${String(this.inputSampleRate)})`, 'inputSampleRate');
    }
    this.frameMs = options.frameMs ?? 20;
    if (!(OPUS_FRAME_DURATIONS_MS as readonly number[]).includes(this.frameMs)) {
      throw optionError('frameMs', `Opus frame duration must be one of ${OPUS_FRAME_DURATIONS_MS.join(', ')} ms (got ${String(this.frameMs)})`);
    }
    this.bitrate = options.bitrate ?? 32000;
    if (!Number.isInteger(this.bitrate) || this.bitrate < 6000 || this.bitrate > 510000) {
      throw optionError('bitrate', `Opus bitrate must be an integer from 6000 to 510000 b/s (got ${String(this.bitrate)})`);
    }
    this.application = options.application ?? 'voip';
    if (this.application !== 'voip' && this.application !== 'audio') {
      throw optionError('application', `Opus application must be 'voip' or 'audio' (got ${JSON.stringify(this.application)})`);
    }
    const complexity = options.complexity;
    if (complexity !== undefined && (!Number.isInteger(complexity) || complexity < 0 || complexity > 10)) {
      throw optionError('complexity', `Opus complexity must be an integer from 0 to 10 (got ${String(complexity)})`);
    }
    this.frameSamples = (this.sampleRate * this.frameMs) / 1000;
    this.frameBytes = this.frameSamples * 2;
    this.pending = Buffer.alloc(this.frameBytes);
    this.lookaheadSamples = this.sampleRate / 400 + this.sampleRate / 250;
    this.native = new opus.OpusEncoder(this.sampleRate, 1);
    // The application can only be set before the first frame; this also creates the encoder.
    this.native.applyEncoderCTL(OPUS_SET_APPLICATION_REQUEST, this.application === 'voip' ? OPUS_APPLICATION_VOIP : OPUS_APPLICATION_AUDIO);
    this.native.setBitrate(this.bitrate);
    if (complexity !== undefined) this.native.applyEncoderCTL(OPUS_SET_COMPLEXITY_REQUEST, complexity);
    this.resampler = this.inputSampleRate === this.sampleRate ? undefined : createResamplerFor(this.inputSampleRate, this.sampleRate, 'inputSampleRate');
  }

  get stats(): Readonly<OpusEncoderStats> {
    return { ...this.counters };
  }

  /** Samples waiting for the rest of their frame (at the encoder rate). */
  get bufferedSamples(): number {
    return this.pendingBytes / 2;
  }

  /** Appends samples; returns every packet completed by them (often none for small chunks). */
  push(samples: Float32Array): Buffer[] {
    if (!(samples instanceof Float32Array)) throw new CodecError('audio_invalid_samples', 'samples to encode must be a Float32Array', 'audio');
    this.counters.samplesIn += samples.length;
    const atRate = this.resampler ? this.resampler.push(samples) : samples;
    return this.encodePcm(float32ToPcm16le(atRate));
  }

  /**
   * Ends the utterance: encodes what is buffered, padded with silence to the frame boundary, plus
   * one silent frame when that padding is shorter than the encoder look-ahead, so that decoding the
   * packets yields every pushed sample. The stream then continues (same encoder state).
   */
  flush(): OpusFlushResult {
    const packets = this.resampler ? this.encodePcm(float32ToPcm16le(this.resampler.flush())) : [];
    if (!this.unsettled && this.pendingBytes === 0) return { packets, paddingSamples: 0 };
    let padding = 0;
    if (this.pendingBytes > 0) {
      padding = this.frameSamples - this.pendingBytes / 2;
      this.pending.fill(0, this.pendingBytes);
      packets.push(this.encodeFrame(this.pending));
      this.pendingBytes = 0;
    }
    if (padding < this.lookaheadSamples) {
      this.pending.fill(0);
      packets.push(this.encodeFrame(this.pending));
      padding += this.frameSamples;
    }
    this.unsettled = false;
    this.counters.paddingSamples += padding;
    return { packets, paddingSamples: padding };
  }

  /** Drops buffered audio (barge-in) and restarts the encoder and resampler state. */
  reset(): void {
    this.pendingBytes = 0;
    this.unsettled = false;
    this.resampler?.reset();
    this.native.applyEncoderCTL(OPUS_RESET_STATE, 0);
  }

  private encodePcm(pcm: Buffer): Buffer[] {
    const packets: Buffer[] = [];
    if (pcm.length === 0) return packets;
    this.unsettled = true;
    let at = 0;
    if (this.pendingBytes > 0) {
      const take = Math.min(this.frameBytes - this.pendingBytes, pcm.length);
      pcm.copy(this.pending, this.pendingBytes, 0, take);
      this.pendingBytes += take;
      at = take;
      if (this.pendingBytes < this.frameBytes) return packets;
      packets.push(this.encodeFrame(this.pending));
      this.pendingBytes = 0;
    }
    // Whole frames straight from the converted chunk, no copy.
    for (; pcm.length - at >= this.frameBytes; at += this.frameBytes) packets.push(this.encodeFrame(pcm.subarray(at, at + this.frameBytes)));
    if (at < pcm.length) {
      pcm.copy(this.pending, 0, at);
      this.pendingBytes = pcm.length - at;
    }
    return packets;
  }

  private encodeFrame(frame: Buffer): Buffer {
    const packet = this.native.encode(frame);
    this.counters.packets++;
    this.counters.bytesOut += packet.length;
    this.counters.samplesEncoded += this.frameSamples;
    return packet;
  }
}
