// The device link's framing (docs/device-protocol.md §2): every WebSocket binary message carries
// exactly one frame, `type (1 byte) | length (4 bytes, big-endian) | payload (length bytes)`.
// The parser is pure and total: any byte string yields either a frame or a `FrameError` naming
// the rule it broke (the fuzz test holds it to that), so a malformed frame can always be answered
// with a specific error and the link kept up.

/** Bytes before the payload: the type byte and the 32-bit big-endian length. */
export const FRAME_HEADER_BYTES = 5;
/** Default cap on one frame (header + payload); a JPEG frame is the largest thing a device sends. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024;

export const FrameType = {
  /** device -> gateway: JSON hello (protocol version, audio formats, optional key). */
  HELLO: 0x01,
  /** gateway -> device: JSON welcome (what was negotiated, limits). */
  WELCOME: 0x02,
  /** both ways: one JSON realtime event (GA names). */
  EVENT: 0x03,
  /** device -> gateway: mic audio (PCM16 LE bytes, or one Opus packet). */
  AUDIO_IN: 0x04,
  /** gateway -> device: model speech (PCM16 LE bytes, or one Opus packet). */
  AUDIO_OUT: 0x05,
  /** device -> gateway: one JPEG camera frame. */
  JPEG: 0x06,
  /** gateway -> device: one JSON `error` event (realtime error shape). */
  ERROR: 0x07,
} as const;

export type FrameTypeName = keyof typeof FrameType;
export type FrameTypeCode = (typeof FrameType)[FrameTypeName];

const NAMES = new Map<number, FrameTypeName>(Object.entries(FrameType).map(([k, v]) => [v, k as FrameTypeName]));

/** Types a device may send; the others travel only from the gateway. */
export const DEVICE_FRAME_TYPES: ReadonlySet<number> = new Set([FrameType.HELLO, FrameType.EVENT, FrameType.AUDIO_IN, FrameType.JPEG]);

export function frameTypeName(type: number): string {
  return NAMES.get(type) ?? `0x${type.toString(16).padStart(2, '0')}`;
}

export interface Frame {
  type: FrameTypeCode;
  /** A view into the message (not a copy). */
  payload: Buffer;
}

export type FrameErrorCode = 'frame_truncated' | 'frame_length_mismatch' | 'frame_too_large' | 'unknown_frame_type' | 'unexpected_frame_type';

export interface FrameError {
  code: FrameErrorCode;
  message: string;
  /** The offending field: `frame`, `frame.length` or `frame.type`. */
  param: 'frame' | 'frame.length' | 'frame.type';
}

export type ParsedFrame = { ok: true; frame: Frame } | { ok: false; error: FrameError };

export function encodeFrame(type: number, payload: Uint8Array = new Uint8Array(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  out[0] = type;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/**
 * Parses one device -> gateway message. Checks, in order: the 5-byte header is there, the message
 * is within `maxFrameBytes`, the declared length equals the bytes that follow, the type is known,
 * and the type travels in this direction.
 */
export function parseDeviceFrame(message: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): ParsedFrame {
  const bytes = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  if (bytes.length < FRAME_HEADER_BYTES) {
    return fail('frame_truncated', `a frame starts with a ${FRAME_HEADER_BYTES}-byte header (type, 32-bit big-endian length); got ${bytes.length} bytes`, 'frame');
  }
  const type = bytes[0]!;
  const declared = bytes.readUInt32BE(1);
  if (bytes.length > maxFrameBytes || declared > maxFrameBytes - FRAME_HEADER_BYTES) {
    const size = Math.max(bytes.length, declared + FRAME_HEADER_BYTES);
    return fail('frame_too_large', `frames are at most ${maxFrameBytes} bytes including the header; this one is ${size}`, 'frame.length');
  }
  const actual = bytes.length - FRAME_HEADER_BYTES;
  if (declared !== actual) {
    return fail('frame_length_mismatch', `the header declares a ${declared}-byte payload but ${actual} bytes follow it (one frame per WebSocket message)`, 'frame.length');
  }
  if (!NAMES.has(type)) {
    return fail('unknown_frame_type', `unknown frame type 0x${type.toString(16).padStart(2, '0')}; a device sends HELLO 0x01, EVENT 0x03, AUDIO_IN 0x04, JPEG 0x06`, 'frame.type');
  }
  if (!DEVICE_FRAME_TYPES.has(type)) {
    return fail('unexpected_frame_type', `frame type ${frameTypeName(type)} (0x${type.toString(16).padStart(2, '0')}) travels only from the gateway to the device`, 'frame.type');
  }
  return { ok: true, frame: { type: type as FrameTypeCode, payload: bytes.subarray(FRAME_HEADER_BYTES) } };
}

function fail(code: FrameErrorCode, message: string, param: FrameError['param']): ParsedFrame {
  return { ok: false, error: { code, message, param } };
}
