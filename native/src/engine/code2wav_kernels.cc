// Streaming convolutions and SnakeBeta of the code-to-wave decoder; see code2wav_kernels.h.
#include "code2wav_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "../simd.h"

namespace omni::engine {

namespace {

// Grows v to at least n floats, never shrinks (the kernels' outputs are sized by their row counts:
// reusing buffers avoids zero-filling and page faults on every push).
void Grow(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
}

Linear Relaid(std::shared_ptr<std::vector<uint8_t>>& storage, DType dtype, int64_t rows, int64_t cols) {
  Linear L;
  L.w.data = storage->data();
  L.w.dtype = dtype;
  L.w.rows = rows;
  L.w.cols = cols;
  return L;
}

// Rows [first, first + count) of a time tile buffer: hist ++ x, without copying when hist is empty.
const float* Joined(const History& h, const float* x, int64_t m, int64_t c, std::vector<float>& buf) {
  if (h.count == 0) return x;
  Grow(buf, (h.count + m) * c);
  std::memcpy(buf.data(), h.rows.data(), sizeof(float) * static_cast<size_t>(h.count * c));
  std::memcpy(buf.data() + h.count * c, x, sizeof(float) * static_cast<size_t>(m * c));
  return buf.data();
}

// Keeps the last `keep` rows of ext (n rows) as the history.
void Keep(History& h, const float* ext, int64_t n, int64_t c, int64_t keep) {
  keep = std::min(keep, n);
  std::vector<float> rows(ext + (n - keep) * c, ext + n * c);
  h.rows.swap(rows);
  h.count = keep;
}

}  // namespace

CausalConv1d LoadCausalConv(const WeightStore& ws, const std::string& prefix, int64_t cin, int64_t cout, int64_t k, int64_t dil) {
  CausalConv1d c;
  c.cin = cin;
  c.cout = cout;
  c.k = k;
  c.dil = dil;
  const Matrix w = ws.Mat(prefix + ".weight", {cout, cin, k});
  const size_t es = DTypeBytes(w.dtype);
  c.storage = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(cout * cin * k) * es);
  uint8_t* dst = c.storage->data();
  for (int64_t o = 0; o < cout; ++o) {
    for (int64_t i = 0; i < cin; ++i) {
      for (int64_t t = 0; t < k; ++t) {
        std::memcpy(dst + static_cast<size_t>((o * k + t) * cin + i) * es, w.data + static_cast<size_t>((o * cin + i) * k + t) * es, es);
      }
    }
  }
  c.lin = Relaid(c.storage, w.dtype, cout, k * cin);
  c.lin.b = ws.Floats(prefix + ".bias", {cout});
  return c;
}

TransConv1d LoadTransConv(const WeightStore& ws, const std::string& prefix, int64_t cin, int64_t cout, int64_t kernel, int64_t stride) {
  if (stride < 1 || kernel % stride != 0 || kernel / stride < 1) {
    throw EngineError("checkpoint_config_invalid", prefix + ": transposed conv kernel " + std::to_string(kernel) +
                                                       " is not a multiple of its stride " + std::to_string(stride));
  }
  TransConv1d c;
  c.cin = cin;
  c.cout = cout;
  c.stride = stride;
  c.taps = kernel / stride;
  const Matrix w = ws.Mat(prefix + ".weight", {cin, cout, kernel});
  const size_t es = DTypeBytes(w.dtype);
  const int64_t J = c.taps, s = stride;
  c.storage = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(cin * cout * kernel) * es);
  uint8_t* dst = c.storage->data();
  for (int64_t rr = 0; rr < s; ++rr) {
    for (int64_t co = 0; co < cout; ++co) {
      for (int64_t p = 0; p < J; ++p) {
        const int64_t tap = (J - 1 - p) * s + rr;
        for (int64_t ci = 0; ci < cin; ++ci) {
          std::memcpy(dst + static_cast<size_t>((rr * cout + co) * J * cin + p * cin + ci) * es,
                      w.data + static_cast<size_t>((ci * cout + co) * kernel + tap) * es, es);
        }
      }
    }
  }
  c.lin = Relaid(c.storage, w.dtype, s * cout, J * cin);
  const std::vector<float> b = ws.Floats(prefix + ".bias", {cout});
  c.lin.b.resize(static_cast<size_t>(s * cout));
  for (int64_t rr = 0; rr < s; ++rr) std::copy(b.begin(), b.end(), c.lin.b.begin() + rr * cout);
  return c;
}

