#include "image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "simd.h"

namespace omni::image {
namespace {

// Keys cubic convolution with a = -0.5 (torch's aa_filter for bicubic, Pillow's bicubic_filter).
double Cubic(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

inline uint8_t Clamp8(int32_t v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

struct NormTable {
  float v[256];
  // (x - 127.5) / 127.5 in float32: the reference's fused rescale + normalise, same operations.
  NormTable() {
    for (int i = 0; i < 256; ++i) v[i] = (static_cast<float>(i) - 127.5f) / 127.5f;
  }
};
const NormTable& Norm() {
  static const NormTable t;
  return t;
}

// rows x in_w x 3 -> rows x out_w x 3, along x.
OMNI_CLONES void Horizontal(const uint8_t* src, int in_w, int rows, const AxisTaps& t, uint8_t* dst, int out_w) {
  const int32_t init = t.precision > 0 ? 1 << (t.precision - 1) : 0;
  const size_t in_stride = static_cast<size_t>(in_w) * 3, out_stride = static_cast<size_t>(out_w) * 3;
  for (int r = 0; r < rows; ++r) {
    const uint8_t* s = src + r * in_stride;
    uint8_t* d = dst + r * out_stride;
    for (int x = 0; x < out_w; ++x) {
      const uint8_t* p = s + static_cast<size_t>(t.start[x]) * 3;
      const int16_t* w = t.weight.data() + static_cast<size_t>(x) * t.taps;
      int32_t s0 = init, s1 = init, s2 = init;
      for (int j = 0, n = t.size[x]; j < n; ++j) {
        s0 += p[3 * j] * w[j];
        s1 += p[3 * j + 1] * w[j];
        s2 += p[3 * j + 2] * w[j];
      }
      d[3 * x] = Clamp8(s0 >> t.precision);
      d[3 * x + 1] = Clamp8(s1 >> t.precision);
      d[3 * x + 2] = Clamp8(s2 >> t.precision);
    }
  }
}

// One output row of the vertical pass: `n` interleaved values from `size` source rows.
OMNI_CLONES void VerticalRow(const uint8_t* src, size_t stride, int start, int size, const int16_t* w, int precision,
                             int32_t* acc, size_t n, uint8_t* out) {
  const int32_t init = precision > 0 ? 1 << (precision - 1) : 0;
  for (size_t i = 0; i < n; ++i) acc[i] = init;
  for (int k = 0; k < size; ++k) {
    const uint8_t* row = src + static_cast<size_t>(start + k) * stride;
    const int32_t wk = w[k];
    for (size_t i = 0; i < n; ++i) acc[i] += row[i] * wk;
  }
  for (size_t i = 0; i < n; ++i) out[i] = Clamp8(acc[i] >> precision);
}

// Normalises one resized row (y) into its 16-float slots: for each patch column the row's 16
// pixels land in 3 channels x 2 temporal copies.
OMNI_CLONES void ScatterRow(const uint8_t* line, int y, int out_w, float* out) {
  const float* lut = Norm().v;
  const int gh = y / kPatch, py = y % kPatch;
  const int blocks_w = out_w / kFactor;
  for (int gw = 0; gw < out_w / kPatch; ++gw) {
    const size_t row = (static_cast<size_t>(gh / kMerge) * blocks_w + gw / kMerge) * (kMerge * kMerge) +
                       (gh % kMerge) * kMerge + (gw % kMerge);
    float* dst = out + row * kRowFloats + py * kPatch;
    const uint8_t* p = line + static_cast<size_t>(gw) * kPatch * 3;
    float c0[kPatch], c1[kPatch], c2[kPatch];
    for (int x = 0; x < kPatch; ++x) {
      c0[x] = lut[p[3 * x]];
      c1[x] = lut[p[3 * x + 1]];
      c2[x] = lut[p[3 * x + 2]];
    }
    constexpr int kPlane = kPatch * kPatch;  // one (channel, temporal) slice
    std::memcpy(dst + 0 * kPlane, c0, sizeof c0);
    std::memcpy(dst + 1 * kPlane, c0, sizeof c0);
    std::memcpy(dst + 2 * kPlane, c1, sizeof c1);
    std::memcpy(dst + 3 * kPlane, c1, sizeof c1);
    std::memcpy(dst + 4 * kPlane, c2, sizeof c2);
    std::memcpy(dst + 5 * kPlane, c2, sizeof c2);
  }
}

// Runs fn(begin, end) over [0, n) split into up to `threads` contiguous ranges, the first on the
// calling thread. Ranges under kMinRowsPerThread are not worth a thread start.
template <typename Fn>
void ParallelRows(int n, int threads, Fn&& fn) {
  constexpr int kMinRowsPerThread = 256;
  const int workers = std::max(1, std::min(threads, n / kMinRowsPerThread));
  if (workers <= 1) {
    fn(0, n);
    return;
  }
  const int per = (n + workers - 1) / workers;
  std::vector<std::thread> pool;
  for (int w = 1; w < workers; ++w) {
    const int r0 = w * per, r1 = std::min(n, r0 + per);
    if (r0 < r1) pool.emplace_back([&fn, r0, r1] { fn(r0, r1); });
  }
  fn(0, std::min(n, per));
  for (auto& th : pool) th.join();
}

// Runs the separable resize and hands each finished output row to `emit(y, row)` (from several
// threads at once when threads > 1; rows are disjoint).
template <typename Emit>
void ResizeRows(const uint8_t* rgb, int width, int height, int out_h, int out_w, int threads, Emit&& emit) {
  // An axis whose size does not change is skipped, as the reference does (its taps would be the
  // identity anyway).
  // The intermediate is per pool thread and reused: fresh multi-MB memory costs more to fault in
  // than the pass that fills it. Oversized leftovers are dropped.
  thread_local std::vector<uint8_t> horiz;
  const uint8_t* mid = rgb;
  if (out_w != width) {
    const AxisTaps tx = ComputeAxisTaps(width, out_w);
    const size_t need = static_cast<size_t>(height) * out_w * 3;
    if (horiz.capacity() > (size_t{64} << 20) && need <= (size_t{64} << 20)) std::vector<uint8_t>().swap(horiz);
    horiz.resize(need);
    uint8_t* h = horiz.data();
    const size_t in_stride = static_cast<size_t>(width) * 3, out_stride = static_cast<size_t>(out_w) * 3;
    ParallelRows(height, threads, [&](int r0, int r1) {
      Horizontal(rgb + r0 * in_stride, width, r1 - r0, tx, h + r0 * out_stride, out_w);
    });
    mid = h;
  }
  const size_t n = static_cast<size_t>(out_w) * 3;
  if (out_h == height) {
    ParallelRows(out_h, threads, [&](int y0, int y1) {
      for (int y = y0; y < y1; ++y) emit(y, mid + y * n);
    });
    return;
  }
  const AxisTaps ty = ComputeAxisTaps(height, out_h);
  ParallelRows(out_h, threads, [&](int y0, int y1) {
    std::vector<int32_t> acc(n);
    std::vector<uint8_t> line(n);
    for (int y = y0; y < y1; ++y) {
      VerticalRow(mid, n, ty.start[y], ty.size[y], ty.weight.data() + static_cast<size_t>(y) * ty.taps, ty.precision,
                  acc.data(), n, line.data());
      emit(y, line.data());
    }
  });
}

}  // namespace

OMNI_CLONES void CompositeOnWhite(const uint8_t* rgba, size_t pixels, uint8_t* rgb) {
  for (size_t i = 0; i < pixels; ++i) {
    const uint32_t a = rgba[4 * i + 3];
    for (int c = 0; c < 3; ++c) {
      // Pillow's DIV255: exact rounding of v / 255 for v < 65536.
      const uint32_t t = rgba[4 * i + c] * a + 255u * (255u - a) + 128u;
      rgb[3 * i + c] = static_cast<uint8_t>(((t >> 8) + t) >> 8);
    }
  }
}

AxisTaps ComputeAxisTaps(int in_size, int out_size) {
  // torch's _compute_index_ranges_weights (antialias, align_corners=false) in double, then
  // _compute_index_ranges_int16_weights' quantisation.
  AxisTaps t;
  const double scale = static_cast<double>(in_size) / out_size;
  const double support = scale >= 1.0 ? 2.0 * scale : 2.0;
  const double invscale = scale >= 1.0 ? 1.0 / scale : 1.0;
  t.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  t.start.resize(out_size);
  t.size.resize(out_size);
  std::vector<double> w(static_cast<size_t>(out_size) * t.taps, 0.0);
  double wt_max = 0.0;
  for (int i = 0; i < out_size; ++i) {
    const double center = scale * (i + 0.5);
    const int64_t xmin = std::max<int64_t>(static_cast<int64_t>(center - support + 0.5), 0);
    int64_t xsize = std::min<int64_t>(static_cast<int64_t>(center + support + 0.5), in_size) - xmin;
    xsize = std::clamp<int64_t>(xsize, 0, t.taps);
    double* wi = w.data() + static_cast<size_t>(i) * t.taps;
    double total = 0.0;
    for (int64_t j = 0; j < xsize; ++j) {
      wi[j] = Cubic((static_cast<double>(j + xmin) - center + 0.5) * invscale);
      total += wi[j];
    }
    if (total != 0.0) {
      for (int64_t j = 0; j < xsize; ++j) {
        wi[j] /= total;
        wt_max = std::max(wt_max, wi[j]);
      }
    }
    t.start[i] = static_cast<int32_t>(xmin);
    t.size[i] = static_cast<int32_t>(xsize);
  }
  // The most fraction bits that keep the largest weight, doubled, inside int16.
  int precision = 0;
  for (; precision < 22; ++precision) {
    const int next = static_cast<int>(0.5 + wt_max * (1 << (precision + 1)));
    if (next >= (1 << 15)) break;
  }
  t.precision = precision;
  t.weight.resize(w.size());
  for (size_t k = 0; k < w.size(); ++k) {
    const double v = w[k] * (1 << precision);
    t.weight[k] = static_cast<int16_t>(v < 0 ? v - 0.5 : v + 0.5);
  }
  return t;
}

void ResizeRgb(const uint8_t* rgb, int width, int height, int out_h, int out_w, uint8_t* out) {
  const size_t n = static_cast<size_t>(out_w) * 3;
  ResizeRows(rgb, width, height, out_h, out_w, 1, [&](int y, const uint8_t* row) { std::memcpy(out + y * n, row, n); });
}

void ImageToPatches(const uint8_t* rgb, int width, int height, int out_h, int out_w, float* out, int threads) {
  ResizeRows(rgb, width, height, out_h, out_w, threads, [&](int y, const uint8_t* row) { ScatterRow(row, y, out_w, out); });
}

}  // namespace omni::image
