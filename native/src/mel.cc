#include "mel.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <system_error>
#include <thread>

#include "simd.h"

#if defined(__GNUC__) || defined(__clang__)
#define OMNI_INLINE inline __attribute__((always_inline))
#else
#define OMNI_INLINE inline
#endif

namespace omni::mel {
namespace {

// Frames are processed eight at a time, one per SIMD lane: every step below is the same scalar
// code run across lanes, which the compiler turns into 8-wide (AVX2) or 2x4-wide (SSE2/NEON) ops.
constexpr int kLanes = 8;
// The 400-point real FFT is computed as a 200-point complex FFT of (even, odd) sample pairs.
constexpr int kHalf = kFft / 2;
constexpr double kPi = 3.14159265358979323846;

struct Stage {
  int radix;
  int ns;  // length of the sub-transforms combined so far
  std::vector<float> tw_re, tw_im;  // [k * radix + r] = exp(-2 pi i k r / (ns * radix))
};

struct Plan {
  std::array<float, kFft> window{};
  std::vector<Stage> stages;
  std::array<float, kBins> post_re{}, post_im{};  // exp(-2 pi i k / 400)
  std::array<int, kMels> first_bin{}, bin_count{}, weight_offset{};
  std::vector<float> weights;  // nonzero filter weights, per mel in bin order
  std::vector<float> dense;    // 201 x 128, bin-major
  std::array<float, 5> c5_re{}, c5_im{};  // exp(-2 pi i q / 5)

  Plan() {
    // torch.hann_window(400, periodic=True)
    for (int n = 0; n < kFft; ++n) window[n] = static_cast<float>(0.5 - 0.5 * std::cos(2.0 * kPi * n / kFft));

    int ns = 1;
    for (int radix : {4, 2, 5, 5}) {
      Stage st{radix, ns, {}, {}};
      st.tw_re.resize(static_cast<size_t>(ns) * radix);
      st.tw_im.resize(static_cast<size_t>(ns) * radix);
      for (int k = 0; k < ns; ++k) {
        for (int r = 0; r < radix; ++r) {
          double a = -2.0 * kPi * k * r / (ns * radix);
          st.tw_re[k * radix + r] = static_cast<float>(std::cos(a));
          st.tw_im[k * radix + r] = static_cast<float>(std::sin(a));
        }
      }
      stages.push_back(std::move(st));
      ns *= radix;
    }
    for (int k = 0; k < kBins; ++k) {
      double a = -2.0 * kPi * k / kFft;
      post_re[k] = static_cast<float>(std::cos(a));
      post_im[k] = static_cast<float>(std::sin(a));
    }
    for (int q = 0; q < 5; ++q) {
      c5_re[q] = static_cast<float>(std::cos(-2.0 * kPi * q / 5));
      c5_im[q] = static_cast<float>(std::sin(-2.0 * kPi * q / 5));
    }
    BuildFilterBank();
  }