DepthwiseConv1d LoadDepthwise(const WeightStore& ws, const std::string& prefix, int64_t c, int64_t k) {
  DepthwiseConv1d d;
  d.c = c;
  d.k = k;
  d.w = ws.Floats(prefix + ".weight", {c, 1, k});
  d.b = ws.Floats(prefix + ".bias", {c});
  return d;
}

SnakeBeta LoadSnake(const WeightStore& ws, const std::string& prefix, int64_t c) {
  SnakeBeta s;
  s.alpha = ws.Floats(prefix + ".alpha", {c});
  s.inv_beta = ws.Floats(prefix + ".beta", {c});
  for (auto& a : s.alpha) a = std::exp(a);
  for (auto& b : s.inv_beta) b = 1.0f / (std::exp(b) + 1e-9f);
  return s;
}

History CausalConvHistory(const CausalConv1d& conv) {
  History h;
  h.count = conv.History();
  h.rows.assign(static_cast<size_t>(h.count * conv.cin), 0.0f);
  return h;
}

History DepthwiseHistory(const DepthwiseConv1d& conv) {
  History h;
  h.count = conv.k - 1;
  h.rows.assign(static_cast<size_t>(h.count * conv.c), 0.0f);
  return h;
}

void CausalConvForward(ThreadPool& pool, const CausalConv1d& conv, History& h, const float* x, int64_t m, std::vector<float>& y) {
  const int64_t cin = conv.cin, P = conv.History();
  Grow(y, m * conv.cout);
  if (m == 0) return;
  thread_local std::vector<float> buf;
  const float* ext = Joined(h, x, m, cin, buf);  // h.count == P rows before x
  if (conv.dil == 1 || conv.k == 1) {
    // Row t's window (taps 0..k-1 at ext rows t..t+k-1) is contiguous: ext + t*cin, k*cin floats.
    ApplyLinear(pool, conv.lin, ext, m, cin, y.data(), conv.cout);
  } else {
    const int64_t tile = 512, width = conv.k * cin;
    thread_local std::vector<float> col;
    Grow(col, std::min(tile, m) * width);
    for (int64_t t0 = 0; t0 < m; t0 += tile) {
      const int64_t n = std::min(tile, m - t0);
      for (int64_t t = 0; t < n; ++t) {
        for (int64_t k = 0; k < conv.k; ++k) {
          std::memcpy(col.data() + t * width + k * cin, ext + (t0 + t + k * conv.dil) * cin, sizeof(float) * static_cast<size_t>(cin));
        }
      }
      ApplyLinear(pool, conv.lin, col.data(), n, width, y.data() + t0 * conv.cout, conv.cout);
    }
  }
  if (P > 0) Keep(h, ext, h.count + m, cin, P);
}

int64_t TransConvForward(ThreadPool& pool, const TransConv1d& conv, History& h, const float* x, int64_t m, std::vector<float>& y) {
  const int64_t cin = conv.cin, J = conv.taps;
  thread_local std::vector<float> buf;
  const int64_t n = h.count + m;
  const float* ext = Joined(h, x, m, cin, buf);
  const int64_t blocks = std::max<int64_t>(0, n - J + 1);
  Grow(y, blocks * conv.stride * conv.cout);
  // Block b reads ext rows b..b+J-1 (contiguous) and writes `stride` output rows.
  ApplyLinear(pool, conv.lin, ext, blocks, cin, y.data(), conv.stride * conv.cout);
  if (J > 1) {
    Keep(h, ext, n, cin, J - 1);
  }
  return blocks * conv.stride;
}

