#!/usr/bin/env python3
"""Tiny random-weight Qwen3-Omni *thinker* checkpoints + golden outputs for the native C++ engine.

  .venv-ref/bin/python scripts/engine_fixtures.py [OUT_DIR]     # default test/fixtures/engine

Writes (see test/fixtures/engine/README.md for the format):
  tiny/        Qwen3OmniMoeForConditionalGeneration.save_pretrained (config.json, generation_config.json,
               model.safetensors), thinker only (enable_audio_output false), float32, hub tensor names
               (MoE experts stored per expert, as save_pretrained writes them through its reverse
               weight conversion; checked below).
  tiny-bf16/   the same weights rounded to bfloat16 (save_pretrained after .to(bfloat16)).
  goldens/     manifest.json + raw little-endian tensors per prompt case.

Everything is built from explicit configs (no hub). Prompts go through the real Qwen3OmniMoeProcessor
(scripts/fusion_fixtures.build_processor: real Qwen3 BPE + Omni special tokens, real feature
extractor / image / video processors); the resulting real-vocabulary ids are then remapped into the
tiny 1024-token vocabulary (SPECIAL_IDS below; ordinary ids -> 32 + id % 992). Position ids come
from the model's own get_rope_index. The model is re-initialised with a seeded, fan-in-scaled random
init of *every* parameter (including norms and biases) so that logits have a usable spread and all
bias / norm paths are exercised.
"""
import copy
import hashlib
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fusion_fixtures as ff  # noqa: E402  (installs the torchvision shim on import)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers.models.qwen3_omni_moe import modeling_qwen3_omni_moe as mq  # noqa: E402
from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import Qwen3OmniMoeConfig  # noqa: E402
from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import (  # noqa: E402
    _get_feat_extract_output_lengths,
)

ROOT = ff.ROOT
SEED = 20240611
VOCAB = 1024

# ---------------------------------------------------------------- special ids (real -> tiny)
# token text, real checkpoint id, tiny id. Ordinary (non-special) ids map to 32 + real_id % 992.
SPECIAL_TOKENS = [
    ("<|endoftext|>", 151643, 1),
    ("<|im_start|>", 151644, 2),
    ("<|im_end|>", 151645, 3),
    ("<|vision_start|>", 151652, 4),
    ("<|vision_end|>", 151653, 5),
    ("<|vision_pad|>", 151654, 6),
    ("<|image_pad|>", 151655, 7),
    ("<|video_pad|>", 151656, 8),
    ("<think>", 151667, 9),
    ("</think>", 151668, 10),
    ("<|audio_start|>", 151669, 11),
    ("<|audio_end|>", 151670, 12),
    ("<tts_pad>", 151671, 13),
    ("<tts_text_bos>", 151672, 14),
    ("<tts_text_eod>", 151673, 15),
    ("<tts_text_bos_single>", 151674, 16),
    ("<|audio_pad|>", 151675, 17),
    # ordinary BPE ids the model code / chat layout depends on
    ("system", 8948, 20),
    ("user", 872, 21),
    ("assistant", 77091, 22),
    ("\n", 198, 23),
]
REMAP = {real: tiny for _, real, tiny in SPECIAL_TOKENS}
T = {name: tiny for name, _, tiny in SPECIAL_TOKENS}
ORDINARY_BASE, ORDINARY_MOD = 32, VOCAB - 32


def remap_ids(ids):
    out = [REMAP[i] if i in REMAP else ORDINARY_BASE + i % ORDINARY_MOD for i in ids]
    assert all(0 <= i < VOCAB for i in out)
    return out


# ---------------------------------------------------------------- config
ROPE = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 2, 2],
        "interleaved": True, "mrope_interleaved": True}
THINKER_IDS = dict(
    audio_token_id=T["<|audio_pad|>"], image_token_id=T["<|image_pad|>"], video_token_id=T["<|video_pad|>"],
    audio_start_token_id=T["<|audio_start|>"], audio_end_token_id=T["<|audio_end|>"],
    vision_start_token_id=T["<|vision_start|>"], vision_end_token_id=T["<|vision_end|>"],
    user_token_id=T["user"], position_id_per_seconds=13, seconds_per_chunk=2)
