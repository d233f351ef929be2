// The input audio buffer of a realtime session: client audio decoded to 16 kHz as it arrives,
// scored by server VAD when turn detection is on, and cut into user turns. The buffer is bounded
// (`maxSeconds`); at the bound an append is refused with an error and nothing is dropped silently.
import { AudioInputDecoder } from '../../codecs/audio/input_decoder.js';
import { VoiceActivityDetector, type VadEvent } from '../../codecs/audio/vad_detector.js';
import { ProtocolError, type AudioFormat, type TurnDetection } from './model.js';

export const MIN_COMMIT_MS = 100;
const RATE = 16_000;

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
  /** Uncommitted 16 kHz audio: chunks covering [bufferStart, total). */
  private chunks: Float32Array[] = [];
  private bufferStart = 0;
  private total = 0;
  private readonly maxSamples: number;

  constructor(private options: InputAudioOptions) {
    this.decoder = new AudioInputDecoder({ format: options.format.encoding, sampleRate: options.format.rate });
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
      this.decoder = new AudioInputDecoder({ format: format.encoding, sampleRate: format.rate });
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
    this.chunks.push(samples);
    this.total += samples.length;
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
    this.chunks.push(tail);
    this.total += tail.length;
  }

  clear(): void {
    // Samples the resampler still holds belong to the cleared audio: drop them too.
    this.decoder.reset();
    this.chunks = [];
    this.bufferStart = this.total;
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

  private take(from: number, to: number): Float32Array {
    const out = new Float32Array(Math.max(0, to - from));
    let at = this.bufferStart;
    for (const c of this.chunks) {
      const a = Math.max(from, at);
      const b = Math.min(to, at + c.length);
      if (b > a) out.set(c.subarray(a - at, b - at), a - from);
      at += c.length;
    }
    return out;
  }

  private dropBefore(sample: number): void {
    while (this.chunks.length > 0 && this.bufferStart + this.chunks[0]!.length <= sample) {
      this.bufferStart += this.chunks.shift()!.length;
    }
    if (this.chunks.length > 0 && sample > this.bufferStart) {
      this.chunks[0] = this.chunks[0]!.subarray(sample - this.bufferStart);
      this.bufferStart = sample;
    }
  }
}
