// The device hello (docs/device-protocol.md §4): the first frame a device sends. It names the
// protocol version, the model, the audio codecs and rates in each direction and, for devices that
// cannot set an Authorization header, the API key. Parsed strictly: a typo in firmware is an
// error naming the field, never a silently ignored setting.
import { ProtocolError } from '../realtime/model.js';

export const DEVICE_PROTOCOL_VERSION = 1;

export type DeviceCodec = 'pcm16' | 'opus';

export interface DeviceAudioIn {
  codec: DeviceCodec;
  /** PCM16: the sample rate of the bytes. Opus: the rate the device encodes at (informational). */
  rate: number;
}

export interface DeviceAudioOut {
  codec: DeviceCodec;
  rate: number;
  /** Opus only: the duration of each packet (10, 20, 40 or 60 ms). */
  frameMs: number;
  /** Opus only: target bitrate, bits per second. */
  bitrate: number;
}

export interface DeviceHello {
  version: number;
  model: string | undefined;
  /** Non-enumerable, so logging the hello never shows it. */
  key?: string;
  audioIn: DeviceAudioIn;
  audioOut: DeviceAudioOut;
}

export const PCM_RATES = [8000, 16000, 24000, 48000] as const;
export const OPUS_RATES = [16000, 24000, 48000] as const;
export const OPUS_OUT_FRAME_MS = [10, 20, 40, 60] as const;
export const DEFAULT_AUDIO_IN: DeviceAudioIn = { codec: 'pcm16', rate: 16000 };
export const DEFAULT_AUDIO_OUT: DeviceAudioOut = { codec: 'pcm16', rate: 24000, frameMs: 20, bitrate: 32000 };

const HELLO_KEYS = ['version', 'model', 'key', 'audio_in', 'audio_out'];

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function invalid(param: string, message: string): ProtocolError {
  return new ProtocolError('invalid_value', message, param);
}

function checkKeys(obj: Json, allowed: readonly string[], prefix: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw new ProtocolError('unknown_parameter', `Unknown parameter: '${prefix}.${k}'.`, `${prefix}.${k}`);
  }
}

function oneOf<T extends number | string>(value: unknown, allowed: readonly T[], param: string): T {
  if (!allowed.includes(value as T)) throw invalid(param, `${param} must be one of ${allowed.join(', ')} (got ${JSON.stringify(value)})`);
  return value as T;
}

/** Parses the HELLO payload (UTF-8 JSON); throws ProtocolError with `param` = the offending field. */
export function parseHello(payload: Buffer): DeviceHello {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch (err) {
    throw new ProtocolError('invalid_json', `the hello is not JSON: ${(err as Error).message}`, 'hello');
  }
  if (!isObject(value)) throw new ProtocolError('invalid_json', 'the hello must be a JSON object', 'hello');
  checkKeys(value, HELLO_KEYS, 'hello');
  if (value.version === undefined) throw new ProtocolError('missing_required_parameter', "Missing required parameter: 'hello.version'.", 'hello.version');
  if (value.version !== DEVICE_PROTOCOL_VERSION) {
    throw new ProtocolError('unsupported_version', `device protocol version ${JSON.stringify(value.version)} is not supported; this gateway speaks version ${DEVICE_PROTOCOL_VERSION}`, 'hello.version');
  }
  if (value.model !== undefined && (typeof value.model !== 'string' || value.model === '')) throw invalid('hello.model', 'hello.model must be a non-empty string');
  if (value.key !== undefined && typeof value.key !== 'string') throw invalid('hello.key', 'hello.key must be a string');
  const hello: DeviceHello = {
    version: value.version,
    model: typeof value.model === 'string' ? value.model : undefined,
    audioIn: parseAudioIn(value.audio_in),
    audioOut: parseAudioOut(value.audio_out),
  };
  if (typeof value.key === 'string') Object.defineProperty(hello, 'key', { value: value.key, enumerable: false });
  return hello;
}

function parseAudioIn(value: unknown): DeviceAudioIn {
  if (value === undefined) return { ...DEFAULT_AUDIO_IN };
  if (!isObject(value)) throw invalid('hello.audio_in', 'hello.audio_in must be an object {codec, rate}');
  checkKeys(value, ['codec', 'rate'], 'hello.audio_in');
  const codec = oneOf(value.codec ?? 'pcm16', ['pcm16', 'opus'] as const, 'hello.audio_in.codec');
  const rate = oneOf(value.rate ?? (codec === 'opus' ? 48000 : 16000), codec === 'opus' ? OPUS_RATES : PCM_RATES, 'hello.audio_in.rate');
  return { codec, rate };
}

function parseAudioOut(value: unknown): DeviceAudioOut {
  if (value === undefined) return { ...DEFAULT_AUDIO_OUT };
  if (!isObject(value)) throw invalid('hello.audio_out', 'hello.audio_out must be an object {codec, rate, frame_ms?, bitrate?}');
  checkKeys(value, ['codec', 'rate', 'frame_ms', 'bitrate'], 'hello.audio_out');
  const codec = oneOf(value.codec ?? 'pcm16', ['pcm16', 'opus'] as const, 'hello.audio_out.codec');
  const rate = oneOf(value.rate ?? (codec === 'opus' ? 48000 : 24000), codec === 'opus' ? OPUS_RATES : PCM_RATES, 'hello.audio_out.rate');
  if (codec === 'pcm16' && (value.frame_ms !== undefined || value.bitrate !== undefined)) {
    const param = value.frame_ms !== undefined ? 'hello.audio_out.frame_ms' : 'hello.audio_out.bitrate';
    throw invalid(param, `${param} applies to Opus output only`);
  }
  const frameMs = oneOf(value.frame_ms ?? 20, OPUS_OUT_FRAME_MS, 'hello.audio_out.frame_ms');
  const bitrate = value.bitrate ?? 32000;
  if (typeof bitrate !== 'number' || !Number.isInteger(bitrate) || bitrate < 6000 || bitrate > 510000) {
    throw invalid('hello.audio_out.bitrate', `hello.audio_out.bitrate must be an integer from 6000 to 510000 b/s (got ${JSON.stringify(bitrate)})`);
  }
  return { codec, rate, frameMs, bitrate };
}

/** The GA-style format object the device sees in session events and the welcome. */
export function renderDeviceFormat(f: DeviceAudioIn | DeviceAudioOut): Record<string, unknown> {
  return f.codec === 'opus' ? { type: 'audio/opus', rate: f.rate } : { type: 'audio/pcm', rate: f.rate };
}
