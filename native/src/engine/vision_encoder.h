// The thinker's vision encoder of Qwen3-Omni, as transformers' Qwen3OmniMoeVisionEncoder, on CPU:
//   1. patch embedding: the Conv3d whose kernel equals its stride, i.e. a linear layer over each
//      pixel_values row (in_channels * temporal_patch * patch * patch values, bias);
//   2. the learned square position table resampled to each image's (h, w) grid by bilinear
//      interpolation with align_corners (4 taps per patch), repeated over the frames;
//   3. 2-D rotary (axial: h rows rotate the first half of each head's frequencies, w the second);
//   4. blocks: pre-LayerNorm attention (bidirectional within one frame of one image) + GELU MLP;
//      after each block listed in deepstack_visual_indexes, a deepstack merger (2x2 shuffle, then
//      LayerNorm over the merged width, Linear, GELU, Linear);
//   5. the final merger (LayerNorm per patch, 2x2 shuffle, Linear, GELU, Linear).
// pixel_values rows come in the processor's order: per image, per frame, 2x2 merge blocks in
// raster order, the 4 patches of a block consecutive. Compute is f32 over weights in their stored dtype.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "encoder_kernels.h"

namespace omni::engine {

struct VisionEncoderConfig {
  int64_t hidden = 0, depth = 0, heads = 0, ffn = 0, patch = 0, temporal_patch = 0, in_channels = 0;
  int64_t merge = 0, num_position_embeddings = 0, out_hidden = 0;
  std::vector<int64_t> deepstack;  // block indexes, in the config's order (merger_list.K is deepstack[K])
  double rope_theta = 10000.0;
  bool gelu_tanh = true;  // hidden_act gelu_pytorch_tanh (else exact gelu) in the blocks' MLP
  float eps = 1e-6f;
  int threads = 1;
};

class VisionEncoder {
 public:
  // `tensors` keys: visual.* (the checkpoint name without `thinker.`). Throws EngineError.
  VisionEncoder(VisionEncoderConfig cfg, const std::vector<std::string>& files, const std::vector<EncoderTensor>& tensors);
  const VisionEncoderConfig& config() const { return cfg_; }
  int64_t RowWidth() const { return cfg_.in_channels * cfg_.temporal_patch * cfg_.patch * cfg_.patch; }

  // pixels: rows x RowWidth(); grids: (t, h, w) per image or video, rows = sum t*h*w.
  // embeds: rows / merge^2 x out_hidden; deepstack: one tensor of the same shape per deepstack
  // block, in block order. Thread-safe (serialised). Throws EngineError
  // encoder_grid_invalid, encoder_grid_mismatch, encoder_pixels_invalid.
  void Encode(const float* pixels, int64_t rows, const std::vector<std::array<int64_t, 3>>& grids,
              std::vector<float>& embeds, std::vector<std::vector<float>>& deepstack);

 private:
  struct Block {
    LayerNormW norm1, norm2;
    Linear qkv, proj, fc1, fc2;
  };
  struct Merger {
    LayerNormW ln;
    Linear fc1, fc2;
    bool postshuffle = false;
  };
  void Merge(const Merger& m, const float* x, int64_t rows, float* out);

  VisionEncoderConfig cfg_;
  WeightStore weights_;
  Linear patch_embed_;
  std::vector<float> pos_embed_;  // side x side x hidden
  int64_t side_ = 0;
  std::vector<float> inv_freq_;  // head_dim / 4 frequencies
  std::vector<Block> blocks_;
  Merger merger_;
  std::vector<Merger> deepstack_mergers_;  // parallel to cfg_.deepstack
  std::mutex compute_;
  ThreadPool pool_;
};

}  // namespace omni::engine
