import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

let gw: TestGateway | undefined;
afterEach(async () => {
  await gw?.gateway.close();
  gw = undefined;
});

function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url);
  return new Promise((resolve, reject) => ws.once('open', () => resolve(ws)).once('error', reject));
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

describe('graceful shutdown', () => {
  it('tells open sessions with a 1001 close and finishes when they have gone', async () => {
    gw = await startTestGateway({ drainTimeoutMs: '5000' }, {
      routes: (app) => {
        app.get('/test/session', { websocket: true }, () => {});
      },
    });
    const a = await open(`${gw.wsUrl}/test/session`);
    const b = await open(`${gw.wsUrl}/test/session`);
    const [ca, cb] = [closed(a), closed(b)];
    const report = await gw.gateway.close('server shutting down (SIGTERM)');
    expect(await ca).toEqual({ code: 1001, reason: 'server shutting down (SIGTERM)' });
    expect((await cb).code).toBe(1001);
    expect(report).toMatchObject({ closed: 2, terminated: 0 });
    expect(report.durationMs).toBeLessThan(5000);
  });

  it('lets a session say goodbye its own way, then waits for it within the bound', async () => {
    gw = await startTestGateway({ drainTimeoutMs: '5000' }, {
      routes: (app, gateway) => {
        app.get('/test/polite', { websocket: true }, (socket) => {
          gateway.connections.onShutdown(socket, (reason) => {
            socket.send(JSON.stringify({ type: 'error', error: { code: 'server_shutting_down', message: reason } }));
            setTimeout(() => socket.close(1001, 'bye'), 100); // finish the turn, then leave
          });
        });
      },
    });
    const ws = await open(`${gw.wsUrl}/test/polite`);
    const messages: string[] = [];
    ws.on('message', (m: Buffer) => messages.push(m.toString()));
    const done = closed(ws);
    const report = await gw.gateway.close('maintenance');
    expect(JSON.parse(messages[0] ?? '{}')).toEqual({
      type: 'error',
      error: { code: 'server_shutting_down', message: 'maintenance' },
    });
    expect((await done).reason).toBe('bye');
    expect(report).toMatchObject({ closed: 1, terminated: 0 });
    expect(report.durationMs).toBeGreaterThanOrEqual(90);
  });

  it('cuts sessions that do not close within the drain bound', async () => {
    gw = await startTestGateway({ drainTimeoutMs: '300' }, {
      routes: (app, gateway) => {
        app.get('/test/stubborn', { websocket: true }, (socket) => {
          gateway.connections.onShutdown(socket, () => {
            /* ignores the notice */
          });
        });
      },
    });
    const ws = await open(`${gw.wsUrl}/test/stubborn`);
    const done = closed(ws);
    const t0 = Date.now();
    const report = await gw.gateway.close();
    expect(report).toMatchObject({ closed: 0, terminated: 1 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    expect(Date.now() - t0).toBeLessThan(3000);
    expect((await done).code).toBe(1006); // abnormal closure: the socket was terminated
  });

  it('refuses new connections and readiness while closing', async () => {
    gw = await startTestGateway({ drainTimeoutMs: '2000' }, {
      routes: (app, gateway) => {
        app.get('/test/stubborn', { websocket: true }, (socket) => {
          gateway.connections.onShutdown(socket, () => setTimeout(() => socket.close(), 400));
        });
      },
    });
    await open(`${gw.wsUrl}/test/stubborn`);
    const closing = gw.gateway.close();
    await new Promise((r) => setTimeout(r, 50));
    expect(gw.gateway.state.draining).toBe(true);
    await expect(open(`${gw.wsUrl}/test/stubborn`)).rejects.toThrow();
    await closing;
  });
});
