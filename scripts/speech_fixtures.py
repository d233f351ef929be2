#!/usr/bin/env python3
"""Tiny random-weight Qwen3-Omni checkpoint WITH audio output (talker, code predictor, code2wav) + goldens
for the native speech stages.

  .venv-ref/bin/python scripts/speech_fixtures.py [OUT_DIR]     # default test/fixtures/speech

Writes (format: test/fixtures/speech/README.md):
  tiny/      Qwen3OmniMoeForConditionalGeneration.save_pretrained (config.json, generation_config.json,
             model.safetensors), enable_audio_output true, float32, hub tensor names (talker MoE experts
             stored per expert). The thinker is exactly test/fixtures/engine/tiny (same config, same seeded
             init, checked bit-for-bit when that checkpoint exists).
  goldens/   manifest.json + raw little-endian tensors:
             code2wav.*   fixed random codes -> waveform (forward, chunked_decode) + per-stage intermediates
             cp.*         code predictor alone: given talker hidden + layer-0 code -> greedy codes 1..15
             talker_<case>.*  talker prompt embeddings, greedy layer-0 codes/logits per step, predictor calls,
                          and the full model.generate(...) output (text ids, codes, waveform).

The thinker part (config, special-id remap, prompt building, seeded init, tensor writer) is imported from
scripts/engine_fixtures.py. The codec vocabulary is shrunk (codebook 128 instead of 2048) with every codec
special id shifted by the same amount (-1920) so the talker/codec layout keeps the real structure:
codes [0, C), specials C+100.., speakers C+253.., talker vocab C+1024 (generate suppresses [vocab-1024, vocab)
except codec EOS, exactly as for the real model).
"""
import copy
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import engine_fixtures as ef  # noqa: E402  (imports fusion_fixtures -> torchvision shim)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers.models.qwen3_omni_moe import modeling_qwen3_omni_moe as mq  # noqa: E402
from transformers.models.qwen3_omni_moe.configuration_qwen3_omni_moe import Qwen3OmniMoeConfig  # noqa: E402

ROOT = ef.ROOT
T = ef.T
SEED = ef.SEED              # thinker init: identical to engine fixtures
SPEECH_SEED = 20240612      # talker / code predictor / code2wav init
DATA_SEED = 20240613        # random codes / hidden states fed to the stand-alone goldens

# ---------------------------------------------------------------- codec ids (real - 1920)
C = 128                      # codebook size (real 2048)
SHIFT = 2048 - C
CODEC = dict(codec_pad_id=2148 - SHIFT, codec_bos_id=2149 - SHIFT, codec_eos_token_id=2150 - SHIFT,
             codec_nothink_id=2155 - SHIFT, codec_think_bos_id=2156 - SHIFT, codec_think_eos_id=2157 - SHIFT)
SPEAKERS = {"chelsie": 2301 - SHIFT, "ethan": 2302 - SHIFT, "aiden": 2303 - SHIFT}
TALKER_VOCAB = C + 1024      # real 3072 = 2048 + 1024

ROPE_1D = {"rope_type": "default", "rope_theta": 1000000.0}


