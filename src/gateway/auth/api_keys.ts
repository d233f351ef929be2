// API keys clients present (Bearer header, Azure-style `api-key` header, or the browser
// subprotocol `openai-insecure-api-key.<key>`). Keys are kept only as SHA-256 digests and compared
// in constant time, so neither memory dumps of this table nor timing reveal them.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const digest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    this.digests = keys.filter((k) => k.length > 0).map(digest);
  }

  static parse(list: string): ApiKeys {
    return new ApiKeys(list.split(',').map((k) => k.trim()));
  }

  /** No keys configured: every client is let in (local use). */
  get open(): boolean {
    return this.digests.length === 0;
  }

  accepts(key: string): boolean {
    const d = digest(key);
    // Check every entry so the time taken does not say which one matched.
    let ok = false;
    for (const known of this.digests) ok = timingSafeEqual(known, d) || ok;
    return ok;
  }
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
