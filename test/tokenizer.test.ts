// Qwen3-Omni tokenizer parity with transformers (golden ids from scripts/tokenizer_fixtures.py) and
// the streaming detokenizer's UTF-8 safety.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CodecError } from '../src/codecs/errors.js';
import { OMNI_ADDED_TOKENS, QwenTokenizer, SPECIAL_IDS, TEXT_CACHE_RUNS, qwen3TokenizerJsonPath } from '../src/codecs/text/tokenizer.js';

interface Golden {
  special_ids: Record<string, number>;
  role_ids: Record<string, number[]>;
  cases: { text: string; ids: number[]; decoded: string; decoded_skip_special: string }[];
}

const golden = JSON.parse(
  readFileSync(new URL('./fixtures/text/tokenizer_golden.json', import.meta.url), 'utf8'),
) as Golden;
const tok = QwenTokenizer.load();

describe('QwenTokenizer', () => {
  it('puts every special token on its checkpoint id', () => {
    for (const [token, id] of Object.entries(golden.special_ids)) expect(tok.tokenToId(token), token).toBe(id);
    for (const [token, id] of OMNI_ADDED_TOKENS) expect(tok.tokenToId(token)).toBe(id);
    expect(tok.tokenToId('<|audio_pad|>')).toBe(SPECIAL_IDS.audioPad);
  });

  it('encodes role words as the single ids the model code depends on', async () => {
    for (const [word, ids] of Object.entries(golden.role_ids)) expect(await tok.encode(word)).toEqual(ids);
  });

  it.each(golden.cases.map((c, i) => [i, c] as const))('matches transformers ids, case %i', async (_i, c) => {
    expect(await tok.encode(c.text)).toEqual(c.ids);
    expect(await tok.decode(c.ids)).toBe(c.decoded);
    expect(await tok.decode(c.ids, true)).toBe(c.decoded_skip_special);
  });

  it('encodeBatch gives the golden ids from a cold and from a warm cache, duplicates and empty runs included', async () => {
    const fresh = QwenTokenizer.load();
    const texts = [...golden.cases.map((c) => c.text), '', golden.cases[0]!.text];
    const want = [...golden.cases.map((c) => c.ids), [], golden.cases[0]!.ids];
    const cold = await fresh.encodeBatch(texts);
    expect(cold).toEqual(want);
    cold[0]!.push(-1); // callers own what they get: the cache keeps its own copy
    const warm = await fresh.encodeBatch(texts);
    expect(warm).toEqual(want);
    // A warm batch takes no hop to the tokenizer's threads: its promise settles on the microtask queue.
    let settled = false;
    const pending = fresh.encodeBatch(texts.slice(0, 3)).then(() => (settled = true));
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    await Promise.resolve();
    expect(settled).toBe(true);
    await pending;
  });

  it('keeps the run cache within its bounds, dropping the least recently used', async () => {
    const fresh = QwenTokenizer.load();
    const texts = Array.from({ length: TEXT_CACHE_RUNS + 50 }, (_, i) => `run ${i}`);
    const first = await fresh.encodeBatch(texts);
    const cache = (fresh as unknown as { idsOfText: Map<string, number[]> }).idsOfText;
    expect(cache.size).toBe(TEXT_CACHE_RUNS);
    expect(cache.has('run 0')).toBe(false);
    expect(cache.has(`run ${TEXT_CACHE_RUNS + 49}`)).toBe(true);
    expect(await fresh.encodeBatch(['run 0', 'run 60'])).toEqual([first[0], first[60]]);
  });

  it('rejects a missing tokenizer file', () => {
    expect(() => QwenTokenizer.load('/nonexistent/tokenizer.json')).toThrow(CodecError);
  });

  it('rejects a vocabulary where the Omni tokens would land on other ids', () => {
    // one extra added token at 151669 shifts every Omni token by one
    const json = JSON.parse(readFileSync(qwen3TokenizerJsonPath(), 'utf8')) as { added_tokens: object[] };
    json.added_tokens.push({ id: 151669, content: '<|extra|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
    const dir = mkdtempSync(path.join(tmpdir(), 'tok-'));
    const file = path.join(dir, 'tokenizer.json');
    writeFileSync(file, JSON.stringify(json));
    try {
      expect(() => QwenTokenizer.load(file)).toThrow(/expected 151669/);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('StreamDetokenizer', () => {
  it('never emits a partial character: each delta is well-formed and the sum is the full decode', () => {
    for (const c of golden.cases) {
      const d = tok.detokenizer();
      let text = '';
      for (const id of c.ids) {
        const delta = d.push(id);
        expect(delta.includes('\uFFFD'), `case ${JSON.stringify(c.text)}`).toBe(false);
        text += delta;
      }
      text += d.flush();
      expect(text).toBe(c.decoded);
    }
  });

  async function checkSplitCharacters(candidates: string[]): Promise<number> {
    let split = 0;
    for (const ch of candidates) {
      const ids = await tok.encode(ch);
      if (ids.length < 2) continue;
      split++;
      const d = tok.detokenizer();
      const deltas = ids.map((id) => d.push(id));
      // nothing comes out until the last byte of the character arrives, then all of it
      expect(deltas.slice(0, -1).join(''), ch).toBe('');
      expect(deltas[deltas.length - 1], ch).toBe(ch);
    }
    return split;
  }

  it('holds back the bytes of an emoji split across tokens', async () => {
    expect(await checkSplitCharacters(['🦄', '🪼', '🫠', '🧌', '🪿', '🫎', '🛻', '🦤'])).toBeGreaterThan(0);
  });

  it('holds back CJK bytes split across tokens', async () => {
    expect(await checkSplitCharacters('龘鬱齉讟麤灪爩𠀋'.split(/(?:)/u))).toBeGreaterThan(0);
  });

  it('skips special tokens when asked, as decode(ids, true) does', () => {
    for (const c of golden.cases) {
      const d = tok.detokenizer({ skipSpecial: true });
      expect(d.push(c.ids) + d.flush()).toBe(c.decoded_skip_special);
    }
  });

  it('flushes an incomplete character as U+FFFD like errors="replace"', async () => {
    const ids = await tok.encode('🪿');
    expect(ids.length).toBeGreaterThan(1);
    const d = tok.detokenizer();
    expect(d.push(ids.slice(0, -1))).toBe('');
    expect(d.flush()).toBe(await tok.decode(ids.slice(0, -1)));
  });
});
