// Server-made ids with the prefixes OpenAI clients expect (`event_`, `item_`, `resp_`, ...):
// random, URL-safe, short enough to read in logs.
import { randomBytes } from 'node:crypto';

export type IdPrefix = 'event' | 'sess' | 'conv' | 'item' | 'resp' | 'call' | 'rtc';

export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBytes(12).toString('base64url')}`;
}