CFG = {
    "thinker_config": {
        **THINKER_IDS,
        "audio_config": {"num_mel_bins": 128, "encoder_layers": 2, "encoder_attention_heads": 2,
                         "encoder_ffn_dim": 64, "d_model": 32, "output_dim": 64, "n_window": 50,
                         "n_window_infer": 200, "conv_chunksize": 500, "downsample_hidden_size": 16,
                         "max_source_positions": 1500, "activation_function": "gelu", "scale_embedding": False},
        "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2,
                          "hidden_act": "gelu_pytorch_tanh", "in_channels": 3, "patch_size": 16,
                          "temporal_patch_size": 2, "spatial_merge_size": 2, "out_hidden_size": 64,
                          "num_position_embeddings": 2304, "deepstack_visual_indexes": [0, 1]},
        "text_config": {"vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 128,
                        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                        "head_dim": 16, "hidden_act": "silu", "rms_norm_eps": 1e-6,
                        "moe_intermediate_size": 32, "num_experts": 4, "num_experts_per_tok": 2,
                        "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [],
                        "attention_bias": False, "rope_parameters": ROPE, "max_position_embeddings": 65536,
                        "pad_token_id": T["<|endoftext|>"], "bos_token_id": T["<|endoftext|>"],
                        "eos_token_id": T["<|im_end|>"]},
    },
    # Not instantiated (enable_audio_output false) but always present in config.json: keep it tiny and
    # its thinker-vocabulary ids consistent with the remap. Codec ids are the real codec-vocab ids.
    "talker_config": {
        "audio_token_id": T["<|audio_pad|>"], "image_token_id": T["<|image_pad|>"],
        "video_token_id": T["<|video_pad|>"], "audio_start_token_id": T["<|audio_start|>"],
        "vision_start_token_id": T["<|vision_start|>"], "position_id_per_seconds": 13,
        "spatial_merge_size": 2, "thinker_hidden_size": 64, "accept_hidden_layer": 1, "num_code_groups": 16,
        "codec_eos_token_id": 2150, "codec_nothink_id": 2155, "codec_think_bos_id": 2156,
        "codec_think_eos_id": 2157, "codec_pad_id": 2148, "codec_bos_id": 2149,
        "speaker_id": {"chelsie": 2301, "ethan": 2302, "aiden": 2303},
        "text_config": {"vocab_size": 3072, "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 1,
                        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                        "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64, "num_experts": 4,
                        "num_experts_per_tok": 2, "norm_topk_prob": True, "rope_parameters": ROPE},
        "code_predictor_config": {"vocab_size": 2048, "hidden_size": 64, "intermediate_size": 64,
                                  "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 2,
                                  "head_dim": 16, "num_code_groups": 16,
                                  "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}},
    },
    "code2wav_config": {"codebook_size": 2048, "hidden_size": 32, "num_hidden_layers": 1,
                        "num_attention_heads": 2, "num_key_value_heads": 2, "intermediate_size": 64,
                        "sliding_window": 72, "num_quantizers": 16, "upsample_rates": [8, 5, 4, 3],
                        "upsampling_ratios": [2, 2], "decoder_dim": 32,
                        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}},
    "enable_audio_output": False,
    "im_start_token_id": T["<|im_start|>"], "im_end_token_id": T["<|im_end|>"],
    "tts_pad_token_id": T["<tts_pad>"], "tts_bos_token_id": T["<tts_text_bos>"],
    "tts_eos_token_id": T["<tts_text_eod>"], "system_token_id": T["system"], "user_token_id": T["user"],
    "assistant_token_id": T["assistant"],
}


def seeded_init(model):
    """Deterministic init of every parameter: weights ~ N(0, 1/fan_in) (embeddings N(0, 0.5^2)),
    norm weights 1 + N(0, 0.1^2), biases N(0, 0.05^2)."""
    g = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.split(".")[-1]
            is_norm = any(s in name for s in ("norm", "ln_", "layer_norm", "layernorm"))
            if leaf == "bias":
                v = 0.05 * torch.randn(p.shape, generator=g)
            elif is_norm and p.dim() == 1:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif "embed_tokens" in name or "pos_embed" in name:
                v = 0.5 * torch.randn(p.shape, generator=g)
            else:
                fan_in = p.shape[-1] if p.dim() == 2 else int(np.prod(p.shape[1:]))
                if leaf in ("gate_up_proj", "down_proj") and p.dim() == 3:  # fused experts (E, out, in)
                    fan_in = p.shape[-1]
                v = torch.randn(p.shape, generator=g) / np.sqrt(fan_in)
            p.copy_(v.to(p.dtype))


