#!/usr/bin/env python3
"""Reference side of bench/speech.mjs: transformers' Qwen3OmniMoeForConditionalGeneration.generate with
audio output on CPU, on the same checkpoint and prompt as our engine.

  .venv-ref/bin/python scripts/speech_bench_reference.py CHECKPOINT_DIR PROMPT_JSON

PROMPT_JSON (written by the bench): {"threads", "ids", "reply_tokens", "frames", "speaker", "runs"}.
generate is not streaming: the waveform exists only when everything is done, so its first audio comes
at the end. Measured per run (greedy thinker with exactly reply_tokens tokens, greedy talker with exactly
frames + 1 steps, i.e. `frames` complete codec frames, then code2wav):
  thinker_s       thinker.generate alone on the same prompt (the text part of the work)
  total_s         the full generate (thinker again, talker prompt, talker + code predictor, code2wav)
  speech_s        total_s - thinker_s: the speech stages
  first_audio_after_first_token_s   total_s - time of the thinker's first token (prefill + one step)
  rtf             speech_s / audio seconds
Prints one JSON object on stdout (progress on stderr).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusion_fixtures  # noqa: E402,F401  (installs the torchvision shim)

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import Qwen3OmniMoeForConditionalGeneration  # noqa: E402


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main(ck, prompt_file):
    p = json.load(open(prompt_file))
    torch.set_num_threads(p["threads"])
    t0 = time.perf_counter()
    model = Qwen3OmniMoeForConditionalGeneration.from_pretrained(ck, dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0
    ids = torch.tensor([p["ids"]])
    n, frames = p["reply_tokens"], p["frames"]
    think = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False)
    runs = []
    with torch.no_grad():
        for r in range(p["runs"] + 1):  # the first run warms up
            model.thinker.rope_deltas = None
            t = time.perf_counter()
            model.thinker.generate(input_ids=ids, max_new_tokens=1, do_sample=False)
            first_token_s = time.perf_counter() - t
            model.thinker.rope_deltas = None
            t = time.perf_counter()
            model.thinker.generate(input_ids=ids, **think)
            thinker_s = time.perf_counter() - t
            model.thinker.rope_deltas = None
            model.talker.rope_deltas = None
            t = time.perf_counter()
            seq, wav = model.generate(input_ids=ids, speaker=p["speaker"], return_audio=True,
                                      **{f"thinker_{k}": v for k, v in think.items()},
                                      talker_max_new_tokens=frames + 1, talker_min_new_tokens=frames + 1,
                                      talker_do_sample=False)
            total_s = time.perf_counter() - t
            samples = int(wav.reshape(-1).shape[0])
            audio_s = samples / 24000
            speech_s = total_s - thinker_s
            run = {"first_token_s": first_token_s, "thinker_s": thinker_s, "total_s": total_s, "speech_s": speech_s,
                   "first_audio_after_first_token_s": total_s - first_token_s, "samples": samples,
                   "frames": (samples + 555) // 1920, "audio_s": audio_s, "rtf": speech_s / audio_s}
            log(f"run {r}: {json.dumps(run)}")
            if r > 0:
                runs.append(run)
    best = min(runs, key=lambda x: x["total_s"])
    print(json.dumps({"torch": torch.__version__, "transformers": transformers.__version__, "threads": p["threads"],
                      "load_s": load_s, "runs": runs, "best": best}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
