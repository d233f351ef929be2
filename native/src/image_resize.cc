#include "image_resize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>
#include <type_traits>

#include "simd.h"

#if defined(OMNI_HAVE_AVX2)
#include <immintrin.h>
#endif


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

// Output pixel x of one row along x: its taps over the interleaved RGB of source row `s`.
inline void HorizontalPixel(const uint8_t* s, const AxisTaps& t, int x, uint8_t* d) {
  const int32_t init = t.precision > 0 ? 1 << (t.precision - 1) : 0;
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

// rows x in_w x 3 -> rows x out_w x 3, along x.
OMNI_CLONES void HorizontalPortable(const uint8_t* src, int in_w, int rows, const AxisTaps& t, uint8_t* dst, int out_w) {
  const size_t in_stride = static_cast<size_t>(in_w) * 3, out_stride = static_cast<size_t>(out_w) * 3;
  for (int r = 0; r < rows; ++r) {
    for (int x = 0; x < out_w; ++x) HorizontalPixel(src + r * in_stride, t, x, dst + r * out_stride);
  }
}

#if defined(OMNI_HAVE_AVX2)
// The horizontal pass two taps at a time: the 6 bytes of pixels j and j+1 are shuffled into int16
// pairs (R_j, R_j+1, G_j, G_j+1, B_j, B_j+1) and multiplied by (w_j, w_j+1) with one madd, giving
// the three channel sums in int32 lanes: exact integer sums, so the same result as the portable
// loop. An 8-byte load reads up to 2 bytes past the pair; pixels whose taps end within 8 bytes of
// the rows' end are summed one tap at a time.
OMNI_AVX2 void HorizontalAvx2(const uint8_t* src, int in_w, int rows, const AxisTaps& t, uint8_t* dst, int out_w) {
  const int32_t init = t.precision > 0 ? 1 << (t.precision - 1) : 0;
  const size_t in_stride = static_cast<size_t>(in_w) * 3, out_stride = static_cast<size_t>(out_w) * 3;
  const size_t readable = rows * in_stride;
  // Per output pixel, its tap pairs as (w_j, w_j+1) int32 words (an odd count ends with weight 0).
  int max_pairs = 0;
  for (int x = 0; x < out_w; ++x) max_pairs = std::max(max_pairs, (t.size[x] + 1) / 2);
  std::vector<int32_t> pairs(static_cast<size_t>(out_w) * max_pairs, 0);
  for (int x = 0; x < out_w; ++x) {
    const int16_t* w = t.weight.data() + static_cast<size_t>(x) * t.taps;
    for (int j = 0; j < t.size[x]; j += 2) {
      const uint16_t w1 = j + 1 < t.size[x] ? static_cast<uint16_t>(w[j + 1]) : 0;
      pairs[static_cast<size_t>(x) * max_pairs + j / 2] =
          static_cast<int32_t>((static_cast<uint32_t>(w1) << 16) | static_cast<uint16_t>(w[j]));
    }
  }
  const __m128i split = _mm_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1);
  const __m128i vinit = _mm_setr_epi32(init, init, init, 0);
  const __m128i shift = _mm_cvtsi32_si128(t.precision);
  for (int r = 0; r < rows; ++r) {
    uint8_t* d = dst + r * out_stride;
    for (int x = 0; x < out_w; ++x) {
      const size_t offset = r * in_stride + static_cast<size_t>(t.start[x]) * 3;
      const uint8_t* p = src + offset;
      const int n = (t.size[x] + 1) / 2;
      if (offset + 6 * static_cast<size_t>(n) + 2 > readable) {  // the block's last pixels: no read past its end
        HorizontalPixel(src + r * in_stride, t, x, d);
        continue;
      }
      const int32_t* wp = pairs.data() + static_cast<size_t>(x) * max_pairs;
      __m128i acc = vinit;
      for (int j = 0; j < n; ++j) {
        const __m128i px = _mm_shuffle_epi8(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p + 6 * j)), split);
        acc = _mm_add_epi32(acc, _mm_madd_epi16(px, _mm_set1_epi32(wp[j])));
      }
      const __m128i v = _mm_sra_epi32(acc, shift);
      const uint32_t bytes = static_cast<uint32_t>(_mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(v, v), v)));
      d[3 * x] = static_cast<uint8_t>(bytes);
      d[3 * x + 1] = static_cast<uint8_t>(bytes >> 8);
      d[3 * x + 2] = static_cast<uint8_t>(bytes >> 16);
    }
  }
}
#endif