def build_model():
    torch.manual_seed(SEED)
    config = Qwen3OmniMoeConfig(**CFG)
    model = mq.Qwen3OmniMoeForConditionalGeneration(config).eval()
    seeded_init(model)
    return model


# ---------------------------------------------------------------- media (synthetic, deterministic)
def synth_audio(seconds, f0=220.0, seed=0):
    n = int(round(seconds * 16000))
    t = np.arange(n) / 16000.0
    rng = np.random.default_rng(seed)
    # rising chirp + harmonic + amplitude envelope + a little noise
    phase = 2 * np.pi * (f0 * t + 150.0 * t * t)
    x = 0.4 * np.sin(phase) + 0.15 * np.sin(3 * phase) + 0.02 * rng.standard_normal(n)
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t) ** 2
    return x.astype(np.float32)


def synth_image(h, w, seed=0):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    rng = np.random.default_rng(seed)
    r = 128 + 100 * np.sin(xx / 7.0 + seed)
    g = 128 + 100 * np.cos(yy / 5.0 - xx / 11.0)
    b = 255.0 * ((xx + yy) % 32 < 16) * 0.7 + 30
    img = np.stack([r, g, b], -1) + rng.normal(0, 8, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def synth_video(frames, h, w, seed=0):
    return np.stack([np.roll(synth_image(h, w, seed + f), 4 * f, axis=1) for f in range(frames)])


def text_item(t):
    return {"type": "text", "text": t}


CASES = [
    dict(name="text", desc="(a) text only", messages=[
        {"role": "user", "content": [text_item("What is the capital of France? Answer in one word.")]}]),
    dict(name="audio", desc="(b) text + 2.7 s synthetic audio (270 mel frames: conv chunks 100/100/70, "
                             "35 tokens, attention windows 26+9 with n_window_infer 200)",
         audio=[2.7], messages=[
             {"role": "user", "content": [{"type": "audio"}, text_item("What sound is this?")]}]),
    dict(name="image", desc="(c) text + one 64x96 image (grid 1x4x6, 6 tokens)", images=[(64, 96)], messages=[
        {"role": "user", "content": [{"type": "image"}, text_item("Describe the image.")]}]),
    dict(name="video", desc="(d) text + 4-frame 64x96 video, fps=3 -> video_second_per_grid 2/3 "
                             "(fractional temporal positions)", videos=[(4, 64, 96)], fps=3.0, messages=[
        {"role": "user", "content": [{"type": "video"}, text_item("What happens?")]}]),
    dict(name="audio_in_video", desc="(e) 4-frame 64x64 video with a 2.0 s soundtrack, use_audio_in_video, "
                                      "fps=2 -> 1.0 s per grid", videos=[(4, 64, 64)], audio=[2.0], fps=2.0,
         use_audio_in_video=True, messages=[
             {"role": "user", "content": [{"type": "video"}, text_item("Describe it.")]}]),
    dict(name="two_turn", desc="(f) two-turn text prompt; greedy for the full prompt and for the prompt "
                               "minus its last 5 tokens (KV-cache truncate tests)", truncate=5, messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "And another one, please?"}]),
]

N_GEN = 8
VIDEO_SIZE = {"shortest_edge": 3136, "longest_edge": 12845056}


# ---------------------------------------------------------------- writer
class Writer:
    def __init__(self, out_dir):
        self.dir = out_dir
        os.makedirs(out_dir, exist_ok=True)
        self.total = 0

    def put(self, rec, key, name, arr, dtype):
        a = np.ascontiguousarray(np.asarray(arr).astype({"f32": "<f4", "i32": "<i4", "i64": "<i8"}[dtype]))
        fn = f"{name}.{dtype}"
        data = a.tobytes()
        with open(os.path.join(self.dir, fn), "wb") as f:
            f.write(data)
        self.total += len(data)
        entry = {"file": fn, "dtype": {"f32": "float32", "i32": "int32", "i64": "int64"}[dtype],
                 "shape": list(a.shape), "sha256": hashlib.sha256(data).hexdigest()}
        if dtype == "f32":
            a64 = a.astype(np.float64)
            entry.update(sum=float(a64.sum()), abs_max=float(np.abs(a64).max()) if a.size else 0.0)
        rec[key] = entry
        return entry


