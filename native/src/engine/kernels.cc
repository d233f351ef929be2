#include "kernels.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "../simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(OMNI_NO_CLONES)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12 reports the deliberately undefined upper halves inside some AVX-512 intrinsics
// (_mm512_undefined_*) as maybe-uninitialized; they are not read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define ENGINE_X86 1
#define ENGINE_AVX2 __attribute__((target("avx2,fma,f16c")))
#define ENGINE_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#endif

namespace omni::engine {
namespace {

inline float Bf16ToF32(uint16_t b) {
  uint32_t u = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu, u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: normalise
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --exp;
      }
      u = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

template <DType D>
inline float LoadScalar(const uint8_t* row, int64_t k) {
  if constexpr (D == DType::F32) {
    float f;
    std::memcpy(&f, row + k * 4, 4);
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, row + k * 2, 2);
    return D == DType::BF16 ? Bf16ToF32(h) : F16ToF32(h);
  }
}

// ---- portable path: 8 emulated lanes, same structure as the AVX2 one -------------------------

template <DType D, int R, int C>
void TilePortable(const float* X, int64_t ldx, const uint8_t* const* w, int64_t K, float* Y, int64_t ldy) {
  float acc[R][C][8] = {};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    for (int c = 0; c < C; ++c) {
      float wv[8];
      for (int l = 0; l < 8; ++l) wv[l] = LoadScalar<D>(w[c], k + l);
      for (int r = 0; r < R; ++r)
        for (int l = 0; l < 8; ++l) acc[r][c][l] += X[r * ldx + k + l] * wv[l];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      const float* a = acc[r][c];
      float s = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
      for (int64_t kk = k; kk < K; ++kk) s += X[r * ldx + kk] * LoadScalar<D>(w[c], kk);
      Y[r * ldy + c] = s;
    }
}

#if defined(ENGINE_X86)
ENGINE_AVX2 inline __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }

template <DType D>
ENGINE_AVX2 inline __m256 LoadW8(const uint8_t* row, int64_t k) {
  if constexpr (D == DType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + k);
  } else if constexpr (D == DType::BF16) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k * 2));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  } else {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + k * 2));
    return _mm256_cvtph_ps(h);
  }
}

// Lane sum in the same order as the portable path: (l0+l4, l1+l5, l2+l6, l3+l7), then pairs.
ENGINE_AVX2 inline float HSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));  // a0+a4 .. a3+a7
  __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));  // (s0+s2, s1+s3)
  __m128 u = _mm_add_ss(t, _mm_shuffle_ps(t, t, 1));  // (s0+s2)+(s1+s3)
  return _mm_cvtss_f32(u);
}