void Horizontal(const uint8_t* src, int in_w, int rows, const AxisTaps& t, uint8_t* dst, int out_w) {
#if defined(OMNI_HAVE_AVX2)
  if (CpuHasAvx2()) return HorizontalAvx2(src, in_w, rows, t, dst, out_w);
#endif
  HorizontalPortable(src, in_w, rows, t, dst, out_w);
}

// One output row of the vertical pass: `n` interleaved values from `size` source rows. Blocks of
// 64 values keep their sums in a small local array across the taps, which the compiler keeps in
// vector registers.
OMNI_CLONES void VerticalRowPortable(const uint8_t* src, size_t stride, int start, int size, const int16_t* w,
                                     int precision, size_t n, uint8_t* out) {
  const int32_t init = precision > 0 ? 1 << (precision - 1) : 0;
  const uint8_t* rows = src + static_cast<size_t>(start) * stride;
  constexpr size_t kBlock = 64;
  for (size_t i = 0; i < n; i += kBlock) {
    const size_t m = std::min(kBlock, n - i);
    int32_t acc[kBlock];
    for (size_t j = 0; j < m; ++j) acc[j] = init;
    for (int k = 0; k < size; ++k) {
      const uint8_t* row = rows + static_cast<size_t>(k) * stride + i;
      const int32_t wk = w[k];
      for (size_t j = 0; j < m; ++j) acc[j] += row[j] * wk;
    }
    for (size_t j = 0; j < m; ++j) out[i + j] = Clamp8(acc[j] >> precision);
  }
}

#if defined(OMNI_HAVE_AVX2)
// The same sums, 16 values at a time: two source rows are interleaved as int16 pairs and
// multiplied by their (w[k], w[k+1]) pair with one madd (the Pillow-SIMD scheme), and the int32
// sums stay in registers across all taps. Integer sums are exact, so the result is identical.
OMNI_AVX2 void VerticalRowAvx2Wide(const uint8_t* src, size_t stride, int start, int size, const int16_t* w,
                                   int precision, size_t n, uint8_t* out) {
  const int32_t init = precision > 0 ? 1 << (precision - 1) : 0;
  const uint8_t* rows = src + static_cast<size_t>(start) * stride;
  const __m256i vinit = _mm256_set1_epi32(init);
  const __m128i shift = _mm_cvtsi32_si128(precision);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i lo = vinit, hi = vinit;  // values 0-3, 8-11 and 4-7, 12-15 (unpack works per lane)
    int k = 0;
    for (; k + 1 < size; k += 2) {
      const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + k * stride + i)));
      const __m256i b =
          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + (k + 1) * stride + i)));
      const __m256i wk = _mm256_set1_epi32(static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(w[k + 1])) << 16) |
                                                                static_cast<uint16_t>(w[k])));
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wk));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wk));
    }
    if (k < size) {
      const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows + k * stride + i)));
      const __m256i wk = _mm256_set1_epi32(static_cast<uint16_t>(w[k]));
      const __m256i zero = _mm256_setzero_si256();
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, zero), wk));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, zero), wk));
    }
    // >> precision, then saturate to int16 and to uint8: the same as Clamp8. packs undoes the
    // unpack order within each lane; the final permute joins the two lanes' 8 bytes.
    const __m256i packed = _mm256_packs_epi32(_mm256_sra_epi32(lo, shift), _mm256_sra_epi32(hi, shift));
    const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(packed, packed), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(bytes));
  }
  if (i < n) VerticalRowPortable(src + i, stride, start, size, w, precision, n - i, out + i);
}

