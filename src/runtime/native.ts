// The in-process native backend. The codec kernels of the addon load today; the MoE engine is
// not part of this build yet, so this backend reports "not ready" with the reason, never a fake
// "ready".
import { nativeStatus } from '../native/addon.js';
import type { RuntimeBackend, RuntimeHealth } from './contract.js';

export class NativeRuntime implements RuntimeBackend {
  readonly kind = 'native' as const;
  constructor(private readonly model: string) {}

  health(): Promise<RuntimeHealth> {
    const addon = nativeStatus();
    if (!addon.loaded) {
      return Promise.resolve({ reachable: false, modelLoaded: false, detail: addon.error });
    }
    return Promise.resolve({
      reachable: true,
      modelLoaded: false,
      ...(this.model ? { model: this.model } : {}),
      detail: 'the native addon is loaded, but this build has no native model engine; use --runtime vllm-omni to serve a model',
    });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
