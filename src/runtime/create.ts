import { ConfigError } from '../config/load.js';
import type { RuntimeBackend } from './contract.js';
import { NativeRuntime } from './native.js';
import { RuntimePool } from './pool.js';
import { VllmOmniRuntime } from './vllm-omni.js';

export interface RuntimeSettings {
  runtime: 'native' | 'vllm-omni' | 'pool';
  runtimeUrl: string;
  model: string;
  modelCache?: string;
  engineThreads?: number;
  /** pool: comma-separated ws:// URLs of runtime nodes. */
  runtimeNodes?: string;
  /** pool: shared secret of the runtime nodes. */
  runtimeSecret?: string;
  /** pool: most sessions this gateway places on one node (0 = as many as the node admits). */
  nodeMaxSessions?: number;
}

export function createRuntime(settings: RuntimeSettings): RuntimeBackend {
  switch (settings.runtime) {
    case 'native':
      return new NativeRuntime({ model: settings.model, modelCache: settings.modelCache, threads: settings.engineThreads });
    case 'vllm-omni':
      return new VllmOmniRuntime(settings.runtimeUrl, settings.model);
    case 'pool': {
      const nodes = (settings.runtimeNodes ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      if (nodes.length === 0) throw new ConfigError('setting runtime-nodes (--runtime-nodes, OMNI_RUNTIME_NODES) is required when runtime is pool: ws://host:port[,ws://host:port...]', 'runtimeNodes');
      const pool = new RuntimePool({
        nodes,
        ...(settings.runtimeSecret ? { secret: settings.runtimeSecret } : {}),
        maxSessionsPerNode: settings.nodeMaxSessions ?? 0,
      });
      // Connect now: /readyz and the first session find the nodes already up.
      void pool.start().catch(() => undefined);
      return pool;
    }
  }
}