def make_cfg():
    cfg = copy.deepcopy(ef.CFG)
    cfg["enable_audio_output"] = True
    tc = cfg["talker_config"]
    tc.update(CODEC)
    tc["speaker_id"] = dict(SPEAKERS)
    tc.update(thinker_hidden_size=64, accept_hidden_layer=1, num_code_groups=16, spatial_merge_size=2)
    tc["text_config"] = {
        "vocab_size": TALKER_VOCAB, "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu",
        "rms_norm_eps": 1e-6, "moe_intermediate_size": 32, "shared_expert_intermediate_size": 64,
        "num_experts": 4, "num_experts_per_tok": 2, "norm_topk_prob": True, "decoder_sparse_step": 1,
        "mlp_only_layers": [], "attention_bias": False, "rope_parameters": copy.deepcopy(ef.ROPE)}
    tc["code_predictor_config"] = {
        "vocab_size": C, "hidden_size": 64, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "hidden_act": "silu",
        "rms_norm_eps": 1e-6, "num_code_groups": 16, "attention_bias": False, "rope_parameters": dict(ROPE_1D)}
    cfg["code2wav_config"] = {
        "codebook_size": C, "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 2, "intermediate_size": 64, "hidden_act": "silu", "rms_norm_eps": 1e-5,
        "sliding_window": 8, "num_quantizers": 16, "upsample_rates": [8, 5, 4, 3], "upsampling_ratios": [2, 2],
        "decoder_dim": 32, "layer_scale_initial_scale": 0.01, "attention_bias": False,
        "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0}}
    return cfg


# ---------------------------------------------------------------- init
def speech_init(modules):
    """Deterministic init of talker + code2wav parameters (generator SPEECH_SEED, in named_parameters order):
    Linear / conv weights N(0, 1/fan_in) (transposed conv: fan_in = in_ch * kernel / stride), embeddings
    N(0, 0.5^2), RMS/LayerNorm weights 1 + N(0, 0.1^2), biases N(0, 0.05^2), SnakeBeta alpha/beta (log-scale
    parameters) N(0, 0.2^2), code2wav LayerScale scale and ConvNeXt gamma 0.3 + N(0, 0.05^2) (real init 0.01 /
    1e-6 would make those paths vanish). Then, to keep the vocoder's gain near 1 (each decoder block has 3
    residual units; unit-variance branches would triple the amplitude per block and the output would sit in
    the [-1, 1] clamp), the residual units' conv2 weights are scaled by RES_SCALE and the final 1-channel conv
    by FINAL_SCALE."""
    g = torch.Generator().manual_seed(SPEECH_SEED)
    with torch.no_grad():
        for prefix, mod in modules:
            kinds = {}
            for mname, m in mod.named_modules():
                kinds[mname] = m
            for name, p in mod.named_parameters():
                owner = kinds[name.rsplit(".", 1)[0]] if "." in name else mod
                leaf = name.split(".")[-1]
                if isinstance(owner, mq.Qwen3OmniMoeSnakeBeta):
                    v = 0.2 * torch.randn(p.shape, generator=g)
                elif leaf == "scale" or leaf == "gamma":
                    v = 0.3 + 0.05 * torch.randn(p.shape, generator=g)
                elif leaf == "bias":
                    v = 0.05 * torch.randn(p.shape, generator=g)
                elif isinstance(owner, (torch.nn.LayerNorm,)) or (p.dim() == 1 and "norm" in name):
                    v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
                elif isinstance(owner, torch.nn.Embedding):
                    v = 0.5 * torch.randn(p.shape, generator=g)
                elif isinstance(owner, torch.nn.ConvTranspose1d):
                    fan_in = p.shape[0] * p.shape[2] / owner.stride[0]
                    v = torch.randn(p.shape, generator=g) / np.sqrt(fan_in)
                elif leaf in ("gate_up_proj", "down_proj") and p.dim() == 3:  # fused experts (E, out, in)
                    v = torch.randn(p.shape, generator=g) / np.sqrt(p.shape[-1])
                else:
                    fan_in = int(np.prod(p.shape[1:]))
                    v = torch.randn(p.shape, generator=g) / np.sqrt(fan_in)
                p.copy_(v.to(p.dtype))
        for mod_name, m in modules:
            if mod_name != "code2wav":
                continue
            for sub in m.modules():
                if isinstance(sub, mq.Qwen3OmniMoeCode2WavDecoderResidualUnit):
                    sub.conv2.conv.weight.mul_(RES_SCALE)
            m.decoder[-1].conv.weight.mul_(FINAL_SCALE)


RES_SCALE = 0.3
FINAL_SCALE = 0.15


def build_model():
    torch.manual_seed(SEED)
    config = Qwen3OmniMoeConfig(**make_cfg())
    model = mq.Qwen3OmniMoeForConditionalGeneration(config).eval()
    ef.seeded_init(model.thinker)  # same generator sequence as the thinker-only engine fixture
    speech_init([("talker", model.talker), ("code2wav", model.code2wav)])
    return model


# ---------------------------------------------------------------- helpers
def t2n(x):
    return ef.t2n(x)


def check_talker_expert_layout(model, st_path):
    sd = model.state_dict()
    cfg = model.config.talker_config.text_config
    I = cfg.moe_intermediate_size
    n = 0
    with safe_open(st_path, "pt") as f:
        keys = set(f.keys())
        assert not any("gate_up_proj" in k or k.endswith("experts.down_proj") for k in keys), "fused names saved"
        for L in range(cfg.num_hidden_layers):
            base = f"talker.model.layers.{L}.mlp"
            gu, dn = sd[f"{base}.experts.gate_up_proj"], sd[f"{base}.experts.down_proj"]
            for e in range(cfg.num_experts):
                assert torch.equal(f.get_tensor(f"{base}.experts.{e}.gate_proj.weight"), gu[e, :I])
                assert torch.equal(f.get_tensor(f"{base}.experts.{e}.up_proj.weight"), gu[e, I:])
                assert torch.equal(f.get_tensor(f"{base}.experts.{e}.down_proj.weight"), dn[e])
                n += 3
            for k in ("gate.weight", "shared_expert.gate_proj.weight", "shared_expert.up_proj.weight",
                      "shared_expert.down_proj.weight", "shared_expert_gate.weight"):
                assert torch.equal(f.get_tensor(f"{base}.{k}"), sd[f"{base}.{k}"]), k
    return n + ef.check_expert_layout(model, st_path)


def thinker_matches_engine_fixture(st_path):
    """Every tensor of test/fixtures/engine/tiny/model.safetensors is in our file, bit-identical."""
    p = os.path.join(ROOT, "test/fixtures/engine/tiny/model.safetensors")
    if not os.path.exists(p):
        return None
    with safe_open(p, "pt") as f, safe_open(st_path, "pt") as g:
        mine = set(g.keys())
        for k in f.keys():
            if k not in mine or not torch.equal(f.get_tensor(k), g.get_tensor(k)):
                return False
    return True


# ---------------------------------------------------------------- (a) code2wav
N_FRAMES = 12
SMALL_CHUNK, SMALL_CTX = 5, 3


def chunk_plan(n, chunk_size, left_context):
    """Mirror of Qwen3OmniMoeCode2Wav.chunked_decode's loop."""
    plan, start = [], 0
    while start < n:
        end = min(start + chunk_size, n)
        ctx = left_context if start - left_context > 0 else start
        plan.append({"start": start, "end": end, "context": ctx, "decoded_frames": [start - ctx, end]})
        start = end
    return plan


def code2wav_goldens(model, w, man):
    c2w = model.code2wav
    g = torch.Generator().manual_seed(DATA_SEED)
    codes = torch.randint(0, C, (1, 16, N_FRAMES), generator=g)
    rec = {"tensors": {}, "n_frames": N_FRAMES}
    tens = rec["tensors"]
    w.put(tens, "codes", "code2wav.codes", t2n(codes[0]), "i32")

    cap = {}
    hooks = [c2w.pre_transformer.register_forward_pre_hook(
        lambda m, a, kw: cap.__setitem__("embed_mean", kw["inputs_embeds"].detach().clone()), with_kwargs=True),
        c2w.pre_transformer.register_forward_hook(
            lambda m, a, o: cap.__setitem__("pre_transformer_out", o.last_hidden_state.detach().clone()))]
    for i, blocks in enumerate(c2w.upsample):
        hooks.append(blocks[0].register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f"upsample{i}_transconv_out", o.detach().clone())))
        hooks.append(blocks[1].register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f"upsample{i}_out", o.detach().clone())))
    for i, blk in enumerate(c2w.decoder):
        hooks.append(blk.register_forward_hook(
            lambda m, a, o, i=i: cap.__setitem__(f"decoder{i}_out", o.detach().clone())))
    with torch.no_grad():
        wav = c2w(codes)
    for h in hooks:
        h.remove()
    n_dec = len(c2w.decoder)
    order = ["embed_mean", "pre_transformer_out"]
    for i in range(len(c2w.upsample)):
        order += [f"upsample{i}_transconv_out", f"upsample{i}_out"]
    # decoder.{n-2} is the bare SnakeBeta before the last conv: not stored (size), derive it from decoder{n-3}
    order += [f"decoder{i}_out" for i in range(n_dec) if not isinstance(c2w.decoder[i], mq.Qwen3OmniMoeSnakeBeta)]
    for k in order:
        w.put(tens, k, f"code2wav.{k}", t2n(cap[k][0]), "f32")
    w.put(tens, "wav", "code2wav.wav", t2n(wav[0, 0]), "f32")
    rec["wav_len"] = int(wav.shape[-1])
    rec["wav_len_formula"] = f"1920*{N_FRAMES} - 555 = {1920 * N_FRAMES - 555}"
    assert wav.shape[-1] == 1920 * N_FRAMES - 555
    rec["decoder_modules"] = [type(b).__name__ for b in c2w.decoder]
    rec["clamp_fraction"] = float((wav.abs() >= 1).float().mean())
    # default chunked decode (300 / 25): one chunk for 12 frames -> identical to forward
    with torch.no_grad():
        wav_def = c2w.chunked_decode(codes, chunk_size=300, left_context_size=25)
        wav_small = c2w.chunked_decode(codes, chunk_size=SMALL_CHUNK, left_context_size=SMALL_CTX)
    rec["chunked_default"] = {"chunk_size": 300, "left_context_size": 25,
                              "equals_forward": bool(torch.equal(wav_def, wav))}
    assert torch.equal(wav_def, wav)
    plan = chunk_plan(N_FRAMES, SMALL_CHUNK, SMALL_CTX)
    rec["chunked_small"] = {"chunk_size": SMALL_CHUNK, "left_context_size": SMALL_CTX, "plan": plan,
                            "samples_per_chunk": [1920 * (p["end"] - p["start"]) - 555 for p in plan],
                            "wav_len": int(wav_small.shape[-1]), "tensors": {}}
    assert wav_small.shape[-1] == sum(rec["chunked_small"]["samples_per_chunk"])
    w.put(rec["chunked_small"]["tensors"], "wav", "code2wav.chunked_c5_l3.wav", t2n(wav_small[0, 0]), "f32")
    # per-chunk check: each chunk = forward(codes[start-ctx:end])[ctx*1920:]
    with torch.no_grad():
        parts = [c2w(codes[..., p["start"] - p["context"]: p["end"]])[..., p["context"] * 1920:] for p in plan]
    assert torch.equal(torch.cat(parts, -1), wav_small)
    # first chunk (no context) is a prefix of the full decode? (causal model: yes up to the 555-sample tail)
    n0 = parts[0].shape[-1]
    d0 = float((parts[0] - wav[..., :n0]).abs().max())
    rec["chunked_small"]["first_chunk_vs_forward_prefix_max_abs_diff"] = d0
    assert d0 < 1e-4, d0  # causal: a decode of frames [0, m) is a prefix of the decode of [0, n), n > m
    # sliding window of the pre-transformer: perturb frame 0, see which output frames move
    with torch.no_grad():
        codes2 = codes.clone()
        codes2[:, :, 0] = (codes2[:, :, 0] + 1) % C
        h1 = c2w.pre_transformer(inputs_embeds=c2w.code_embedding(codes + c2w.code_offset).mean(1)).last_hidden_state
        h2 = c2w.pre_transformer(inputs_embeds=c2w.code_embedding(codes2 + c2w.code_offset).mean(1)).last_hidden_state
    changed = [int(i) for i in range(N_FRAMES) if not torch.equal(h1[0, i], h2[0, i])]
    rec["sliding_window_probe"] = {"perturbed_frame": 0, "pre_transformer_frames_changed": changed,
                                   "meaning": "query frame i attends key frames j with i - W < j <= i "
                                              f"(W = sliding_window = {model.config.code2wav_config.sliding_window})"}
    assert changed == list(range(model.config.code2wav_config.sliding_window)), changed
    man["code2wav"] = rec
    return rec


