#!/usr/bin/env python3
"""Reference side of bench/engine.mjs: the same thinker measurements with transformers on CPU.

  .venv-ref/bin/python scripts/engine_bench_reference.py CHECKPOINT_DIR PROMPT_JSON [--dtype float32|bfloat16]

PROMPT_JSON (written by the bench): {"threads", "ids", "decode_tokens", "batch_ids", "batch_decode_tokens"}.
Measures, on the thinker of Qwen3OmniMoeForConditionalGeneration (no_grad, DynamicCache, eager):
  prefill   one forward over `ids` with position_ids = arange on all three rows (3 runs after a warm-up)
  decode    greedy, one token at a time at position S + i: `decode_tokens` decode forwards (token 0 = argmax
            of the prefill logits, then every token is fed, as the gateway's loop does)
  batch     len(batch_ids) equal-length prompts prefilled together, then greedy decode of the batch
Prints one JSON object on stdout (progress on stderr).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusion_fixtures  # noqa: E402,F401  (installs the torchvision shim)

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import DynamicCache, Qwen3OmniMoeForConditionalGeneration  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def positions(start, n, batch=1):
    p = torch.arange(start, start + n, dtype=torch.float32)
    return p.view(1, 1, n).expand(3, batch, n).contiguous()


def prefill(thinker, ids):
    """ids: [B, S] long. Returns (seconds, last logits [B, V], cache)."""
    cache = DynamicCache(config=thinker.config.text_config)
    b, s = ids.shape
    t0 = time.perf_counter()
    with torch.no_grad():
        out = thinker(input_ids=ids, attention_mask=torch.ones(b, s, dtype=torch.long), position_ids=positions(0, s, b),
                      past_key_values=cache, use_cache=True, logits_to_keep=1)
    dt = time.perf_counter() - t0
    return dt, out.logits[:, -1].float(), out.past_key_values


def greedy(thinker, logits, cache, start, steps):
    """`steps` decode forwards after the prefill; returns (seconds of the decode forwards, tokens)."""
    b = logits.shape[0]
    tok = logits.argmax(-1)
    toks = [tok]
    mask = torch.ones(b, start, dtype=torch.long)
    t0 = time.perf_counter()
    for i in range(steps):
        mask = torch.cat([mask, torch.ones(b, 1, dtype=torch.long)], dim=1)
        with torch.no_grad():
            out = thinker(input_ids=tok.view(b, 1), attention_mask=mask, position_ids=positions(start + i, 1, b),
                          past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        tok = out.logits[:, -1].float().argmax(-1)
        toks.append(tok)
    dt = time.perf_counter() - t0
    return dt, torch.stack(toks, dim=1).tolist()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("prompt")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    a = ap.parse_args()
    spec = json.load(open(a.prompt))
    torch.set_num_threads(int(spec["threads"]))
    dtype = getattr(torch, a.dtype)

    t0 = time.perf_counter()
    model = Qwen3OmniMoeForConditionalGeneration.from_pretrained(a.checkpoint, dtype=dtype)
    model.eval()
    thinker = model.thinker
    load_s = time.perf_counter() - t0
    log(f"[reference] loaded in {load_s:.1f} s (dtype {a.dtype}, threads {torch.get_num_threads()})")

    ids = torch.tensor([spec["ids"]], dtype=torch.long)
    s = ids.shape[1]
    # warm-up: a full prefill (touches the weights) and a few decode steps
    _, lg, cache = prefill(thinker, ids)
    greedy(thinker, lg, cache, s, 4)

    # 3 x (prefill, greedy decode), as the bench does on our side
    runs, decs = [], []
    n = int(spec["decode_tokens"])
    for _ in range(3):
        dt, lg, cache = prefill(thinker, ids)
        runs.append(dt)
        # as the gateway's loop: token 0 is the argmax of the prefill logits, each token is then fed (n forwards)
        dec_s, toks = greedy(thinker, lg, cache, s, n)
        decs.append(dec_s)
    log(f"[reference] prefill {s} tokens: {', '.join(f'{x:.2f}' for x in runs)} s; decode {n} steps: "
        f"{', '.join(f'{x:.2f}' for x in decs)} s")

    bids = torch.tensor(spec["batch_ids"], dtype=torch.long)
    bn = int(spec["batch_decode_tokens"])
    bpre_s, blg, bcache = prefill(thinker, bids)
    bdec_s, _ = greedy(thinker, blg, bcache, bids.shape[1], bn)
    log(f"[reference] batch {bids.shape[0]} x {bn} steps: {bdec_s:.2f} s")

    print(json.dumps({
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "dtype": a.dtype,
        "threads": torch.get_num_threads(),
        "experts_implementation": getattr(thinker.config.text_config, "_experts_implementation", None),
        "load_s": load_s,
        "prefill_tokens": s,
        "prefill_s": runs,
        "decode_steps": n,
        "decode_s": decs,
        "tokens": toks[0],
        "batch": int(bids.shape[0]),
        "batch_prompt_tokens": int(bids.shape[1]),
        "batch_prefill_s": bpre_s,
        "batch_decode_steps": bn,
        "batch_decode_s": bdec_s,
    }))


if __name__ == "__main__":
    main()
