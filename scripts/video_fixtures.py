#!/usr/bin/env python3
"""Golden fixtures for the Qwen3-Omni video preprocessing: decode with ffmpeg, qwen-omni-utils frame
sampling, the processor's resize / normalise / patchify, seconds per temporal grid, token expansion,
audio in video and TMRoPE positions.

Runs the real Hugging Face `transformers` Qwen3OmniMoeProcessor (Qwen2VLVideoProcessor, torchvision
backend) and the model's own get_rope_index, built from explicit configs by scripts/fusion_fixtures.py
(`build_processor`, `RopeIndex`; importing it also installs its torchvision shim). See
/work/shared/specs/qwen3-omni-io.md sections 5, 6 and 7.

How to run (from the repository root; tests never need Python; needs ffmpeg + ffprobe on PATH, with
libx264, the native aac encoder and libsoxr):

    .venv-ref/bin/python scripts/video_fixtures.py            # writes test/fixtures/video/
    .venv-ref/bin/python scripts/video_fixtures.py OUT_DIR    # or somewhere else

What it writes (binary files little-endian float32, no header, like test/fixtures/image/):

    <video>.mp4              test videos generated with ffmpeg lavfi sources (commands in the manifest,
                             `-bitexact`, one x264 thread: regenerating gives the same bytes with the
                             same ffmpeg build)
    manifest.json            per case: source info, sampled indices, sample_fps, resized size, grid,
                             tokens, seconds per grid (passed fps and the HF default), stored rows, the
                             ids / positions of a one-video chat; plus `sampling_cases` (the sampling
                             rule on many (total frames, fps) pairs) and the exact ffmpeg commands
    <case>.rows.f32          pixel_values_videos rows listed in the case's `rows_stored`, 1536 float32 each
    <case>.row_means.f32     mean of every row 0..N-1 (float64 mean, stored as float32)
    video_conversation.json  plain-video conversation (our format: parts {type, path|text}) ...
    video_expected.{safetensors,json}   ... and its full model input, as scripts/preprocess_fixture.py
    aiv_conversation.json    audio-in-video conversation ...
    aiv_expected.{safetensors,json}     ... and its model input with use_audio_in_video=True
                             (both safetensors WITHOUT pixel_values_videos, which would be megabytes:
                             its shape, sums, row means and a few rows are in the json instead)

What the reference is given (the gateway's contract, the processor does none of this itself):
  * frames: every frame ffmpeg decodes with
      ffmpeg -v error -i FILE -map 0:v:0 -fps_mode passthrough -f rawvideo -pix_fmt rgb24 pipe:1
    source fps = ffprobe's avg_frame_rate; sampled with the qwen-omni-utils rule (FPS 2, FRAME_FACTOR 2,
    min 4 / max 768 frames; indices = torch.linspace(0, total-1, n).round(), float32, half to even);
    the sampled uint8 frames (T x H x W x 3 numpy) go to the processor as videos=[frames] with its own
    videos_kwargs (size 131072..786432) and fps=sample_fps = n / total * video_fps. (The qwen-omni-utils
    pre-resize to multiples of 28 is NOT applied: the processor's uint8 resize sees the decoded frames.)
  * audio in video: the soundtrack decoded with
      ffmpeg -v error -i FILE -map 0:a:0 -af aresample=16000:resampler=soxr -ar 16000 -c:a pcm_f32le -f wav pipe:1
    as float32 samples, passed as audio=[samples] with use_audio_in_video=True.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fusion_fixtures import ROOT, RopeIndex, build_processor  # noqa: E402  (also installs the torchvision shim)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import __version__ as TRANSFORMERS_VERSION  # noqa: E402

ROW = 1536
FPS, FRAME_FACTOR, FPS_MIN_FRAMES, FPS_MAX_FRAMES = 2.0, 2, 4, 768
ENC = ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-g", "30", "-threads", "1",
       "-bitexact", "-fflags", "+bitexact", "-map_metadata", "-1"]
TONE = "aevalsrc=0.3*sin(2*PI*(220+60*sin(2*PI*3*t))*t)*(0.55+0.45*sin(2*PI*4*t)):s=44100:c=mono"
VIDEOS = {
    # (a) 320x240, 25 fps, 3.2 s, no sound
    "testsrc2_320x240.mp4": ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "3.2", *ENC, "-an"],
    # (b) 426x240 (odd aspect), 30 fps, 2.3 s, mono 44.1 kHz AAC: a 220 Hz tone with 3 Hz vibrato and a
    # 4 Hz syllable-like envelope, plus pink noise
    "tone_426x240.mp4": ["-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30", "-f", "lavfi", "-i", TONE,
                         "-f", "lavfi", "-i", "anoisesrc=color=pink:amplitude=0.05:seed=7:r=44100",
                         "-filter_complex", "[1:a][2:a]amix=inputs=2:duration=shortest:normalize=0[a]",
                         "-map", "0:v", "-map", "[a]", "-t", "2.3", *ENC, "-c:a", "aac", "-b:a", "48k", "-ac", "1"],
    # (d) portrait 240 wide x 426 high, 10 fps, 2 s
    "mandelbrot_240x426.mp4": ["-f", "lavfi", "-i", "mandelbrot=size=240x426:rate=10", "-t", "2", *ENC, "-an"],
}
CASES = [
    dict(name="testsrc2_320x240", file="testsrc2_320x240.mp4",
         description="(a) testsrc2 320x240, 25 fps, 3.2 s, no sound; sampled by the rule"),
    dict(name="tone_426x240_aiv", file="tone_426x240.mp4", audio_in_video=True,
         description="(b) testsrc2 426x240, 30 fps, 2.3 s, mono AAC soundtrack; sampled by the rule, "
                     "use_audio_in_video=True"),
    dict(name="testsrc2_5frames", file="testsrc2_320x240.mp4", indices=[0, 6, 12, 18, 24], fps=25 / 6,
         description="(c) explicit odd frame list from (a): frames 0,6,12,18,24, fps passed 25/6 (their "
                     "spacing); the processor repeats the last frame -> grid_t 3"),
    dict(name="mandelbrot_240x426", file="mandelbrot_240x426.mp4",
         description="(d) mandelbrot portrait 240 wide x 426 high, 10 fps, 2 s; sampled by the rule"),
]
PROMPT = "Describe the video."
VIDEO_CONV = [{"role": "system", "content": "You are a helpful assistant."},
              {"role": "user", "content": [{"type": "text", "text": "Watch this."},
                                           {"type": "video", "path": "testsrc2_320x240.mp4"},
                                           {"type": "text", "text": "What happens?"}]}]
AIV_CONV = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "video", "path": "tone_426x240.mp4"},
                                         {"type": "text", "text": "What do you see and hear?"}]}]


def decode_frames_cmd(path):
    return ["ffmpeg", "-v", "error", "-i", path, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo",
            "-pix_fmt", "rgb24", "pipe:1"]


def probe_cmd(path):
    return ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
            "stream=avg_frame_rate,nb_frames,width,height", "-of", "json", path]


def soxr_available():
    conf = subprocess.run(["ffmpeg", "-hide_banner", "-buildconf"], capture_output=True, text=True).stdout
    return "--enable-libsoxr" in conf


def decode_audio_cmd(path, soxr):
    af = "aresample=16000:resampler=soxr" if soxr else "aresample=16000"
    return ["ffmpeg", "-v", "error", "-i", path, "-map", "0:a:0", "-af", af, "-ar", "16000", "-c:a", "pcm_f32le",
            "-f", "wav", "pipe:1"]


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def probe(path):
    s = json.loads(run(probe_cmd(path)))["streams"][0]
    num, den = (int(v) for v in s["avg_frame_rate"].split("/"))
    return dict(width=int(s["width"]), height=int(s["height"]), avg_frame_rate=s["avg_frame_rate"],
                video_fps=num / den, nb_frames=int(s["nb_frames"]))


def decode_frames(path, w, h):
    raw = run(decode_frames_cmd(path))
    assert len(raw) % (w * h * 3) == 0, len(raw)
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3), hashlib.sha256(raw).hexdigest()


def parse_wav_f32(buf):
    """A WAV written to a pipe (sizes may be unset): fmt must be float32 (tag 3 or extensible);
    the data chunk runs to the end of the stream."""
    assert buf[:4] == b"RIFF" and buf[8:12] == b"WAVE"
    pos, fmt = 12, None
    while pos + 8 <= len(buf):
        cid, size = buf[pos:pos + 4], struct.unpack("<I", buf[pos + 4:pos + 8])[0]
        if cid == b"fmt ":
            tag, ch, rate = struct.unpack("<HHI", buf[pos + 8:pos + 16])
            bits = struct.unpack("<H", buf[pos + 22:pos + 24])[0]
            fmt = (tag, ch, rate, bits)
        elif cid == b"data":
            assert fmt is not None and fmt[0] in (3, 0xFFFE) and fmt[3] == 32, fmt
            data = buf[pos + 8:]
            data = data[:len(data) - len(data) % (4 * fmt[1])]
            return np.frombuffer(data, "<f4").reshape(-1, fmt[1]), fmt[2]
        pos += 8 + size + (size & 1)
    raise ValueError("no data chunk")


def ceil_by_factor(x, f):
    import math
    return math.ceil(x / f) * f


def floor_by_factor(x, f):
    import math
    return math.floor(x / f) * f


def smart_nframes(total, video_fps):
    """qwen-omni-utils (v2_5) smart_nframes with the default fps; None where it raises."""
    min_frames = ceil_by_factor(FPS_MIN_FRAMES, FRAME_FACTOR)
    max_frames = floor_by_factor(min(FPS_MAX_FRAMES, total), FRAME_FACTOR)
    n = total / video_fps * FPS
    n = min(min(max(n, min_frames), max_frames), total)
    n = floor_by_factor(n, FRAME_FACTOR)
    if not (FRAME_FACTOR <= n <= total):
        return None
    return n


def sample_indices(total, video_fps):
    n = smart_nframes(total, video_fps)
    if n is None:
        return None, None
    idx = torch.linspace(0, total - 1, n).round().long().tolist()
    return idx, n / total * video_fps


def make_videos(d):
    cmds = {}
    for name, args in VIDEOS.items():
        cmd = ["ffmpeg", "-v", "error", "-y", *args, name]
        subprocess.run(cmd, check=True, cwd=d)
        size = os.path.getsize(os.path.join(d, name))
        assert size < 200_000, (name, size)
        cmds[name] = cmd
    return cmds


def row_subset(n):
    return sorted({0, n - 1, *(int(round(v)) for v in np.linspace(0, n - 1, 8)[1:-1])})


def tensor_meta(v):
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
    return e


def process(proc, rope, messages, frames, fps, audio=None):
    """Processor + get_rope_index on a chat with one video (videos=[frames]); fps None = not passed."""
    rendered = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    kw = {} if fps is None else {"fps": fps}
    inputs = proc(text=rendered, videos=[frames], audio=None if audio is None else [audio], return_tensors="pt",
                  use_audio_in_video=audio is not None, **kw)
    fam = inputs.get("feature_attention_mask")
    spg = torch.as_tensor(inputs["video_second_per_grid"], dtype=torch.float32)
    pos, delta = rope.get_rope_index(inputs["input_ids"], None, inputs["video_grid_thw"], inputs["attention_mask"],
                                     audio is not None, fam.sum(-1) if fam is not None else None, spg)
    return rendered, inputs, spg, pos, delta


def frames_for(case, cache, d):
    path = os.path.join(d, case["file"])
    if case["file"] not in cache:
        info = probe(path)
        frames, digest = decode_frames(path, info["width"], info["height"])
        cache[case["file"]] = (info, frames, digest)
    return cache[case["file"]]


def run_case(proc, rope, case, cache, d, soxr):
    info, frames, digest = frames_for(case, cache, d)
    total = frames.shape[0]
    if "indices" in case:
        idx, sample_fps, rule = case["indices"], case["fps"], "explicit"
    else:
        idx, sample_fps = sample_indices(total, info["video_fps"])
        rule = "qwen-omni-utils"
    sampled = np.ascontiguousarray(frames[idx])
    audio = None
    audio_info = None
    if case.get("audio_in_video"):
        wav, sr = parse_wav_f32(run(decode_audio_cmd(os.path.join(d, case["file"]), soxr)))
        assert sr == 16000 and wav.shape[1] == 1, (sr, wav.shape)
        audio = np.ascontiguousarray(wav[:, 0])
        audio_info = dict(command=decode_audio_cmd(case["file"], soxr), resampler="soxr" if soxr else "swr",
                          num_samples=int(audio.shape[0]), seconds=audio.shape[0] / 16000,
                          sha256_f32=hashlib.sha256(audio.tobytes()).hexdigest(),
                          stats=dict(min=float(audio.min()), max=float(audio.max()),
                                     mean=float(audio.astype(np.float64).mean()),
                                     rms=float(np.sqrt((audio.astype(np.float64) ** 2).mean()))))
    msgs = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": PROMPT}]}]
    rendered, inputs, spg, pos, delta = process(proc, rope, msgs, sampled, sample_fps, audio)
    _, inputs_hf, spg_hf, pos_hf, delta_hf = process(proc, rope, msgs, sampled, None, audio)
    pv = inputs["pixel_values_videos"].numpy().astype(np.float32)
    assert np.array_equal(pv, inputs_hf["pixel_values_videos"].numpy())
    grid = [int(v) for v in inputs["video_grid_thw"][0].tolist()]
    n = pv.shape[0]
    assert pv.shape == (grid[0] * grid[1] * grid[2], ROW), pv.shape
    assert grid[0] == (len(idx) + 1) // 2
    rows = row_subset(n)
    pv[rows].tofile(os.path.join(d, case["name"] + ".rows.f32"))
    pv.astype(np.float64).mean(axis=1).astype(np.float32).tofile(os.path.join(d, case["name"] + ".row_means.f32"))
    ids = inputs["input_ids"][0].tolist()
    entry = dict(
        name=case["name"], file=case["file"], description=case["description"],
        source=dict(width=info["width"], height=info["height"], total_frames=total, nb_frames=info["nb_frames"],
                    avg_frame_rate=info["avg_frame_rate"], video_fps=info["video_fps"],
                    decoded_rgb24_sha256=digest),
        sampling=rule, num_sampled=len(idx), indices=list(idx), sample_fps=sample_fps,
        sampled_rgb24_sha256=hashlib.sha256(sampled.tobytes()).hexdigest(),
        resized_height=grid[1] * 16, resized_width=grid[2] * 16, video_grid_thw=grid,
        num_rows=n, num_video_tokens=grid[0] * grid[1] * grid[2] // 4,
        video_second_per_grid=2.0 / sample_fps,
        video_second_per_grid_f32=float(spg[0]),
        video_second_per_grid_hf_default=float(spg_hf[0]),
        rows_stored=rows,
        stats=dict(min=float(pv.min()), max=float(pv.max()), mean=float(pv.astype(np.float64).mean())),
        chat=dict(messages=[{"role": "user", "content": [{"type": "video", "path": case["file"]},
                                                         {"type": "text", "text": PROMPT}]}],
                  rendered=rendered, use_audio_in_video=audio is not None,
                  input_ids=ids, position_ids=pos[:, 0, :].tolist(), rope_delta=float(delta.reshape(-1)[0]),
                  hf_default=dict(input_ids_equal=ids == inputs_hf["input_ids"][0].tolist(),
                                  input_ids=None if ids == inputs_hf["input_ids"][0].tolist()
                                  else inputs_hf["input_ids"][0].tolist(),
                                  position_ids=pos_hf[:, 0, :].tolist(),
                                  rope_delta=float(delta_hf.reshape(-1)[0]))),
    )
    if audio is not None:
        fam = inputs["feature_attention_mask"]
        feats = inputs["input_features"]
        from transformers.models.qwen3_omni_moe.processing_qwen3_omni_moe import _get_feat_extract_output_lengths
        audio_info.update(
            feature_frames=int(fam.sum()),
            audio_tokens=int(_get_feat_extract_output_lengths(fam.sum(-1), 50)[0]),
            input_features_shape=list(feats.shape),
            input_features_stats=dict(min=float(feats.min()), max=float(feats.max()),
                                      mean=float(feats.double().mean()), sum=float(feats.double().sum()),
                                      abs_sum=float(feats.double().abs().sum()),
                                      first=feats.reshape(-1)[:8].double().tolist()))
        entry["audio"] = audio_info
    return entry, dict(sampled=sampled, sample_fps=sample_fps, audio=audio, pv=pv, rows=rows)


def conversation_golden(proc, rope, d, conv, prefix, data, aiv):
    with open(os.path.join(d, prefix + "_conversation.json"), "w") as f:
        json.dump(conv, f, indent=2)
        f.write("\n")
    msgs = []
    for m in conv:
        c = m["content"]
        if isinstance(c, list):
            c = [{"type": "video"} if it["type"] == "video" else it for it in c]
        msgs.append({"role": m["role"], "content": c})
    rendered, inputs, spg, pos, delta = process(proc, rope, msgs, data["sampled"], data["sample_fps"],
                                                data["audio"] if aiv else None)
    pv = inputs["pixel_values_videos"]
    assert np.array_equal(pv.numpy(), data["pv"])
    names = ["input_ids", "attention_mask"] + (["input_features", "feature_attention_mask"] if aiv else []) + \
        ["video_grid_thw"]
    t = {k: inputs[k].contiguous() for k in names}
    t["video_second_per_grid"] = spg.contiguous()
    t["position_ids"] = pos.contiguous()
    t["rope_deltas"] = delta.contiguous()
    save_file(t, os.path.join(d, prefix + "_expected.safetensors"))
    meta = {"rendered": rendered, "use_audio_in_video": aiv, "fps": data["sample_fps"],
            "video_second_per_grid": 2.0 / data["sample_fps"], "tensors": {}}
    for k, v in t.items():
        meta["tensors"][k] = tensor_meta(v)
    pe = tensor_meta(pv)
    pe["in_safetensors"] = False
    pe["row_means"] = pv.double().mean(dim=1).float().tolist()
    keep = [data["rows"][0], data["rows"][len(data["rows"]) // 2], data["rows"][-1]]
    pe["rows"] = {str(r): pv[r].tolist() for r in keep}
    meta["tensors"]["pixel_values_videos"] = pe
    with open(os.path.join(d, prefix + "_expected.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return meta


def sampling_table():
    pairs = [(100, 25.0), (80, 25.0), (69, 30.0), (20, 10.0), (1, 25.0), (2, 25.0), (3, 25.0), (4, 25.0),
             (5, 25.0), (7, 30.0), (10, 1.0), (11, 2.0), (30, 30.0), (31, 30.0), (59, 29.97002997002997),
             (150, 29.97002997002997), (240, 24.0), (301, 60.0), (900, 30.0), (1799, 30.0), (5000, 25.0),
             (11520, 24.0), (23040, 24.0), (54000, 30.0), (100001, 30.0), (216000, 30.0), (1000003, 25.0),
             (17, 0.5), (64, 100.0)]
    out = []
    for total, fps in pairs:
        idx, sfps = sample_indices(total, fps)
        # how many indices a float64 linspace + round-half-to-even would get wrong (torch's is float32)
        f64 = None if idx is None else int(sum(
            a != b for a, b in zip(np.round(np.linspace(0, total - 1, len(idx))).astype(int).tolist(), idx)))
        out.append(dict(total_frames=total, video_fps=fps, nframes=None if idx is None else len(idx), indices=idx,
                        sample_fps=sfps, float64_linspace_mismatches=f64))
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "test", "fixtures", "video")
    os.makedirs(d, exist_ok=True)
    torch.set_num_threads(1)
    soxr = soxr_available()
    cmds = make_videos(d)
    tok, proc = build_processor()
    rope = RopeIndex()

    # spec 6.1 example: 100 frames @25 fps -> [0,14,28,42,57,71,85,99]
    assert sample_indices(100, 25.0)[0] == [0, 14, 28, 42, 57, 71, 85, 99]
    cache, entries, data = {}, [], {}
    for case in CASES:
        e, dd = run_case(proc, rope, case, cache, d, soxr)
        entries.append(e)
        data[case["name"]] = dd
        print(f"{e['name']}: total {e['source']['total_frames']} @ {e['source']['avg_frame_rate']}, "
              f"indices {e['indices']}, sample_fps {e['sample_fps']:.6f}, "
              f"WxH {e['source']['width']}x{e['source']['height']} -> {e['resized_width']}x{e['resized_height']}, "
              f"grid {e['video_grid_thw']}, tokens {e['num_video_tokens']}, spg {e['video_second_per_grid']:.6f} "
              f"(hf default {e['video_second_per_grid_hf_default']}), seq {len(e['chat']['input_ids'])}"
              + (f", audio {e['audio']['num_samples']} samples / {e['audio']['feature_frames']} frames / "
                 f"{e['audio']['audio_tokens']} tokens" if "audio" in e else ""))
    # spec 6.2: 240x320 -> 320x448 (grid 20x28); odd frame counts repeat the last frame
    by = {e["name"]: e for e in entries}
    assert (by["testsrc2_320x240"]["resized_height"], by["testsrc2_320x240"]["resized_width"]) == (320, 448)
    assert by["testsrc2_5frames"]["video_grid_thw"] == [3, 20, 28]
    assert all(e["video_second_per_grid_hf_default"] == 2.0 for e in entries)

    video_meta = conversation_golden(proc, rope, d, VIDEO_CONV, "video", data["testsrc2_320x240"], False)
    aiv_meta = conversation_golden(proc, rope, d, AIV_CONV, "aiv", data["tone_426x240_aiv"], True)
    for name, m in [("video", video_meta), ("aiv", aiv_meta)]:
        print(name, {k: v["shape"] for k, v in m["tensors"].items()}, "rope_delta",
              m["tensors"]["rope_deltas"]["values"])

    manifest = dict(
        generator="scripts/video_fixtures.py",
        versions=dict(transformers=TRANSFORMERS_VERSION, torch=torch.__version__, torchvision=torchvision.__version__,
                      numpy=np.__version__,
                      ffmpeg=run(["ffmpeg", "-hide_banner", "-version"]).decode().splitlines()[0]),
        settings=dict(processor="Qwen3OmniMoeProcessor (Qwen2VLVideoProcessor, torchvision backend)",
                      videos_kwargs="processor defaults: size shortest_edge 131072, longest_edge 786432; "
                                    "do_sample_frames False, cap_pixels_per_frame False",
                      patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5] * 3, image_std=[0.5] * 3,
                      position_id_per_seconds=13, row_floats=ROW,
                      sampling=dict(rule="qwen-omni-utils v2_5 smart_nframes + torch.linspace(0, total-1, n)"
                                         ".round() (float32 linspace, round half to even)",
                                    fps=FPS, frame_factor=FRAME_FACTOR, min_frames=FPS_MIN_FRAMES,
                                    max_frames=FPS_MAX_FRAMES, sample_fps="n / total * video_fps",
                                    note="indices are torch CPU float32 linspace values rounded; a float64 "
                                         "linspace differs on long videos (sampling_cases[].float64_linspace_"
                                         "mismatches, e.g. 23040 frames -> 1 index)"),
                      video_second_per_grid="2 / fps passed to the processor (fps=sample_fps); "
                                            "_hf_default: fps not passed (1.0) -> 2.0",
                      audio_resampler="soxr" if soxr else "swr (libsoxr missing in this ffmpeg)"),
        commands=dict(generate=cmds, decode_frames=decode_frames_cmd("FILE"), probe=probe_cmd("FILE"),
                      decode_audio=decode_audio_cmd("FILE", soxr)),
        sampling_cases=sampling_table(),
        cases=entries,
        goldens=dict(video=dict(conversation="video_conversation.json", expected="video_expected.safetensors",
                                case="testsrc2_320x240"),
                     aiv=dict(conversation="aiv_conversation.json", expected="aiv_expected.safetensors",
                              case="tone_426x240_aiv")),
    )
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"wrote {len(os.listdir(d))} files, {total} bytes")


if __name__ == "__main__":
    main()
