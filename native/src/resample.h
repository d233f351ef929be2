// Streaming sample-rate conversion between any two integer rates (1000..384000 Hz): polyphase
// Kaiser-windowed sinc over the exact rational ratio L/M = out/in reduced by their gcd.
//
// Time base. Output sample k sits at input time t_k = k * M / L (in input samples), tracked as
// integers: t_k = i_k + phi_k / L with 0 <= phi_k < L, advanced by M per output, so there is no
// drift however long the stream. The filter is zero-phase around t_k (it reads half = K/2 input
// samples either side), so output k is time-aligned with input time t_k: the group delay is taken
// out by waiting for `half` samples of look-ahead instead of emitting delayed samples.
//
// Counts. After N input samples and Flush(), the stream has produced exactly the outputs with
// t_k < N, i.e. ceil(N * L / M) = ceil(N * out / in) samples. While streaming, output k is
// emitted as soon as its last input (i_k + half) has arrived, and its value never depends on how
// the input was split: output is bit-identical for any chunking.
//
// Filter. Passband edge 0.90 and stopband edge 1.00 of the lower rate's Nyquist frequency, cutoff
// in the middle (0.95), designed for 100 dB (Kaiser beta 10.06), so the passband is flat to
// ~1e-4 dB and nothing above the lower Nyquist frequency aliases back above -100 dB. The length K
// follows Kaiser's formula for that transition (about 129 / rho taps, rho = min(1, L/M), rounded
// up to a multiple of 8). Each phase is one contiguous row of K float taps normalized to unit DC
// gain. When L rows would exceed kMaxExactTaps coefficients (rare rate pairs such as 44101 Hz),
// the bank holds P + 1 rows on a finer grid of P phases per input sample (P ~ 2048 * rho) and
// interpolates linearly between the two nearest rows; the interpolation error stays near -130 dB.
// Banks are built once per reduced (L, M) and shared by every resampler of that pair.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace omni::resample {

constexpr int64_t kMinRate = 1000;
constexpr int64_t kMaxRate = 384000;

struct FilterBank {
  int64_t L = 1;        // output rate / gcd
  int64_t M = 1;        // input rate / gcd
  int K = 0;            // taps per output sample, a multiple of 8
  int64_t phases = 1;   // P: rows per input sample; equals L when exact
  bool exact = true;    // every output lands on a stored row (no interpolation)
  double beta = 0.0;    // Kaiser window parameter
  double cutoff = 0.0;  // cutoff in cycles per input sample
  std::vector<float> taps;  // rows x K, row r holds h(r / P + K/2 - 1 - j) for j in [0, K)
};

// The shared bank for a rate pair (built on first use; recently used banks stay cached).
std::shared_ptr<const FilterBank> GetFilterBank(int64_t in_rate, int64_t out_rate);

class Resampler {
 public:
  // Rates must lie in [kMinRate, kMaxRate]; the caller validates. Equal rates pass through.
  Resampler(int64_t in_rate, int64_t out_rate);

  // Outputs the next Process(n samples) will return.
  int64_t ProcessCount(int64_t n) const;
  // Consumes n samples, writes ProcessCount(n) outputs to out, returns that count.
  int64_t Process(const float* x, int64_t n, float* out);
  // Outputs Flush() will return.
  int64_t FlushCount() const;
  // Ends the stream: emits every remaining output (t_k < samples received), reading zeros past
  // the end, then resets, so the next Process starts a new stream at time 0.
  int64_t Flush(float* out);
  // Drops all buffered input and restarts at time 0.
  void Reset();

  int64_t input_rate() const { return in_rate_; }
  int64_t output_rate() const { return out_rate_; }
  // Input samples of look-ahead held back before the output aligned with them can be emitted.
  int64_t lookahead() const { return half_; }
  int filter_length() const { return bank_ ? bank_->K : 0; }

 private:
  // Outputs from the current position whose centre index i_k is <= last.
  int64_t ReadyUpTo(int64_t last) const;
  void Run(int64_t count, float* out);
  void Trim();

  int64_t in_rate_, out_rate_;
  std::shared_ptr<const FilterBank> bank_;  // null for equal rates
  int64_t half_ = 0;
  std::vector<float> buf_;  // input samples from absolute index base_ (negative indices are zeros)
  int64_t base_ = 0;
  int64_t received_ = 0;
  int64_t i_ = 0;    // integer part of the next output's input time
  int64_t phi_ = 0;  // its fractional part, in units of 1/L
};

}  // namespace omni::resample