OMNI_AVX2 void VerticalRowAvx2(const uint8_t* src, size_t stride, int start, int size, const int16_t* w,
                               int precision, size_t n, uint8_t* out) {
  // The row's tap pairs, set up once rather than per 16 values (an enlargement has 2-3 of them;
  // a strong reduction more, which take the general loop).
  constexpr int kMaxPairs = 8;
  const int pairs = (size + 1) / 2;
  if (pairs > kMaxPairs) return VerticalRowAvx2Wide(src, stride, start, size, w, precision, n, out);
  const uint8_t* rows[2 * kMaxPairs];
  __m256i weights[kMaxPairs];
  for (int k = 0; k < 2 * pairs; ++k) rows[k] = src + static_cast<size_t>(start + std::min(k, size - 1)) * stride;
  for (int p = 0; p < pairs; ++p) {
    const int16_t w1 = 2 * p + 1 < size ? w[2 * p + 1] : 0;  // odd size: the last pair reads its row twice, weight 0
    weights[p] = _mm256_set1_epi32(static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(w1)) << 16) |
                                                        static_cast<uint16_t>(w[2 * p])));
  }
  const int32_t init = precision > 0 ? 1 << (precision - 1) : 0;
  const __m256i vinit = _mm256_set1_epi32(init);
  const __m128i shift = _mm_cvtsi32_si128(precision);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i lo = vinit, hi = vinit;  // values 0-3, 8-11 and 4-7, 12-15 (unpack works per lane)
    for (int p = 0; p < pairs; ++p) {
      const __m256i a = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * p] + i)));
      const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * p + 1] + i)));
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), weights[p]));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), weights[p]));
    }
    // >> precision, then saturate to int16 and to uint8: the same as Clamp8. packs undoes the
    // unpack order within each lane; the final permute joins the two lanes' 8 bytes.
    const __m256i packed = _mm256_packs_epi32(_mm256_sra_epi32(lo, shift), _mm256_sra_epi32(hi, shift));
    const __m256i bytes = _mm256_permute4x64_epi64(_mm256_packus_epi16(packed, packed), 0x08);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_castsi256_si128(bytes));
  }
  if (i < n) VerticalRowPortable(src + i, stride, start, size, w, precision, n - i, out + i);
}
#endif

void VerticalRow(const uint8_t* src, size_t stride, int start, int size, const int16_t* w, int precision, size_t n,
                 uint8_t* out) {
#if defined(OMNI_HAVE_AVX2)
  if (CpuHasAvx2()) return VerticalRowAvx2(src, stride, start, size, w, precision, n, out);
#endif
  VerticalRowPortable(src, stride, start, size, w, precision, n, out);
}

// One channel's 16 normalised values of a patch row, from 16 interleaved RGB pixels.
// float32: (x - 127.5) / 127.5 computed directly, the same float operations as the table, so the
// same bits (and the same as the AVX2 path's vector subtract and divide).
inline void NormaliseRun(const uint8_t* p, int ch, float* out) {
  for (int x = 0; x < kPatch; ++x) out[x] = (static_cast<float>(p[3 * x + ch]) - 127.5f) / 127.5f;
}
// bfloat16: looked up from the rounded float table.
inline void NormaliseRun(const uint8_t* p, int ch, uint16_t* out) {
  static const struct T16 {
    uint16_t v[256];
    T16() {
      for (int i = 0; i < 256; ++i) v[i] = ToBf16(Norm().v[i]);
    }
  } t;
  for (int x = 0; x < kPatch; ++x) out[x] = t.v[p[3 * x + ch]];
}

// Normalises one strip of 32 resized rows (one row of 2x2 merge blocks, starting at image row y0)
// into its output rows, which are contiguous: each patch is written as 6 KB in order (3 channels x
// the temporal slot `slot` (0 or 1), or both when slot < 0, x 16 x 16). Writing the output
// sequentially, patch after patch, lets the hardware prefetch it; scattering each image row over
// 6 planes of every patch across the width (as before) made every 64-byte store a cache miss.
template <typename T>
OMNI_CLONES void ScatterStrip(const uint8_t* rows, size_t stride, int y0, int out_w, int slot, T* out) {
  constexpr int kPlane = kPatch * kPatch;  // one (channel, temporal) slice
  const int blocks_w = out_w / kFactor;
  T* dst = out + static_cast<size_t>(y0 / kFactor) * blocks_w * (kMerge * kMerge) * kRowFloats;
  for (int bw = 0; bw < blocks_w; ++bw) {
    for (int mh = 0; mh < kMerge; ++mh) {
      for (int mw = 0; mw < kMerge; ++mw, dst += kRowFloats) {
        const uint8_t* patch = rows + static_cast<size_t>(mh * kPatch) * stride + (bw * kMerge + mw) * kPatch * 3;
        for (int ch = 0; ch < 3; ++ch) {
          T* first = dst + (2 * ch) * kPlane;
          T* second = first + kPlane;
          if (slot <= 0) {
            for (int py = 0; py < kPatch; ++py) NormaliseRun(patch + py * stride, ch, first + py * kPatch);
            if (slot < 0) std::memcpy(second, first, kPlane * sizeof(T));  // still in L1
          } else {
            for (int py = 0; py < kPatch; ++py) NormaliseRun(patch + py * stride, ch, second + py * kPatch);
          }
        }
      }
    }
  }
}