# ---------------------------------------------------------------- (b) code predictor alone
CP_FRAMES = 3


def predictor_manual(model, prefill):
    """prefill: [1, 2, H] = [talker hidden, talker.codec_embedding(code0)]. Greedy loop with DynamicCache.
    Returns codes [15], logits [15, C], decode input embeddings [14, H]."""
    cp = model.talker.code_predictor
    codes, logits, dec_in = [], [], []
    with torch.no_grad():
        o = cp.model(inputs_embeds=prefill, use_cache=True,
                     position_ids=torch.arange(2).unsqueeze(0))
        cache = o.past_key_values
        lg = cp.lm_head[0](o.last_hidden_state[:, -1])
        logits.append(lg[0])
        codes.append(int(lg[0].argmax()))
        for k in range(1, 15):
            e = cp.model.codec_embedding[k - 1](torch.tensor([[codes[-1]]]))
            dec_in.append(e[0, 0])
            o = cp.model(inputs_embeds=e, past_key_values=cache, use_cache=True,
                         position_ids=torch.tensor([[k + 1]]))
            cache = o.past_key_values
            lg = cp.lm_head[k](o.last_hidden_state[:, -1])
            logits.append(lg[0])
            codes.append(int(lg[0].argmax()))
    return codes, torch.stack(logits), torch.stack(dec_in)


