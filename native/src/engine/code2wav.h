// Qwen3-Omni's code-to-wave decoder (transformers' Qwen3OmniMoeCode2Wav) on CPU, as a stream:
//   codes (16 codebooks per 80 ms frame) -> mean of the codebook embeddings (row q*codebook + code)
//   -> sliding-window causal transformer (RMSNorm, RoPE, LayerScale on both branches, SiLU MLP,
//   final RMSNorm) -> per upsampling ratio: ConvTranspose(k=s=ratio) + ConvNeXt block
//   -> causal conv k7 -> decoder blocks (SnakeBeta, ConvTranspose(2r, r) trimmed by r on both sides,
//   residual units with dilations 1/3/9) -> SnakeBeta -> causal conv k7 to one channel -> clamp.
// Everything is causal except the decoder transposed convs, whose output block j needs inputs j and
// j+1: a call over n frames yields 1920*n - 555 samples (real config), and a stream that has seen n
// frames has emitted exactly those samples. Each stream keeps the K/V of the last window-1 frames
// per layer and the few rows of history every conv needs, so pushing frames in any pieces emits
// the same samples as one Render over all of them (up to float summation order).
// Weights stay in the mapped checkpoint in their stored dtype (conv weights re-laid, not widened).
// Work is cut into pieces of kChunkFrames frames (same samples), so scratch memory stays bounded
// (about 20 MB per buffer for the released sizes) whatever the length of a render or push.
// Construct with std::make_shared: streams hold the model through shared_from_this().
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "code2wav_kernels.h"

namespace omni::engine {

struct Code2WavConfig {
  int64_t codebook_size = 0, num_quantizers = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t intermediate = 0, sliding_window = 0, decoder_dim = 0;
  bool attention_bias = false;
  double rope_theta = 10000.0;
  float rms_eps = 1e-5f;
  std::vector<int64_t> upsampling_ratios, upsample_rates;
  int threads = 1;
};

class Code2Wav;

// One causal decode in progress. Not thread-safe: pushes must be serialised by the caller.
class Code2WavStream {
 public:
  explicit Code2WavStream(std::shared_ptr<const Code2Wav> model);
  // codes: frames x num_quantizers (frame-major). Appends the samples these frames complete.
  // Throws EngineError code2wav_codes_invalid.
  void Push(const int32_t* codes, int64_t frames, std::vector<float>& out);
  int64_t frames() const { return position_; }
  int64_t samples() const { return samples_; }

 private:
  friend class Code2Wav;
  struct Kv {
    std::vector<float> k, v;  // rows x (kv_heads * head_dim), oldest first
    int64_t rows = 0;
  };
  struct Block {
    History trans;
    History unit[3];
  };
  std::shared_ptr<const Code2Wav> model_;
  int64_t position_ = 0, samples_ = 0;
  std::vector<Kv> kv_;
  std::vector<History> up_trans_, up_dw_;
  History pre_conv_, post_conv_;
  std::vector<Block> blocks_;
};

class Code2Wav : public std::enable_shared_from_this<Code2Wav> {
 public:
  // `tensors` keys: the checkpoint names without `code2wav.`. Throws EngineError.
  Code2Wav(Code2WavConfig cfg, const std::vector<std::string>& files, const std::vector<EncoderTensor>& tensors);
  const Code2WavConfig& config() const { return cfg_; }
  int64_t SamplesPerFrame() const { return samples_per_frame_; }
  // Samples of a decode over `frames` frames (0 for 0 frames): SamplesPerFrame()*frames - tail.
  int64_t SampleCount(int64_t frames) const;
  // One decode over frames x num_quantizers codes (a fresh stream pushed once). Thread-safe.
  void Render(const int32_t* codes, int64_t frames, std::vector<float>& out) const;
  std::unique_ptr<Code2WavStream> NewStream() const;

 private:
  friend class Code2WavStream;
  struct Layer {
    std::vector<float> in_norm, post_norm, attn_scale, mlp_scale;
    Linear q, k, v, o, gate, up, down;
  };
  struct Upsample {
    TransConv1d trans;
    DepthwiseConv1d dw;
    LayerNormW norm;
    Linear pw1, pw2;
    std::vector<float> gamma;
  };
  struct Unit {
    SnakeBeta act1, act2;
    CausalConv1d conv1, conv2;
  };
  struct DecoderBlock {
    SnakeBeta act;
    TransConv1d trans;
    Unit units[3];
  };
  // Frames per forward: pushes and renders are cut into pieces of at most this many frames (same
  // samples, bounded scratch memory).
  static constexpr int64_t kChunkFrames = 25;
  void Forward(Code2WavStream& s, const int32_t* codes, int64_t frames, std::vector<float>& out) const;
  void Transformer(Code2WavStream& s, float* x, int64_t m) const;

  Code2WavConfig cfg_;
  WeightStore ws_;
  Matrix embedding_;
  std::vector<Layer> layers_;
  std::vector<float> final_norm_;
  std::vector<float> inv_freq_;
  std::vector<Upsample> upsample_;
  CausalConv1d pre_conv_, post_conv_;
  std::vector<DecoderBlock> blocks_;
  SnakeBeta post_act_;
  int64_t samples_per_frame_ = 1, tail_ = 0;
  mutable std::unique_ptr<ThreadPool> pool_;
  mutable std::mutex mu_;  // one forward at a time on the pool (and its scratch below)
  mutable std::vector<float> cur_, tmp_, act_, hid_;
};

}  // namespace omni::engine
