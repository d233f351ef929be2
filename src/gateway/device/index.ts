// The embedded-device link (`GET /v1/device`, docs/device-protocol.md).
export { DeviceAudioInput, DeviceAudioOutput } from './audio.js';
export { DEFAULT_MAX_FRAME_BYTES, DEVICE_FRAME_TYPES, encodeFrame, FRAME_HEADER_BYTES, FrameType, frameTypeName, parseDeviceFrame } from './framing.js';
export type { Frame, FrameError, FrameErrorCode, FrameTypeCode, ParsedFrame } from './framing.js';
export { DEFAULT_AUDIO_IN, DEFAULT_AUDIO_OUT, DEVICE_PROTOCOL_VERSION, parseHello } from './hello.js';
export type { DeviceAudioIn, DeviceAudioOut, DeviceCodec, DeviceHello } from './hello.js';
export {
  DEVICE_CLOSE,
  DEVICE_HELLO_TIMEOUT_MS,
  DEVICE_MAX_OUTBOUND_BYTES,
  DEVICE_PATH,
  DEVICE_PING_INTERVAL_MS,
  registerDeviceRoutes,
} from './transport.js';
export type { DeviceDeps } from './transport.js';
