// Qwen3-Omni image patches: 8-bit RGB -> bicubic antialiased resize -> normalise -> patchify, as
// transformers' Qwen2VLImageProcessor (torchvision backend) computes them on CPU.
//
// Resize: torch's uint8 `_upsample_bicubic2d_aa` (what torchvision's resize(BICUBIC, antialias=True)
// runs for uint8 CPU tensors, itself a port of Pillow's ImagingResample): separable, horizontal pass
// first into a uint8 intermediate, then vertical; Keys cubic a = -0.5 with its support stretched
// by the downscale factor; weights normalised in double, then quantised to int16 with a per-axis
// precision; each output is (2^(p-1) + sum(w * x)) >> p clamped to 0..255.
//
// Normalise: (x - 127.5) / 127.5 in float32 (mean = std = 0.5 folded with the 1/255 rescale, the
// reference's own fused form), looked up from a 256-entry table.
//
// Patchify: rows of 1536 values, one per 16x16 patch; rows enumerate 2x2 merge blocks in raster
// order, then the 4 patches of a block in raster order; a row holds (channel, temporal, y, x). An
// image is its own second frame (both temporal copies identical); a video's temporal patch holds
// two consecutive sampled frames.
//
// Output dtype: float32, or bfloat16 (round to nearest even) for the wire -- half the bytes, and
// the normalised values of 256 levels lose nothing the model's bf16 weights would keep.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace omni::image {

constexpr int kPatch = 16;
constexpr int kMerge = 2;
constexpr int kTemporal = 2;
constexpr int kFactor = kPatch * kMerge;  // 32
constexpr int kRowFloats = 3 * kTemporal * kPatch * kPatch;  // 1536

// Resampling weights of one axis: output i reads `size[i]` inputs from `start[i]`, with int16
// weights `weight[i * taps ...]` in fixed point with `precision` fraction bits.
struct AxisTaps {
  int taps = 0;
  int precision = 0;
  std::vector<int32_t> start;
  std::vector<int32_t> size;
  std::vector<int16_t> weight;
};

AxisTaps ComputeAxisTaps(int in_size, int out_size);

// RGBA -> RGB over a white background, rounded exactly as Pillow's paste(mask=alpha) (what
// qwen-omni-utils uses): out = (c * a + 255 * (255 - a)) / 255, correctly rounded.
void CompositeOnWhite(const uint8_t* rgba, size_t pixels, uint8_t* rgb);

// CMYK -> RGB exactly as Pillow's Image.convert("RGB") (what the reference gets for a CMYK JPEG):
// nk = 255 - K, out = nk - round(C * nk / 255) with Pillow's MULDIV255 rounding; no ICC profile.
void CmykToRgb(const uint8_t* cmyk, size_t pixels, uint8_t* rgb);

// Source rows that arrive while the resize runs (a decoder writing into the image buffer): Ensure(n)
// returns once rows [0, n) are in place, and is called before any of them is read. It may throw to
// abandon the resize.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual void Ensure(int rows) = 0;
};

// Resized uint8 RGB (out_h x out_w x 3), the reference's intermediate; for tests and diagnostics.
void ResizeRgb(const uint8_t* rgb, int width, int height, int out_h, int out_w, uint8_t* out);

// Resize, normalise and patchify in one sweep. `out` holds (out_h / 16) * (out_w / 16) rows of 1536
// floats. out_h and out_w must be positive multiples of 32. Large images are split by rows over up
// to `threads` threads (same result for any count).
void ImageToPatches(const uint8_t* rgb, int width, int height, int out_h, int out_w, float* out, int threads = 1);

// One temporal patch step: `first` fills temporal slot 0 and `second` slot 1 (both width x height
// RGB); second == nullptr or == first is the image case. `out` is float* for float32 or uint16_t*
// for bfloat16, (out_h / 16) * (out_w / 16) rows of 1536 values.
// With `source`, `first` fills as the resize asks for rows (single-threaded: each strip of output
// is made while its input rows are still in cache; with more threads the whole image is waited for).
void TemporalPatches(const uint8_t* first, const uint8_t* second, int width, int height, int out_h, int out_w,
                     void* out, bool bf16, int threads = 1, RowSource* source = nullptr);

// float32 -> bfloat16 bits, round to nearest even (NaN stays NaN).
uint16_t ToBf16(float v);

// I420 (BT.601 limited range, the WebRTC default) -> interleaved 8-bit RGB, chroma upsampled by
// pixel replication as libyuv does. Planes are read with their own strides; odd sizes are allowed.
void I420ToRgb(const uint8_t* y, int y_stride, const uint8_t* u, const uint8_t* v, int uv_stride, int width, int height,
               uint8_t* rgb);

}  // namespace omni::image