void DepthwiseForward(ThreadPool& pool, const DepthwiseConv1d& conv, History& h, const float* x, int64_t m, std::vector<float>& y) {
  const int64_t c = conv.c, K = conv.k;
  Grow(y, m * c);
  if (m == 0) return;
  thread_local std::vector<float> buf;
  const float* ext = Joined(h, x, m, c, buf);
  const int64_t block = 64;
  pool.Run((m + block - 1) / block, [&](int64_t task) {
    const int64_t t0 = task * block, t1 = std::min(m, t0 + block);
    for (int64_t t = t0; t < t1; ++t) {
      float* out = y.data() + t * c;
      for (int64_t ch = 0; ch < c; ++ch) {
        const float* w = conv.w.data() + ch * K;
        float acc = 0.0f;
        for (int64_t k = 0; k < K; ++k) acc += w[k] * ext[(t + k) * c + ch];
        out[ch] = acc + conv.b[static_cast<size_t>(ch)];
      }
    }
  });
  Keep(h, ext, h.count + m, c, K - 1);
}

namespace {

// sin(v)^2 for |v| < ~1e4: v = k*pi + r with r in [-pi/2, pi/2] (three-part pi, exact for such k),
// sin(v)^2 = sin(r)^2, sin(r) by its Taylor series to r^11 (error < 6e-8). Branch-free, so the
// loop vectorises (AVX2 clone); torch's own vectorised sin differs from libm by a similar amount.
inline float Sin2(float v) {
  const float magic = 12582912.0f;  // 1.5 * 2^23: round to nearest
  const float k = (v * 0.318309886183790671538f + magic) - magic;
  float r = v - k * 3.140625f;
  r = r - k * 9.67025756835937500000e-04f;
  r = r - k * 6.27711415290832519531e-07f;
  r = r - k * 1.21542707630315270321e-10f;
  const float r2 = r * r;
  const float p = r * (1.0f + r2 * (-1.66666666666666666667e-01f + r2 * (8.33333333333333333333e-03f +
                       r2 * (-1.98412698412698412698e-04f + r2 * (2.75573192239858906526e-06f + r2 * -2.50521083854417187751e-08f)))));
  return p * p;
}

OMNI_CLONES void SnakeRow(const float* __restrict x, const float* __restrict a, const float* __restrict ib, int64_t c, float* __restrict y) {
  for (int64_t ch = 0; ch < c; ++ch) {
    const float v = x[ch];
    y[ch] = v + ib[ch] * Sin2(v * a[ch]);
  }
}

OMNI_CLONES void SnakeRowInPlace(float* x, const float* __restrict a, const float* __restrict ib, int64_t c) {
  for (int64_t ch = 0; ch < c; ++ch) {
    const float v = x[ch];
    x[ch] = v + ib[ch] * Sin2(v * a[ch]);
  }
}

}  // namespace

void SnakeForward(ThreadPool& pool, const SnakeBeta& s, const float* x, int64_t rows, float* out) {
  const int64_t c = static_cast<int64_t>(s.alpha.size());
  if (rows <= 0) return;
  const int64_t block = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, c));
  pool.Run((rows + block - 1) / block, [&](int64_t task) {
    const int64_t r0 = task * block, r1 = std::min(rows, r0 + block);
    for (int64_t r = r0; r < r1; ++r) {
      if (x == out) {
        SnakeRowInPlace(out + r * c, s.alpha.data(), s.inv_beta.data(), c);
      } else {
        SnakeRow(x + r * c, s.alpha.data(), s.inv_beta.data(), c, out + r * c);
      }
    }
  });
}

}  // namespace omni::engine
