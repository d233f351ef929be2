#!/usr/bin/env python3
"""Golden fixtures for the Qwen3-Omni image preprocessing (smart_resize, bicubic antialias resize,
normalisation, patchify).

Runs the real Hugging Face `transformers` Qwen2VLImageProcessor (torchvision backend, the default),
configured with the Qwen3-Omni preprocessor_config.json values (see
/work/shared/specs/qwen3-omni-io.md sections 2.1 and 5): patch 16, temporal patch 2, merge 2,
min_pixels 3136, max_pixels 12845056, mean = std = 0.5, one image per call.

How to run (from the repository root; tests never need Python):

    python3 -m venv .venv-ref
    .venv-ref/bin/pip install transformers torch torchvision numpy pillow
    .venv-ref/bin/python scripts/image_fixtures.py            # writes test/fixtures/image/
    .venv-ref/bin/python scripts/image_fixtures.py OUT_DIR    # or somewhere else

What it writes (binary files little-endian float32, no header):

    manifest.json            one entry per image (file, size, grid, tokens, stored rows), error cases,
                             and `known_differences` (image entries the gateway is known to miss by
                             more than the tolerance, with the reason and the error recorded)
    <name>.png / .jpg        the input file, generated deterministically (numpy, fixed seeds); an
                             entry's `max_pixels` is the processor's longest_edge for that image
                             (all but one use the checkpoint's 12845056)
    <name>.rows.f32          reference pixel_values rows listed in `rows_stored` ("all" or indices),
                             1536 float32 each
    <name>.row_means.f32     mean of every row 0..N-1 (float64 mean, stored as float32)

What the reference is given: the file opened with PIL, then the gateway's input conventions, which
the HF processor does not apply by itself: EXIF orientation applied (ImageOps.exif_transpose) and
alpha composited onto white (as qwen-omni-utils' to_rgb does; plain `convert("RGB")` would drop the
alpha). Greyscale and palette images go through `convert("RGB")`, as the processor does.
"""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import sys


def _torchvision_shim():
    # The torchvision wheel links against CUDA torch; with CPU torch its C++ ops cannot load. The
    # resize path used here is pure torch, so defining the two op schemas lets it import.
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        return "absent"
    so = glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so"))
    try:
        if so:
            torch.ops.load_library(so[0])
            return "native"
    except OSError:
        pass
    global _TV_LIB
    _TV_LIB = torch.library.Library("torchvision", "DEF")
    _TV_LIB.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _TV_LIB.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return "shim"


TV_MODE = _torchvision_shim()

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from PIL import Image, ImageOps  # noqa: E402
from PIL import __version__ as PIL_VERSION  # noqa: E402
from transformers import __version__ as TRANSFORMERS_VERSION  # noqa: E402
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor, smart_resize  # noqa: E402
import random  # noqa: E402

