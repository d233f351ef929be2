// The input audio buffer of a realtime session: client audio decoded to 16 kHz as it arrives,
// scored by server VAD when turn detection is on, and cut into user turns. The buffer is bounded
// (`maxSeconds`); at the bound an append is refused with an error and nothing is dropped silently.
import { AudioInputDecoder } from '../../codecs/audio/input_decoder.js';
import { VoiceActivityDetector, type VadEvent } from '../../codecs/audio/vad_detector.js';
import { ProtocolError, type AudioFormat, type TurnDetection } from './model.js';

export const MIN_COMMIT_MS = 100;
const RATE = 16_000;
/** 4 s at 16 kHz: most spoken turns fit without growing. */
const INITIAL_SAMPLES = 4 * RATE;
/** An emptied buffer larger than 60 s is replaced by a small one. */
const SHRINK_ABOVE_SAMPLES = 60 * RATE;

// The decoder's output may be a reused buffer: append() copies it (detector and buffer) at once.
function newDecoder(format: AudioFormat): AudioInputDecoder {
  return new AudioInputDecoder({ format: format.encoding, sampleRate: format.rate, reuseOutput: true });
}

export interface InputAudioOptions {
  format: AudioFormat;
  turnDetection: TurnDetection | null;
  /** Most audio held uncommitted (default 15 minutes). */
  maxSeconds?: number;
  onVad: (event: VadEvent) => void;
  onVadError: (error: Error) => void;
}

export class InputAudio {
  private decoder: AudioInputDecoder;
  private vad: VoiceActivityDetector | undefined;
  /**
   * Uncommitted 16 kHz audio: samples [bufferStart, total) in buf[offset, offset + total -
   * bufferStart). One growing buffer rather than a list of the 20 ms chunks: a chunk then dies
   * young (it is copied here and into the detector), where a kept chunk would be one more object
   * per 20 ms per session for the garbage collector to copy and promote.
   */
  private buf = new Float32Array(INITIAL_SAMPLES);
  private offset = 0;
  private bufferStart = 0;
  private total = 0;
  private readonly maxSamples: number;

  constructor(private options: InputAudioOptions) {
    this.decoder = newDecoder(options.format);
    this.vad = this.makeVad(options.turnDetection);
    this.maxSamples = Math.round((options.maxSeconds ?? 900) * RATE);
  }

  /** Session audio time so far (ms since the first append). */
  get totalMs(): number {
    return this.total / 16;
  }

  /** Audio waiting in the buffer, ms. */
  get bufferedMs(): number {
    return (this.total - this.bufferStart) / 16;
  }

  get speaking(): boolean {
    return this.vad?.speaking ?? false;
  }

  /** New format or turn detection (from session.update); uncommitted audio stays. */
  configure(format: AudioFormat, turnDetection: TurnDetection | null): void {
    const f = this.options.format;
    if (f.encoding !== format.encoding || f.rate !== format.rate) {
      this.decoder = newDecoder(format);
    }
    const t = this.options.turnDetection;
    if (JSON.stringify(t) !== JSON.stringify(turnDetection)) {
      this.vad?.close();
      this.vad = this.makeVad(turnDetection);
    }
    this.options = { ...this.options, format, turnDetection };
  }

  /** Decodes and buffers one append (raw bytes in the session's input format). */
  append(bytes: Buffer): void {
    const samples = this.decoder.push(bytes);
    if (this.total - this.bufferStart + samples.length > this.maxSamples) {
      throw new ProtocolError(
        'input_audio_buffer_full',
        `the input audio buffer holds its maximum of ${this.maxSamples / RATE} s; commit or clear it first`,
        'audio',
      );
    }
    if (samples.length === 0) return;
    // The detector first: when it refuses the chunk (vad_overloaded) the buffer does not take it
    // either, so the two timelines stay the same.
    this.vad?.push(samples);
    this.store(samples);
  }

