#include "resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <numeric>
#include <utility>

#include "simd.h"

namespace omni::resample {
namespace {

// Design targets, relative to the lower rate's Nyquist frequency (see resample.h).
constexpr double kPassEdge = 0.90;
constexpr double kStopEdge = 1.00;
constexpr double kAttenuationDb = 100.0;
// Above this many coefficients for L exact rows, switch to an interpolated grid of phases.
constexpr int64_t kMaxExactTaps = int64_t{1} << 20;
// Interpolated grid: phases per lower-rate sample period; linear interpolation error ~ -130 dB.
constexpr double kGridPhases = 2048.0;
constexpr int64_t kMinGridPhases = 8;
// Banks kept alive after their last resampler is gone, so one-shot calls do not rebuild them.
constexpr size_t kRecentBanks = 8;
constexpr double kPi = 3.14159265358979323846;

double BesselI0(double x) {
  // Power series; converges quickly for the window's arguments (x <= beta ~ 10).
  const double q = 0.25 * x * x;
  double term = 1.0, sum = 1.0;
  for (int k = 1; k < 500; ++k) {
    term *= q / (static_cast<double>(k) * static_cast<double>(k));
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

std::shared_ptr<const FilterBank> Build(int64_t L, int64_t M) {
  auto bank = std::make_shared<FilterBank>();
  bank->L = L;
  bank->M = M;
  // rho: the lower rate as a fraction of the input rate. Cutoff and transition scale with it, so
  // downsampling filters out everything the output cannot represent before decimating.
  const double rho = std::min(1.0, static_cast<double>(L) / static_cast<double>(M));
  const double nyquist = 0.5 * rho;  // cycles per input sample
  bank->cutoff = 0.5 * (kPassEdge + kStopEdge) * nyquist;
  const double transition = (kStopEdge - kPassEdge) * nyquist;
  bank->beta = 0.1102 * (kAttenuationDb - 8.7);
  // Kaiser's length estimate, rounded up to whole 8-float vectors.
  const double taps = (kAttenuationDb - 7.95) / (14.36 * transition) + 1.0;
  bank->K = static_cast<int>((static_cast<int64_t>(std::ceil(taps)) + 7) / 8 * 8);
  const int K = bank->K;
  const int half = K / 2;

  bank->exact = L * K <= kMaxExactTaps;
  bank->phases = bank->exact ? L : std::max<int64_t>(kMinGridPhases, static_cast<int64_t>(std::ceil(kGridPhases * rho)));
  const int64_t rows = bank->exact ? L : bank->phases + 1;  // the grid needs the row at phase 1.0
  bank->taps.resize(static_cast<size_t>(rows * K));

  const double i0_beta = BesselI0(bank->beta);
  const double two_fc = 2.0 * bank->cutoff;
  std::vector<double> row(K);
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = bank->taps.data() + r * K;
    // h is even, so row P - r is row r reversed: copy it (half the Bessel work, exact symmetry).
    if (const int64_t mirror = bank->phases - r; mirror >= 0 && mirror < r) {
      const float* src = bank->taps.data() + mirror * K;
      for (int j = 0; j < K; ++j) dst[j] = src[K - 1 - j];
      continue;
    }
    const double frac = static_cast<double>(r) / static_cast<double>(bank->phases);
    double sum = 0.0;
    for (int j = 0; j < K; ++j) {
      const double t = frac + (half - 1 - j);  // output time minus the tap's input index
      const double u = t / half;
      const double w = u >= 1.0 || u <= -1.0 ? BesselI0(0.0) / i0_beta
                                             : BesselI0(bank->beta * std::sqrt(1.0 - u * u)) / i0_beta;
      const double arg = kPi * two_fc * t;
      const double sinc = t == 0.0 ? 1.0 : std::sin(arg) / arg;
      row[j] = two_fc * sinc * w;
      sum += row[j];
    }
    // Unit DC gain in every phase, so a constant input stays exactly constant across phases.
    for (int j = 0; j < K; ++j) dst[j] = static_cast<float>(row[j] / sum);
  }
  return bank;
}

typedef float V8 __attribute__((vector_size(32)));

__attribute__((always_inline)) inline V8 Load(const float* p) {
  V8 v;
  std::memcpy(&v, p, sizeof v);  // unaligned load
  return v;
}

// Dot products of k taps (k a multiple of 8) for R outputs of the same phase at once, their input
// windows `stride` apart: each tap vector is loaded once for all R (a quarter fewer loads per
// multiply-add at R = 3 than one output at a time). Every output is summed in the same order,
// which depends only on k, never on R or on the address of x: that is what makes the output
// independent of how the input was chunked.
template <int R>
__attribute__((always_inline)) inline void DotSamePhase(const float* h, const float* x, int64_t stride, int k, float* out,
                                                        int64_t out_stride) {
  V8 acc[R][4] = {};
  int j = 0;
  for (; j + 32 <= k; j += 32) {
    for (int u = 0; u < 4; ++u) {
      const V8 hv = Load(h + j + 8 * u);
      for (int r = 0; r < R; ++r) acc[r][u] += hv * Load(x + r * stride + j + 8 * u);
    }
  }
  for (; j < k; j += 8) {
    const V8 hv = Load(h + j);
    for (int r = 0; r < R; ++r) acc[r][0] += hv * Load(x + r * stride + j);
  }
  for (int r = 0; r < R; ++r) {
    const V8 s = (acc[r][0] + acc[r][1]) + (acc[r][2] + acc[r][3]);
    out[r * out_stride] = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
  }
}

__attribute__((always_inline)) inline float Dot(const float* h, const float* x, int k) {
  float out;
  DotSamePhase<1>(h, x, 0, k, &out, 0);
  return out;
}

struct Cursor {
  int64_t i;
  int64_t phi;
};

// Outputs of one phase come every L outputs, M input samples apart: the exact kernel takes them
// kSamePhase at a time (DotSamePhase), a block of kSamePhase * L outputs per round.
constexpr int64_t kSamePhase = 3;

// `x` holds input index `first` at x[0]; outputs read x[i - half + 1 .. i + half].
OMNI_CLONES Cursor RunKernel(const FilterBank& b, const float* x, int64_t first, Cursor c, int64_t count, float* out) {
  const int K = b.K;
  const int64_t offset = K / 2 - 1 + first;
  const int64_t L = b.L, step_i = b.M / b.L, step_phi = b.M % b.L;
  const float* taps = b.taps.data();
  if (b.exact) {
    const int64_t M = b.M;
    const Cursor start = c;
    for (int64_t n0 = 0; n0 < count; n0 += kSamePhase * L) {
      Cursor g = c;  // output n0 + p
      for (int64_t p = 0; p < L && n0 + p < count; ++p) {
        const float* h = taps + g.phi * K;
        const float* xs = x + (g.i - offset);
        float* o = out + n0 + p;
        const int64_t same = std::min<int64_t>(kSamePhase, (count - (n0 + p) + L - 1) / L);
        if (same == 3) {
          DotSamePhase<3>(h, xs, M, K, o, L);
        } else if (same == 2) {
          DotSamePhase<2>(h, xs, M, K, o, L);
        } else {
          DotSamePhase<1>(h, xs, M, K, o, L);
        }
        g.i += step_i;
        g.phi += step_phi;
        if (g.phi >= L) {
          g.phi -= L;
          ++g.i;
        }
      }
      c.i += kSamePhase * M;  // kSamePhase * L outputs on: the same phase, kSamePhase * M inputs later
    }
    // c went on by whole blocks; the cursor after exactly `count` outputs is start + count * M / L.
    const int64_t t = start.phi + count * M;
    return Cursor{start.i + t / L, t % L};
  }
  const int64_t P = b.phases;
  const float inv_l = static_cast<float>(1.0 / static_cast<double>(L));
  for (int64_t n = 0; n < count; ++n) {
    const float* xs = x + (c.i - offset);
    const int64_t pos = c.phi * P;  // < L * P <= 384000 * 2049: no overflow
    const int64_t row = pos / L, rem = pos % L;
    const float d0 = Dot(taps + row * K, xs, K);
    if (rem == 0) {
      out[n] = d0;
    } else {
      const float d1 = Dot(taps + (row + 1) * K, xs, K);
      out[n] = d0 + (static_cast<float>(rem) * inv_l) * (d1 - d0);
    }
    c.i += step_i;
    c.phi += step_phi;
    if (c.phi >= L) {
      c.phi -= L;
      ++c.i;
    }
  }
  return c;
}

}  // namespace

std::shared_ptr<const FilterBank> GetFilterBank(int64_t in_rate, int64_t out_rate) {
  const int64_t g = std::gcd(in_rate, out_rate);
  const std::pair<int64_t, int64_t> key{out_rate / g, in_rate / g};
  static std::mutex mu;
  static std::map<std::pair<int64_t, int64_t>, std::weak_ptr<const FilterBank>> banks;
  static std::deque<std::shared_ptr<const FilterBank>> recent;
  std::lock_guard<std::mutex> lock(mu);
  std::shared_ptr<const FilterBank> bank = banks[key].lock();
  if (!bank) {
    bank = Build(key.first, key.second);
    banks[key] = bank;
    // Forget pairs nobody holds any more, so arbitrary client rates cannot grow the map forever.
    for (auto it = banks.begin(); it != banks.end();) it = it->second.expired() ? banks.erase(it) : std::next(it);
  }
  auto hit = std::find(recent.begin(), recent.end(), bank);
  if (hit != recent.end()) recent.erase(hit);
  recent.push_front(bank);
  if (recent.size() > kRecentBanks) recent.pop_back();
  return bank;
}

Resampler::Resampler(int64_t in_rate, int64_t out_rate) : in_rate_(in_rate), out_rate_(out_rate) {
  if (in_rate != out_rate) {
    bank_ = GetFilterBank(in_rate, out_rate);
    half_ = bank_->K / 2;
  }
  Reset();
}

void Resampler::Reset() {
  received_ = i_ = phi_ = 0;
  buf_.clear();
  if (buf_.capacity() > (size_t{1} << 16)) buf_.shrink_to_fit();  // after a long one-shot clip
  if (!bank_) return;
  // Output 0's window starts at index 1 - half: the samples before the stream are zeros.
  base_ = 1 - half_;
  buf_.assign(static_cast<size_t>(half_ - 1), 0.0f);
}

int64_t Resampler::ReadyUpTo(int64_t last) const {
  if (last < i_) return 0;
  // Count of n >= 0 with i_ + floor((phi_ + n * M) / L) <= last.
  const int64_t span = (last - i_ + 1) * bank_->L - phi_;
  return (span + bank_->M - 1) / bank_->M;
}

int64_t Resampler::ProcessCount(int64_t n) const {
  if (!bank_) return n;
  return ReadyUpTo(received_ + n - 1 - half_);
}

int64_t Resampler::FlushCount() const { return bank_ ? ReadyUpTo(received_ - 1) : 0; }

void Resampler::Run(int64_t count, float* out) {
  if (count <= 0) return;
  const Cursor c = RunKernel(*bank_, buf_.data(), base_, Cursor{i_, phi_}, count, out);
  i_ = c.i;
  phi_ = c.phi;
}

void Resampler::Trim() {
  // Keep from the next output's first tap; everything before it is never read again.
  const int64_t drop = std::min<int64_t>(i_ - half_ + 1 - base_, static_cast<int64_t>(buf_.size()));
  if (drop <= 0) return;
  buf_.erase(buf_.begin(), buf_.begin() + drop);
  base_ += drop;
  // A long clip grew the buffer; streaming only ever needs about one window of it.
  if (buf_.capacity() > (size_t{1} << 16) && buf_.size() < buf_.capacity() / 4) buf_.shrink_to_fit();
}

int64_t Resampler::Process(const float* x, int64_t n, float* out) {
  if (!bank_) {
    if (n > 0) std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float));
    received_ += n;
    return n;
  }
  const int64_t count = ProcessCount(n);
  buf_.insert(buf_.end(), x, x + n);
  received_ += n;
  Run(count, out);
  Trim();
  return count;
}

int64_t Resampler::Flush(float* out) {
  if (!bank_) {
    Reset();
    return 0;
  }
  const int64_t count = FlushCount();
  // Zero padding after the last sample: the windows of the remaining outputs reach at most
  // half samples past it.
  buf_.insert(buf_.end(), static_cast<size_t>(half_), 0.0f);
  Run(count, out);
  Reset();
  return count;
}

}  // namespace omni::resample
