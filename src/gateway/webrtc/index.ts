// WebRTC calls (realtime-protocol.md §1.4): the calls endpoints, the call/session binding, the
// sideband attachment for the WebSocket transport, the media-edge seam and the /demo page.
export { CallRegistry, RtcCall, type SidebandAttachment, type SidebandTarget, type WireEvent } from './call.js';
export { registerDemoRoute } from './demo.js';
export { InvalidOfferError, type MediaEdge, type MediaPeer, type MediaPeerHandlers } from './media.js';
export { CALLS_PATH, registerWebRtcRoutes, type WebRtcDeps } from './routes.js';
export { attachSideband } from './sideband.js';
export { EVENTS_CHANNEL_LABEL, WrtcEdge, type IceServer, type WrtcEdgeOptions } from './wrtc_peer.js';