#if defined(OMNI_HAVE_AVX2)
// ScatterStrip in AVX2: each 48-byte run of 16 RGB pixels is split into channels with three byte
// shuffles per channel, widened, and normalised 8 at a time with the same float subtract and
// divide (so the same bits) as NormaliseRun; bfloat16 output then rounds those floats to nearest
// even as ToBf16 does (no NaN can occur). The output goes out with streaming stores: each patch
// (6 KB of float32, 3 KB of bfloat16) is written whole and in order, and tens of MB of it would
// only evict the cache (measured: 1080p 6.5 ms instead of 8 ms median in Node; read-for-ownership
// skipped). The caller fences; `out` must be 32-byte aligned.
// The bfloat16 of each float in its low 16 bits: bits + 0x7fff + ((bits >> 16) & 1), top half, as
// ToBf16 rounds (to nearest even; no NaN here).
OMNI_AVX2 inline __m256i Bf16Bits(__m256 f) {
  const __m256i u = _mm256_castps_si256(f);
  const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  return _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), odd), 16);
}

template <typename T>
OMNI_AVX2 void ScatterStripAvx2(const uint8_t* rows, size_t stride, int y0, int out_w, int slot, T* out) {
  // m[ch][part]: where channel ch's 16 bytes sit in part 0, 1, 2 of the 48 (0x80: not there).
  static const struct Split {
    alignas(16) uint8_t m[3][3][16];
    Split() {
      for (int ch = 0; ch < 3; ++ch)
        for (int part = 0; part < 3; ++part)
          for (int j = 0; j < 16; ++j) {
            const int pos = 3 * j + ch;
            m[ch][part][j] = pos / 16 == part ? static_cast<uint8_t>(pos % 16) : 0x80;
          }
    }
  } split;
  __m128i mask[3][3];
  for (int ch = 0; ch < 3; ++ch)
    for (int part = 0; part < 3; ++part) mask[ch][part] = _mm_load_si128(reinterpret_cast<const __m128i*>(split.m[ch][part]));
  const __m256 half = _mm256_set1_ps(127.5f);
  constexpr int kPlane = kPatch * kPatch;
  const int blocks_w = out_w / kFactor;
  T* dst = out + static_cast<size_t>(y0 / kFactor) * blocks_w * (kMerge * kMerge) * kRowFloats;
  for (int bw = 0; bw < blocks_w; ++bw) {
    for (int mh = 0; mh < kMerge; ++mh) {
      for (int mw = 0; mw < kMerge; ++mw, dst += kRowFloats) {
        const uint8_t* patch = rows + static_cast<size_t>(mh * kPatch) * stride + (bw * kMerge + mw) * kPatch * 3;
        for (int py = 0; py < kPatch; ++py) {
          const uint8_t* p = patch + py * stride;
          const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16));
          const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 32));
          for (int ch = 0; ch < 3; ++ch) {
            const __m128i v = _mm_or_si128(_mm_or_si128(_mm_shuffle_epi8(a, mask[ch][0]), _mm_shuffle_epi8(b, mask[ch][1])),
                                           _mm_shuffle_epi8(c, mask[ch][2]));
            const __m256 f0 = _mm256_div_ps(_mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)), half), half);
            const __m256 f1 = _mm256_div_ps(
                _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(v, 8))), half), half);
            T* first = dst + (2 * ch) * kPlane + py * kPatch;
            if constexpr (std::is_same_v<T, float>) {
              if (slot <= 0) {
                _mm256_stream_ps(first, f0);
                _mm256_stream_ps(first + 8, f1);
              }
              if (slot != 0) {
                _mm256_stream_ps(first + kPlane, f0);
                _mm256_stream_ps(first + kPlane + 8, f1);
              }
            } else {
              // packus interleaves 128-bit lanes (f0 lo, f1 lo, f0 hi, f1 hi): put them back in order.
              const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(Bf16Bits(f0), Bf16Bits(f1)), 0xD8);
              if (slot <= 0) _mm256_stream_si256(reinterpret_cast<__m256i*>(first), packed);
              if (slot != 0) _mm256_stream_si256(reinterpret_cast<__m256i*>(first + kPlane), packed);
            }
          }
        }
      }
    }
  }
}
#endif

