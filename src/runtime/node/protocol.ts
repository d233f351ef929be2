// The runtime node wire protocol (docs/runtime-protocol.md): one binary WebSocket message per
// frame, a fixed little-endian header, tensor descriptors, a small UTF-8 JSON `meta`, then the
// tensors as raw little-endian bytes, each 8-byte aligned inside the frame so a receiver can view
// them in place (zero-copy) when the buffer it got is itself aligned. Pure: no I/O here.
import type { ChunkMedia, GenerateRequest, MediaGrid, ModelChunk, RuntimeCapabilities, RuntimeEvent, RuntimeHealth } from '../contract.js';
import type { RuntimeErrorCode } from '../errors.js';
import { RUNTIME_ERROR_CODES } from '../errors.js';

/** Protocol versions this build speaks, newest last. Version 2 adds media staging (STAGE, UNSTAGE, `ref`). */
export const PROTOCOL_VERSIONS = [1, 2] as const;
export const PROTOCOL_VERSION = 2;
/** The first version with STAGE / UNSTAGE and media references in APPEND. */
export const STAGING_VERSION = 2;
/** WebSocket subprotocol of a version: the upgrade negotiates the version through it. */
export const subprotocolOf = (version: number): string => `omni-runtime.v${version}`;
export const versionOfSubprotocol = (name: string): number | undefined => {
  const m = /^omni-runtime\.v(\d{1,4})$/.exec(name);
  return m ? Number(m[1]) : undefined;
};

export const MAGIC0 = 0x4f; // 'O'
export const MAGIC1 = 0x47; // 'G'
export const HEADER_BYTES = 20;
export const DESCRIPTOR_BYTES = 8;

/** Bounds every decoder enforces (a peer's frame beyond them is a protocol error). */
export const LIMITS = {
  /** JSON meta of one frame. */
  maxMetaBytes: 1 << 20,
  /** Tensors in one frame (ids, positions and one per media item). */
  maxTensors: 1024,
  /** Elements of one tensor (2^28 floats = 1 GiB). */
  maxTensorElements: 1 << 28,
} as const;

export const MessageType = {
  // connection
  HELLO: 1,
  PING: 2,
  PONG: 3,
  LOAD: 4,
  // requests (gateway -> node)
  OPEN: 10,
  APPEND: 11,
  TRUNCATE: 12,
  CLOSE: 13,
  GENERATE: 14,
  CANCEL: 15,
  CAPABILITIES: 16,
  HEALTH: 17,
  // version 2: media uploaded ahead of the append that uses them
  STAGE: 18,
  UNSTAGE: 19,
  // replies and events (node -> gateway)
  OK: 20,
  ERROR: 21,
  TOKEN: 22,
  AUDIO: 23,
  DONE: 24,
} as const;
export type MessageTypeValue = (typeof MessageType)[keyof typeof MessageType];
const TYPE_VALUES = new Set<number>(Object.values(MessageType));
export const messageTypeName = (t: number): string => Object.entries(MessageType).find(([, v]) => v === t)?.[0] ?? `type ${t}`;

export const DType = { f32: 1, i32: 2 } as const;
export type Tensor = Float32Array | Int32Array;

export interface Frame {
  type: MessageTypeValue;
  /** Engine session on the node (0 = none). */
  session: number;
  /** Correlates a reply (and a generate's events) with its request (0 = none). */
  request: number;
  meta: Record<string, unknown>;
  tensors: Tensor[];
}

/** A frame that breaks the protocol (bad header, bounds, JSON, tensor layout). */
export class FrameError extends Error {
  readonly code = 'frame_invalid';
  constructor(message: string) {
    super(message);
    this.name = 'FrameError';
  }
}

const pad8 = (n: number): number => (n + 7) & ~7;
const ZEROS = Buffer.alloc(8);
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Encodes a frame as parts to write back to back (header + descriptors + meta + padding, then
 * each tensor as a view of its own memory, then its padding): no tensor byte is copied here.
 * `version`: the connection's negotiated version (the frame's version byte).
 */