def t2n(x):
    return x.detach().cpu().float().numpy() if x.is_floating_point() else x.detach().cpu().numpy()


# ---------------------------------------------------------------- running
def prepare_case(proc, case):
    messages = []
    audios, images, videos = [], [], []
    a_it = iter(case.get("audio", []))
    for m in case["messages"]:
        if isinstance(m["content"], str):
            messages.append(m)
            continue
        items = []
        for it in m["content"]:
            items.append(dict(it))
            if it["type"] == "audio":
                audios.append(synth_audio(next(a_it), seed=len(audios)))
            elif it["type"] == "image":
                h, w = case["images"][len(images)]
                images.append(synth_image(h, w, seed=10 + len(images)))
            elif it["type"] == "video":
                f, h, w = case["videos"][len(videos)]
                videos.append(synth_video(f, h, w, seed=20 + len(videos)))
                if case.get("use_audio_in_video"):
                    audios.append(synth_audio(next(a_it), f0=330.0, seed=100 + len(videos)))
        messages.append({"role": m["role"], "content": items})
    rendered = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    kw = {"fps": case["fps"]} if "fps" in case else {}
    if videos:
        # The processor's call-level video size floor (128*32*32 px per frame) would blow a 64x96 clip up to
        # ~1100 patches (7 MB of pixel_values); lower it so the small synthetic frames keep their size.
        kw["videos_kwargs"] = {"size": dict(VIDEO_SIZE)}
    inputs = proc(text=rendered, audio=audios or None, images=images or None, videos=videos or None,
                  return_tensors="pt", use_audio_in_video=case.get("use_audio_in_video", False), **kw)
    real_ids = inputs["input_ids"][0].tolist()
    inputs["input_ids"] = torch.tensor([remap_ids(real_ids)])
    if "video_second_per_grid" in inputs:
        inputs["video_second_per_grid"] = torch.as_tensor(inputs["video_second_per_grid"], dtype=torch.float32)
    return rendered, real_ids, dict(inputs), audios


def model_kwargs(inputs, case):
    kw = {k: v for k, v in inputs.items() if k in (
        "input_ids", "attention_mask", "input_features", "feature_attention_mask", "pixel_values",
        "image_grid_thw", "pixel_values_videos", "video_grid_thw", "video_second_per_grid")}
    kw["use_audio_in_video"] = case.get("use_audio_in_video", False)
    return kw


def rope_index(thinker, kw):
    fam = kw.get("feature_attention_mask")
    return thinker.get_rope_index(kw["input_ids"], kw.get("image_grid_thw"), kw.get("video_grid_thw"),
                                  kw["attention_mask"], kw["use_audio_in_video"],
                                  fam.sum(-1) if fam is not None else None, kw.get("video_second_per_grid"))