def predictor_generate(model, prefill):
    cp = model.talker.code_predictor
    with torch.no_grad():
        r = cp.generate(inputs_embeds=prefill, max_new_tokens=15, do_sample=False, output_logits=True,
                        return_dict_in_generate=True)
    return r.sequences[0].tolist(), torch.stack([l[0] for l in r.logits])


def margins(x):
    return ef.margins(x)


def code_predictor_goldens(model, w, man):
    g = torch.Generator().manual_seed(DATA_SEED + 1)
    H = model.config.talker_config.text_config.hidden_size
    hidden = torch.randn(CP_FRAMES, H, generator=g)
    code0 = torch.randint(0, C, (CP_FRAMES,), generator=g)
    rec = {"frames": CP_FRAMES, "tensors": {}}
    prefills, codes_all, logits_all, dec_all, mg = [], [], [], [], []
    dmax = 0.0
    for f in range(CP_FRAMES):
        with torch.no_grad():
            e0 = model.talker.get_input_embeddings()(code0[f:f + 1])  # talker codec embedding (vocab TALKER_VOCAB)
        prefill = torch.stack([hidden[f], e0[0]]).unsqueeze(0)
        codes, logits, dec_in = predictor_manual(model, prefill)
        gcodes, glogits = predictor_generate(model, prefill)
        assert gcodes == codes, (gcodes, codes)
        dmax = max(dmax, float((glogits - logits).abs().max()))
        prefills.append(prefill[0]); codes_all.append(codes); logits_all.append(logits); dec_all.append(dec_in)
        mg.append(min(margins(logits)))
    t = rec["tensors"]
    w.put(t, "talker_hidden", "cp.talker_hidden", t2n(hidden), "f32")
    w.put(t, "code0", "cp.code0", t2n(code0), "i32")
    w.put(t, "prefill_embeds", "cp.prefill_embeds", t2n(torch.stack(prefills)), "f32")
    w.put(t, "decode_embeds", "cp.decode_embeds", t2n(torch.stack(dec_all)), "f32")
    w.put(t, "logits", "cp.logits", t2n(torch.stack(logits_all)), "f32")
    w.put(t, "codes", "cp.codes", np.array(codes_all), "i32")
    rec["codes"] = codes_all
    rec["min_top1_minus_top2"] = min(mg)
    rec["generate_matches_manual"] = True
    rec["generate_vs_manual_logits_max_abs_diff"] = dmax
    assert dmax < 1e-5, dmax
    man["code_predictor"] = rec


# ---------------------------------------------------------------- (c) talker + full generate
THINKER_NEW = 6
TALKER_NEW = 9

TALKER_CASES = [
    dict(name="text", desc="system + user text prompt (system turn is dropped from the talker prompt)",
         speaker="Ethan", messages=[
             {"role": "system", "content": "You are a helpful assistant."},
             {"role": "user", "content": [ef.text_item("Say hello to the people in the room.")]}]),
    dict(name="image", desc="user turn with one 64x96 image: image pad tokens go through hidden_projection "
                            "(thinker layer accept_hidden_layer output), talker rope uses the image grid",
         speaker="Chelsie", images=[(64, 96)], messages=[
             {"role": "user", "content": [{"type": "image"}, ef.text_item("Describe it aloud.")]}]),
]


