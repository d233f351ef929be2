#include "encoder_kernels.h"

#include <algorithm>
#include <cmath>

#include "../simd.h"
#include "thinker.h"  // EngineError

namespace omni::engine {

namespace {

std::string ShapeStr(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

// ---- weights ------------------------------------------------------------------------------------

WeightStore::WeightStore(const std::vector<std::string>& files, const std::vector<EncoderTensor>& tensors)
    : tensors_(tensors) {
  for (const auto& f : files) files_.push_back(std::make_unique<MappedFile>(f));
  for (size_t i = 0; i < tensors_.size(); ++i) by_key_[tensors_[i].key] = i;
}

const uint8_t* WeightStore::Find(const std::string& key, const std::vector<int64_t>& shape, DType* dtype) const {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) throw EngineError("checkpoint_tensor_missing", "checkpoint tensor " + key + " is missing");
  const EncoderTensor& t = tensors_[it->second];
  if (t.shape != shape) {
    throw EngineError("checkpoint_tensor_shape", "checkpoint tensor " + t.name + " has shape " + ShapeStr(t.shape) +
                                                     ", the config implies " + ShapeStr(shape));
  }
  uint64_t count = 1;
  for (int64_t d : shape) count *= static_cast<uint64_t>(d);
  if (t.file < 0 || t.file >= static_cast<int>(files_.size())) {
    throw EngineError("checkpoint_file_invalid", "checkpoint tensor " + t.name + " names file " + std::to_string(t.file));
  }
  const MappedFile& f = *files_[static_cast<size_t>(t.file)];
  if (t.bytes != count * DTypeBytes(t.dtype) || t.offset > f.size() || t.bytes > f.size() - t.offset) {
    throw EngineError("checkpoint_file_invalid", "checkpoint tensor " + t.name + " lies outside " + f.path() +
                                                     " or its byte count does not match its shape");
  }
  if (t.offset % DTypeBytes(t.dtype) != 0) {
    throw EngineError("checkpoint_file_invalid", "checkpoint tensor " + t.name + " is not aligned to its element size");
  }
  *dtype = t.dtype;
  return f.data() + t.offset;
}

Matrix WeightStore::Mat(const std::string& key, const std::vector<int64_t>& shape) const {
  Matrix m;
  m.data = Find(key, shape, &m.dtype);
  m.rows = shape.empty() ? 1 : shape[0];
  m.cols = 1;
  for (size_t i = 1; i < shape.size(); ++i) m.cols *= shape[i];
  return m;
}

std::vector<float> WeightStore::Floats(const std::string& key, const std::vector<int64_t>& shape) const {
  Matrix m;
  m.data = Find(key, shape, &m.dtype);
  m.rows = 1;
  m.cols = 1;
  for (int64_t d : shape) m.cols *= d;
  std::vector<float> out(static_cast<size_t>(m.cols));
  RowToF32(m, 0, out.data());
  return out;
}

Linear LoadLinear(const WeightStore& ws, const std::string& prefix, int64_t out, int64_t in, bool bias) {
  Linear L;
  L.w = ws.Mat(prefix + ".weight", {out, in});
  if (bias) L.b = ws.Floats(prefix + ".bias", {out});
  return L;
}

LayerNormW LoadLayerNorm(const WeightStore& ws, const std::string& prefix, int64_t n, float eps) {
  LayerNormW ln;
  ln.w = ws.Floats(prefix + ".weight", {n});
  ln.b = ws.Floats(prefix + ".bias", {n});
  ln.eps = eps;
  return ln;
}

// ---- kernels ------------------------------------------------------------------------------------

void ApplyLinear(ThreadPool& pool, const Linear& L, const float* X, int64_t T, int64_t ldx, float* Y, int64_t ldy) {
  if (T <= 0) return;
  const int64_t O = L.out();
  // Tasks: blocks of rows x blocks of output columns; the k dimension is never split.
  const int64_t tb = 32;
  const int64_t ntb = (T + tb - 1) / tb;
  int64_t ob = 64;
  if (ntb < 2 * pool.size()) {
    ob = std::max<int64_t>(16, (O * ntb + 4 * pool.size() - 1) / (4 * pool.size()));
    ob = (ob + 7) / 8 * 8;
  }
  const int64_t nob = (O + ob - 1) / ob;
  pool.Run(ntb * nob, [&](int64_t task) {
    const int64_t bt = task / nob, bo = task % nob;
    const int64_t t0 = bt * tb, t1 = std::min(T, t0 + tb);
    const int64_t o0 = bo * ob, o1 = std::min(O, o0 + ob);
    float* y = Y + t0 * ldy + o0;
    MatMulRows(X + t0 * ldx, t1 - t0, ldx, L.w, o0, o1, y, ldy);
    if (!L.b.empty()) {
      for (int64_t t = t0; t < t1; ++t) {
        float* row = Y + t * ldy;
        for (int64_t o = o0; o < o1; ++o) row[o] += L.b[static_cast<size_t>(o)];
      }
    }
  });
}

namespace {

OMNI_CLONES void LayerNormRow(const float* x, const float* w, const float* b, int64_t n, float eps, float* out) {
  double s = 0.0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  const double mean = s / static_cast<double>(n);
  double v = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = x[i] - mean;
    v += d * d;
  }
  const float inv = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(n) + static_cast<double>(eps)));
  const float m = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] - m) * inv * w[i] + b[i];
}

}  // namespace