template <DType D, int R, int C>
ENGINE_AVX2 void TileAvx2(const float* X, int64_t ldx, const uint8_t* const* w, int64_t K, float* Y, int64_t ldy) {
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  int64_t k = 0;
  if constexpr (R < 4 && C > 1) {
    // Decode tiles stream their weights once: prefetch the next tile's rows (the C rows after
    // these, equally spaced in W) one cache line per row every 32 k, as the hardware prefetcher stops
    // at page boundaries and the rows are short. Same k order and lanes as the loop below.
    const int64_t step = static_cast<int64_t>(DTypeBytes(D)), ahead = (w[1] - w[0]) * C;
    for (; k + 32 <= K; k += 32) {
      for (int c = 0; c < C; ++c)
        for (int64_t b = 0; b < 32 * step; b += 64) _mm_prefetch(reinterpret_cast<const char*>(w[c] + ahead + k * step + b), _MM_HINT_T0);
      for (int kk = 0; kk < 32; kk += 8) {
        __m256 wv[C];
        for (int c = 0; c < C; ++c) wv[c] = LoadW8<D>(w[c], k + kk);
        for (int r = 0; r < R; ++r) {
          const __m256 x = Load8(X + r * ldx + k + kk);
          for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(x, wv[c], acc[r][c]);
        }
      }
    }
  }
  for (; k + 8 <= K; k += 8) {
    __m256 wv[C];
    for (int c = 0; c < C; ++c) wv[c] = LoadW8<D>(w[c], k);
    for (int r = 0; r < R; ++r) {
      const __m256 x = Load8(X + r * ldx + k);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_fmadd_ps(x, wv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      float s = HSum(acc[r][c]);
      for (int64_t kk = k; kk < K; ++kk) s = std::fma(X[r * ldx + kk], LoadScalar<D>(w[c], kk), s);
      Y[r * ldy + c] = s;
    }
}
#endif

bool UseAvx512() {
#if defined(ENGINE_X86)
  static const bool ok = [] {
    const char* env = std::getenv("OMNI_ENGINE_AVX512");
    if (env && env[0] == '0') return false;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return ok;
#else
  return false;
#endif
}

bool UseAvx2() {
#if defined(ENGINE_X86)
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return ok;
#else
  return false;
#endif
}

using TileFn = void (*)(const float*, int64_t, const uint8_t* const*, int64_t, float*, int64_t);

template <DType D, int R, int C>
TileFn PickTile() {
#if defined(ENGINE_X86)
  if (UseAvx2()) return &TileAvx2<D, R, C>;
#endif
  return &TilePortable<D, R, C>;
}

// Rows of W: base + o * stride bytes, K values each.
struct RowsView {
  const uint8_t* base;
  size_t stride;
  const uint8_t* Row(int64_t o) const { return base + static_cast<size_t>(o) * stride; }
};

template <DType D>
void MatMulTyped(const float* X, int64_t T, int64_t ldx, const RowsView& W, int64_t K, int64_t o0, int64_t o1, float* Y, int64_t ldy) {
  // Several rows: 4 x 3 tiles (12 accumulators); one to three rows: R x 8 / R x 4.
  static const TileFn t43 = PickTile<D, 4, 3>(), t41 = PickTile<D, 4, 1>();
  static const TileFn t18 = PickTile<D, 1, 8>(), t11 = PickTile<D, 1, 1>();
  static const TileFn t24 = PickTile<D, 2, 4>(), t21 = PickTile<D, 2, 1>();
  static const TileFn t34 = PickTile<D, 3, 4>(), t31 = PickTile<D, 3, 1>();
  const uint8_t* w[8];
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) {
    const float* x = X + t * ldx;
    float* y = Y + t * ldy;
    int64_t o = o0;
    for (; o + 3 <= o1; o += 3) {
      for (int c = 0; c < 3; ++c) w[c] = W.Row(o + c);
      t43(x, ldx, w, K, y + (o - o0), ldy);
    }
    for (; o < o1; ++o) {
      w[0] = W.Row(o);
      t41(x, ldx, w, K, y + (o - o0), ldy);
    }
  }
  const int64_t rest = T - t;
  if (rest == 0) return;
  const float* x = X + t * ldx;
  float* y = Y + t * ldy;
  const int C = rest == 1 ? 8 : 4;
  const TileFn wide = rest == 1 ? t18 : rest == 2 ? t24 : t34;
  const TileFn one = rest == 1 ? t11 : rest == 2 ? t21 : t31;
  int64_t o = o0;
  for (; o + C <= o1; o += C) {
    for (int c = 0; c < C; ++c) w[c] = W.Row(o + c);
    wide(x, ldx, w, K, y + (o - o0), ldy);
  }
  for (; o < o1; ++o) {
    w[0] = W.Row(o);
    one(x, ldx, w, K, y + (o - o0), ldy);
  }
}

}  // namespace

void MatMulRows(const float* X, int64_t T, int64_t ldx, const Matrix& W, int64_t o0, int64_t o1, float* Y, int64_t ldy) {
  const RowsView v{W.data, static_cast<size_t>(W.cols) * DTypeBytes(W.dtype)};
  switch (W.dtype) {
    case DType::F32: return MatMulTyped<DType::F32>(X, T, ldx, v, W.cols, o0, o1, Y, ldy);
    case DType::BF16: return MatMulTyped<DType::BF16>(X, T, ldx, v, W.cols, o0, o1, Y, ldy);
    case DType::F16: return MatMulTyped<DType::F16>(X, T, ldx, v, W.cols, o0, o1, Y, ldy);
  }
}

void DotRows(const float* X, int64_t T, int64_t ldx, const float* W, int64_t rows, int64_t ldw, int64_t n, float* Y, int64_t ldy) {
  const RowsView v{reinterpret_cast<const uint8_t*>(W), static_cast<size_t>(ldw) * 4};
  MatMulTyped<DType::F32>(X, T, ldx, v, n, 0, rows, Y, ldy);
}

void RowToF32(const Matrix& W, int64_t r, float* out) {
  const uint8_t* row = W.Row(r);
  switch (W.dtype) {
    case DType::F32: std::memcpy(out, row, static_cast<size_t>(W.cols) * 4); return;
    case DType::BF16:
      for (int64_t k = 0; k < W.cols; ++k) out[k] = LoadScalar<DType::BF16>(row, k);
      return;
    case DType::F16:
      for (int64_t k = 0; k < W.cols; ++k) out[k] = LoadScalar<DType::F16>(row, k);
      return;
  }
}

float Dot(const float* a, const float* b, int64_t n) {
  const uint8_t* w[1] = {reinterpret_cast<const uint8_t*>(b)};
  float out;
#if defined(ENGINE_X86)
  if (UseAvx2()) {
    TileAvx2<DType::F32, 1, 1>(a, 0, w, n, &out, 0);
    return out;
  }
#endif
  TilePortable<DType::F32, 1, 1>(a, 0, w, n, &out, 0);
  return out;
}

OMNI_CLONES void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

namespace {

// Slots per block of WeightedRows: a block of V rows stays in L1 while every d chunk passes over it.
constexpr int64_t kValueBlock = 64;

void WeightedRowsPortable(const float* P, int64_t H, int64_t ldp, const float* V, int64_t n, int64_t ldv, int64_t dim, float* out, int64_t ldo) {
  for (int64_t h = 0; h < H; ++h) {
    float* o = out + h * ldo;
    std::fill(o, o + dim, 0.0f);
    for (int64_t j = 0; j < n; ++j) Axpy(P[h * ldp + j], V + j * ldv, o, dim);
  }
}

#if defined(ENGINE_X86)
// The empty asm hides the product from the compiler, so that it cannot fuse the multiply and the
// add into an FMA (Axpy rounds both).
template <int NH>
ENGINE_AVX2 void WeightedAvx2(const float* P, int64_t ldp, const float* V, int64_t n, int64_t ldv, int64_t dim, float* out, int64_t ldo) {
  int64_t d = 0;
  for (; d + 8 <= dim; d += 8) {
    for (int64_t j0 = 0; j0 < n; j0 += kValueBlock) {
      const int64_t j1 = std::min(n, j0 + kValueBlock);
      __m256 acc[NH];
      for (int h = 0; h < NH; ++h) acc[h] = j0 ? _mm256_loadu_ps(out + h * ldo + d) : _mm256_setzero_ps();
      for (int64_t j = j0; j < j1; ++j) {
        const __m256 v = _mm256_loadu_ps(V + j * ldv + d);
        for (int h = 0; h < NH; ++h) {
          __m256 prod = _mm256_mul_ps(_mm256_broadcast_ss(P + h * ldp + j), v);
          __asm__("" : "+x"(prod));
          acc[h] = _mm256_add_ps(acc[h], prod);
        }
      }
      for (int h = 0; h < NH; ++h) _mm256_storeu_ps(out + h * ldo + d, acc[h]);
    }
  }
  for (; d < dim; ++d)
    for (int h = 0; h < NH; ++h) {
      float s = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        volatile float prod = P[h * ldp + j] * V[j * ldv + d];
        s += prod;
      }
      out[h * ldo + d] = s;
    }
}

template <int NH>
ENGINE_AVX512 void WeightedAvx512(const float* P, int64_t ldp, const float* V, int64_t n, int64_t ldv, int64_t dim, float* out, int64_t ldo) {
  if (dim % 16 != 0) return WeightedAvx2<NH>(P, ldp, V, n, ldv, dim, out, ldo);
  for (int64_t d = 0; d < dim; d += 16) {
    for (int64_t j0 = 0; j0 < n; j0 += kValueBlock) {
      const int64_t j1 = std::min(n, j0 + kValueBlock);
      __m512 acc[NH];
      for (int h = 0; h < NH; ++h) acc[h] = j0 ? _mm512_loadu_ps(out + h * ldo + d) : _mm512_setzero_ps();
      for (int64_t j = j0; j < j1; ++j) {
        const __m512 v = _mm512_loadu_ps(V + j * ldv + d);
        for (int h = 0; h < NH; ++h) {
          __m512 prod = _mm512_mul_ps(_mm512_set1_ps(P[h * ldp + j]), v);
          __asm__("" : "+v"(prod));
          acc[h] = _mm512_add_ps(acc[h], prod);
        }
      }
      for (int h = 0; h < NH; ++h) _mm512_storeu_ps(out + h * ldo + d, acc[h]);
    }
  }
}

using WeightedFn = void (*)(const float*, int64_t, const float*, int64_t, int64_t, int64_t, float*, int64_t);

template <int NH>
WeightedFn PickWeighted() {
  return UseAvx512() ? &WeightedAvx512<NH> : &WeightedAvx2<NH>;
}
#endif

}  // namespace

