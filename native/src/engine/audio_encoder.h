// The thinker's audio encoder (AuT) of Qwen3-Omni, as transformers' Qwen3OmniMoeAudioEncoder, on
// CPU, for one clip at a time:
//   1. the clip's mel frames are cut into chunks of 2 * n_window frames (the last holds the rest),
//      each right-padded with zeros to the longest chunk (as the reference's pad_sequence: the
//      padding is seen by the convolutions, so it is reproduced);
//   2. per chunk: three Conv2d(3x3, stride 2, pad 1) + GELU over (mel, time), conv_out over
//      (channel, mel) per time step, plus a sinusoidal position table restarting at 0 per chunk;
//      the valid tokens of every chunk are concatenated;
//   3. encoder layers (pre-LayerNorm, bidirectional attention within windows of
//      max-chunk-tokens * (n_window_infer / (2 * n_window)) tokens, GELU MLP);
//   4. ln_post, proj1, GELU, proj2.
// Weights stay in the mapped checkpoint in their stored dtype (F32, BF16, F16); compute is f32.
#pragma once
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "encoder_kernels.h"

namespace omni::engine {

struct AudioEncoderConfig {
  int64_t num_mel_bins = 0, d_model = 0, layers = 0, heads = 0, ffn = 0;
  int64_t downsample_hidden = 0, output_dim = 0, n_window = 0, n_window_infer = 0, max_source_positions = 0;
  float eps = 1e-5f;  // nn.LayerNorm default
  int threads = 1;
};

class AudioEncoder {
 public:
  // `tensors` keys: audio_tower.* (the checkpoint name without `thinker.`). Throws EngineError.
  AudioEncoder(AudioEncoderConfig cfg, const std::vector<std::string>& files, const std::vector<EncoderTensor>& tensors);
  const AudioEncoderConfig& config() const { return cfg_; }

  // Tokens produced for `frames` valid mel frames.
  int64_t TokenCount(int64_t frames) const;
  // features: num_mel_bins x frames, mel-major. out: TokenCount(frames) x output_dim.
  // Thread-safe (calls are serialised). Throws EngineError encoder_features_invalid.
  void Encode(const float* features, int64_t frames, std::vector<float>& out);

 private:
  struct Conv {
    Matrix w;  // out x (in * 9)
    std::vector<float> b;
    int64_t in = 0, out = 0;
  };
  struct Layer {
    LayerNormW attn_norm, final_norm;
    Linear q, k, v, o, fc1, fc2;
  };
  int64_t ChunkTokens(int64_t len) const;
  // One conv layer + GELU: in [cin][F][T] -> out [cout][(F-1)/2+1][(T-1)/2+1].
  void ConvGelu(const Conv& c, const float* in, int64_t F, int64_t T, std::vector<float>& out);

  AudioEncoderConfig cfg_;
  WeightStore weights_;
  Conv conv_[3];
  Linear conv_out_, proj1_, proj2_;
  LayerNormW ln_post_;
  std::vector<Layer> layers_;
  std::vector<float> positions_;  // max_source_positions x d_model
  int64_t freq_out_ = 0;          // mel bins after the three convolutions
  std::mutex compute_;
  ThreadPool pool_;
};

}  // namespace omni::engine
