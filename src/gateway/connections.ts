// Every live WebSocket, whatever its route, is tracked here: counted in metrics and told when the
// gateway shuts down. Routes that hold a session register how their session says goodbye
// (`onShutdown`); the default is a 1001 "going away" close.
import { once } from 'node:events';
import type { WebSocket } from 'ws';
import type { GatewayMetrics } from './metrics.js';

export const CLOSE_GOING_AWAY = 1001;

type ShutdownNotice = (reason: string) => void;

interface Tracked {
  route: string;
  onShutdown: ShutdownNotice;
}

export class ConnectionRegistry {
  private readonly live = new Map<WebSocket, Tracked>();

  constructor(private readonly metrics: GatewayMetrics) {}

  get size(): number {
    return this.live.size;
  }

  /** Start tracking a socket accepted on `route` (the route template). */
  track(socket: WebSocket, route: string): void {
    const labels = { route };
    this.metrics.wsConnections.inc(labels);
    this.metrics.wsActive.inc(labels);
    this.live.set(socket, {
      route,
      onShutdown: (reason) => socket.close(CLOSE_GOING_AWAY, reason),
    });

    const received = this.metrics.wsTally(route, 'in');
    socket.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
      received.messages++;
      received.bytes += byteLength(data);
    });
    // Count what every transport sends without each of them having to remember to.
    const sent = this.metrics.wsTally(route, 'out');
    const send = socket.send.bind(socket) as (...args: unknown[]) => void;
    socket.send = ((data: unknown, ...rest: unknown[]) => {
      sent.messages++;
      sent.bytes += byteLength(data);
      send(data, ...rest);
    }) as WebSocket['send'];
    socket.once('close', () => {
      this.live.delete(socket);
      this.metrics.wsActive.dec(labels);
    });
  }

  /** Replace how a tracked socket's session is told about shutdown (e.g. send a protocol event first). */
  onShutdown(socket: WebSocket, notice: ShutdownNotice): void {
    const entry = this.live.get(socket);
    if (entry) entry.onShutdown = notice;
  }

  /**
   * Tell every open session the gateway is going away, wait up to `timeoutMs` for them to close,
   * then terminate whatever is left. Resolves with how many closed in time and how many were cut.
   */
  async drain(timeoutMs: number, reason: string): Promise<{ closed: number; terminated: number }> {
    const sockets = [...this.live.keys()];
    const closedAll = Promise.all(
      sockets.map((s): Promise<unknown> => (s.readyState === s.CLOSED ? Promise.resolve() : once(s, 'close'))),
    );
    for (const [socket, entry] of this.live) {
      try {
        entry.onShutdown(reason);
      } catch {
        socket.terminate();
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timeoutMs);
    });
    const outcome = await Promise.race([closedAll.then(() => 'closed' as const), timedOut]);
    clearTimeout(timer);
    let terminated = 0;
    if (outcome === 'timeout') {
      for (const socket of this.live.keys()) {
        socket.terminate();
        terminated++;
      }
    }
    return { closed: sockets.length - terminated, terminated };
  }
}

function byteLength(data: unknown): number {
  if (typeof data === 'string') return Buffer.byteLength(data);
  if (Array.isArray(data)) return (data as Buffer[]).reduce((n, b) => n + b.length, 0);
  if (data instanceof ArrayBuffer) return data.byteLength;
  if (ArrayBuffer.isView(data)) return data.byteLength;
  return 0;
}

/**
 * Pings `socket` every `intervalMs`; a peer that has not answered the previous ping by the next
 * one is gone and is terminated (its 'close' follows). Returns the timer, for clearInterval.
 */
export function keepAlive(socket: WebSocket, intervalMs: number): NodeJS.Timeout {
  let alive = true;
  socket.on('pong', () => (alive = true));
  return setInterval(() => {
    if (!alive) {
      socket.terminate();
      return;
    }
    alive = false;
    socket.ping(Buffer.from('omni'));
  }, intervalMs);
}