class Capture:
    """Wraps talker.generate / code_predictor.generate / code2wav.chunked_decode of one model instance."""

    def __init__(self, model):
        self.model = model
        self.talker_calls, self.cp_calls, self.c2w_calls = [], [], []
        t, cp, c2w = model.talker, model.talker.code_predictor, model.code2wav
        self.orig = (t.generate, cp.generate, c2w.chunked_decode)
        tg, cg, cd = self.orig

        def talker_gen(*a, **kw):
            kw = dict(kw)
            kw["output_logits"] = True
            kw["output_scores"] = True
            r = tg(*a, **kw)
            self.talker_calls.append((kw, r))
            return r

        def cp_gen(*a, **kw):
            kw = dict(kw)
            kw["output_logits"] = True
            r = cg(*a, **kw)
            self.cp_calls.append((kw, r))
            return r

        def c2w_dec(codes, *a, **kw):
            r = cd(codes, *a, **kw)
            self.c2w_calls.append((codes.clone(), a, kw, r))
            return r

        t.generate, cp.generate, c2w.chunked_decode = talker_gen, cp_gen, c2w_dec

    def close(self):
        t, cp, c2w = self.model.talker, self.model.talker.code_predictor, self.model.code2wav
        del t.generate, cp.generate, c2w.chunked_decode  # back to the class methods


def full_generate(model, kw, speaker, **extra):
    cap = Capture(model)
    model.thinker.rope_deltas = None
    model.talker.rope_deltas = None
    try:
        with torch.no_grad():
            seq, wav = model.generate(**kw, speaker=speaker, thinker_max_new_tokens=THINKER_NEW,
                                      thinker_do_sample=False, thinker_eos_token_id=T["<|im_end|>"],
                                      talker_max_new_tokens=TALKER_NEW, talker_do_sample=False,
                                      return_audio=True, **extra)
    finally:
        cap.close()
    return seq, wav, cap


def build_talker_prompt(model, kw, seq, speaker):
    """Independent re-implementation of the talker prompt (spec 8.1 step 2) from thinker forward outputs."""
    cfg = model.config
    tcfg = cfg.talker_config
    th = model.thinker
    S = kw["input_ids"].shape[1]
    fed = seq[:, :-1]  # every token the thinker consumed (the last generated token is never fed)
    # thinker forward over prompt + reply[:-1] == the hidden states generate collected
    fkw = {k: v for k, v in kw.items() if k not in ("input_ids", "attention_mask")}
    th.rope_deltas = None
    with torch.no_grad():
        o = th(input_ids=fed, attention_mask=torch.ones_like(fed), output_hidden_states=True, **fkw)
    emb = o.hidden_states[0]
    hid = o.hidden_states[tcfg.accept_hidden_layer]
    ids = kw["input_ids"][0].tolist()
    # user positions: nearest preceding <|im_start|> followed by 'user'
    user_pos, role = [], None
    for i, t in enumerate(ids):
        if t == cfg.im_start_token_id:
            role = ids[i + 1] if i + 1 < S else None
        if role == cfg.user_token_id:
            user_pos.append(i)
    mm_ids = {th.config.audio_token_id, th.config.image_token_id, th.config.video_token_id}
    tp, hp = model.talker.text_projection, model.talker.hidden_projection
    with torch.no_grad():
        user = torch.stack([hp(hid[0, i]) if ids[i] in mm_ids else tp(emb[0, i]) for i in user_pos])
        a = max(i for i in range(S - 1) if ids[i] == cfg.im_start_token_id and ids[i + 1] == cfg.assistant_token_id)
        special = th.get_input_embeddings()(torch.tensor([cfg.tts_bos_token_id, cfg.tts_eos_token_id,
                                                          cfg.tts_pad_token_id]))
        bos_e, eos_e, pad_e = tp(special)
        asst = tp(emb[0, a:])  # im_start, assistant, \n, reply[0], ..., reply[n-2]
        text_side = torch.cat([asst[:3], pad_e.expand(4, -1), bos_e[None], asst[3:4]])
        codec_ids = [tcfg.codec_nothink_id, tcfg.codec_think_bos_id, tcfg.codec_think_eos_id,
                     tcfg.speaker_id[speaker.lower()], tcfg.codec_pad_id, tcfg.codec_bos_id]
        codec_side = torch.cat([torch.zeros(3, asst.shape[-1]), model.talker.get_input_embeddings()(
            torch.tensor(codec_ids))])
        trailing = torch.cat([asst[4:], eos_e[None]])
        # thinker EOS relocation (generate): entries after the first EOS -> tts_pad, at it -> tts_eos
        reply = seq[0, S:].tolist()
        e = next((j for j, t in enumerate(reply) if t == cfg.im_end_token_id), len(reply))
        for j in range(trailing.shape[0]):
            if j > e:
                trailing[j] = pad_e
            elif j == e:
                trailing[j] = eos_e
    inputs_embeds = torch.cat([user, text_side + codec_side])
    talker_ids = [ids[i] for i in user_pos] + [cfg.tts_pad_token_id] * text_side.shape[0]
    return dict(inputs_embeds=inputs_embeds, talker_input_ids=talker_ids, user_positions=user_pos,
                assistant_start=a, user_embeds=user, assistant_text_side=text_side,
                assistant_codec_side=codec_side, codec_prompt_ids=codec_ids, trailing_text_hidden=trailing,
                tts_bos_embed=bos_e, tts_eos_embed=eos_e, tts_pad_embed=pad_e, thinker_embeds=emb[0],
                thinker_accept_hidden=hid[0])


