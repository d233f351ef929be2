import type { RuntimeBackend } from './contract.js';
import { NativeRuntime } from './native.js';
import { VllmOmniRuntime } from './vllm-omni.js';

export interface RuntimeSettings {
  runtime: 'native' | 'vllm-omni';
  runtimeUrl: string;
  model: string;
  modelCache?: string;
  engineThreads?: number;
}

export function createRuntime(settings: RuntimeSettings): RuntimeBackend {
  switch (settings.runtime) {
    case 'native':
      return new NativeRuntime({ model: settings.model, modelCache: settings.modelCache, threads: settings.engineThreads });
    case 'vllm-omni':
      return new VllmOmniRuntime(settings.runtimeUrl, settings.model);
  }
}
