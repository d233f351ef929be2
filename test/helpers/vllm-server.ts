// A stand-in for a vLLM-Omni server's readiness endpoints, for tests: the GPU engine cannot run
// here. It answers as vLLM's OpenAI-compatible server documents them: `GET /health` is 200 with an
// empty body once the engine is up (500 while the engine is dead), and `GET /v1/models` returns
// `{ object: "list", data: [{ id, object: "model", created, owned_by: "vllm", root, parent,
// max_model_len, permission }] }`.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeVllm {
  url: string;
  hits: { health: number; models: number };
  set(state: Partial<FakeVllmState>): void;
  close(): Promise<void>;
}

export interface FakeVllmState {
  healthStatus: number;
  models: string[];
  /** Never answer /health (a hung engine). */
  stall: boolean;
  /** Answer /health this much later (a busy engine). */
  delayMs: number;
}

export async function startFakeVllm(initial: Partial<FakeVllmState> = {}): Promise<FakeVllm> {
  const state: FakeVllmState = { healthStatus: 200, models: ['Qwen/Qwen3-Omni-30B-A3B-Instruct'], stall: false, delayMs: 0, ...initial };
  const hits = { health: 0, models: 0 };
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      hits.health++;
      if (state.stall) return;
      setTimeout(() => res.writeHead(state.healthStatus).end(), state.delayMs);
      return;
    }
    if (req.method === 'GET' && req.url === '/v1/models') {
      hits.models++;
      const created = 1764374400;
      const data = state.models.map((id) => ({
        id,
        object: 'model',
        created,
        owned_by: 'vllm',
        root: id,
        parent: null,
        max_model_len: 65536,
        permission: [],
      }));
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ object: 'list', data }));
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ detail: 'Not Found' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    hits,
    set: (s) => Object.assign(state, s),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