def talker_positions(model, kw, talker_ids):
    """Talker rope positions [3, L] + delta (talker.get_rope_index over the thinker-vocab ids, or arange)."""
    L = len(talker_ids)
    has_mm = any(kw.get(k) is not None for k in ("image_grid_thw", "video_grid_thw", "feature_attention_mask"))
    if not has_mm:
        return torch.arange(L).view(1, 1, L).expand(3, 1, L).clone(), torch.zeros(1, 1, dtype=torch.long)
    fam = kw.get("feature_attention_mask")
    ids = torch.tensor([talker_ids])
    return model.talker.get_rope_index(ids, kw.get("image_grid_thw"), kw.get("video_grid_thw"),
                                       torch.ones_like(ids), False,
                                       fam.sum(-1) if fam is not None else None, kw.get("video_second_per_grid"))


def talker_manual(model, prompt, pos, delta, n_steps, rep_penalty=1.0):
    """Greedy talker loop built from primitives (talker.model, codec_head, code predictor).
    Returns per-step data."""
    tk = model.talker
    tcfg = model.config.talker_config
    V = tcfg.text_config.vocab_size
    suppress = torch.zeros(V, dtype=torch.bool)
    suppress[V - 1024:] = True
    suppress[tcfg.codec_eos_token_id] = False
    L = prompt["inputs_embeds"].shape[0]
    out = dict(codes0=[], logits=[], hidden=[], step_embeds=[], cp_prefill=[], cp_logits=[], cp_codes=[],
               positions=[])
    with torch.no_grad():
        text_pos = torch.arange(L).view(1, 1, L)
        o = tk.model(inputs_embeds=prompt["inputs_embeds"][None], position_ids=torch.cat([text_pos, pos]),
                     use_cache=True)
        cache = o.past_key_values
        for step in range(n_steps):
            h = o.last_hidden_state[0, -1]
            lg = tk.codec_head(h)
            out["hidden"].append(h)
            out["logits"].append(lg)
            proc = lg.clone()
            if rep_penalty != 1.0 and out["codes0"]:
                prev = torch.tensor(sorted(set(out["codes0"])))
                sc = proc[prev]
                proc[prev] = torch.where(sc < 0, sc * rep_penalty, sc / rep_penalty)
            proc[suppress] = -float("inf")
            c0 = int(proc.argmax())
            out["codes0"].append(c0)
            if step == n_steps - 1 or c0 == tcfg.codec_eos_token_id:
                break
            # code predictor on [h, emb(c0)]
            e0 = tk.get_input_embeddings()(torch.tensor([c0]))[0]
            prefill = torch.stack([h, e0])[None]
            codes, cl, _ = predictor_manual(model, prefill)
            out["cp_prefill"].append(prefill[0]); out["cp_logits"].append(cl); out["cp_codes"].append(codes)
            embs = [e0] + [tk.code_predictor.model.codec_embedding[k](torch.tensor([codes[k]]))[0]
                           for k in range(15)]
            x = torch.stack(embs).sum(0)
            tr = prompt["trailing_text_hidden"]
            x = x + (tr[step] if step < tr.shape[0] else prompt["tts_pad_embed"])
            out["step_embeds"].append(x)
            p = L + step + int(delta.reshape(-1)[0])
            out["positions"].append(p)
            pp = torch.full((3, 1, 1), p, dtype=torch.long)
            o = tk.model(inputs_embeds=x[None, None], position_ids=torch.cat([torch.tensor([[[L + step]]]), pp]),
                         past_key_values=cache, use_cache=True)
            cache = o.past_key_values
    return out


