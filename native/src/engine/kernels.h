// Compute kernels of the engine: weights in F32, BF16 or F16 (kept as stored, widened on the fly)
// times f32 activations. Every output element is one dot product accumulated in 8 lanes in k
// order, then summed in a fixed order, whatever the tile, row count or thread: a row's result does
// not depend on which other rows share the call (batched decode == one at a time, bit for bit).
#pragma once
#include <cstddef>
#include <cstdint>

namespace omni::engine {

enum class DType : uint8_t { F32 = 0, BF16 = 1, F16 = 2 };

inline size_t DTypeBytes(DType d) { return d == DType::F32 ? 4 : 2; }

// Row-major rows x cols (an nn.Linear weight: out x in).
struct Matrix {
  const uint8_t* data = nullptr;
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  const uint8_t* Row(int64_t r) const { return data + static_cast<size_t>(r) * cols * DTypeBytes(dtype); }
};

// Y[t * ldy + (o - o0)] = dot(X[t * ldx ...], W.row(o)) for t in [0, T), o in [o0, o1).
void MatMulRows(const float* X, int64_t T, int64_t ldx, const Matrix& W, int64_t o0, int64_t o1, float* Y, int64_t ldy);

// Y[t * ldy + o] = Dot(X + t * ldx, W + o * ldw, n) for t in [0, T), o in [0, rows): f32 rows with
// a stride (attention scores of several query heads against several cached keys), each element
// bit-identical to Dot and to MatMulRows of the same values.
void DotRows(const float* X, int64_t T, int64_t ldx, const float* W, int64_t rows, int64_t ldw, int64_t n, float* Y, int64_t ldy);

// Row r of W widened to f32 (embedding lookup, small vectors).
void RowToF32(const Matrix& W, int64_t r, float* out);

// out = x / sqrt(mean(x^2) + eps) * w (the reference's RMSNorm in f32); out may alias x.
void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out);

// g[i] = silu(g[i]) * u[i]
void SiluMul(float* g, const float* u, int64_t n);

// dot product with the same lane order as MatMulRows (attention scores).
float Dot(const float* a, const float* b, int64_t n);
// y += a * x
void Axpy(float a, const float* x, float* y, int64_t n);

// Attention's weighted sum of values for H heads at once: out[h * ldo + d] = 0, then for j = 0..n-1
// in order out[h * ldo + d] += P[h * ldp + j] * V[j * ldv + d] (d < dim), rounding the product and
// the sum separately: bit-identical to H x (fill 0; n Axpy calls), but each V row is read once for
// all heads and the sums stay in registers across slots.
void WeightedRows(const float* P, int64_t H, int64_t ldp, const float* V, int64_t n, int64_t ldv, int64_t dim, float* out, int64_t ldo);

// In-place softmax over n values.
void Softmax(float* x, int64_t n);

const char* KernelLevel();

}  // namespace omni::engine
