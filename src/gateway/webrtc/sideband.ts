// Sideband control of a WebRTC call (realtime-protocol.md §1.4 step 6): a server opens
// `GET /v1/realtime?call_id=rtc_...` with its API key and then sees every event of the call's
// session (GA wire shapes, without the audio deltas, which go to the caller's track) and can send
// client events (session.update with tools, response.create, ...). Closing the sideband leaves
// the call running; the end of the call closes the sideband with 1000.
import type { WebSocket } from 'ws';
import { ProtocolError } from '../realtime/model.js';
import type { SidebandTarget } from './call.js';
import { keepAlive } from '../connections.js';

/** Sideband sockets are pinged like realtime sockets (OpenAI: about every 20 s). */
export const SIDEBAND_PING_MS = 20_000;

/**
 * Attaches an accepted (and authenticated) WebSocket to a call. The WebSocket transport calls
 * this for `?call_id=` when `calls.get(id)` found the call; an unknown id is its own error (4000).
 */
export function attachSideband(socket: WebSocket, call: SidebandTarget, options: { pingIntervalMs?: number } = {}): void {
  const attachment = call.attach(
    (wire) => {
      if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(wire));
    },
    (reason) => {
      if (socket.readyState === socket.OPEN || socket.readyState === socket.CONNECTING) socket.close(1000, `call ended: ${reason}`.slice(0, 120));
    },
  );
  socket.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) {
      attachment.reject(new ProtocolError('invalid_event', 'Expected a text WebSocket message; binary frames are not supported.', null));
      return;
    }
    attachment.submitText(data.toString('utf8'));
  });
  const ping = keepAlive(socket, options.pingIntervalMs ?? SIDEBAND_PING_MS);
  socket.once('close', () => {
    clearInterval(ping);
    attachment.detach();
  });
}
