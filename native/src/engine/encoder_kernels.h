// Pieces shared by the thinker's audio and vision encoders (audio_encoder.h, vision_encoder.h):
// weights looked up in the mapped checkpoint, LayerNorm with bias, the two GELUs, linear layers
// with bias spread over the engine's thread pool, and bidirectional attention over segments
// (cu_seqlens). Matrix products go through MatMulRows (kernels.h), so every output element is one
// dot product in a fixed order whatever the thread count: results do not depend on `threads`.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels.h"
#include "mapped_file.h"
#include "thinker.h"  // TensorRef, EngineError
#include "thread_pool.h"

namespace omni::engine {

// One tensor of the load spec (the thinker's TensorRef: `key` is the name without `thinker.`).
using EncoderTensor = TensorRef;

// The mapped checkpoint files and the tensors of one encoder; throws EngineError (checkpoint_*).
class WeightStore {
 public:
  WeightStore(const std::vector<std::string>& files, const std::vector<EncoderTensor>& tensors);
  // A weight viewed as rows x cols in its stored dtype; `shape` is the exact stored shape.
  Matrix Mat(const std::string& key, const std::vector<int64_t>& shape) const;
  // A small tensor widened to f32 (norms, biases, position tables).
  std::vector<float> Floats(const std::string& key, const std::vector<int64_t>& shape) const;
  bool Has(const std::string& key) const { return by_key_.count(key) != 0; }

 private:
  const uint8_t* Find(const std::string& key, const std::vector<int64_t>& shape, DType* dtype) const;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<EncoderTensor> tensors_;
  std::unordered_map<std::string, size_t> by_key_;
};

// An nn.Linear: weight out x in (stored dtype) and an optional f32 bias.
struct Linear {
  Matrix w;
  std::vector<float> b;  // empty: no bias
  int64_t out() const { return w.rows; }
  int64_t in() const { return w.cols; }
};

struct LayerNormW {
  std::vector<float> w, b;
  float eps = 1e-5f;
};

Linear LoadLinear(const WeightStore& ws, const std::string& prefix, int64_t out, int64_t in, bool bias);
LayerNormW LoadLayerNorm(const WeightStore& ws, const std::string& prefix, int64_t n, float eps);

// Y[t * ldy + o] = X[t] . W[o] (+ b[o]) for T rows, over the pool.
void ApplyLinear(ThreadPool& pool, const Linear& L, const float* X, int64_t T, int64_t ldx, float* Y, int64_t ldy);

// out[t] = LayerNorm(x[t]) for T rows of n (torch.nn.LayerNorm: biased variance); out may alias x.
void ApplyLayerNorm(ThreadPool& pool, const LayerNormW& ln, const float* x, int64_t T, int64_t n, float* out);

// In place: exact GELU 0.5 x (1 + erf(x / sqrt 2)) / the tanh approximation (gelu_pytorch_tanh).
void GeluErf(float* x, int64_t n);
void GeluTanh(float* x, int64_t n);
// Either GELU over n values, split over the pool.
void ApplyGelu(ThreadPool& pool, float* x, int64_t n, bool tanh_approx);

// Bidirectional softmax attention within segments [cu[i], cu[i+1]) of T rows. Head h of row t:
// q[t * ldq + h * hd], likewise k, v; out[t * ldo + h * hd]. scores = q.k * scale.
void SegmentAttention(ThreadPool& pool, const float* q, const float* k, const float* v, int64_t ld, int64_t heads,
                      int64_t hd, const std::vector<int64_t>& cu, float scale, float* out, int64_t ldo);

}  // namespace omni::engine
