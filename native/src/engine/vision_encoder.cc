#include "vision_encoder.h"

#include <algorithm>
#include <cmath>

#include "thinker.h"  // EngineError

namespace omni::engine {

namespace {

// Bilinear (align_corners) taps of target index r on an axis of `size` into a `side` table.
void AxisTaps(int64_t r, int64_t size, int64_t side, int64_t taps[2], float weights[2]) {
  const float src = static_cast<float>(r) * static_cast<float>(side - 1) / static_cast<float>(std::max<int64_t>(size - 1, 1));
  const float fl = std::floor(src);
  for (int o = 0; o < 2; ++o) {
    const int64_t raw = static_cast<int64_t>(fl) + o;
    taps[o] = std::min(std::max<int64_t>(raw, 0), side - 1);
    weights[o] = std::max(0.0f, 1.0f - std::fabs(src - fl - static_cast<float>(o)));
  }
}

}  // namespace

VisionEncoder::VisionEncoder(VisionEncoderConfig cfg, const std::vector<std::string>& files,
                             const std::vector<EncoderTensor>& tensors)
    : cfg_(std::move(cfg)), weights_(files, tensors), pool_(std::max(1, cfg_.threads)) {
  const VisionEncoderConfig& c = cfg_;
  side_ = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(c.num_position_embeddings))));
  const bool ok = c.hidden > 0 && c.depth > 0 && c.heads > 0 && c.hidden % c.heads == 0 && (c.hidden / c.heads) % 4 == 0 &&
                  c.ffn > 0 && c.patch > 0 && c.temporal_patch > 0 && c.in_channels > 0 && c.merge > 0 && c.out_hidden > 0 &&
                  c.num_position_embeddings > 0 && side_ * side_ == c.num_position_embeddings && c.rope_theta > 0;
  if (!ok) throw EngineError("checkpoint_config_invalid", "inconsistent vision encoder sizes in the load spec");
  for (size_t i = 0; i < c.deepstack.size(); ++i) {
    if (c.deepstack[i] < 0 || c.deepstack[i] >= c.depth ||
        std::count(c.deepstack.begin(), c.deepstack.end(), c.deepstack[i]) != 1) {
      throw EngineError("checkpoint_config_invalid", "deepstack_visual_indexes must be distinct block indexes below depth");
    }
  }
  const std::string p = "visual.";
  const int64_t H = c.hidden, W = H * c.merge * c.merge;
  patch_embed_.w = weights_.Mat(p + "patch_embed.proj.weight", {H, c.in_channels, c.temporal_patch, c.patch, c.patch});
  patch_embed_.b = weights_.Floats(p + "patch_embed.proj.bias", {H});
  pos_embed_ = weights_.Floats(p + "pos_embed.weight", {c.num_position_embeddings, H});
  blocks_.resize(static_cast<size_t>(c.depth));
  for (int64_t l = 0; l < c.depth; ++l) {
    Block& B = blocks_[static_cast<size_t>(l)];
    const std::string bp = p + "blocks." + std::to_string(l) + ".";
    B.norm1 = LoadLayerNorm(weights_, bp + "norm1", H, c.eps);
    B.norm2 = LoadLayerNorm(weights_, bp + "norm2", H, c.eps);
    B.qkv = LoadLinear(weights_, bp + "attn.qkv", 3 * H, H, true);
    B.proj = LoadLinear(weights_, bp + "attn.proj", H, H, true);
    B.fc1 = LoadLinear(weights_, bp + "mlp.linear_fc1", c.ffn, H, true);
    B.fc2 = LoadLinear(weights_, bp + "mlp.linear_fc2", H, c.ffn, true);
  }
  auto merger = [&](const std::string& mp, bool post) {
    Merger m;
    m.postshuffle = post;
    m.ln = LoadLayerNorm(weights_, mp + "ln_q", post ? W : H, c.eps);
    m.fc1 = LoadLinear(weights_, mp + "mlp.0", W, W, true);
    m.fc2 = LoadLinear(weights_, mp + "mlp.2", c.out_hidden, W, true);
    return m;
  };
  merger_ = merger(p + "merger.", false);
  for (size_t k = 0; k < c.deepstack.size(); ++k) deepstack_mergers_.push_back(merger(p + "merger_list." + std::to_string(k) + ".", true));

  // Axial rotary: inv_freq over head_dim / 2 "spatial" dims, step 2.
  const int64_t spatial = H / c.heads / 2;
  for (int64_t i = 0; i < spatial; i += 2) {
    const float e = static_cast<float>(i) / static_cast<float>(spatial);
    inv_freq_.push_back(1.0f / std::pow(static_cast<float>(c.rope_theta), e));
  }
}