  /** Takes the whole buffer (manual commit). Errors when it holds under 100 ms. */
  commitAll(): Float32Array {
    // The resampler holds back its last input samples (filter delay) until its stream ends. A
    // manual commit is a stream boundary: flush them first, so a client that appended exactly
    // 100 ms commits 100 ms (not ~99.6 ms and commit_empty) and the turn keeps its last samples.
    this.flushDecoder();
    const ms = this.bufferedMs;
    if (ms < MIN_COMMIT_MS) {
      throw new ProtocolError(
        'input_audio_buffer_commit_empty',
        `buffer too small. Expected at least ${MIN_COMMIT_MS}ms of audio, but buffer only has ${ms.toFixed(2)}ms of audio.`,
        null,
      );
    }
    const out = this.take(this.bufferStart, this.total);
    this.clear();
    return out;
  }

  /** Takes whatever the buffer holds, however short (an idle-timeout turn), and empties it. */
  takeBuffered(): Float32Array {
    const out = this.take(this.bufferStart, this.total);
    this.dropBefore(this.total);
    return out;
  }

  /** Takes [start, end) (a VAD turn) and drops everything before `end`. */
  commitRange(startSample: number, endSample: number): Float32Array {
    const out = this.take(Math.max(startSample, this.bufferStart), Math.min(endSample, this.total));
    this.dropBefore(endSample);
    return out;
  }

  private flushDecoder(): void {
    const tail = this.decoder.end();
    this.decoder.reset();
    if (tail.length === 0) return;
    this.vad?.push(tail);
    this.store(tail);
  }

  clear(): void {
    // Samples the resampler still holds belong to the cleared audio: drop them too.
    this.decoder.reset();
    this.dropBefore(this.total);
    this.vad?.reset();
  }

  close(): void {
    this.vad?.close();
    this.vad = undefined;
  }

  private makeVad(t: TurnDetection | null): VoiceActivityDetector | undefined {
    if (!t) return undefined;
    // semantic_vad runs the same acoustic detector; eagerness maps to how long silence must last.
    const silence = t.type === 'semantic_vad' ? { low: 1500, medium: 800, high: 400, auto: 800 }[t.eagerness ?? 'auto'] : t.silenceDurationMs;
    return new VoiceActivityDetector({
      config: { threshold: t.type === 'semantic_vad' ? 0.5 : t.threshold, prefixPaddingMs: t.prefixPaddingMs, silenceDurationMs: silence },
      onEvent: (e) => this.options.onVad(e),
      onError: (e) => this.options.onVadError(e),
    });
  }

  /** Samples [from, to) (clamped to what the buffer holds; zeros elsewhere), as a new array. */
  private take(from: number, to: number): Float32Array {
    const out = new Float32Array(Math.max(0, to - from));
    const a = Math.max(from, this.bufferStart);
    const b = Math.min(to, this.total);
    if (b > a) out.set(this.buf.subarray(this.offset + a - this.bufferStart, this.offset + b - this.bufferStart), a - from);
    return out;
  }

  private store(samples: Float32Array): void {
    const held = this.total - this.bufferStart;
    if (this.offset + held + samples.length > this.buf.length) {
      const need = held + samples.length;
      if (need <= this.buf.length / 2) {
        this.buf.copyWithin(0, this.offset, this.offset + held);
      } else {
        const grown = new Float32Array(Math.max(2 * need, INITIAL_SAMPLES));
        grown.set(this.buf.subarray(this.offset, this.offset + held));
        this.buf = grown;
      }
      this.offset = 0;
    }
    this.buf.set(samples, this.offset + held);
    this.total += samples.length;
  }

  private dropBefore(sample: number): void {
    const drop = Math.min(Math.max(0, sample - this.bufferStart), this.total - this.bufferStart);
    this.offset += drop;
    this.bufferStart += drop;
    if (this.bufferStart === this.total) {
      this.offset = 0;
      // A long turn grew the buffer: give the memory back once it is empty.
      if (this.buf.length > SHRINK_ABOVE_SAMPLES) this.buf = new Float32Array(INITIAL_SAMPLES);
    }
  }
}