template <typename T>
void Scatter(const uint8_t* rows, size_t stride, int y0, int out_w, int slot, T* out) {
#if defined(OMNI_HAVE_AVX2)
  if (CpuHasAvx2() && (reinterpret_cast<uintptr_t>(out) & 31) == 0) {  // pool buffers are 64-aligned
    ScatterStripAvx2(rows, stride, y0, out_w, slot, out);
    _mm_sfence();  // streaming stores are weakly ordered: publish them before the strip is done
    return;
  }
#endif
  ScatterStrip(rows, stride, y0, out_w, slot, out);
}

// Runs fn(begin, end) over [0, n) split into up to `threads` contiguous ranges, the first on the
// calling thread. Ranges under `min_per_thread` are not worth a thread start.
template <typename Fn>
void ParallelFor(int n, int threads, int min_per_thread, Fn&& fn) {
  const int workers = std::max(1, std::min(threads, n / min_per_thread));
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

constexpr int kMinRowsPerThread = 256;

// Runs the separable resize and hands the output to `emit(y0, rows, count, stride)` in strips of
// kFactor (32) rows -- one row of merge blocks -- from several threads at once when threads > 1
// (strips are disjoint; the split does not change any value). With a `source`, input rows are
// asked for as the strips need them.
template <typename Emit>
void ResizeStrips(const uint8_t* rgb, int width, int height, int out_h, int out_w, int threads, Emit&& emit,
                  RowSource* source = nullptr) {
  const bool streamed = source != nullptr && threads <= 1;
  if (source != nullptr && !streamed) source->Ensure(height);
  // An axis whose size does not change is skipped, as the reference does (its taps would be the
  // identity anyway).
  // The intermediate is per pool thread and reused: fresh multi-MB memory costs more to fault in
  // than the pass that fills it. Oversized leftovers are dropped.
  thread_local std::vector<uint8_t> horiz;
  const uint8_t* mid = rgb;
  const size_t in_stride = static_cast<size_t>(width) * 3, n = static_cast<size_t>(out_w) * 3;
  AxisTaps tx;
  if (out_w != width) {
    tx = ComputeAxisTaps(width, out_w);
    const size_t need = static_cast<size_t>(height) * n;
    if (horiz.capacity() > (size_t{64} << 20) && need <= (size_t{64} << 20)) std::vector<uint8_t>().swap(horiz);
    horiz.resize(need);
    uint8_t* h = horiz.data();
    if (!streamed) {
      ParallelFor(height, threads, kMinRowsPerThread, [&](int r0, int r1) {
        Horizontal(rgb + r0 * in_stride, width, r1 - r0, tx, h + r0 * n, out_w);
      });
    }
    mid = h;
  }
  // Streamed: rows [0, have) of `mid` are ready (decoded, and resized along x when it changes).
  int have = 0;
  auto prepare = [&](int rows) {
    if (!streamed || rows <= have) return;
    source->Ensure(rows);
    if (out_w != width) Horizontal(rgb + have * in_stride, width, rows - have, tx, horiz.data() + have * n, out_w);
    have = rows;
  };
  const int strips = (out_h + kFactor - 1) / kFactor;
  if (out_h == height) {
    ParallelFor(strips, threads, kMinRowsPerThread / kFactor, [&](int s0, int s1) {
      for (int s = s0; s < s1; ++s) {
        const int y0 = s * kFactor, count = std::min(kFactor, out_h - y0);
        prepare(y0 + count);
        emit(y0, mid + y0 * n, count, n);
      }
    });
    return;
  }
  const AxisTaps ty = ComputeAxisTaps(height, out_h);
  ParallelFor(strips, threads, kMinRowsPerThread / kFactor, [&](int s0, int s1) {
    // 32 rows of 1080p are 180 KB: the strip stays in L2 between the resize and the scatter.
    std::vector<uint8_t> strip(n * kFactor);
    for (int s = s0; s < s1; ++s) {
      const int y0 = s * kFactor, count = std::min(kFactor, out_h - y0);
      int last = 0;
      for (int r = 0; r < count; ++r) last = std::max(last, ty.start[y0 + r] + ty.size[y0 + r]);
      prepare(last);
      for (int r = 0; r < count; ++r) {
        const int y = y0 + r;
        VerticalRow(mid, n, ty.start[y], ty.size[y], ty.weight.data() + static_cast<size_t>(y) * ty.taps, ty.precision,
                    n, strip.data() + r * n);
      }
      emit(y0, strip.data(), count, n);
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

OMNI_CLONES void CmykToRgb(const uint8_t* cmyk, size_t pixels, uint8_t* rgb) {
  for (size_t i = 0; i < pixels; ++i) {
    const int nk = 255 - cmyk[4 * i + 3];
    for (int c = 0; c < 3; ++c) {
      const int t = cmyk[4 * i + c] * nk + 128;  // Pillow's MULDIV255
      const int v = nk - (((t >> 8) + t) >> 8);
      rgb[3 * i + c] = static_cast<uint8_t>(v < 0 ? 0 : v);
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
  ResizeStrips(rgb, width, height, out_h, out_w, 1, [&](int y0, const uint8_t* rows, int count, size_t stride) {
    for (int r = 0; r < count; ++r) std::memcpy(out + (y0 + r) * n, rows + r * stride, n);
  });
}

void ImageToPatches(const uint8_t* rgb, int width, int height, int out_h, int out_w, float* out, int threads) {
  TemporalPatches(rgb, nullptr, width, height, out_h, out_w, out, false, threads);
}

void TemporalPatches(const uint8_t* first, const uint8_t* second, int width, int height, int out_h, int out_w,
                     void* out, bool bf16, int threads, RowSource* source) {
  const bool image = second == nullptr || second == first;
  auto run = [&](auto* typed) {
    // out_h is a multiple of 32, so every strip is whole.
    ResizeStrips(
        first, width, height, out_h, out_w, threads,
        [&](int y0, const uint8_t* rows, int, size_t stride) { Scatter(rows, stride, y0, out_w, image ? -1 : 0, typed); },
        source);
    if (!image) {
      ResizeStrips(second, width, height, out_h, out_w, threads, [&](int y0, const uint8_t* rows, int, size_t stride) {
        Scatter(rows, stride, y0, out_w, 1, typed);
      });
    }
  };
  if (bf16) {
    run(static_cast<uint16_t*>(out));
  } else {
    run(static_cast<float*>(out));
  }
}

uint16_t ToBf16(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((bits >> 16) | 0x40u);  // quiet NaN
  bits += 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>(bits >> 16);
}

OMNI_CLONES void I420ToRgb(const uint8_t* y, int y_stride, const uint8_t* u, const uint8_t* v, int uv_stride,
                           int width, int height, uint8_t* rgb) {
  // BT.601 limited range in 16.16 fixed point: R = 1.164(Y-16) + 1.596(V-128),
  // G = 1.164(Y-16) - 0.391(U-128) - 0.813(V-128), B = 1.164(Y-16) + 2.018(U-128).
  constexpr int32_t kY = 76309, kRv = 104597, kGu = 25675, kGv = 53279, kBu = 132201, kHalf = 1 << 15;
  for (int r = 0; r < height; ++r) {
    const uint8_t* yr = y + static_cast<size_t>(r) * y_stride;
    const uint8_t* ur = u + static_cast<size_t>(r / 2) * uv_stride;
    const uint8_t* vr = v + static_cast<size_t>(r / 2) * uv_stride;
    uint8_t* out = rgb + static_cast<size_t>(r) * width * 3;
    for (int x = 0; x < width; ++x) {
      const int32_t yy = (yr[x] - 16) * kY + kHalf;
      const int32_t cu = ur[x / 2] - 128, cv = vr[x / 2] - 128;
      out[3 * x] = Clamp8((yy + kRv * cv) >> 16);
      out[3 * x + 1] = Clamp8((yy - kGu * cu - kGv * cv) >> 16);
      out[3 * x + 2] = Clamp8((yy + kBu * cu) >> 16);
    }
  }
}

}  // namespace omni::image
