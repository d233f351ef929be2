// Qwen3-Omni log-mel features: WhisperFeatureExtractor with 128 mel bins, as transformers computes
// them (torch path): centred STFT with reflect padding, n_fft 400, hop 160, periodic Hann, power
// spectrum, Slaney mel filter bank 0-8 kHz, log10 floored at 1e-10, then the whole-clip floor at
// max - 8 and (x + 4) / 4. The last STFT frame is dropped, so a clip of L samples has L / 160 frames.
//
// Work is split in two so streaming and one-shot share every bit: "raw" frames are the log10 mel
// values of each frame, which depend only on that frame's 400 samples; the clip-level floor and
// scaling are applied once the whole clip is known (Normalize).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace omni::mel {

constexpr int kFft = 400;
constexpr int kHop = 160;
constexpr int kBins = kFft / 2 + 1;  // 201
constexpr int kMels = 128;
constexpr int kSampleRate = 16000;
// Reflect padding needs at least kFft / 2 + 1 samples.
constexpr int64_t kMinSamples = kFft / 2 + 1;

inline int64_t FrameCount(int64_t samples) { return samples / kHop; }

// Source of samples for gathering frame windows. `data[i]` holds absolute sample `base + i`.
// `total` is the clip length when known (the end is reflected), or -1 while streaming.
struct SampleView {
  const float* data;
  int64_t base;
  int64_t total;
};

// Frames whose window [t*160-200, t*160+200) needs no sample past `received`.
inline int64_t FramesReadyWithoutEnd(int64_t received) {
  return received < kFft / 2 ? 0 : (received - kFft / 2) / kHop + 1;
}

// Raw log10-mel values of frames [t0, t1): out holds (t1 - t0) x 128 floats, frame-major.
void RawFrames(const SampleView& view, int64_t t0, int64_t t1, float* out);

// Raw values of a whole clip of `samples` floats written straight into the model's mel-major
// (128 x frames) layout, split over up to `threads` threads.
void RawFramesMelMajor(const float* x, int64_t samples, float* out, int threads);

// Whole-clip floor and scaling of frame-major raw values into the mel-major (128 x frames) layout.
void Normalize(const float* raw, int64_t frames, float clip_max, float* out_mel_major);
// The same floor and scaling, elementwise in place (any layout).
void NormalizeInPlace(float* values, size_t n, float clip_max);

float MaxOf(const float* v, size_t n);

// The float32 filter bank (201 x 128, bin-major), as transformers builds it in float64 and casts.
const std::vector<float>& FilterBank();

}  // namespace omni::mel
