// vLLM-Omni (an OpenAI-compatible serving engine) as the runtime. Readiness follows vLLM's
// documented endpoints: `GET /health` answers 200 once the engine is up, and `GET /v1/models`
// lists the served models as `{ object: "list", data: [{ id, object: "model", ... }] }`.
import type { RuntimeBackend, RuntimeCapabilities, RuntimeHealth, RuntimeSession } from './contract.js';
import { RuntimeError } from './errors.js';

interface ModelList {
  data?: { id?: unknown }[];
}

export class VllmOmniRuntime implements RuntimeBackend {
  readonly kind = 'vllm-omni' as const;
  private readonly base: string;

  constructor(
    baseUrl: string,
    private readonly model: string,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  async health(timeoutMs: number): Promise<RuntimeHealth> {
    const signal = AbortSignal.timeout(timeoutMs);
    const down = (detail: string): RuntimeHealth => ({ reachable: false, modelLoaded: false, detail });
    let res: Response;
    try {
      res = await fetch(`${this.base}/health`, { signal });
    } catch (err) {
      const reason = signal.aborted ? `no answer within ${timeoutMs} ms` : describeFetchError(err);
      return down(`vLLM-Omni at ${this.base} is unreachable: ${reason}`);
    }
    await res.body?.cancel();
    if (res.status !== 200) return down(`vLLM-Omni at ${this.base} answered /health with HTTP ${res.status}`);
    let ids: string[];
    try {
      const models = await fetch(`${this.base}/v1/models`, { signal });
      if (models.status !== 200) throw new Error(`HTTP ${models.status}`);
      const body = (await models.json()) as ModelList;
      ids = (body.data ?? []).map((m) => m.id).filter((id): id is string => typeof id === 'string');
    } catch (err) {
      return {
        reachable: true,
        modelLoaded: false,
        detail: `vLLM-Omni at ${this.base} is up but /v1/models failed: ${describeFetchError(err)}`,
      };
    }
    const wanted = this.model || ids[0];
    if (!wanted || !ids.includes(wanted)) {
      return {
        reachable: true,
        modelLoaded: false,
        detail: this.model
          ? `vLLM-Omni at ${this.base} does not serve model "${this.model}" (it serves: ${ids.join(', ') || 'none'})`
          : `vLLM-Omni at ${this.base} serves no model`,
      };
    }
    return { reachable: true, modelLoaded: true, model: wanted, detail: `vLLM-Omni serves ${wanted}` };
  }

  /** Sessions over vLLM-Omni's chat API are not built yet: a clear error instead of a pretend session. */
  open(): Promise<RuntimeSession> {
    return Promise.reject(new RuntimeError('backend_unsupported', 'the vllm-omni backend serves health checks only so far; realtime sessions need the native backend'));
  }

  capabilities(): Promise<RuntimeCapabilities> {
    return Promise.reject(new RuntimeError('backend_unsupported', 'the vllm-omni backend serves health checks only so far'));
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

function describeFetchError(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}