CONFIG = dict(patch_size=16, temporal_patch_size=2, merge_size=2, min_pixels=3136, max_pixels=12845056,
              image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
ROW = 1536
MAX_FULL_ROWS = 32  # above this only a subset of rows is stored, plus every row's mean


def pattern(h, w, seed, noise=6.0):
    """Smooth colour gradients, sharp-edged blocks and a little noise: exercises the filter on both."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x * 0.043 + seed) * np.cos(y * 0.031)
    g = 255 * x / max(w - 1, 1)
    b = 255 * y / max(h - 1, 1)
    img = np.stack([r, g, b], axis=-1)
    block = ((x // 37 + y // 29) % 3 == 0)[..., None]
    img = np.where(block, 255 - img, img)
    rng = np.random.default_rng(seed)
    img = img + rng.normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def photo(h, w, seed):
    """Photo-like content for the large case: smooth gradients, hard-edged discs and a band of
    mid-frequency ripples (periods of 12-17 px) that a 1.37x downscale has to filter; no per-pixel
    noise, so a 24 MP JPEG at q85 stays near 1.2 MB."""
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, h)[:, None]
    x = np.linspace(0, 1, w)[None, :]
    r = 60 + 150 * y + 30 * np.sin(6.0 * x + 1.0)
    g = 90 + 100 * (1 - y) * x + 25 * np.cos(9.0 * y + 4.0 * x)
    b = 200 - 120 * y + 20 * np.sin(5.0 * x * y * 8)
    img = np.stack(np.broadcast_arrays(r, g, b), -1).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    tex = 14 * np.sin(xx * 0.5 + 3 * np.sin(yy * 0.013)) * np.sin(yy * 0.37) * (y > 0.7)
    img += tex[..., None].astype(np.float32)
    for _ in range(12):
        cy, cx, rad = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(80, 500)
        col = rng.uniform(0, 255, 3)
        m = (yy - cy) ** 2 + (xx - cx) ** 2 < rad ** 2
        img[m] = 0.5 * img[m] + 0.5 * col
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def png16_rgb(path, arr16):
    """Writes a 16-bit-per-channel RGB PNG (Pillow cannot write one): colour type 2, bit depth 16."""
    import struct
    import zlib

    h, w, _ = arr16.shape
    raw = b"".join(b"\x00" + arr16[i].astype(">u2").tobytes() for i in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def make_inputs(d):
    """(name, file, description, PIL-saving function) for every fixture input."""
    items = []

    def png(name, arr_or_img, desc, **kw):
        img = arr_or_img if isinstance(arr_or_img, Image.Image) else Image.fromarray(arr_or_img)
        img.save(os.path.join(d, name + ".png"), optimize=True, **kw)
        items.append((name, name + ".png", desc))

    def jpg(name, img, desc, **kw):
        img.save(os.path.join(d, name + ".jpg"), quality=kw.pop("quality", 88), **kw)
        items.append((name, name + ".jpg", desc))

    # 1x1 is not an error in the reference: smart_resize's min_pixels branch makes it 64x64.
    png("tiny_1x1", pattern(1, 1, 11), "1x1 RGB: upscaled to 64x64 like the reference does")
    png("rgb_20x20", pattern(20, 20, 1), "20x20 RGB: smaller than the factor, upscaled to 64x64")
    png("rgb_10x1000", pattern(10, 1000, 2), "10x1000 (h x w) RGB: aspect 100, min_pixels branch")
    png("rgb_427x640", pattern(427, 640, 3, noise=1.5), "427x640 RGB: the spec's example, 416x640")
    jpg("photo_1080x1920", Image.fromarray(pattern(1080, 1920, 4, noise=2.0)), "1080x1920 baseline JPEG q88")
    rgba = np.concatenate([pattern(200, 300, 5), np.zeros((200, 300, 1), np.uint8)], axis=-1)
    yy, xx = np.mgrid[0:200, 0:300]
    rgba[..., 3] = np.clip((xx * 255) // 299, 0, 255).astype(np.uint8)
    rgba[:40, :, 3] = 0  # fully transparent band: must come out white
    png("rgba_200x300", rgba, "200x300 RGBA with an alpha ramp, composited onto white")
    grey = pattern(256, 256, 6)[..., 1] // 2 + pattern(256, 256, 7)[..., 0] // 2
    png("grey_256x256", Image.fromarray(grey, mode="L"), "256x256 8-bit greyscale (L)")
    pal = Image.fromarray(pattern(150, 200, 8)).quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=0)
    png("palette_150x200", pal, "150x200 palette PNG, 64 colours")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    # Strong downscale on both axes (about 2.6x): the reference runs with max_pixels 160000 for this
    # one (manifest `max_pixels`), so the antialias support widening is exercised on a small file.
    jpg("downscale_900x1200", Image.fromarray(pattern(900, 1200, 12, noise=4.0)), "900x1200 JPEG, max_pixels 160000")
    jpg("exif6_240x320", Image.fromarray(pattern(240, 320, 9)), "stored 320 wide x 240 high, EXIF orientation 6",
        exif=exif.tobytes(), quality=92)

    # --- added for the vision issue's remaining cases (entries above are unchanged) ---
    jpg("photo_4000x6000", Image.fromarray(photo(4000, 6000, 21)),
        "4000x6000 (h x w) photo-like JPEG q85, resized to 2912x4384 (the spec's example); 8 rows stored",
        quality=85)
    # The other EXIF orientations: stored 320 wide x 240 high, content with no symmetry (gradients
    # run left->right and top->bottom), so any wrong flip or rotation changes most rows.
    for o, what in [(2, "mirrored horizontally"), (3, "rotated 180"), (4, "mirrored vertically"),
                    (5, "transpose: mirror + rotate 270 CW"), (7, "transverse: mirror + rotate 90 CW"),
                    (8, "rotate 90 CCW to display")]:
        ex = Image.Exif()
        ex[0x0112] = o
        jpg(f"exif{o}_240x320", Image.fromarray(pattern(240, 320, 30 + o)),
            f"stored 320 wide x 240 high, EXIF orientation {o} ({what})", exif=ex.tobytes(), quality=92)
    # 16-bit RGB PNG: the low bytes are random, so truncating vs rounding to 8 bits would show;
    # Pillow (the reference) keeps the high byte.
    rng = np.random.default_rng(40)
    hi = pattern(120, 160, 40).astype(np.uint16)
    png16_rgb(os.path.join(d, "rgb16_120x160.png"), (hi << 8) | rng.integers(0, 256, hi.shape, dtype=np.uint16))
    items.append(("rgb16_120x160", "rgb16_120x160.png", "120x160 16-bit RGB PNG (random low bytes)"))
    lum = pattern(150, 100, 41)[..., 0]
    yy, xx = np.mgrid[0:150, 0:100]
    alpha = np.clip((yy * 255) // 149 + (xx % 20 < 3) * 60, 0, 255).astype(np.uint8)
    alpha[:, :10] = 0
    alpha[:, -10:] = 255
    png("greyalpha_150x100", Image.merge("LA", [Image.fromarray(lum, mode="L"), Image.fromarray(alpha, mode="L")]),
        "150x100 greyscale + alpha PNG (LA), alpha ramp, composited onto white")
    jpg("progressive_300x400", Image.fromarray(pattern(300, 400, 42, noise=3.0)), "300x400 progressive JPEG q88",
        progressive=True)
    jpg("cmyk_200x240", Image.fromarray(pattern(200, 240, 43, noise=2.0)).convert("CMYK"),
        "200x240 CMYK JPEG (Adobe, inverted), no ICC profile; reference: PIL convert('RGB')", quality=90)
    return items


# Cases where the gateway is known to differ from the reference beyond the parity tolerance. They go
# to the manifest's `known_differences` (same fields as `images`, plus `reason` and the error the
# gateway measured when they were recorded); the parity test checks their grid exactly and that the
# error has not grown, instead of the 2/127.5 tolerance.
# Cases where the gateway is known to differ from the reference beyond tolerance, with the reason
# and the error measured when recorded; none at present. (CMYK JPEGs were one until the decoder
# took Pillow's CMYK formula instead of libvips' ICC conversion.)
KNOWN_DIFFERENCES = {}


def reference_input(path):
    img = Image.open(path)
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGB", rgba.size, (255, 255, 255))
        white.paste(rgba, mask=rgba.split()[3])
        return white
    return img.convert("RGB")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "image")
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    ip = Qwen2VLImageProcessor(**CONFIG)
    max_pixels_for = {"downscale_900x1200": 160000}
    spread_rows_for = {"photo_4000x6000": 8}  # only this many evenly spread rows stored whole
    entries = []
    known = []
    for name, file, desc in make_inputs(out):
        img = reference_input(os.path.join(out, file))
        max_pixels = max_pixels_for.get(name, CONFIG["max_pixels"])
        res = ip(images=[img], size={"shortest_edge": CONFIG["min_pixels"], "longest_edge": max_pixels}, return_tensors="pt")
        pv = res["pixel_values"].numpy().astype(np.float32)
        grid = [int(v) for v in res["image_grid_thw"][0].tolist()]
        n = pv.shape[0]
        assert pv.shape == (grid[0] * grid[1] * grid[2], ROW), pv.shape
        if name in spread_rows_for:
            rows = sorted(set(int(i) for i in np.linspace(0, n - 1, spread_rows_for[name])))
            stored = rows
        elif n <= MAX_FULL_ROWS:
            rows = list(range(n))
            stored = "all"
        else:
            # first and last two merge blocks, plus evenly spread rows
            rows = sorted(set(list(range(4)) + list(range(n - 4, n)) + [int(i) for i in np.linspace(0, n - 1, 16)]))
            stored = rows
        pv[rows].tofile(os.path.join(out, name + ".rows.f32"))
        pv.astype(np.float64).mean(axis=1).astype(np.float32).tofile(os.path.join(out, name + ".row_means.f32"))
        entry = dict(
            name=name, file=file, description=desc, max_pixels=max_pixels,
            input_width=img.size[0], input_height=img.size[1],
            resized_height=grid[1] * 16, resized_width=grid[2] * 16,
            grid_thw=grid, num_rows=n, num_image_tokens=grid[0] * grid[1] * grid[2] // 4,
            rows_stored=stored,
            stats=dict(min=float(pv.min()), max=float(pv.max()), mean=float(pv.astype(np.float64).mean())),
        )
        if name in KNOWN_DIFFERENCES:
            known.append(entry | KNOWN_DIFFERENCES[name])
        else:
            entries.append(entry)
        print(name, img.size, grid, n)

    errors = []
    for name, (h, w), expect in [("aspect_2x500", (2, 500), "aspect"), ("aspect_1x201", (1, 201), "aspect")]:
        arr = pattern(h, w, 10)
        Image.fromarray(arr).save(os.path.join(out, name + ".png"))
        try:
            res = ip(images=[Image.fromarray(arr)], return_tensors="pt")
            outcome = dict(ok=True, grid_thw=[int(v) for v in res["image_grid_thw"][0].tolist()])
        except Exception as e:  # record what the reference does
            outcome = dict(ok=False, error=f"{type(e).__name__}: {e}")
        errors.append(dict(name=name, file=name + ".png", height=h, width=w, reference=outcome))
        print(name, outcome)

    # smart_resize itself on many sizes (the transformers function, not a copy): exact targets.
    rnd = random.Random(7)
    sizes = [(427, 640), (240, 320), (1080, 1920), (720, 1280), (4000, 6000), (20, 20), (10, 1000), (80, 80),
             (48, 48), (112, 112), (1, 1), (1, 200), (1, 201), (2, 500), (16, 16), (3584, 3584), (3585, 3584),
             (10000, 10000), (50, 10000)]
    sizes += [(rnd.randint(1, 8000), rnd.randint(1, 8000)) for _ in range(300)]
    sizes += [(rnd.randint(1, 100), rnd.randint(1, 100)) for _ in range(100)]
    sizes += [(32 * k + 16, 32 * j + 16) for k in range(20) for j in (0, 3, 7)]
    resize_cases = []
    for h, w in sizes:
        try:
            resize_cases.append([h, w, list(smart_resize(h, w, factor=32, min_pixels=CONFIG["min_pixels"], max_pixels=CONFIG["max_pixels"]))])
        except ValueError:
            resize_cases.append([h, w, None])

    manifest = dict(
        smart_resize_cases=resize_cases,
        generator="scripts/image_fixtures.py",
        versions=dict(transformers=TRANSFORMERS_VERSION, torch=torch.__version__, torchvision=torchvision.__version__,
                      pillow=PIL_VERSION, numpy=np.__version__, torchvision_ops=TV_MODE),
        settings=CONFIG | dict(processor="Qwen2VLImageProcessor (torchvision backend)", row_floats=ROW),
        images=entries, error_cases=errors,
    )
    if known:
        manifest["known_differences"] = known
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