export function encodeFrameParts(frame: Frame, version: number = PROTOCOL_VERSION): Buffer[] {
  if (!LITTLE_ENDIAN) throw new Error('the runtime protocol needs a little-endian host');
  if (frame.tensors.length > LIMITS.maxTensors) throw new FrameError(`at most ${LIMITS.maxTensors} tensors per frame, got ${frame.tensors.length}`);
  const meta = Buffer.from(JSON.stringify(frame.meta), 'utf8');
  if (meta.length > LIMITS.maxMetaBytes) throw new FrameError(`meta of ${meta.length} bytes exceeds ${LIMITS.maxMetaBytes}`);
  const headLen = HEADER_BYTES + DESCRIPTOR_BYTES * frame.tensors.length;
  const head = Buffer.allocUnsafe(pad8(headLen + meta.length));
  head[0] = MAGIC0;
  head[1] = MAGIC1;
  head[2] = version;
  head[3] = frame.type;
  head.writeUInt32LE(frame.session >>> 0, 4);
  head.writeUInt32LE(frame.request >>> 0, 8);
  head.writeUInt32LE(meta.length, 12);
  head.writeUInt32LE(frame.tensors.length, 16);
  let o = HEADER_BYTES;
  for (const t of frame.tensors) {
    head[o] = t instanceof Float32Array ? DType.f32 : DType.i32;
    head[o + 1] = 0;
    head.writeUInt16LE(0, o + 2);
    head.writeUInt32LE(t.length, o + 4);
    o += DESCRIPTOR_BYTES;
  }
  meta.copy(head, o);
  head.fill(0, o + meta.length);
  const parts: Buffer[] = [head];
  for (const t of frame.tensors) {
    if (t.length > LIMITS.maxTensorElements) throw new FrameError(`a tensor of ${t.length} elements exceeds ${LIMITS.maxTensorElements}`);
    if (t.byteLength === 0) continue;
    parts.push(Buffer.from(t.buffer, t.byteOffset, t.byteLength));
    const rest = pad8(t.byteLength) - t.byteLength;
    if (rest > 0) parts.push(ZEROS.subarray(0, rest));
  }
  return parts;
}

