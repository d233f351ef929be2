// Writing protocol frames to a WebSocket without copying tensors. `ws` can only send one
// contiguous buffer per WebSocket frame, and a message sent in fragments is reassembled by the
// receiver with a second full copy; for a turn with a 50 MB image that doubles the receive cost.
// So a large message goes out as ONE WebSocket frame whose header we write ourselves, followed by
// the parts straight from their own memory (corked into one write burst). Masking: a client must
// mask (RFC 6455 5.3); the key is all zeros, which leaves the payload unchanged (the link is
// authenticated and not exposed to caching proxies, which is what masking protects). Everything
// small, and any socket `ws` is still busy with, goes through ws.send as usual.
import type { WebSocket } from 'ws';
import { frameBytes } from './protocol.js';

/** Below this a message is concatenated and sent through ws (the copy is cheaper than a syscall burst). */
export const DIRECT_WRITE_BYTES = 64 * 1024;

interface WsInternals {
  _socket?: { cork(): void; uncork(): void; write(b: Buffer): boolean; destroyed?: boolean } | null;
  _sender?: { _state?: number; _queue?: unknown[] };
}

/** WebSocket frame header: FIN + binary opcode, 64-bit length, and (client side) a zero masking key. */
function wsHeader(length: number, mask: boolean): Buffer {
  const h = Buffer.alloc(mask ? 14 : 10);
  h[0] = 0x82;
  h[1] = (mask ? 0x80 : 0) | 127;
  h.writeUInt32BE(Math.floor(length / 2 ** 32), 2);
  h.writeUInt32BE(length >>> 0, 6);
  // bytes 10..13 (client): masking key 0,0,0,0
  return h;
}

/**
 * Sends the parts of one protocol frame as one WebSocket message. `client` = this side dialled
 * (its frames must carry a mask). Returns the bytes sent.
 */
export function sendParts(ws: WebSocket, parts: readonly Buffer[], client: boolean): number {
  const n = frameBytes(parts);
  if (ws.readyState !== ws.OPEN) return 0;
  const internals = ws as unknown as WsInternals;
  const socket = internals._socket;
  const senderIdle = internals._sender?._state === 0 && (internals._sender._queue?.length ?? 0) === 0;
  if (n < DIRECT_WRITE_BYTES || !socket || socket.destroyed || !senderIdle) {
    ws.send(parts.length === 1 ? parts[0]! : Buffer.concat(parts, n), { binary: true, compress: false });
    return n;
  }
  socket.cork();
  socket.write(wsHeader(n, client));
  for (const p of parts) socket.write(p);
  socket.uncork();
  return n;
}
