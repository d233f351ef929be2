// API keys clients present (Bearer header, Azure-style `api-key` header, or the browser
// subprotocol `openai-insecure-api-key.<key>`). Keys are kept only as SHA-256 digests and compared
// in constant time, so neither memory dumps of this table nor timing reveal them. Keys come from
// `--api-keys` (plain, no limits) and/or `--api-keys-file`, a JSON file holding only digests:
//   { "keys": [ { "name": "team-a", "sha256": "<hex of sha256(key)>", "limits": { "sessions": 10,
//     "requestsPerMinute": 60, "audioSecondsPerMinute": 600, "tokensPerMinute": 100000 } } ] }
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { KeyUsage, parseKeyLimits, type KeyLimits } from './key_limits.js';

export const keyDigest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

export interface ApiKeyEntry {
  /** A label for logs and metrics (never the key). */
  name: string;
  readonly digest: Buffer;
  readonly usage: KeyUsage;
}

export class ApiKeys {
  private readonly entries: ApiKeyEntry[];

  constructor(entries: readonly { name: string; digest: Buffer; limits?: KeyLimits }[]) {
    this.entries = entries.map((e) => ({ name: e.name, digest: e.digest, usage: new KeyUsage(e.limits ?? {}) }));
  }

  /** Plain keys from a comma-separated list (no limits). */
  static parse(list: string): ApiKeys {
    return new ApiKeys(plainEntries(list));
  }

  /** Plain keys plus the digests and limits of a keys file. Throws with the file's problem named. */
  static load(list: string, file: string): ApiKeys {
    return new ApiKeys([...plainEntries(list), ...(file ? fileEntries(file) : [])]);
  }

  /** No keys configured: every client is let in (local use). */
  get open(): boolean {
    return this.entries.length === 0;
  }

  /** The entry of a presented key, or undefined. */
  find(key: string): ApiKeyEntry | undefined {
    const d = keyDigest(key);
    // Check every entry so the time taken does not say which one matched.
    let hit: ApiKeyEntry | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, d)) hit ??= e;
    return hit;
  }

  accepts(key: string): boolean {
    return this.find(key) !== undefined;
  }
}

function plainEntries(list: string): { name: string; digest: Buffer }[] {
  return list
    .split(',')
    .map((k) => k.trim())
    .filter((k) => k.length > 0)
    .map((k, i) => ({ name: `key-${i + 1}`, digest: keyDigest(k) }));
}

function fileEntries(file: string): { name: string; digest: Buffer; limits: KeyLimits }[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read the API keys file ${file}: ${(err as Error).message}`);
  }
  const keys = (json as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw new Error(`${file}: expected { "keys": [ ... ] }`);
  return keys.map((k: unknown, i) => {
    const where = `${file}: keys[${i}]`;
    const e = (typeof k === 'object' && k !== null ? k : {}) as Record<string, unknown>;
    if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/i.test(e.sha256)) throw new Error(`${where}.sha256 must be 64 hex digits (sha256 of the key)`);
    const name = typeof e.name === 'string' && e.name ? e.name : `file-key-${i + 1}`;
    return { name, digest: Buffer.from(e.sha256, 'hex'), limits: parseKeyLimits(e.limits, `${where}.limits`) };
  });
}

/** The credential of a request: Bearer token, `api-key` header, or the browser subprotocol key. */
export function presentedKey(headers: IncomingHttpHeaders, subprotocolKey?: string): string | undefined {
  const auth = headers.authorization;
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const apiKey = headers['api-key'];
  if (typeof apiKey === 'string' && apiKey) return apiKey;
  return subprotocolKey;
}
