// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON header
// of { name: { dtype, shape, data_offsets } } padded with spaces to a multiple of 8, then the raw
// little-endian tensor bytes in header order.

import { open, type FileHandle } from 'node:fs/promises';

export type SafetensorsDtype = 'F32' | 'I64' | 'I32' | 'BF16' | 'F16' | 'U8';

export interface Tensor {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Raw little-endian bytes of the tensor, row-major. */
  data: Uint8Array;
}

const BYTES: Record<SafetensorsDtype, number> = { F32: 4, I64: 8, I32: 4, BF16: 2, F16: 2, U8: 1 };

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

export interface TensorSpec {
  dtype: SafetensorsDtype;
  shape: readonly number[];
}

export interface SafetensorsLayout {
  /** The 8-byte length and the padded JSON header: the file's first bytes. */
  header: Buffer;
  /** Byte range of each tensor's data, relative to the end of the header. */
  offsets: Map<string, [number, number]>;
  dataBytes: number;
}

/** Header and data offsets for tensors of known shapes, in the given order. */
export function safetensorsLayout(specs: Iterable<[string, TensorSpec]>, metadata?: Record<string, string>): SafetensorsLayout {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const offsets = new Map<string, [number, number]>();
  let offset = 0;
  for (const [name, t] of specs) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offsets.set(name, [offset, offset + bytes]);
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const head = Buffer.alloc(8 + headerBytes.length);
  head.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(head, 8);
  return { header: head, offsets, dataBytes: offset };
}

export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Buffer {
  for (const [name, t] of Object.entries(tensors)) {
    const expected = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    if (expected !== t.data.byteLength) {
      throw new Error(`tensor ${name}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${expected} bytes, got ${t.data.byteLength}`);
    }
  }
  const { header, dataBytes } = safetensorsLayout(Object.entries(tensors), metadata);
  const out = Buffer.alloc(header.length + dataBytes);
  header.copy(out, 0);
  let at = header.length;
  for (const t of Object.values(tensors)) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
}

/**
 * Writes a safetensors file whose tensors arrive in pieces (a long video's patches, step by step):
 * the header goes first from the declared shapes, then each tensor's bytes are appended in order.
 * close() checks every tensor was filled exactly.
 */
export class SafetensorsFileWriter {
  private readonly filled = new Map<string, number>();

  private constructor(
    private readonly file: FileHandle,
    private readonly layout: SafetensorsLayout,
  ) {}

  static async create(path: string, specs: Iterable<[string, TensorSpec]>, metadata?: Record<string, string>): Promise<SafetensorsFileWriter> {
    const layout = safetensorsLayout(specs, metadata);
    const file = await open(path, 'w');
    try {
      await file.write(layout.header, 0, layout.header.length, 0);
    } catch (err) {
      await file.close();
      throw err;
    }
    return new SafetensorsFileWriter(file, layout);
  }

  /** Appends `data` to tensor `name` (after whatever was appended to it before). */
  async append(name: string, data: Uint8Array): Promise<void> {
    const range = this.layout.offsets.get(name);
    if (!range) throw new Error(`tensor ${name} was not declared`);
    const done = this.filled.get(name) ?? 0;
    if (range[0] + done + data.byteLength > range[1]) {
      throw new Error(`tensor ${name}: ${done + data.byteLength} bytes exceed its declared ${range[1] - range[0]}`);
    }
    let written = 0;
    while (written < data.byteLength) {
      const { bytesWritten } = await this.file.write(data, written, data.byteLength - written, this.layout.header.length + range[0] + done + written);
      written += bytesWritten;
    }
    this.filled.set(name, done + data.byteLength);
  }

  async close(): Promise<void> {
    try {
      for (const [name, [a, b]] of this.layout.offsets) {
        if ((this.filled.get(name) ?? 0) !== b - a) {
          throw new Error(`tensor ${name}: ${this.filled.get(name) ?? 0} of ${b - a} bytes written`);
        }
      }
    } finally {
      await this.file.close();
    }
  }

  /** Closes without the completeness check (after a failure); safe after close(). */
  async abort(): Promise<void> {
    await this.file.close().catch(() => undefined);
  }
}

export function decodeSafetensors(file: Uint8Array): { tensors: Record<string, Tensor>; metadata?: Record<string, string> } {
  const buf = Buffer.from(file.buffer, file.byteOffset, file.byteLength);
  if (buf.length < 8) throw new Error('not a safetensors file: shorter than its header length');
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8) throw new Error('not a safetensors file: header length past the end');
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const base = 8 + n;
  const tensors: Record<string, Tensor> = {};
  let metadata: Record<string, string> | undefined;
  for (const [name, v] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = v as Record<string, string>;
      continue;
    }
    const e = v as { dtype: SafetensorsDtype; shape: number[]; data_offsets: [number, number] };
    tensors[name] = { dtype: e.dtype, shape: e.shape, data: buf.subarray(base + e.data_offsets[0], base + e.data_offsets[1]) };
  }
  return metadata ? { tensors, metadata } : { tensors };
}