void WeightedRows(const float* P, int64_t H, int64_t ldp, const float* V, int64_t n, int64_t ldv, int64_t dim, float* out, int64_t ldo) {
#if defined(ENGINE_X86)
  if (UseAvx2()) {
    static const WeightedFn fns[8] = {PickWeighted<1>(), PickWeighted<2>(), PickWeighted<3>(), PickWeighted<4>(),
                                      PickWeighted<5>(), PickWeighted<6>(), PickWeighted<7>(), PickWeighted<8>()};
    if (n <= 0) {
      for (int64_t h = 0; h < H; ++h) std::fill(out + h * ldo, out + h * ldo + dim, 0.0f);
      return;
    }
    for (int64_t h = 0; h < H; h += 8) {
      const int64_t nh = std::min<int64_t>(8, H - h);
      fns[nh - 1](P + h * ldp, ldp, V, n, ldv, dim, out + h * ldo, ldo);
    }
    return;
  }
#endif
  WeightedRowsPortable(P, H, ldp, V, n, ldv, dim, out, ldo);
}

OMNI_CLONES void RmsNorm(const float* x, const float* w, int64_t n, float eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(n)) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = w[i] * (x[i] * inv);
}

void SiluMul(float* g, const float* u, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = g[i];
    g[i] = v / (1.0f + std::exp(-v)) * u[i];
  }
}