def talker_case(proc, model, w, man, case):
    name = case["name"]
    rendered, real_ids, inputs, _ = ef.prepare_case(proc, case)
    kw = ef.model_kwargs(inputs, case)
    kw.pop("use_audio_in_video")
    S = kw["input_ids"].shape[1]
    rec = {"description": case["desc"], "speaker": case["speaker"],
           "speaker_id": SPEAKERS[case["speaker"].lower()], "rendered_prompt": rendered,
           "real_vocab_input_ids": real_ids, "prompt_len": S, "thinker_max_new_tokens": THINKER_NEW,
           "talker_max_new_tokens": TALKER_NEW, "tensors": {}}
    t = rec["tensors"]
    pre = f"talker_{name}"
    w.put(t, "input_ids", f"{pre}.input_ids", t2n(kw["input_ids"][0]), "i32")
    for k, dt in (("pixel_values", "f32"), ("image_grid_thw", "i32")):
        if kw.get(k) is not None:
            w.put(t, k, f"{pre}.{k}", t2n(kw[k]), dt)

    # ---- the real thing: model.generate, greedy (talker_do_sample=False, repetition penalty 1.0)
    seq, wav, cap = full_generate(model, kw, case["speaker"], talker_repetition_penalty=1.0)
    assert len(cap.talker_calls) == 1 and len(cap.c2w_calls) == 1
    tkw, tres = cap.talker_calls[0]
    reply = seq[0, S:].tolist()
    rec["thinker_reply"] = reply
    w.put(t, "sequences", f"{pre}.sequences", t2n(seq[0]), "i32")

    # ---- independent prompt construction must match what generate fed the talker
    prompt = build_talker_prompt(model, kw, seq, case["speaker"])
    d_emb = float((prompt["inputs_embeds"] - tkw["inputs_embeds"][0]).abs().max())
    d_tr = float((prompt["trailing_text_hidden"] - tkw["trailing_text_hidden"][0]).abs().max())
    assert prompt["talker_input_ids"] == tkw["talker_input_ids"][0].tolist()
    assert d_emb < 1e-6 and d_tr < 1e-6, (d_emb, d_tr)
    rec["manual_prompt_max_abs_diff"] = {"inputs_embeds": d_emb, "trailing_text_hidden": d_tr}
    rec["user_positions"] = prompt["user_positions"]
    rec["assistant_start"] = prompt["assistant_start"]
    rec["codec_prompt_ids"] = prompt["codec_prompt_ids"]
    rec["talker_input_ids"] = prompt["talker_input_ids"]
    for k in ("inputs_embeds", "user_embeds", "assistant_text_side", "assistant_codec_side",
              "trailing_text_hidden", "thinker_embeds", "thinker_accept_hidden"):
        w.put(t, k, f"{pre}.{k}", t2n(tkw["inputs_embeds"][0] if k == "inputs_embeds" else prompt[k]), "f32")
    w.put(t, "tts_special_embeds", f"{pre}.tts_special_embeds",
          t2n(torch.stack([prompt["tts_bos_embed"], prompt["tts_eos_embed"], prompt["tts_pad_embed"]])), "f32")
    w.put(t, "talker_input_ids", f"{pre}.talker_input_ids", np.array(prompt["talker_input_ids"]), "i32")
    pos, delta = talker_positions(model, kw, prompt["talker_input_ids"])
    rec["talker_rope_delta"] = int(delta.reshape(-1)[0])
    w.put(t, "talker_position_ids", f"{pre}.talker_position_ids", t2n(pos[:, 0, :]), "i32")

    # ---- generate's per-step results
    n = len(tres.logits)
    g_codes0 = tres.sequences[0, -n:].tolist() if tres.sequences.shape[1] >= n else tres.sequences[0].tolist()
    g_logits = torch.stack([l[0] for l in tres.logits])
    codes = cap.c2w_calls[0][0][0]  # [16, F] as passed to code2wav
    F_ = codes.shape[-1]

    # ---- manual loop must reproduce it
    man_out = talker_manual(model, prompt, pos, delta, TALKER_NEW)
    assert man_out["codes0"] == g_codes0, (man_out["codes0"], g_codes0)
    d_lg = float((torch.stack(man_out["logits"]) - g_logits).abs().max())
    assert d_lg < 1e-5, d_lg
    man_codes = torch.tensor([[c0] + cc for c0, cc in zip(man_out["codes0"], man_out["cp_codes"])]).T
    assert torch.equal(man_codes, codes), (man_codes, codes)
    # predictor prefill = [talker last hidden (after final norm), talker codec_embedding(code0)]
    cp_pref = torch.stack([k["inputs_embeds"][0] for k, _ in cap.cp_calls])
    d_cp = float((cp_pref - torch.stack(man_out["cp_prefill"])).abs().max())
    assert d_cp < 1e-5, d_cp
    cp_gen_logits = torch.stack([torch.stack([l[0] for l in r.logits]) for _, r in cap.cp_calls])
    d_cpl = float((cp_gen_logits - torch.stack(man_out["cp_logits"])).abs().max())
    assert d_cpl < 1e-5, d_cpl
    rec["manual_vs_generate_max_abs_diff"] = {"talker_logits": d_lg, "predictor_prefill": d_cp,
                                              "predictor_logits": d_cpl}
    rec["codes0"] = g_codes0
    rec["n_talker_steps"] = n
    rec["n_frames"] = F_
    rec["eos_emitted"] = model.config.talker_config.codec_eos_token_id in g_codes0
    rec["decode_positions"] = man_out["positions"]
    sup = torch.zeros(TALKER_VOCAB, dtype=torch.bool)
    sup[TALKER_VOCAB - 1024:] = True
    sup[model.config.talker_config.codec_eos_token_id] = False
    allowed = g_logits.masked_fill(sup, -float("inf"))
    rec["talker_top1_minus_top2_allowed"] = margins(allowed)
    rec["predictor_min_top1_minus_top2"] = min(min(margins(l)) for l in man_out["cp_logits"])
    w.put(t, "talker_logits", f"{pre}.talker_logits", t2n(g_logits), "f32")
    w.put(t, "codes0", f"{pre}.codes0", np.array(g_codes0), "i32")
    w.put(t, "talker_hidden", f"{pre}.talker_hidden", t2n(torch.stack(man_out["hidden"])), "f32")
    w.put(t, "step_embeds", f"{pre}.step_embeds", t2n(torch.stack(man_out["step_embeds"])), "f32")
    w.put(t, "cp_prefill_embeds", f"{pre}.cp_prefill_embeds", t2n(cp_pref), "f32")
    w.put(t, "cp_logits", f"{pre}.cp_logits", t2n(cp_gen_logits), "f32")
    w.put(t, "codes", f"{pre}.codes", t2n(codes), "i32")
    rec["codes_frames_x16"] = codes.T.tolist()

    # ---- waveform
    wav1 = wav.reshape(-1)
    rec["wav_len"] = int(wav1.shape[0])
    rec["wav_len_formula"] = f"1920*{F_} - 555 = {1920 * F_ - 555}"
    assert wav1.shape[0] == 1920 * F_ - 555
    with torch.no_grad():
        d_wav = float((model.code2wav(codes[None]).reshape(-1) - wav1).abs().max())
    rec["wav_equals_code2wav_forward_max_abs_diff"] = d_wav
    w.put(t, "wav", f"{pre}.wav", t2n(wav1), "f32")

    # ---- variant: greedy with the default talker_repetition_penalty 1.05
    seq2, wav2, cap2 = full_generate(model, kw, case["speaker"])
    tkw2, tres2 = cap2.talker_calls[0]
    n2 = len(tres2.logits)
    codes0_rp = tres2.sequences[0, -n2:].tolist()
    man_rp = talker_manual(model, prompt, pos, delta, TALKER_NEW, rep_penalty=1.05)
    assert man_rp["codes0"] == codes0_rp, (man_rp["codes0"], codes0_rp)
    codes_rp = cap2.c2w_calls[0][0][0]
    rec["repetition_penalty_1_05"] = {
        "codes0": codes0_rp, "codes_frames_x16": codes_rp.T.tolist(), "wav_len": int(wav2.reshape(-1).shape[0]),
        "same_as_penalty_1_0": codes0_rp == g_codes0 and torch.equal(codes_rp, codes),
        "manual_matches_generate": True}
    man[f"talker_{name}"] = rec
    print(f"talker {name}: S={S} reply={reply} codes0={g_codes0} frames={F_} wav={wav1.shape[0]} "
          f"rp1.05 codes0={codes0_rp}", flush=True)