def forward_full(thinker, kw, capture=False):
    """Prefill forward with explicit TMRoPE position ids. Returns logits, cache, captured tensors."""
    cap = {}
    hooks = []
    if capture:
        def pre(mod, args, kwargs):
            cap["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()
            if kwargs.get("visual_pos_masks") is not None:
                cap["visual_pos_masks"] = kwargs["visual_pos_masks"].detach().clone()
        hooks.append(thinker.model.register_forward_pre_hook(pre, with_kwargs=True))
        for i, layer in enumerate(thinker.model.layers):
            hooks.append(layer.register_forward_hook(
                lambda mod, a, out, i=i: cap.__setitem__(f"layer{i}_out", (out[0] if isinstance(out, tuple) else out)
                                                         .detach().clone())))
        hooks.append(thinker.model.norm.register_forward_hook(
            lambda mod, a, out: cap.__setitem__("final_norm_out", out.detach().clone())))
    pos, delta = rope_index(thinker, kw)
    thinker.rope_deltas = None
    with torch.no_grad():
        out = thinker(**kw, position_ids=pos, use_cache=True)
    for h in hooks:
        h.remove()
    return out, pos, delta, cap


def greedy_manual(thinker, kw, n=N_GEN):
    """Prefill then one token at a time with the DynamicCache; decode position = index + rope_delta on
    all three rows."""
    out, pos, delta, _ = forward_full(thinker, kw)
    S = kw["input_ids"].shape[1]
    cache = out.past_key_values
    step_logits = [out.logits[0, -1].clone()]
    toks = [int(step_logits[0].argmax())]
    mask = kw["attention_mask"]
    for i in range(1, n):
        p = torch.full((3, 1, 1), float(S + i - 1), dtype=torch.float32) + delta.float().view(1, 1, 1)
        mask = torch.cat([mask, torch.ones(1, 1, dtype=mask.dtype)], dim=1)
        with torch.no_grad():
            o = thinker(input_ids=torch.tensor([[toks[-1]]]), attention_mask=mask, position_ids=p,
                        past_key_values=cache, use_cache=True)
        cache = o.past_key_values
        step_logits.append(o.logits[0, -1].clone())
        toks.append(int(step_logits[-1].argmax()))
    return toks, torch.stack(step_logits), out, pos, delta


def greedy_generate(thinker, kw, n=N_GEN):
    thinker.rope_deltas = None
    with torch.no_grad():
        g = thinker.generate(**kw, max_new_tokens=n, min_new_tokens=n, do_sample=False, output_logits=True,
                             return_dict_in_generate=True, eos_token_id=None, pad_token_id=T["<|endoftext|>"])
    S = kw["input_ids"].shape[1]
    return g.sequences[0, S:].tolist(), torch.stack([l[0] for l in g.logits])


def margins(step_logits):
    top2 = torch.topk(step_logits, 2, dim=-1).values
    return (top2[:, 0] - top2[:, 1]).tolist()


def encoder_outputs(thinker, kw):
    res = {}
    with torch.no_grad():
        if kw.get("input_features") is not None:
            res["audio_embeds"] = thinker.get_audio_features(
                kw["input_features"], kw["feature_attention_mask"], return_dict=True).last_hidden_state
        for kind, pv, grid in (("image", "pixel_values", "image_grid_thw"),
                               ("video", "pixel_values_videos", "video_grid_thw")):
            if kw.get(pv) is not None:
                f = thinker.get_image_features if kind == "image" else thinker.get_video_features
                o = f(kw[pv], kw[grid], return_dict=True)
                res[f"{kind}_embeds"] = torch.cat(o.pooler_output, 0)
                for k, feat in enumerate(o.deepstack_features):
                    res[f"{kind}_deepstack{k}"] = torch.cat(feat, 0)
    return res


def audio_windowing(thinker, kw):
    fam = kw["feature_attention_mask"]
    lens = fam.sum(-1)
    enc = thinker.audio_tower
    feats = kw["input_features"].permute(0, 2, 1)[fam.bool()].permute(1, 0)
    _, chunk_lengths = mq.chunk_and_pad_features(feats, lens, enc.n_window)
    cu = mq.get_audio_cu_seqlens(chunk_lengths, lens, enc.n_window_infer, enc.n_window)
    return {"valid_mel_frames": lens.tolist(), "conv_chunk_frames": chunk_lengths.tolist(),
            "conv_chunk_tokens": _get_feat_extract_output_lengths(chunk_lengths, enc.n_window).tolist(),
            "audio_tokens": _get_feat_extract_output_lengths(lens, enc.n_window).tolist(),
            "attention_cu_seqlens": cu.tolist()}


LOGITS_FULL_LIMIT = 131072  # store all positions when S*vocab <= this many floats


def run_case(proc, model, w, case):
    thinker = model.thinker
    rendered, real_ids, inputs, audios = prepare_case(proc, case)
    kw = model_kwargs(inputs, case)
    name = case["name"]
    rec = {"description": case["desc"], "use_audio_in_video": kw["use_audio_in_video"],
           "rendered_prompt": rendered, "real_vocab_input_ids": real_ids, "tensors": {}}
    if "fps" in case:
        rec["fps"] = case["fps"]
    tens = rec["tensors"]
    S = kw["input_ids"].shape[1]
    rec["seq_len"] = S
    # ---- inputs
    w.put(tens, "input_ids", f"{name}.input_ids", t2n(kw["input_ids"]), "i32")
    w.put(tens, "attention_mask", f"{name}.attention_mask", t2n(kw["attention_mask"]), "i32")
    for k, dt in (("input_features", "f32"), ("feature_attention_mask", "i32"), ("pixel_values", "f32"),
                  ("image_grid_thw", "i32"), ("pixel_values_videos", "f32"), ("video_grid_thw", "i32"),
                  ("video_second_per_grid", "f32")):
        if kw.get(k) is not None:
            w.put(tens, k, f"{name}.{k}", t2n(kw[k]), dt)
    if audios:
        rec["audio_samples"] = [len(a) for a in audios]
    # ---- forward with captures
    out, pos, delta, cap = forward_full(thinker, kw, capture=True)
    w.put(tens, "position_ids", f"{name}.position_ids", t2n(pos[:, 0, :]), "f32")
    rec["rope_delta"] = float(delta.reshape(-1)[0])
    w.put(tens, "rope_deltas", f"{name}.rope_deltas", t2n(delta.reshape(-1).float()), "f32")
    # the same forward without explicit positions (model computes them itself) must agree bit-exactly
    thinker.rope_deltas = None
    with torch.no_grad():
        out_auto = thinker(**kw)
    rec["max_abs_diff_explicit_vs_internal_positions"] = float((out_auto.logits - out.logits).abs().max())
    # ---- encoder outputs
    enc = encoder_outputs(thinker, kw)
    for k, v in enc.items():
        w.put(tens, k, f"{name}.{k}", t2n(v), "f32")
    if kw.get("input_features") is not None:
        rec["audio_windowing"] = audio_windowing(thinker, kw)
    w.put(tens, "inputs_embeds", f"{name}.inputs_embeds", t2n(cap["inputs_embeds"][0]), "f32")
    if "visual_pos_masks" in cap:
        w.put(tens, "visual_pos_mask", f"{name}.visual_pos_mask", t2n(cap["visual_pos_masks"][0]).astype(np.int32),
              "i32")
    for i in range(len(thinker.model.layers)):
        w.put(tens, f"layer{i}_out", f"{name}.layer{i}_out", t2n(cap[f"layer{i}_out"][0]), "f32")
    w.put(tens, "final_norm_out", f"{name}.final_norm_out", t2n(cap["final_norm_out"][0]), "f32")
    logits = out.logits[0]
    if S * VOCAB <= LOGITS_FULL_LIMIT:
        w.put(tens, "logits", f"{name}.logits", t2n(logits), "f32")
        rec["logits_stored"] = "all positions"
    else:
        w.put(tens, "logits_last4", f"{name}.logits_last4", t2n(logits[-4:]), "f32")
        rec["logits_stored"] = "last 4 positions (logits_last4) + per-position sum/max"
    w.put(tens, "logits_pos_sum", f"{name}.logits_pos_sum", t2n(logits.double().sum(-1).float()), "f32")
    w.put(tens, "logits_pos_max", f"{name}.logits_pos_max", t2n(logits.max(-1).values), "f32")
    w.put(tens, "logits_pos_argmax", f"{name}.logits_pos_argmax", t2n(logits.argmax(-1)), "i32")
    # ---- repeatability: a second identical forward
    out2, _, _, _ = forward_full(thinker, kw)
    rec["max_abs_diff_two_torch_runs"] = float((out2.logits - out.logits).abs().max())
    # ---- greedy
    gen = {}
    variants = [("full", kw)]
    if case.get("truncate"):
        n = case["truncate"]
        kt = dict(kw)
        kt["input_ids"] = kw["input_ids"][:, :-n]
        kt["attention_mask"] = kw["attention_mask"][:, :-n]
        variants.append((f"drop_last_{n}", kt))
        rec["truncate_tokens"] = n
    for vname, vkw in variants:
        toks, step_logits, vout, vpos, vdelta = greedy_manual(thinker, vkw)
        gtoks, glogits = greedy_generate(thinker, vkw)
        g = {"prompt_len": int(vkw["input_ids"].shape[1]), "tokens": toks,
             "tokens_generate": gtoks, "generate_matches_manual": gtoks == toks,
             "max_abs_diff_generate_vs_manual_logits": float((glogits - step_logits).abs().max()),
             "top1_minus_top2": margins(step_logits),
             "decode_positions": [float(vkw["input_ids"].shape[1] + i + vdelta.reshape(-1)[0])
                                  for i in range(N_GEN - 1)],
             "rope_delta": float(vdelta.reshape(-1)[0]), "tensors": {}}
        assert gtoks == toks, (name, vname, gtoks, toks)
        w.put(g["tensors"], "step_logits", f"{name}.gen_{vname}.step_logits", t2n(step_logits), "f32")
        w.put(g["tensors"], "tokens", f"{name}.gen_{vname}.tokens", np.array(toks), "i32")
        if vname != "full":
            w.put(g["tensors"], "position_ids", f"{name}.gen_{vname}.position_ids", t2n(vpos[:, 0, :]), "f32")
            # prefix logits equal the full prompt's (causal): record the max diff
            g["max_abs_diff_prefix_logits_vs_full"] = float(
                (vout.logits[0] - logits[: vkw["input_ids"].shape[1]]).abs().max())
        gen[vname] = g
    rec["greedy"] = gen
    return rec, kw


# ---------------------------------------------------------------- checkpoint
def save_checkpoint(model, out_dir, dtype):
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    m = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    m.save_pretrained(out_dir)
    return m


def tensor_listing(path):
    out = []
    with safe_open(path, "pt") as f:
        meta = f.metadata()
        for k in sorted(f.keys()):
            sl = f.get_slice(k)
            out.append({"name": k, "dtype": sl.get_dtype(), "shape": list(sl.get_shape())})
    return out, meta


def check_expert_layout(model, st_path):
    """The file holds per-expert hub names; each equals the matching slice of the fused in-memory tensor."""
    sd = model.state_dict()
    cfg = model.config.thinker_config.text_config
    I = cfg.moe_intermediate_size
    n_checked = 0
    with safe_open(st_path, "pt") as f:
        keys = set(f.keys())
        assert not any("gate_up_proj" in k or k.endswith("experts.down_proj") for k in keys), "fused names saved"
        for L in range(cfg.num_hidden_layers):
            base = f"thinker.model.layers.{L}.mlp"
            if f"{base}.experts.gate_up_proj" not in sd:
                continue
            gu = sd[f"{base}.experts.gate_up_proj"]
            dn = sd[f"{base}.experts.down_proj"]
            for e in range(cfg.num_experts):
                assert torch.equal(f.get_tensor(f"{base}.experts.{e}.gate_proj.weight"), gu[e, :I]), (L, e)
                assert torch.equal(f.get_tensor(f"{base}.experts.{e}.up_proj.weight"), gu[e, I:]), (L, e)
                assert torch.equal(f.get_tensor(f"{base}.experts.{e}.down_proj.weight"), dn[e]), (L, e)
                n_checked += 3
            assert torch.equal(f.get_tensor(f"{base}.gate.weight"), sd[f"{base}.gate.weight"])
    return n_checked


def layer_kinds(model):
    return ["moe" if isinstance(l.mlp, mq.Qwen3OmniMoeThinkerTextSparseMoeBlock) else "dense"
            for l in model.thinker.model.layers]


def collect_id_fields(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(collect_id_fields(v, f"{prefix}{k}."))
        elif k.endswith("_token_id") or k.endswith("_id") and isinstance(v, int):
            out[prefix + k] = v
    return out


def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "test/fixtures/engine")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok, proc = ff.build_processor()
    for text, real, _ in SPECIAL_TOKENS:
        assert tok.convert_tokens_to_ids(text) == real or tok.encode(text) == [real], (text, real)

    model = build_model()
    assert not hasattr(model, "talker")
    f32_dir = os.path.join(out_root, "tiny")
    bf16_dir = os.path.join(out_root, "tiny-bf16")
    gdir = os.path.join(out_root, "goldens")
    if os.path.exists(gdir):
        shutil.rmtree(gdir)
    save_checkpoint(model, f32_dir, torch.float32)
    st = os.path.join(f32_dir, "model.safetensors")
    n_expert_checked = check_expert_layout(model, st)
    listing, meta = tensor_listing(st)

    w = Writer(gdir)
    manifest = {
        "generator": "scripts/engine_fixtures.py",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "seed": SEED, "init": "every parameter re-initialised (seeded_init): weights N(0,1/fan_in), "
                              "embed_tokens/pos_embed N(0,0.25), norm weights 1+N(0,0.01), biases N(0,0.0025)",
        "byte_order": "little-endian", "threads": 1,
        "special_tokens": [{"token": t, "real_id": r, "tiny_id": i} for t, r, i in SPECIAL_TOKENS],
        "ordinary_id_remap": f"tiny = {ORDINARY_BASE} + real % {ORDINARY_MOD}",
        "config_id_fields": collect_id_fields(json.load(open(os.path.join(f32_dir, "config.json")))),
        "text_layer_kinds": layer_kinds(model),
        "checkpoint": {"dir": "tiny", "dtype": "float32", "safetensors_metadata": meta, "tensors": listing,
                       "n_tensors": len(listing),
                       "expert_layout": "per-expert hub names (thinker.model.layers.N.mlp.experts.E."
                                        "{gate,up,down}_proj.weight + mlp.gate.weight), written by "
                                        "save_pretrained's reverse conversion; in memory transformers fuses "
                                        "them into experts.gate_up_proj (E, 2*I, H) = cat(gate, up) and "
                                        "experts.down_proj (E, H, I)",
                       "expert_tensors_checked_equal_to_fused_slices": n_expert_checked},
        "cases": {},
    }

    case_kw = {}
    for case in CASES:
        rec, kw = run_case(proc, model, w, case)
        manifest["cases"][case["name"]] = rec
        case_kw[case["name"]] = kw
        g = rec["greedy"]["full"]
        print(f"{case['name']}: S={rec['seq_len']} delta={rec['rope_delta']} greedy={g['tokens']} "
              f"min margin={min(g['top1_minus_top2']):.4f}", flush=True)

    # ---- reload the saved checkpoint with from_pretrained and re-check every case's logits
    reloaded = mq.Qwen3OmniMoeForConditionalGeneration.from_pretrained(f32_dir, dtype=torch.float32).eval()
    sd0, sd1 = model.state_dict(), reloaded.state_dict()
    assert sd0.keys() == sd1.keys()
    assert all(torch.equal(sd0[k], sd1[k]) for k in sd0), "reloaded weights differ"
    reload_diffs = {}
    for case in CASES:
        kw = case_kw[case["name"]]
        a, _, _, _ = forward_full(model.thinker, kw)
        b, _, _, _ = forward_full(reloaded.thinker, kw)
        reload_diffs[case["name"]] = float((a.logits - b.logits).abs().max())
    manifest["reload_check"] = {"weights_identical": True, "max_abs_logit_diff_per_case": reload_diffs}
    print("reload diffs", reload_diffs)

    # ---- bf16 checkpoint + goldens (bf16 weights upcast to f32, f32 compute)
    save_checkpoint(model, bf16_dir, torch.bfloat16)
    st16 = os.path.join(bf16_dir, "model.safetensors")
    listing16, meta16 = tensor_listing(st16)
    m16 = mq.Qwen3OmniMoeForConditionalGeneration.from_pretrained(bf16_dir, dtype=torch.float32).eval()
    for k, v in m16.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, sd0[k].to(torch.bfloat16).float()), k
    bf = {"dir": "tiny-bf16", "dtype": "bfloat16", "safetensors_metadata": meta16,
          "tensors_same_names_and_shapes_as_f32": [(t["name"], t["shape"]) for t in listing16]
          == [(t["name"], t["shape"]) for t in listing],
          "computation": "weights = bf16(round-to-nearest-even of the f32 weights) loaded with "
                         "from_pretrained(tiny-bf16, dtype=float32), i.e. upcast exactly to f32; all compute "
                         "in float32; inputs = case 'text' inputs", "tensors": {}}
    kw = case_kw["text"]
    out16, _, _, _ = forward_full(m16.thinker, kw)
    w.put(bf["tensors"], "logits", "bf16.text.logits", t2n(out16.logits[0]), "f32")
    toks16, sl16, _, _, _ = greedy_manual(m16.thinker, kw)
    w.put(bf["tensors"], "greedy_tokens", "bf16.text.gen_full.tokens", np.array(toks16), "i32")
    w.put(bf["tensors"], "greedy_step_logits", "bf16.text.gen_full.step_logits", t2n(sl16), "f32")
    bf["greedy_tokens"] = toks16
    bf["top1_minus_top2"] = margins(sl16)
    a, _, _, _ = forward_full(model.thinker, kw)
    bf["max_abs_diff_vs_f32_logits"] = float((a.logits - out16.logits).abs().max())
    manifest["bf16"] = bf

    manifest["goldens_bytes"] = w.total
    with open(os.path.join(gdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
    sizes = {d: sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(os.path.join(out_root, d))
                    for x in fs) for d in ("tiny", "tiny-bf16", "goldens")}
    print("sizes", sizes, "total", sum(sizes.values()))


if __name__ == "__main__":
    main()