void VisionEncoder::Merge(const Merger& m, const float* x, int64_t rows, float* out) {
  const VisionEncoderConfig& c = cfg_;
  const int64_t H = c.hidden, unit = c.merge * c.merge, W = H * unit, n = rows / unit;
  std::vector<float> h(static_cast<size_t>(rows * H)), y(static_cast<size_t>(n * W));
  if (m.postshuffle) {
    ApplyLayerNorm(pool_, m.ln, x, n, W, h.data());
  } else {
    ApplyLayerNorm(pool_, m.ln, x, rows, H, h.data());
  }
  ApplyLinear(pool_, m.fc1, h.data(), n, W, y.data(), W);
  ApplyGelu(pool_, y.data(), static_cast<int64_t>(y.size()), false);  // nn.GELU(): exact
  ApplyLinear(pool_, m.fc2, y.data(), n, W, out, c.out_hidden);
}

void VisionEncoder::Encode(const float* pixels, int64_t rows, const std::vector<std::array<int64_t, 3>>& grids,
                           std::vector<float>& embeds, std::vector<std::vector<float>>& deepstack) {
  const VisionEncoderConfig& c = cfg_;
  const int64_t H = c.hidden, m = c.merge, unit = m * m;
  if (grids.empty()) throw EngineError("encoder_grid_invalid", "vision encoder input needs at least one grid");
  int64_t total = 0;
  for (const auto& g : grids) {
    if (g[0] < 1 || g[1] < 1 || g[2] < 1 || g[1] % m != 0 || g[2] % m != 0 || g[0] > (1 << 20) || g[1] > (1 << 20) ||
        g[2] > (1 << 20)) {
      throw EngineError("encoder_grid_invalid", "each grid needs t, h, w >= 1 with h and w multiples of " + std::to_string(m));
    }
    total += g[0] * g[1] * g[2];  // each term < 2^60 and total <= rows before it: no overflow
    if (total > rows) break;
  }
  if (total != rows || pixels == nullptr) {
    throw EngineError("encoder_grid_mismatch", "the grids cover " + std::to_string(total) + " patches but " +
                                                   std::to_string(rows) + " pixel rows were given");
  }
  const int64_t count = rows * RowWidth();
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(pixels[i])) {
      throw EngineError("encoder_pixels_invalid", "pixel value " + std::to_string(i) + " is not a finite number");
    }
  }
  std::lock_guard<std::mutex> lock(compute_);
  const int64_t N = rows;

  // Per patch: (row, col) on its frame's grid, and the attention segments (one per frame).
  std::vector<int32_t> prow(static_cast<size_t>(N)), pcol(static_cast<size_t>(N)), hsz(static_cast<size_t>(N)), wsz(static_cast<size_t>(N));
  std::vector<int64_t> cu{0};
  int64_t at = 0;
  for (const auto& g : grids) {
    const int64_t t = g[0], gh = g[1], gw = g[2], bw = gw / m;
    for (int64_t f = 0; f < t; ++f) {
      for (int64_t i = 0; i < gh * gw; ++i, ++at) {
        const int64_t in_col = i % m, in_row = (i / m) % m, block_col = (i / unit) % bw, block_row = i / (unit * bw);
        prow[static_cast<size_t>(at)] = static_cast<int32_t>(block_row * m + in_row);
        pcol[static_cast<size_t>(at)] = static_cast<int32_t>(block_col * m + in_col);
        hsz[static_cast<size_t>(at)] = static_cast<int32_t>(gh);
        wsz[static_cast<size_t>(at)] = static_cast<int32_t>(gw);
      }
      cu.push_back(at);
    }
  }

  // Patch embedding + interpolated position embedding.
  std::vector<float> x(static_cast<size_t>(N * H));
  ApplyLinear(pool_, patch_embed_, pixels, N, RowWidth(), x.data(), H);
  pool_.Run((N + 255) / 256, [&](int64_t task) {
    const int64_t t1 = std::min(N, (task + 1) * 256);
    for (int64_t t = task * 256; t < t1; ++t) {
      int64_t ht[2], wt[2];
      float hw[2], ww[2];
      AxisTaps(prow[static_cast<size_t>(t)], hsz[static_cast<size_t>(t)], side_, ht, hw);
      AxisTaps(pcol[static_cast<size_t>(t)], wsz[static_cast<size_t>(t)], side_, wt, ww);
      float* dst = x.data() + t * H;
      for (int64_t j = 0; j < H; ++j) {
        float s = 0.0f;
        for (int a = 0; a < 2; ++a)
          for (int b = 0; b < 2; ++b) s += pos_embed_[static_cast<size_t>((ht[a] * side_ + wt[b]) * H + j)] * (hw[a] * ww[b]);
        dst[j] += s;
      }
    }
  });

  // Rotary cos/sin per patch: head_dim / 2 angles (h frequencies, then w frequencies).
  const int64_t hd = H / c.heads, half = hd / 2, quarter = hd / 4;
  std::vector<float> cosv(static_cast<size_t>(N * half)), sinv(static_cast<size_t>(N * half));
  for (int64_t t = 0; t < N; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const float pos = static_cast<float>(i < quarter ? prow[static_cast<size_t>(t)] : pcol[static_cast<size_t>(t)]);
      const float ang = pos * inv_freq_[static_cast<size_t>(i % quarter)];
      cosv[static_cast<size_t>(t * half + i)] = std::cos(ang);
      sinv[static_cast<size_t>(t * half + i)] = std::sin(ang);
    }

  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> h(static_cast<size_t>(N * H)), qkv(static_cast<size_t>(N * 3 * H)), att(static_cast<size_t>(N * H));
  std::vector<float> ff(static_cast<size_t>(N * c.ffn));
  const int64_t n_out = N / unit;
  embeds.assign(static_cast<size_t>(n_out * c.out_hidden), 0.0f);
  deepstack.assign(c.deepstack.size(), {});
  for (int64_t l = 0; l < c.depth; ++l) {
    const Block& B = blocks_[static_cast<size_t>(l)];
    ApplyLayerNorm(pool_, B.norm1, x.data(), N, H, h.data());
    ApplyLinear(pool_, B.qkv, h.data(), N, H, qkv.data(), 3 * H);
    // Rotate q and k of every head.
    pool_.Run((N + 255) / 256, [&](int64_t task) {
      const int64_t t1 = std::min(N, (task + 1) * 256);
      for (int64_t t = task * 256; t < t1; ++t) {
        const float* cs = cosv.data() + t * half;
        const float* sn = sinv.data() + t * half;
        for (int64_t part = 0; part < 2; ++part)
          for (int64_t hh = 0; hh < c.heads; ++hh) {
            float* v = qkv.data() + t * 3 * H + part * H + hh * hd;
            for (int64_t i = 0; i < half; ++i) {
              const float x1 = v[i], x2 = v[i + half];
              v[i] = x1 * cs[i] - x2 * sn[i];
              v[i + half] = x2 * cs[i] + x1 * sn[i];
            }
          }
      }
    });
    SegmentAttention(pool_, qkv.data(), qkv.data() + H, qkv.data() + 2 * H, 3 * H, c.heads, hd, cu, scale, att.data(), H);
    ApplyLinear(pool_, B.proj, att.data(), N, H, h.data(), H);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
    ApplyLayerNorm(pool_, B.norm2, x.data(), N, H, h.data());
    ApplyLinear(pool_, B.fc1, h.data(), N, H, ff.data(), c.ffn);
    ApplyGelu(pool_, ff.data(), static_cast<int64_t>(ff.size()), c.gelu_tanh);
    ApplyLinear(pool_, B.fc2, ff.data(), N, c.ffn, h.data(), H);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];

    const auto it = std::find(c.deepstack.begin(), c.deepstack.end(), l);
    if (it != c.deepstack.end()) {
      // Outputs in block order (the reference appends as the blocks run).
      const size_t k = static_cast<size_t>(it - c.deepstack.begin());
      size_t slot = 0;
      for (int64_t d : c.deepstack) slot += d < l ? 1 : 0;
      deepstack[slot].resize(static_cast<size_t>(n_out * c.out_hidden));
      Merge(deepstack_mergers_[k], x.data(), N, deepstack[slot].data());
    }
  }
  Merge(merger_, x.data(), N, embeds.data());
}

}  // namespace omni::engine