  // transformers.audio_utils.mel_filter_bank(201, 128, 0, 8000, 16000, norm="slaney",
  // mel_scale="slaney"), in float64 like numpy, then cast to float32 like the torch path.
  void BuildFilterBank() {
    const double min_log_hz = 1000.0, min_log_mel = 15.0, logstep = 27.0 / std::log(6.4);
    auto hz_to_mel = [&](double f) { return f >= min_log_hz ? min_log_mel + std::log(f / min_log_hz) * logstep : 3.0 * f / 200.0; };
    auto mel_to_hz = [&](double m) {
      return m >= min_log_mel ? min_log_hz * std::exp((m - min_log_mel) / logstep) : 200.0 * m / 3.0;
    };
    const double mel_min = hz_to_mel(0.0), mel_max = hz_to_mel(kSampleRate / 2.0);
    std::array<double, kMels + 2> filter_hz{};
    for (int i = 0; i < kMels + 2; ++i) {
      double m = mel_min + (mel_max - mel_min) * i / (kMels + 1);
      filter_hz[i] = mel_to_hz(m);
    }
    dense.assign(static_cast<size_t>(kBins) * kMels, 0.0f);
    for (int m = 0; m < kMels; ++m) {
      double lower = filter_hz[m], center = filter_hz[m + 1], upper = filter_hz[m + 2];
      double enorm = 2.0 / (upper - lower);
      first_bin[m] = -1;
      for (int k = 0; k < kBins; ++k) {
        double f = k * (kSampleRate / 2.0) / (kBins - 1);
        double down = (f - lower) / (center - lower);
        double up = (upper - f) / (upper - center);
        double w = std::max(0.0, std::min(down, up)) * enorm;
        float wf = static_cast<float>(w);
        dense[static_cast<size_t>(k) * kMels + m] = wf;
        if (wf != 0.0f) {
          if (first_bin[m] < 0) first_bin[m] = k;
          bin_count[m] = k - first_bin[m] + 1;
        }
      }
      if (first_bin[m] < 0) first_bin[m] = 0;
      weight_offset[m] = static_cast<int>(weights.size());
      for (int k = first_bin[m]; k < first_bin[m] + bin_count[m]; ++k) weights.push_back(dense[static_cast<size_t>(k) * kMels + m]);
    }
  }
};

const Plan& P() {
  static const Plan plan;
  return plan;
}

// Eight frames travel together, one per vector lane. GCC/Clang vector types make that explicit:
// 8-wide AVX in the AVX2 clone, pairs of 4-wide SSE2/NEON registers elsewhere.
typedef float V8 __attribute__((vector_size(32), aligned(32)));
typedef int32_t I8 __attribute__((vector_size(32), aligned(32)));

OMNI_INLINE V8 Splat(float x) { return V8{x, x, x, x, x, x, x, x}; }
OMNI_INLINE V8 Select(I8 mask, V8 a, V8 b) { return (V8)(((I8)a & mask) | ((I8)b & ~mask)); }

// Natural log of positive normal floats: Cephes logf (max relative error ~1e-7), on vectors.
OMNI_INLINE V8 Ln(V8 x) {
  I8 bits = (I8)x;
  I8 e = ((bits >> 23) & 0xff) - 126;  // frexp: x = m * 2^e, m in [0.5, 1)
  V8 m = (V8)((bits & 0x007fffff) | 0x3f000000);
  const I8 small = m < Splat(0.70710678f);
  e = e + small;  // small is -1 where true
  V8 f = Select(small, m + m - 1.0f, m - 1.0f);
  V8 z = f * f;
  V8 y = Splat(7.0376836292e-2f);
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  const V8 fe = __builtin_convertvector(e, V8);
  y += -2.12194440e-4f * fe;
  y += -0.5f * z;
  return f + y + 0.693359375f * fe;
}

template <int R>
OMNI_INLINE void Butterfly(V8* vr, V8* vi, const Plan& p) {
  if constexpr (R == 2) {
    const V8 ar = vr[0], ai = vi[0];
    vr[0] = ar + vr[1]; vi[0] = ai + vi[1];
    vr[1] = ar - vr[1]; vi[1] = ai - vi[1];
  } else if constexpr (R == 4) {
    const V8 t0r = vr[0] + vr[2], t0i = vi[0] + vi[2];
    const V8 t1r = vr[0] - vr[2], t1i = vi[0] - vi[2];
    const V8 t2r = vr[1] + vr[3], t2i = vi[1] + vi[3];
    const V8 t3r = vr[1] - vr[3], t3i = vi[1] - vi[3];
    vr[0] = t0r + t2r; vi[0] = t0i + t2i;
    vr[2] = t0r - t2r; vi[2] = t0i - t2i;
    vr[1] = t1r + t3i; vi[1] = t1i - t3r;  // t1 - i t3
    vr[3] = t1r - t3i; vi[3] = t1i + t3r;  // t1 + i t3
  } else {
    static_assert(R == 5);
    // The 5-point DFT folded by its symmetry (y4 = conj-pair of y1, y3 of y2): 4 real products
    // per output pair instead of 16.
    const float c1 = p.c5_re[1], c2 = p.c5_re[2], s1 = -p.c5_im[1], s2 = -p.c5_im[2];
    const V8 t1r = vr[1] + vr[4], t1i = vi[1] + vi[4], t3r = vr[1] - vr[4], t3i = vi[1] - vi[4];
    const V8 t2r = vr[2] + vr[3], t2i = vi[2] + vi[3], t4r = vr[2] - vr[3], t4i = vi[2] - vi[3];
    const V8 a1r = vr[0] + c1 * t1r + c2 * t2r, a1i = vi[0] + c1 * t1i + c2 * t2i;
    const V8 a2r = vr[0] + c2 * t1r + c1 * t2r, a2i = vi[0] + c2 * t1i + c1 * t2i;
    const V8 b1r = s1 * t3r + s2 * t4r, b1i = s1 * t3i + s2 * t4i;
    const V8 b2r = s2 * t3r - s1 * t4r, b2i = s2 * t3i - s1 * t4i;
    vr[0] = vr[0] + t1r + t2r;
    vi[0] = vi[0] + t1i + t2i;
    vr[1] = a1r + b1i; vi[1] = a1i - b1r;  // a1 - i b1
    vr[4] = a1r - b1i; vi[4] = a1i + b1r;  // a1 + i b1
    vr[2] = a2r + b2i; vi[2] = a2i - b2r;  // a2 - i b2
    vr[3] = a2r - b2i; vi[3] = a2i + b2r;  // a2 + i b2
  }
}

// One Stockham autosort pass from `in` to `out` (kHalf complex vectors, split re/im).
template <int R>
OMNI_INLINE void RunStage(const Stage& st, const Plan& p, const V8* in_re, const V8* in_im, V8* out_re, V8* out_im) {
  constexpr int stride = kHalf / R;
  const int ns = st.ns;
  for (int j = 0; j < stride; ++j) {
    const int k = j % ns;
    V8 vr[R], vi[R];
    for (int r = 0; r < R; ++r) {
      const V8 sr = in_re[j + r * stride], si = in_im[j + r * stride];
      const float wr = st.tw_re[k * R + r], wi = st.tw_im[k * R + r];
      vr[r] = sr * wr - si * wi;
      vi[r] = sr * wi + si * wr;
    }
    Butterfly<R>(vr, vi, p);
    const int dst = (j / ns) * ns * R + k;
    for (int r = 0; r < R; ++r) {
      out_re[dst + r * ns] = vr[r];
      out_im[dst + r * ns] = vi[r];
    }
  }
}

// Raw log10-mel of up to kLanes frames whose 400 samples are in `frames` (n x 400).
// `frames[l]` points at the 400 samples of frame l (l < n). Output element (frame l, mel m) goes
// to out[l * frame_stride + m * mel_stride].
OMNI_CLONES void ProcessBlock(const float* const* frames, int n, float* out, int64_t frame_stride, int64_t mel_stride) {
  const Plan& p = P();
  V8 are[kHalf], aim[kHalf], bre[kHalf], bim[kHalf];
  // Pack sample pairs (2m, 2m+1) as complex values, windowed, frame l in lane l.
  const float* x[kLanes];
  for (int l = 0; l < kLanes; ++l) x[l] = frames[l < n ? l : 0];
  for (int m = 0; m < kHalf; ++m) {
    V8 re, im;
    for (int l = 0; l < kLanes; ++l) {
      re[l] = x[l][2 * m];
      im[l] = x[l][2 * m + 1];
    }
    are[m] = re * p.window[2 * m];
    aim[m] = im * p.window[2 * m + 1];
  }
  V8 *in_re = are, *in_im = aim, *out_re = bre, *out_im = bim;
  for (const Stage& st : p.stages) {
    switch (st.radix) {
      case 2: RunStage<2>(st, p, in_re, in_im, out_re, out_im); break;
      case 4: RunStage<4>(st, p, in_re, in_im, out_re, out_im); break;
      default: RunStage<5>(st, p, in_re, in_im, out_re, out_im); break;
    }
    std::swap(in_re, out_re);
    std::swap(in_im, out_im);
  }
  // Untangle the packed real transform into bins 0..200 and take |X|^2.
  V8 power[kBins];
  for (int k = 0; k < kBins; ++k) {
    const int a = k % kHalf, b = (kHalf - k) % kHalf;
    const V8 zr = in_re[a], zi = in_im[a], yr = in_re[b], yi = in_im[b];
    const V8 er = 0.5f * (zr + yr), ei = 0.5f * (zi - yi);   // spectrum of even samples
    const V8 orr = 0.5f * (zi + yi), oi = -0.5f * (zr - yr);  // spectrum of odd samples
    const float wr = p.post_re[k], wi = p.post_im[k];
    const V8 xr = er + wr * orr - wi * oi, xi = ei + wr * oi + wi * orr;
    power[k] = xr * xr + xi * xi;
  }
  const V8 floor_power = Splat(1e-10f);
  const float inv_ln10 = 0.43429448190325176f;
  V8 mel[kMels];
  for (int m = 0; m < kMels; ++m) {
    const float* w = p.weights.data() + p.weight_offset[m];
    const V8* pw = power + p.first_bin[m];
    V8 acc = Splat(0.0f);
    for (int i = 0, nb = p.bin_count[m]; i < nb; ++i) acc += w[i] * pw[i];
    acc = Select(acc > floor_power, acc, floor_power);
    mel[m] = Ln(acc) * inv_ln10;
  }
  for (int m = 0; m < kMels; ++m)
    for (int l = 0; l < n; ++l) out[l * frame_stride + m * mel_stride] = mel[m][l];
}

// The 400 samples of frame t: [t*160 - 200, t*160 + 200), reflected at the clip's edges. Inside
// the clip that is a pointer into the samples; at an edge the reflected copy is built in `scratch`.
const float* FrameSamples(const SampleView& v, int64_t t, float* scratch) {
  const int64_t lo = t * kHop - kFft / 2;
  if (lo >= 0 && (v.total < 0 || lo + kFft <= v.total)) return v.data + (lo - v.base);
  float* dst = scratch;
  for (int i = 0; i < kFft; ++i) {
    int64_t a = lo + i;
    if (a < 0) a = -a;
    if (v.total >= 0 && a >= v.total) a = 2 * (v.total - 1) - a;
    dst[i] = v.data[a - v.base];
  }
  return dst;
}

}  // namespace

const std::vector<float>& FilterBank() { return P().dense; }

namespace {
void Frames(const SampleView& view, int64_t t0, int64_t t1, float* out, int64_t frame_stride, int64_t mel_stride) {
  alignas(32) float scratch[kLanes][kFft];
  const float* ptrs[kLanes];
  for (int64_t t = t0; t < t1; t += kLanes) {
    const int n = static_cast<int>(std::min<int64_t>(kLanes, t1 - t));
    for (int l = 0; l < n; ++l) ptrs[l] = FrameSamples(view, t + l, scratch[l]);
    ProcessBlock(ptrs, n, out + (t - t0) * frame_stride, frame_stride, mel_stride);
  }
}
}  // namespace

void RawFrames(const SampleView& view, int64_t t0, int64_t t1, float* out) { Frames(view, t0, t1, out, kMels, 1); }

void RawFramesMelMajor(const float* x, int64_t samples, float* out, int threads) {
  const SampleView view{x, 0, samples};
  const int64_t frames = FrameCount(samples);
  // Below ~20 s of audio a second thread costs more to start than it saves.
  constexpr int64_t kMinFramesPerThread = 2000;
  int64_t workers = std::min<int64_t>(std::max(threads, 1), std::max<int64_t>(1, frames / kMinFramesPerThread));
  if (workers <= 1) {
    Frames(view, 0, frames, out, 1, frames);
    return;
  }
  std::vector<std::thread> pool;
  const int64_t per = (frames + workers - 1) / workers;
  for (int64_t w = 1; w < workers; ++w) {
    const int64_t t0 = w * per, t1 = std::min(frames, t0 + per);
    if (t0 >= t1) continue;
    try {
      pool.emplace_back([=] { Frames(view, t0, t1, out + t0, 1, frames); });
    } catch (const std::system_error&) {
      Frames(view, t0, t1, out + t0, 1, frames);  // no thread to be had: do this range here
    }
  }
  Frames(view, 0, std::min(frames, per), out, 1, frames);
  for (auto& th : pool) th.join();
}

OMNI_CLONES float MaxOf(const float* v, size_t n) {
  float m = -INFINITY;
  for (size_t i = 0; i < n; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

OMNI_CLONES void NormalizeInPlace(float* v, size_t n, float clip_max) {
  const float floor_value = clip_max - 8.0f;
  for (size_t i = 0; i < n; ++i) {
    const float x = v[i] > floor_value ? v[i] : floor_value;
    v[i] = (x + 4.0f) / 4.0f;
  }
}

OMNI_CLONES void Normalize(const float* raw, int64_t frames, float clip_max, float* out) {
  const float floor_value = clip_max - 8.0f;
  constexpr int64_t kTile = 16;  // transpose in tiles so reads and writes both stay in cache
  for (int64_t t0 = 0; t0 < frames; t0 += kTile) {
    const int64_t t1 = std::min(frames, t0 + kTile);
    for (int m = 0; m < kMels; ++m) {
      float* dst = out + static_cast<int64_t>(m) * frames;
      for (int64_t t = t0; t < t1; ++t) {
        float v = raw[t * kMels + m];
        v = v > floor_value ? v : floor_value;
        dst[t] = (v + 4.0f) / 4.0f;
      }
    }
  }
}

}  // namespace omni::mel