void ApplyLayerNorm(ThreadPool& pool, const LayerNormW& ln, const float* x, int64_t T, int64_t n, float* out) {
  const int64_t rb = 64;
  pool.Run((T + rb - 1) / rb, [&](int64_t task) {
    const int64_t t1 = std::min(T, (task + 1) * rb);
    for (int64_t t = task * rb; t < t1; ++t) LayerNormRow(x + t * n, ln.w.data(), ln.b.data(), n, ln.eps, out + t * n);
  });
}

void GeluErf(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::erf(v * 0.70710678118654752440f));
  }
}

void GeluTanh(float* x, int64_t n) {
  const float k = 0.79788456080286535588f;  // sqrt(2 / pi)
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = 0.5f * v * (1.0f + std::tanh(k * (v + 0.044715f * v * v * v)));
  }
}

void ApplyGelu(ThreadPool& pool, float* x, int64_t n, bool tanh_approx) {
  const int64_t block = 16384;
  pool.Run((n + block - 1) / block, [&](int64_t task) {
    const int64_t i0 = task * block, len = std::min(n, i0 + block) - i0;
    if (tanh_approx) {
      GeluTanh(x + i0, len);
    } else {
      GeluErf(x + i0, len);
    }
  });
}

void SegmentAttention(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t ld, int64_t heads,
                      int64_t hd, const std::vector<int64_t>& cu, float scale, float* out, int64_t ldo) {
  // Tasks: (segment, head, block of query rows).
  const int64_t qb = 16;
  struct Seg {
    int64_t begin, len, blocks, first;
  };
  std::vector<Seg> segs;
  int64_t total = 0;
  for (size_t i = 0; i + 1 < cu.size(); ++i) {
    const int64_t len = cu[i + 1] - cu[i];
    if (len <= 0) continue;
    const int64_t blocks = (len + qb - 1) / qb;
    segs.push_back({cu[i], len, blocks, total});
    total += blocks * heads;
  }
  pool.Run(total, [&](int64_t task) {
    size_t s = static_cast<size_t>(std::upper_bound(segs.begin(), segs.end(), task,
                                                    [](int64_t t, const Seg& g) { return t < g.first; }) -
                                   segs.begin()) -
               1;
    const Seg& g = segs[s];
    const int64_t local = task - g.first;
    const int64_t h = local / g.blocks, blk = local % g.blocks;
    const int64_t r0 = g.begin + blk * qb, r1 = std::min(g.begin + g.len, r0 + qb);
    std::vector<float> p(static_cast<size_t>(g.len));
    for (int64_t r = r0; r < r1; ++r) {
      const float* qr = q + r * ld + h * hd;
      for (int64_t j = 0; j < g.len; ++j) p[static_cast<size_t>(j)] = Dot(qr, k + (g.begin + j) * ld + h * hd, hd) * scale;
      Softmax(p.data(), g.len);
      float* o = out + r * ldo + h * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = 0; j < g.len; ++j) Axpy(p[static_cast<size_t>(j)], v + (g.begin + j) * ld + h * hd, o, hd);
    }
  });
}

}  // namespace omni::engine