# ---------------------------------------------------------------- main
def main():
    out_root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "test/fixtures/speech")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    tok, proc = ef.ff.build_processor()

    model = build_model()
    ck_dir = os.path.join(out_root, "tiny")
    gdir = os.path.join(out_root, "goldens")
    for d in (ck_dir, gdir):
        if os.path.exists(d):
            shutil.rmtree(d)
    model.save_pretrained(ck_dir)
    st = os.path.join(ck_dir, "model.safetensors")
    n_checked = check_talker_expert_layout(model, st)
    listing, meta = ef.tensor_listing(st)
    reloaded = mq.Qwen3OmniMoeForConditionalGeneration.from_pretrained(ck_dir, dtype=torch.float32).eval()
    sd0, sd1 = model.state_dict(), reloaded.state_dict()
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0), "reload differs"
    del reloaded

    cfgj = json.load(open(os.path.join(ck_dir, "config.json")))
    w = ef.Writer(gdir)
    man = {
        "generator": "scripts/speech_fixtures.py",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "threads": 1, "byte_order": "little-endian",
        "seeds": {"thinker_init": SEED, "speech_init": SPEECH_SEED, "data": DATA_SEED},
        "thinker_identical_to_engine_fixture_tiny": thinker_matches_engine_fixture(st),
        "codec": {"codebook_size": C, "talker_vocab": TALKER_VOCAB, "shift_from_real_ids": -SHIFT, **CODEC,
                  "speaker_id": SPEAKERS,
                  "talker_suppressed_range": [TALKER_VOCAB - 1024, TALKER_VOCAB], "samples_per_frame": 1920,
                  "sample_rate": 24000},
        "config_id_fields": ef.collect_id_fields(cfgj),
        "checkpoint": {"dir": "tiny", "dtype": "float32", "safetensors_metadata": meta, "n_tensors": len(listing),
                       "tensors": listing, "expert_tensors_checked_equal_to_fused_slices": n_checked,
                       "reload_weights_identical": True},
    }
    code2wav_goldens(model, w, man)
    print("code2wav ok", man["code2wav"]["wav_len"], flush=True)
    code_predictor_goldens(model, w, man)
    print("code predictor ok", man["code_predictor"]["codes"][0], flush=True)
    for case in TALKER_CASES:
        talker_case(proc, model, w, man, case)

    man["goldens_bytes"] = w.total
    with open(os.path.join(gdir, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1, ensure_ascii=False)
        f.write("\n")
    sizes = {d: sum(os.path.getsize(os.path.join(r, x)) for r, _, fs in os.walk(os.path.join(out_root, d))
                    for x in fs) for d in ("tiny", "goldens")}
    print("sizes", sizes, "total", sum(sizes.values()))


if __name__ == "__main__":
    main()
