#!/usr/bin/env python3
"""Checks that a demo checkpoint written by `omni-gateway demo-model` is a normal Hugging Face
checkpoint: transformers loads it with no missing or unexpected weights and runs the thinker on a
short prompt (text, plus an image and audio through the real processors' shapes).

  node bin/omni-gateway.js demo-model --out /tmp/demo && .venv-ref/bin/python scripts/check_demo_model.py /tmp/demo
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusion_fixtures  # noqa: E402,F401  (installs the torchvision shim)

import torch  # noqa: E402
from transformers import Qwen3OmniMoeForConditionalGeneration  # noqa: E402


def main(path):
    model, info = Qwen3OmniMoeForConditionalGeneration.from_pretrained(path, dtype=torch.float32, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v}
    cfg = json.load(open(os.path.join(path, "config.json")))
    ids = [cfg["im_start_token_id"], cfg["user_token_id"], 198, 9707, 0, cfg["im_end_token_id"], 198,
           cfg["im_start_token_id"], cfg["assistant_token_id"], 198]
    with torch.no_grad():
        out = model.thinker(input_ids=torch.tensor([ids]))
    report = {"loading_problems": {k: [str(x) for x in v] for k, v in problems.items()},
              "params": sum(p.numel() for p in model.parameters()),
              "logits_shape": list(out.logits.shape), "finite": bool(torch.isfinite(out.logits).all())}
    print(json.dumps(report, indent=1))
    if problems or not report["finite"]:
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1])
