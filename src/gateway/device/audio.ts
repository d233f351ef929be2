// Audio across the device link, never base64: AUDIO_IN frames (PCM16 LE at the negotiated rate, or
// one Opus packet each) become the session's input bytes; the session's speech (PCM16 at the
// negotiated rate) becomes AUDIO_OUT frames (the bytes as they are, or Opus packets of a fixed
// duration). Opus input is decoded at 16 kHz, the model's rate, whatever rate the device encoded at.
import { CodecError } from '../../codecs/errors.js';
import { OpusEncoderStream, OpusPacketDecoder } from '../../codecs/audio/opus.js';
import { float32ToPcm16le, pcm16leToFloat32 } from '../../codecs/audio/pcm.js';
import { ProtocolError, type AudioFormat } from '../realtime/model.js';
import type { DeviceAudioIn, DeviceAudioOut } from './hello.js';

/** Mic audio: device frames -> bytes in the session's input format. */
export class DeviceAudioInput {
  /** What the session is told its input is. */
  readonly sessionFormat: AudioFormat;
  private readonly decoder: OpusPacketDecoder | undefined;

  constructor(readonly format: DeviceAudioIn) {
    if (format.codec === 'opus') {
      this.decoder = new OpusPacketDecoder({ sampleRate: 16000 });
      this.sessionFormat = { encoding: 'pcm16', rate: 16000 };
    } else {
      this.sessionFormat = { encoding: 'pcm16', rate: format.rate };
    }
  }

  /** One AUDIO_IN payload to session bytes; throws ProtocolError (param `payload`) for a bad frame. */
  convert(payload: Buffer): Buffer {
    if (payload.length === 0) throw new ProtocolError('invalid_audio_frame', 'the AUDIO_IN frame is empty', 'payload');
    if (!this.decoder) {
      if (payload.length % 2 !== 0) {
        throw new ProtocolError('invalid_audio_frame', `PCM16 audio is whole 2-byte samples; this AUDIO_IN frame has ${payload.length} bytes`, 'payload');
      }
      // A copy: the payload is a view into the WebSocket message the session may outlive.
      return Buffer.from(payload);
    }
    try {
      return float32ToPcm16le(this.decoder.decode(payload));
    } catch (err) {
      if (err instanceof CodecError) throw new ProtocolError('opus_packet_invalid', err.message, 'payload');
      throw err;
    }
  }
}

/** Model speech: session output bytes -> AUDIO_OUT payloads. */
export class DeviceAudioOutput {
  readonly sessionFormat: AudioFormat;
  private readonly encoder: OpusEncoderStream | undefined;

  constructor(readonly format: DeviceAudioOut) {
    this.sessionFormat = { encoding: 'pcm16', rate: format.rate };
    if (format.codec === 'opus') {
      this.encoder = new OpusEncoderStream({ sampleRate: format.rate, inputSampleRate: format.rate, frameMs: format.frameMs, bitrate: format.bitrate });
    }
  }

  /** Payloads for one `response.output_audio.delta` (PCM16 at the negotiated rate). */
  push(pcm: Buffer): Buffer[] {
    if (!this.encoder) return pcm.length > 0 ? [pcm] : [];
    return this.encoder.push(pcm16leToFloat32(pcm));
  }

  /** End of one assistant audio part: Opus pads and encodes its last partial frame. */
  end(): Buffer[] {
    return this.encoder ? this.encoder.flush().packets : [];
  }
}
