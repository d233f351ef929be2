// The safetensors file format (Hugging Face): an 8-byte little-endian header length, a JSON header
// of { name: { dtype, shape, data_offsets } } padded with spaces to a multiple of 8, then the raw
// little-endian tensor bytes in header order.

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

export function encodeSafetensors(tensors: Record<string, Tensor>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    const expected = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    if (expected !== t.data.byteLength) {
      throw new Error(`tensor ${name}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${expected} bytes, got ${t.data.byteLength}`);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + expected] };
    offset += expected;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of Object.values(tensors)) {
    out.set(t.data, at);
    at += t.data.byteLength;
  }
  return out;
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
