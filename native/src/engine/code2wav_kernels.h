// Streaming building blocks of the code-to-wave decoder (code2wav.h). Activations are time-major
// (rows = time steps, `C` floats each). Every block keeps the little state a causal stream needs,
// so feeding a sequence in pieces gives the same rows as feeding it at once:
//   - CausalConv1d: Qwen3OmniMoeCausalConvNet with stride 1: (k-1)*dilation zeros on the left, same
//     length out. State: the last (k-1)*dilation input rows.
//   - TransConv1d: Qwen3OmniMoeCausalTransConvNet (ConvTranspose1d kernel J*s, stride s, trimmed by
//     k-s on both sides): output block b (s rows) depends on inputs b..b+J-1, so a stream of L
//     inputs gives (L-J+1)*s rows. State: the last J-1 input rows.
//   - DepthwiseConv1d (ConvNeXt dwconv, causal k7) and SnakeBeta (stateless).
// Weights stay in their stored dtype; convolution weights are re-laid (bytes copied, never widened)
// so that each output row is one MatMulRows dot product over a contiguous input window.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "encoder_kernels.h"

namespace omni::engine {

struct CausalConv1d {
  Linear lin;  // cout x (k * cin), tap-major: column k*cin + ci
  std::shared_ptr<std::vector<uint8_t>> storage;
  int64_t cin = 0, cout = 0, k = 0, dil = 1;
  int64_t History() const { return (k - 1) * dil; }
};

struct TransConv1d {
  Linear lin;  // (s * cout) x (J * cin): row rr*cout+co, column p*cin+ci = W[ci][co][(J-1-p)*s + rr]
  std::shared_ptr<std::vector<uint8_t>> storage;
  int64_t cin = 0, cout = 0, stride = 1, taps = 1;  // taps = J = kernel / stride
};

struct DepthwiseConv1d {
  std::vector<float> w, b;  // c x k, c
  int64_t c = 0, k = 0;
};

struct SnakeBeta {
  std::vector<float> alpha, inv_beta;  // exp(alpha), 1 / (exp(beta) + 1e-9)
};

// Rows of one stream position's history (zeros for a causal conv's left padding).
struct History {
  std::vector<float> rows;  // count x C
  int64_t count = 0;
};

// `prefix` names the nn.Conv1d / nn.ConvTranspose1d (its .weight and .bias). Throws EngineError.
CausalConv1d LoadCausalConv(const WeightStore& ws, const std::string& prefix, int64_t cin, int64_t cout, int64_t k, int64_t dil);
TransConv1d LoadTransConv(const WeightStore& ws, const std::string& prefix, int64_t cin, int64_t cout, int64_t kernel, int64_t stride);
DepthwiseConv1d LoadDepthwise(const WeightStore& ws, const std::string& prefix, int64_t c, int64_t k);
SnakeBeta LoadSnake(const WeightStore& ws, const std::string& prefix, int64_t c);

History CausalConvHistory(const CausalConv1d& conv);  // zeros
History DepthwiseHistory(const DepthwiseConv1d& conv);  // zeros

// Outputs go to the first rows of `y`, which is grown as needed and never shrunk (its size may
// exceed the rows written).
// y (m x cout) = conv over the m new rows x (m x cin); updates `h`.
void CausalConvForward(ThreadPool& pool, const CausalConv1d& conv, History& h, const float* x, int64_t m, std::vector<float>& y);
// y = the rows the m new inputs complete (returns their count); updates `h`.
int64_t TransConvForward(ThreadPool& pool, const TransConv1d& conv, History& h, const float* x, int64_t m, std::vector<float>& y);
void DepthwiseForward(ThreadPool& pool, const DepthwiseConv1d& conv, History& h, const float* x, int64_t m, std::vector<float>& y);
// In place over rows x C (C = alpha.size()); `out` may be x (then in place) or a separate buffer.
void SnakeForward(ThreadPool& pool, const SnakeBeta& s, const float* x, int64_t rows, float* out);

}  // namespace omni::engine
