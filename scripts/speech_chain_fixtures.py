#!/usr/bin/env python3
"""Goldens for the chained speech reply: transformers' full Qwen3OmniMoeForConditionalGeneration.generate
(thinker greedy, then talker greedy + code predictor + code2wav) on the tiny checkpoint of
test/fixtures/speech/tiny, for prompts the runtime can replay (ids, TMRoPE positions, media).

  .venv-ref/bin/python scripts/speech_chain_fixtures.py [OUT_DIR]     # default test/fixtures/speech/chain

Per case, writes <case>.input_ids.i32 [S], <case>.positions.f32 [3, S] (thinker get_rope_index), the media
(<case>.pixel_values.f32 + image grid, or <case>.audio_features.f32 [128, frames] cut to the valid frames),
<case>.codes.i32 [frames, 16] (frame-major: layer-0 code then the 15 residual codes, what generate gives
code2wav) and <case>.wav.f32 (generate's waveform), plus manifest.json with the reply ids, the thinker EOS
id used and the generate arguments.

The thinker's EOS is chosen per case among its own greedy tokens (the first reply token, from index 3 on,
not seen before in the reply), so every reply ends on a real EOS: transformers never speaks the last
generated token (it is never fed back, so it has no hidden state), which for an EOS-terminated reply is
exactly "speak every token before the EOS", the runtime's rule too.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_fixtures as ef  # noqa: E402
import speech_fixtures as sf  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers.models.qwen3_omni_moe import modeling_qwen3_omni_moe as mq  # noqa: E402

ROOT = ef.ROOT
THINKER_PROBE = 10   # greedy tokens looked at to choose the EOS
TALKER_NEW = 14      # talker steps -> at most 13 frames (random weights never emit codec_eos here)

CASES = [
    dict(name="text", speaker="Ethan", desc="system + user text (the system turn is not in the talker prompt)",
         messages=[{"role": "system", "content": "You are a helpful assistant."},
                   {"role": "user", "content": [ef.text_item("Say hello to the people in the room.")]}]),
    dict(name="image", speaker="Chelsie", images=[(64, 96)],
         desc="user image + text: image rows through hidden_projection, talker rope with the image grid",
         messages=[{"role": "user", "content": [{"type": "image"}, ef.text_item("Describe it aloud, briefly.")]}]),
    dict(name="multiturn", speaker="Aiden",
         desc="system, user, assistant, user: the earlier assistant turn is dropped from the talker prompt",
         messages=[{"role": "system", "content": "You are a helpful assistant."},
                   {"role": "user", "content": "Name a colour."},
                   {"role": "assistant", "content": "Blue."},
                   {"role": "user", "content": [ef.text_item("And another one, out loud?")]}]),
    dict(name="audio", speaker="Ethan", audio=[1.5],
         desc="user audio + text: audio rows through hidden_projection (transformers needs the talker "
              "audio_config workaround, spec 9.2)",
         messages=[{"role": "user", "content": [{"type": "audio"}, ef.text_item("Answer the question.")]}]),
]


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "test/fixtures/speech/chain")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    _, proc = ef.ff.build_processor()
    ck = os.path.join(ROOT, "test/fixtures/speech/tiny")
    model = mq.Qwen3OmniMoeForConditionalGeneration.from_pretrained(ck, dtype=torch.float32).eval()
    # transformers 5.x bug (spec 9.2): the talker's get_rope_index reads audio_config.n_window.
    model.talker.config.audio_config = model.thinker.config.audio_config
    os.makedirs(out, exist_ok=True)
    w = ef.Writer(out)
    man = {"generator": "scripts/speech_chain_fixtures.py", "checkpoint": "test/fixtures/speech/tiny",
           "torch": torch.__version__, "transformers": __import__("transformers").__version__,
           "talker_max_new_tokens": TALKER_NEW, "talker_do_sample": False, "talker_repetition_penalty": 1.05,
           "cases": {}}
    for case in CASES:
        name = case["name"]
        rendered, real_ids, inputs, _ = ef.prepare_case(proc, case)
        kw = ef.model_kwargs(inputs, case)
        S = kw["input_ids"].shape[1]
        model.thinker.rope_deltas = None
        with torch.no_grad():
            pos, _ = ef.rope_index(model.thinker, kw)
        kw.pop("use_audio_in_video")
        # probe the greedy reply and pick the EOS
        with torch.no_grad():
            model.thinker.rope_deltas = None
            probe = model.thinker.generate(**kw, max_new_tokens=THINKER_PROBE, do_sample=False, eos_token_id=None)
        reply = probe[0, S:].tolist()
        eos_at = next(i for i in range(3, len(reply)) if reply[i] not in reply[:i])
        eos = reply[eos_at]
        model.thinker.rope_deltas = None
        model.talker.rope_deltas = None
        cap = sf.Capture(model)
        try:
            with torch.no_grad():
                seq, wav = model.generate(**kw, speaker=case["speaker"], thinker_max_new_tokens=THINKER_PROBE,
                                          thinker_do_sample=False, thinker_eos_token_id=eos,
                                          talker_max_new_tokens=TALKER_NEW, talker_do_sample=False,
                                          return_audio=True)
        finally:
            cap.close()
        got = seq[0, S:].tolist()
        assert got == reply[:eos_at + 1], (got, reply, eos_at)
        codes = cap.c2w_calls[0][0][0]  # [16, F]
        F_ = codes.shape[-1]
        wav1 = wav.reshape(-1)
        assert wav1.shape[0] == 1920 * F_ - 555
        rec = {"description": case["desc"], "speaker": case["speaker"], "prompt_len": S, "rendered_prompt": rendered,
               "real_vocab_input_ids": real_ids, "reply": got[:-1], "eos_id": eos, "frames": F_,
               "talker_steps": len(cap.talker_calls[0][1].logits), "wav_len": int(wav1.shape[0]),
               "codes_frames_x16": codes.T.tolist(), "tensors": {}}
        t = rec["tensors"]
        w.put(t, "input_ids", f"{name}.input_ids", ef.t2n(kw["input_ids"][0]), "i32")
        w.put(t, "positions", f"{name}.positions", ef.t2n(pos[:, 0, :]).astype(np.float32), "f32")
        if kw.get("pixel_values") is not None:
            w.put(t, "pixel_values", f"{name}.pixel_values", ef.t2n(kw["pixel_values"]), "f32")
            w.put(t, "image_grid_thw", f"{name}.image_grid_thw", ef.t2n(kw["image_grid_thw"]), "i32")
        if kw.get("input_features") is not None:
            n = int(kw["feature_attention_mask"][0].sum())
            w.put(t, "audio_features", f"{name}.audio_features", ef.t2n(kw["input_features"][0, :, :n]), "f32")
            rec["audio_frames"] = n
        w.put(t, "codes", f"{name}.codes", ef.t2n(codes.T), "i32")
        w.put(t, "wav", f"{name}.wav", ef.t2n(wav1), "f32")
        man["cases"][name] = rec
        print(f"{name}: S={S} reply={got} eos={eos} frames={F_} wav={wav1.shape[0]}", flush=True)
    man["goldens_bytes"] = w.total
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()
