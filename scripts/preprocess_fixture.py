#!/usr/bin/env python3
"""Golden model input for `omni-gateway preprocess`: real Qwen3OmniMoeProcessor + get_rope_index
(built as in scripts/fusion_fixtures.py) on test/fixtures/preprocess/{conversation.json,speech.wav,image.png}.

  .venv-ref/bin/python scripts/preprocess_fixture.py
      # writes test/fixtures/preprocess/{speech.wav,image.png,conversation.json,expected.safetensors,expected.json}
"""
import json, os, shutil, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusion_fixtures import ROOT, RopeIndex, build_processor  # noqa: E402  (also installs the torchvision shim)

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

D = os.path.join(ROOT, "test/fixtures/preprocess")
CONV = [{"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [{"type": "text", "text": "Listen and look."}, {"type": "audio", "path": "speech.wav"},
                                     {"type": "image", "path": "image.png"},
                                     {"type": "text", "text": "What do you hear and see?"}]}]


def make_inputs():
    os.makedirs(D, exist_ok=True)
    shutil.copyfile(os.path.join(ROOT, "test/fixtures/audio/speech_en.wav"), os.path.join(D, "speech.wav"))
    y, x = np.mgrid[0:64, 0:96]
    img = np.stack([x * 255 // 95, y * 255 // 63, (x + y) * 255 // 158], -1).astype(np.uint8)
    Image.fromarray(img, "RGB").save(os.path.join(D, "image.png"), optimize=False)
    with open(os.path.join(D, "conversation.json"), "w") as f:
        json.dump(CONV, f, indent=2)
        f.write("\n")


def main():
    make_inputs()
    tok, proc = build_processor()
    rope = RopeIndex()
    audio, images, msgs = [], [], []
    for m in CONV:
        c = m["content"]
        if isinstance(c, list):
            items = []
            for it in c:
                if it["type"] == "audio":
                    pcm, sr = sf.read(os.path.join(D, it["path"]), dtype="int16")
                    assert sr == 16000 and pcm.ndim == 1
                    audio.append(pcm.astype(np.float32) / 32768.0)
                    items.append({"type": "audio"})
                elif it["type"] == "image":
                    images.append(Image.open(os.path.join(D, it["path"])).convert("RGB"))
                    items.append({"type": "image"})
                else:
                    items.append(it)
            c = items
        msgs.append({"role": m["role"], "content": c})
    rendered = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    inputs = proc(text=rendered, audio=audio, images=images, return_tensors="pt")
    fam = inputs["feature_attention_mask"]
    pos, delta = rope.get_rope_index(inputs["input_ids"], inputs["image_grid_thw"], None, inputs["attention_mask"],
                                     False, fam.sum(-1), None)
    names = ["input_ids", "attention_mask", "input_features", "feature_attention_mask", "pixel_values", "image_grid_thw"]
    t = {k: inputs[k].contiguous() for k in names}
    t["position_ids"] = pos.contiguous()
    t["rope_deltas"] = delta.contiguous()
    save_file(t, os.path.join(D, "expected.safetensors"))
    meta = {"rendered": rendered, "tensors": {}}
    for k, v in t.items():
        e = {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)}
        if v.is_floating_point() and v.numel() > 64:
            flat = v.reshape(-1).double()
            e["first"] = flat[:8].tolist()
            e["last"] = flat[-8:].tolist()
            e["sum"] = float(flat.sum())
            e["abs_sum"] = float(flat.abs().sum())
        elif v.numel() <= 16:
            e["values"] = v.tolist()
        else:
            e["sum"] = int(v.sum())
            e["first"] = v.reshape(-1)[:8].tolist()
        meta["tensors"][k] = e
    with open(os.path.join(D, "expected.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    for k, e in meta["tensors"].items():
        print(k, e["dtype"], e["shape"])


if __name__ == "__main__":
    main()