/** One contiguous buffer (tests, small frames). */
export function encodeFrame(frame: Frame, version: number = PROTOCOL_VERSION): Buffer {
  const parts = encodeFrameParts(frame, version);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Decodes one frame. Tensors are views into `buf` when their address is 4-byte aligned, copies
 * otherwise; the caller must not reuse `buf` while it holds them. Throws FrameError on anything
 * malformed, including bytes left over.
 */
export function decodeFrame(buf: Uint8Array): Frame {
  if (buf.length < HEADER_BYTES) throw new FrameError(`a frame needs at least ${HEADER_BYTES} bytes, got ${buf.length}`);
  if (buf[0] !== MAGIC0 || buf[1] !== MAGIC1) throw new FrameError('bad magic (not an omni runtime frame)');
  const version = buf[2]!;
  if (!(PROTOCOL_VERSIONS as readonly number[]).includes(version)) throw new FrameError(`unsupported frame version ${version}`);
  const type = buf[3]!;
  if (!TYPE_VALUES.has(type)) throw new FrameError(`unknown message type ${type}`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const session = dv.getUint32(4, true);
  const request = dv.getUint32(8, true);
  const metaLen = dv.getUint32(12, true);
  const count = dv.getUint32(16, true);
  if (metaLen > LIMITS.maxMetaBytes) throw new FrameError(`meta of ${metaLen} bytes exceeds ${LIMITS.maxMetaBytes}`);
  if (count > LIMITS.maxTensors) throw new FrameError(`${count} tensors exceed ${LIMITS.maxTensors}`);
  const headLen = HEADER_BYTES + DESCRIPTOR_BYTES * count;
  if (headLen + metaLen > buf.length) throw new FrameError('frame shorter than its header says');
  const descs: { dtype: number; length: number }[] = [];
  for (let i = 0; i < count; i++) {
    const o = HEADER_BYTES + DESCRIPTOR_BYTES * i;
    const dtype = buf[o]!;
    if (dtype !== DType.f32 && dtype !== DType.i32) throw new FrameError(`tensor ${i} has unknown dtype ${dtype}`);
    if (buf[o + 1] !== 0 || dv.getUint16(o + 2, true) !== 0) throw new FrameError(`tensor ${i} descriptor has reserved bits set`);
    const length = dv.getUint32(o + 4, true);
    if (length > LIMITS.maxTensorElements) throw new FrameError(`tensor ${i} of ${length} elements exceeds ${LIMITS.maxTensorElements}`);
    descs.push({ dtype, length });
  }
  let meta: unknown;
  try {
    meta = JSON.parse(Buffer.from(buf.buffer, buf.byteOffset + headLen, metaLen).toString('utf8'));
  } catch {
    throw new FrameError('meta is not valid JSON');
  }
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) throw new FrameError('meta must be a JSON object');
  let o = pad8(headLen + metaLen);
  let end = headLen + metaLen;
  const tensors: Tensor[] = [];
  for (const [i, d] of descs.entries()) {
    const bytes = d.length * 4;
    if (o + bytes > buf.length) throw new FrameError(`tensor ${i} runs past the end of the frame`);
    const at = buf.byteOffset + o;
    // Unaligned: one copy into fresh (aligned) memory. (Buffer#slice would be a view, not a copy.)
    const aligned = at % 4 === 0;
    const src: ArrayBuffer = aligned ? (buf.buffer as ArrayBuffer) : new Uint8Array(buf.subarray(o, o + bytes)).buffer;
    const from = aligned ? at : 0;
    tensors.push(d.dtype === DType.f32 ? new Float32Array(src, from, d.length) : new Int32Array(src, from, d.length));
    end = o + bytes;
    o += pad8(bytes);
  }
  // Trailing padding (up to the next multiple of 8) may be left out by a sender; nothing else may follow.
  if (buf.length > pad8(end)) throw new FrameError(`${buf.length - pad8(end)} bytes left over after the last tensor`);
  return { type: type as MessageTypeValue, session, request, meta: meta as Record<string, unknown>, tensors };
}

/** Encoded size of a frame in bytes (without building it). */
export function frameBytes(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Payloads: model chunks, generate requests, events, errors

const isInt = (v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;

/** Bytes of a media item's tensor. */
export const mediaTensor = (m: ChunkMedia): Float32Array => (m.kind === 'audio' ? m.features : m.pixelValues);

const mediaShape = (m: ChunkMedia): Record<string, unknown> => (m.kind === 'audio' ? { kind: 'audio', frames: m.frames } : { kind: m.kind, grid: [...m.grid] });

/**
 * A chunk as meta + tensors: [ids i32, positions f32, then one f32 tensor per media item that is
 * not staged]. `refOf` names media already staged on the node (version 2): those travel as
 * `{..., ref}` in meta and carry no tensor.
 */
export function chunkPayload(chunk: ModelChunk, refOf?: (m: ChunkMedia) => number | undefined): { meta: Record<string, unknown>; tensors: Tensor[] } {
  const tensors: Tensor[] = [chunk.ids, chunk.positions];
  const media = (chunk.media ?? []).map((m) => {
    const ref = refOf?.(m);
    if (ref !== undefined) return { ...mediaShape(m), ref };
    tensors.push(mediaTensor(m));
    return mediaShape(m);
  });
  return { meta: { media }, tensors };
}

/** The media item described by `m` (meta of APPEND or STAGE) with tensor `t`; throws FrameError. */
function mediaOf(m: unknown, t: Tensor | undefined, i: number): ChunkMedia {
  if (!(t instanceof Float32Array)) throw new FrameError(`media ${i} must be f32`);
  if (typeof m !== 'object' || m === null) throw new FrameError(`media ${i} must be an object`);
  const { kind, frames, grid } = m as Record<string, unknown>;
  if (kind === 'audio') {
    if (!isInt(frames, 0, LIMITS.maxTensorElements)) throw new FrameError(`media ${i}: audio needs integer frames`);
    return { kind: 'audio', features: t, frames };
  }
  if (kind === 'image' || kind === 'video') {
    if (!Array.isArray(grid) || grid.length !== 3 || !grid.every((g) => isInt(g, 0, 1 << 20))) throw new FrameError(`media ${i}: ${kind} needs grid [t, h, w]`);
    return { kind, pixelValues: t, grid: [grid[0], grid[1], grid[2]] as unknown as MediaGrid };
  }
  throw new FrameError(`media ${i}: unknown kind ${JSON.stringify(kind)}`);
}

/** Whether two media items have the same kind and shape (a reference must match what was staged). */
function sameShape(a: ChunkMedia, b: ChunkMedia): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'audio') return b.kind === 'audio' && a.frames === b.frames;
  return b.kind !== 'audio' && a.grid.every((g, k) => g === b.grid[k]);
}

/**
 * The chunk of an APPEND frame; throws FrameError when meta and tensors disagree. `staged` looks
 * up media references (version 2); a reference it does not know, or whose kind or shape differs
 * from what was staged, is an error.
 */
export function chunkOf(frame: Pick<Frame, 'meta' | 'tensors'>, staged?: (ref: number) => ChunkMedia | undefined): ModelChunk {
  const { meta, tensors } = frame;
  const media = meta.media ?? [];
  if (!Array.isArray(media)) throw new FrameError('append meta.media must be an array');
  const refs = (media as unknown[]).filter((m) => typeof m === 'object' && m !== null && (m as { ref?: unknown }).ref !== undefined).length;
  const inline = media.length - refs;
  if (tensors.length !== 2 + inline) throw new FrameError(`append needs ${2 + inline} tensors (ids, positions, ${inline} inline media), got ${tensors.length}`);
  const [ids, positions] = tensors;
  if (!(ids instanceof Int32Array)) throw new FrameError('append ids must be i32');
  if (!(positions instanceof Float32Array)) throw new FrameError('append positions must be f32');
  const out: ChunkMedia[] = [];
  let next = 2;
  for (const [i, m] of (media as unknown[]).entries()) {
    const ref = (m as { ref?: unknown } | null)?.ref;
    if (ref === undefined) {
      out.push(mediaOf(m, tensors[next++], i));
      continue;
    }
    if (!isInt(ref, 1, 2 ** 32 - 1)) throw new FrameError(`media ${i}: ref must be a positive integer`);
    const held = staged?.(ref);
    if (!held) throw new FrameError(`media ${i}: no staged media ${ref} in this session`);
    const described = mediaOf(m, mediaTensor(held), i);
    if (!sameShape(described, held)) throw new FrameError(`media ${i}: staged media ${ref} is a ${held.kind} of another shape`);
    out.push(held);
  }
  return { ids, positions, ...(out.length > 0 ? { media: out } : {}) };
}

/** The media item of a STAGE frame (`{ref, kind, frames | grid}` + one f32 tensor). */
export function stagedOf(frame: Pick<Frame, 'meta' | 'tensors'>): { ref: number; media: ChunkMedia } {
  const { ref } = frame.meta;
  if (!isInt(ref, 1, 2 ** 32 - 1)) throw new FrameError('stage needs a positive integer ref');
  if (frame.tensors.length !== 1) throw new FrameError(`stage needs exactly one tensor, got ${frame.tensors.length}`);
  return { ref, media: mediaOf(frame.meta, frame.tensors[0], 0) };
}

/** Meta + tensors of a STAGE frame. */
export function stagePayload(ref: number, m: ChunkMedia): { meta: Record<string, unknown>; tensors: Tensor[] } {
  return { meta: { ...mediaShape(m), ref }, tensors: [mediaTensor(m)] };
}

/** The generate request as JSON (only the contract's fields travel). */
export function generatePayload(request: GenerateRequest, cancelled: boolean): Record<string, unknown> {
  return {
    maxTokens: request.maxTokens,
    ...(request.sampling ? { sampling: request.sampling } : {}),
    ...(request.thinking ? { thinking: request.thinking } : {}),
    ...(request.stopThinkingIds ? { stopThinkingIds: [...request.stopThinkingIds] } : {}),
    ...(request.speech ? { speech: request.speech } : {}),
    ...(cancelled ? { cancelled: true } : {}),
  };
}

export function generateRequestOf(meta: Record<string, unknown>): { request: GenerateRequest; cancelled: boolean } {
  const { maxTokens, sampling, thinking, stopThinkingIds, speech, cancelled } = meta;
  if (typeof maxTokens !== 'number') throw new FrameError('generate needs maxTokens');
  const obj = (v: unknown, name: string) => {
    if (v !== undefined && (typeof v !== 'object' || v === null || Array.isArray(v))) throw new FrameError(`generate ${name} must be an object`);
    return v as never;
  };
  if (stopThinkingIds !== undefined && (!Array.isArray(stopThinkingIds) || !stopThinkingIds.every((x) => typeof x === 'number'))) {
    throw new FrameError('generate stopThinkingIds must be an array of numbers');
  }
  // Value ranges (temperature, budgets...) are the engine's to check: it answers coded errors.
  const request: GenerateRequest = {
    maxTokens,
    ...(sampling !== undefined ? { sampling: obj(sampling, 'sampling') } : {}),
    ...(thinking !== undefined ? { thinking: obj(thinking, 'thinking') } : {}),
    ...(stopThinkingIds !== undefined ? { stopThinkingIds: stopThinkingIds } : {}),
    ...(speech !== undefined ? { speech: obj(speech, 'speech') } : {}),
  };
  return { request, cancelled: cancelled === true };
}

/** An engine event as a frame (TOKEN / AUDIO / DONE) of request `request`. */
export function eventFrame(session: number, request: number, e: RuntimeEvent, length: number): Frame {
  switch (e.type) {
    case 'token':
      return { type: MessageType.TOKEN, session, request, meta: { id: e.id, ...(e.thinking ? { thinking: true } : {}), ...(e.forced ? { forced: true } : {}) }, tensors: [] };
    case 'audio':
      return { type: MessageType.AUDIO, session, request, meta: { sampleOffset: e.sampleOffset, tokenStart: e.tokenStart, tokenEnd: e.tokenEnd }, tensors: [e.samples] };
    case 'done':
      return { type: MessageType.DONE, session, request, meta: { reason: e.reason, ...(e.stopId !== undefined ? { stopId: e.stopId } : {}), usage: e.usage, length }, tensors: [] };
  }
}

/** The event of a TOKEN / AUDIO / DONE frame. */
export function eventOf(frame: Frame): RuntimeEvent {
  const m = frame.meta;
  switch (frame.type) {
    case MessageType.TOKEN:
      if (!isInt(m.id, -(2 ** 31), 2 ** 31 - 1)) throw new FrameError('token needs an integer id');
      return { type: 'token', id: m.id, thinking: m.thinking === true, forced: m.forced === true };
    case MessageType.AUDIO: {
      const samples = frame.tensors[0];
      if (frame.tensors.length !== 1 || !(samples instanceof Float32Array)) throw new FrameError('audio needs one f32 tensor of samples');
      if (!isInt(m.sampleOffset) || !isInt(m.tokenStart) || !isInt(m.tokenEnd)) throw new FrameError('audio needs sampleOffset, tokenStart and tokenEnd');
      return { type: 'audio', samples, sampleOffset: m.sampleOffset, tokenStart: m.tokenStart, tokenEnd: m.tokenEnd };
    }
    case MessageType.DONE: {
      if (m.reason !== 'stop' && m.reason !== 'length' && m.reason !== 'cancelled') throw new FrameError('done needs reason stop, length or cancelled');
      if (typeof m.usage !== 'object' || m.usage === null) throw new FrameError('done needs usage');
      return { type: 'done', reason: m.reason, ...(isInt(m.stopId, -(2 ** 31)) ? { stopId: m.stopId } : {}), usage: m.usage as never };
    }
    default:
      throw new FrameError(`${messageTypeName(frame.type)} is not an event`);
  }
}

export interface WireError {
  code: RuntimeErrorCode;
  message: string;
  param?: string;
}

/** A coded error from a peer; codes outside the catalogue become engine_failed. */
export function wireErrorOf(meta: Record<string, unknown>): WireError {
  const code = (RUNTIME_ERROR_CODES as readonly string[]).includes(meta.code as string) ? (meta.code as RuntimeErrorCode) : 'engine_failed';
  const message = typeof meta.message === 'string' ? meta.message.slice(0, 4096) : 'the runtime node failed';
  return { code, message, ...(typeof meta.param === 'string' ? { param: meta.param } : {}) };
}

/** HELLO: what a node says about itself once the connection is up. */
export interface NodeHello {
  version: number;
  nodeId: string;
  model: string;
  heartbeatMs: number;
  maxSessions: number;
  maxPayload: number;
}

/** LOAD: pushed every load interval (and doubles as the node's heartbeat). */
export interface NodeLoad {
  /** Engine sessions open on the node (all gateways). */
  activeSessions: number;
  /** Generates running or waiting for a decode step. */
  queuedDecode: number;
  /** Most sessions the node admits (0 = no limit). */
  maxSessions: number;
  /** KV positions the node can still hold (capacity less positions held), -1 when unknown. */
  kvCapacityLeft: number;
  kvCapacity: number;
}

export function loadOf(meta: Record<string, unknown>): NodeLoad {
  const n = (v: unknown, d = 0) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
  return {
    activeSessions: n(meta.activeSessions),
    queuedDecode: n(meta.queuedDecode),
    maxSessions: n(meta.maxSessions),
    kvCapacityLeft: n(meta.kvCapacityLeft, -1),
    kvCapacity: n(meta.kvCapacity, -1),
  };
}

export type { RuntimeCapabilities, RuntimeHealth };