namespace {

typedef float F8 __attribute__((vector_size(32)));
typedef int32_t I8 __attribute__((vector_size(32)));

inline F8 LoadF8(const float* p) {
  F8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// exp(x) for x <= 0, 8 lanes: Cody-Waite reduction by ln 2 (rounded to nearest with the 1.5 * 2^23
// trick) and Cephes' degree-7 polynomial for exp on [-ln2/2, ln2/2], within 1 ulp of the correctly
// rounded exp (checked on every 8th float of [-87.33, 0]); below ln(FLT_MIN) the result is 0.
// Plain vector arithmetic, no fused multiply-add in any build (the clones are "avx2" and
// "default"), so every lane of every row gets the same bits for the same input. The scalar expf
// it replaces was a third of a small model's prefill.
inline F8 ExpNonPositive(F8 x) {
  const I8 under = x < -87.33654f;  // exp(x) below FLT_MIN: the result is 0
  x = under ? F8{} - 87.33654f : x;  // keeps 2^n a normal number
  const F8 magic = F8{} + 12582912.0f;  // 1.5 * 2^23
  const F8 t = x * 1.44269504088896341f + magic;
  const F8 n = t - magic;  // round(x / ln 2)
  const F8 r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  F8 p = F8{} + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  I8 t_bits, magic_bits;
  std::memcpy(&t_bits, &t, sizeof t_bits);
  std::memcpy(&magic_bits, &magic, sizeof magic_bits);
  const I8 scale_bits = ((t_bits - magic_bits) + 127) << 23;  // 2^n, n >= -126 here
  F8 scale;
  std::memcpy(&scale, &scale_bits, sizeof scale);
  const F8 e = p * scale;
  return under ? F8{} : e;
}

}  // namespace

// Softmax of a row: the exponentials 8 at a time (a tail shorter than 8 goes through the same
// vector code in a zero-padded copy), summed in 8 lanes and then in a fixed order, so a row's
// result depends only on its values, never on its address or on how it was batched.
OMNI_CLONES void Softmax(float* x, int64_t n) {
  // The maximum in 8 lanes (exact in any order), then the lanes and the tail.
  F8 mv = F8{} - INFINITY;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const F8 v = LoadF8(x + i);
    mv = v > mv ? v : mv;
  }
  float m = -INFINITY;
  for (int l = 0; l < 8; ++l) m = mv[l] > m ? mv[l] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  F8 acc = {};
  i = 0;
  for (; i + 8 <= n; i += 8) {
    const F8 e = ExpNonPositive(LoadF8(x + i) - m);
    std::memcpy(x + i, &e, sizeof e);
    acc += e;
  }
  if (i < n) {
    float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = x[j] - m;
    F8 e = ExpNonPositive(LoadF8(tail));
    for (int64_t j = n - i; j < 8; ++j) e[j] = 0.0f;
    for (int64_t j = i; j < n; ++j) x[j] = e[j - i];
    acc += e;
  }
  const float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  const float inv = 1.0f / s;
  for (int64_t k = 0; k < n; ++k) x[k] *= inv;
}

const char* KernelLevel() { return UseAvx2() ? "avx2+fma" : "portable"; }

}  // namespace omni::engine
