// The in-process native backend: the `native/` engine loaded from the configured checkpoint, or,
// with no model configured, from a demo checkpoint of the real architecture with random weights
// (made once in the cache folder) so the whole path runs on any machine. Readiness says which,
// plainly: a demo model's words are noise.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { nativeStatus } from '../native/addon.js';
import type { RuntimeBackend, RuntimeCapabilities, RuntimeHealth, RuntimeSession } from './contract.js';
import { writeDemoModel } from './demo_model.js';
import { NativeEngine } from './native_engine.js';

export interface NativeRuntimeOptions {
  /** Checkpoint directory; empty = the demo checkpoint. */
  model: string;
  /** Where the demo checkpoint lives (default $XDG_CACHE_HOME/omni-gateway or ~/.cache/omni-gateway). */
  modelCache?: string;
  /** Engine threads (0 or unset = one per core). */
  threads?: number;
}

/** The demo checkpoint's folder: versioned by size and seed so a change never reuses a stale one. */
export function demoModelDir(cache?: string): string {
  const base = cache || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'omni-gateway');
  return join(base, 'demo-qwen3-omni-tiny-seed0-v2');
}

type LoadState = { state: 'idle' } | { state: 'loading' } | { state: 'ready'; engine: NativeEngine } | { state: 'failed'; error: string };

export class NativeRuntime implements RuntimeBackend {
  readonly kind = 'native' as const;
  private load: LoadState = { state: 'idle' };
  private loading: Promise<NativeEngine> | undefined;
  private readonly demo: boolean;
  private closed = false;
  readonly modelDir: string;

  constructor(private readonly options: NativeRuntimeOptions) {
    this.demo = !options.model;
    this.modelDir = options.model || demoModelDir(options.modelCache);
  }

  /** Loads the engine (making the demo checkpoint first when needed); the same promise for every caller. */
  start(): Promise<NativeEngine> {
    this.loading ??= (async () => {
      this.load = { state: 'loading' };
      try {
        if (this.demo && !existsSync(join(this.modelDir, 'model.safetensors'))) await writeDemoModel(this.modelDir, { size: 'tiny', seed: 0 });
        const engine = await NativeEngine.load(this.modelDir, this.options.threads ? { threads: this.options.threads } : {});
        if (this.closed) {
          // Closed while loading: do not keep the weights mapped for nobody.
          engine.close();
          throw new Error('the runtime was closed while the model was loading');
        }
        this.load = { state: 'ready', engine };
        return engine;
      } catch (err) {
        const e = err as Error & { code?: string };
        this.load = { state: 'failed', error: `${e.code ? `${e.code}: ` : ''}${e.message}` };
        throw err;
      }
    })();
    return this.loading;
  }

  /** The loaded engine, or undefined while loading or after a failure. */
  get engine(): NativeEngine | undefined {
    return this.load.state === 'ready' ? this.load.engine : undefined;
  }

  health(): Promise<RuntimeHealth> {
    const addon = nativeStatus();
    if (!addon.loaded) return Promise.resolve({ reachable: false, modelLoaded: false, detail: addon.error });
    const model = this.modelDir;
    switch (this.load.state) {
      case 'idle':
        return Promise.resolve({ reachable: true, modelLoaded: false, model, detail: 'the model has not been loaded yet' });
      case 'loading':
        return Promise.resolve({ reachable: true, modelLoaded: false, model, detail: this.demo ? 'preparing the demo checkpoint' : 'loading the checkpoint' });
      case 'failed':
        return Promise.resolve({ reachable: true, modelLoaded: false, model, detail: `the checkpoint could not be loaded: ${this.load.error}` });
      case 'ready': {
        const e = this.load.engine;
        const what = `${e.spec.numLayers} layers, ${e.spec.numExperts} experts, hidden ${e.spec.hiddenSize}`;
        return Promise.resolve({
          reachable: true,
          modelLoaded: true,
          model,
          detail: this.demo
            ? `demo checkpoint with random weights (${what}): the path runs end to end, but its words are noise; set --model to a real checkpoint`
            : `native engine ready (${what})`,
        });
      }
    }
  }

  async open(options: { maxLength?: number } = {}): Promise<RuntimeSession> {
    const engine = await this.start();
    return engine.open(options);
  }

  async capabilities(): Promise<RuntimeCapabilities> {
    return (await this.start()).capabilities();
  }

  close(): Promise<void> {
    this.closed = true;
    this.engine?.close();
    return Promise.resolve();
  }
}
