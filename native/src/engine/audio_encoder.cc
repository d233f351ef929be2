#include "audio_encoder.h"

#include <algorithm>
#include <cmath>

#include "thinker.h"  // EngineError

namespace omni::engine {

namespace {

int64_t ConvLen(int64_t n) { return (n - 1) / 2 + 1; }  // Conv2d(k=3, stride=2, pad=1) output length

}  // namespace

AudioEncoder::AudioEncoder(AudioEncoderConfig cfg, const std::vector<std::string>& files,
                           const std::vector<EncoderTensor>& tensors)
    : cfg_(std::move(cfg)), weights_(files, tensors), pool_(std::max(1, cfg_.threads)) {
  const AudioEncoderConfig& c = cfg_;
  if (c.num_mel_bins <= 0 || c.d_model <= 0 || c.layers <= 0 || c.heads <= 0 || c.d_model % c.heads != 0 ||
      c.ffn <= 0 || c.downsample_hidden <= 0 || c.output_dim <= 0 || c.n_window <= 0 ||
      c.n_window_infer < 2 * c.n_window || c.max_source_positions <= 0 || c.d_model % 2 != 0 || c.d_model < 4) {
    throw EngineError("checkpoint_config_invalid", "inconsistent audio encoder sizes in the load spec");
  }
  const std::string p = "audio_tower.";
  const int64_t D = c.downsample_hidden;
  for (int i = 0; i < 3; ++i) {
    Conv& cv = conv_[i];
    cv.in = i == 0 ? 1 : D;
    cv.out = D;
    const std::string name = p + "conv2d" + std::to_string(i + 1);
    cv.w = weights_.Mat(name + ".weight", {D, cv.in, 3, 3});
    cv.b = weights_.Floats(name + ".bias", {D});
  }
  freq_out_ = ConvLen(ConvLen(ConvLen(c.num_mel_bins)));
  conv_out_ = LoadLinear(weights_, p + "conv_out", c.d_model, D * freq_out_, false);
  layers_.resize(static_cast<size_t>(c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& L = layers_[static_cast<size_t>(l)];
    const std::string lp = p + "layers." + std::to_string(l) + ".";
    L.attn_norm = LoadLayerNorm(weights_, lp + "self_attn_layer_norm", c.d_model, c.eps);
    L.final_norm = LoadLayerNorm(weights_, lp + "final_layer_norm", c.d_model, c.eps);
    L.q = LoadLinear(weights_, lp + "self_attn.q_proj", c.d_model, c.d_model, true);
    L.k = LoadLinear(weights_, lp + "self_attn.k_proj", c.d_model, c.d_model, true);
    L.v = LoadLinear(weights_, lp + "self_attn.v_proj", c.d_model, c.d_model, true);
    L.o = LoadLinear(weights_, lp + "self_attn.out_proj", c.d_model, c.d_model, true);
    L.fc1 = LoadLinear(weights_, lp + "fc1", c.ffn, c.d_model, true);
    L.fc2 = LoadLinear(weights_, lp + "fc2", c.d_model, c.ffn, true);
  }
  ln_post_ = LoadLayerNorm(weights_, p + "ln_post", c.d_model, c.eps);
  proj1_ = LoadLinear(weights_, p + "proj1", c.d_model, c.d_model, true);
  proj2_ = LoadLinear(weights_, p + "proj2", c.output_dim, c.d_model, true);

  // SinusoidsPositionEmbedding(max_source_positions, d_model): [sin | cos], f32 as the reference.
  const int64_t half = c.d_model / 2;
  const float inc = static_cast<float>(std::log(10000.0) / static_cast<double>(half - 1));
  positions_.resize(static_cast<size_t>(c.max_source_positions * c.d_model));
  for (int64_t i = 0; i < half; ++i) {
    const float inv = std::exp(-inc * static_cast<float>(i));
    for (int64_t t = 0; t < c.max_source_positions; ++t) {
      const float st = static_cast<float>(t) * inv;
      positions_[static_cast<size_t>(t * c.d_model + i)] = std::sin(st);
      positions_[static_cast<size_t>(t * c.d_model + half + i)] = std::cos(st);
    }
  }
  const int64_t chunk_tokens = ChunkTokens(2 * c.n_window);
  if (chunk_tokens > c.max_source_positions) {
    throw EngineError("checkpoint_config_invalid", "audio chunks of 2 * n_window frames give more tokens than max_source_positions");
  }
}

int64_t AudioEncoder::ChunkTokens(int64_t len) const { return len <= 0 ? 0 : ConvLen(ConvLen(ConvLen(len))); }

int64_t AudioEncoder::TokenCount(int64_t frames) const {
  const int64_t C = 2 * cfg_.n_window;
  return (frames / C) * ChunkTokens(C) + ChunkTokens(frames % C);
}

void AudioEncoder::ConvGelu(const Conv& c, const float* in, int64_t F, int64_t T, std::vector<float>& out) {
  const int64_t Fo = ConvLen(F), To = ConvLen(T), K = c.in * 9;
  std::vector<float> cols(static_cast<size_t>(Fo * To * K));
  pool_.Run(Fo, [&](int64_t fo) {
    for (int64_t to = 0; to < To; ++to) {
      float* row = cols.data() + (fo * To + to) * K;
      for (int64_t ci = 0; ci < c.in; ++ci)
        for (int64_t ky = 0; ky < 3; ++ky) {
          const int64_t fi = 2 * fo - 1 + ky;
          for (int64_t kx = 0; kx < 3; ++kx) {
            const int64_t ti = 2 * to - 1 + kx;
            row[ci * 9 + ky * 3 + kx] = (fi < 0 || fi >= F || ti < 0 || ti >= T) ? 0.0f : in[(ci * F + fi) * T + ti];
          }
        }
    }
  });
  std::vector<float> y(static_cast<size_t>(Fo * To * c.out));
  Linear L{c.w, c.b};
  ApplyLinear(pool_, L, cols.data(), Fo * To, K, y.data(), c.out);
  ApplyGelu(pool_, y.data(), static_cast<int64_t>(y.size()), false);
  out.resize(static_cast<size_t>(c.out * Fo * To));
  for (int64_t pos = 0; pos < Fo * To; ++pos)
    for (int64_t co = 0; co < c.out; ++co) out[static_cast<size_t>(co * Fo * To + pos)] = y[static_cast<size_t>(pos * c.out + co)];
}

void AudioEncoder::Encode(const float* features, int64_t frames, std::vector<float>& out) {
  const AudioEncoderConfig& c = cfg_;
  if (frames <= 0 || features == nullptr) {
    throw EngineError("encoder_features_invalid", "audio encoder input needs at least one mel frame");
  }
  const int64_t count = c.num_mel_bins * frames;
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(features[i])) {
      throw EngineError("encoder_features_invalid", "mel feature " + std::to_string(i) + " is not a finite number");
    }
  }
  std::lock_guard<std::mutex> lock(compute_);
  const int64_t M = c.num_mel_bins, d = c.d_model, C = 2 * c.n_window;

  // Chunks of C frames, the last one the remainder; all padded to the longest.
  std::vector<int64_t> lens;
  for (int64_t s = 0; s < frames; s += C) lens.push_back(std::min(C, frames - s));
  const int64_t L = *std::max_element(lens.begin(), lens.end());
  const int64_t Tp = ChunkTokens(L);  // tokens of a padded chunk
  if (Tp > c.max_source_positions) throw EngineError("encoder_features_invalid", "audio chunk longer than the position table");
  const int64_t N = TokenCount(frames);

  std::vector<float> x(static_cast<size_t>(N * d));
  std::vector<float> chunk(static_cast<size_t>(M * L)), a, b;
  std::vector<float> rows;
  const int64_t F3 = freq_out_, Dh = c.downsample_hidden;
  int64_t tok = 0;
  for (size_t ci = 0; ci < lens.size(); ++ci) {
    const int64_t start = static_cast<int64_t>(ci) * C, len = lens[ci];
    for (int64_t m = 0; m < M; ++m) {
      float* dst = chunk.data() + m * L;
      std::copy(features + m * frames + start, features + m * frames + start + len, dst);
      std::fill(dst + len, dst + L, 0.0f);
    }
    ConvGelu(conv_[0], chunk.data(), M, L, a);
    const int64_t F1 = ConvLen(M), T1 = ConvLen(L);
    ConvGelu(conv_[1], a.data(), F1, T1, b);
    const int64_t F2 = ConvLen(F1), T2 = ConvLen(T1);
    ConvGelu(conv_[2], b.data(), F2, T2, a);  // a: [Dh][F3][Tp]
    const int64_t valid = ChunkTokens(len);
    rows.resize(static_cast<size_t>(valid * Dh * F3));
    for (int64_t j = 0; j < valid; ++j)
      for (int64_t ch = 0; ch < Dh; ++ch)
        for (int64_t f = 0; f < F3; ++f)
          rows[static_cast<size_t>((j * Dh + ch) * F3 + f)] = a[static_cast<size_t>((ch * F3 + f) * Tp + j)];
    float* dst = x.data() + tok * d;
    ApplyLinear(pool_, conv_out_, rows.data(), valid, Dh * F3, dst, d);
    for (int64_t j = 0; j < valid; ++j)
      for (int64_t i = 0; i < d; ++i) dst[j * d + i] += positions_[static_cast<size_t>(j * d + i)];
    tok += valid;
  }

  // Attention windows.
  const int64_t window = Tp * (c.n_window_infer / C);
  std::vector<int64_t> cu{0};
  for (int64_t s = window; s < N; s += window) cu.push_back(s);
  cu.push_back(N);

  const int64_t hd = d / c.heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> h(static_cast<size_t>(N * d)), qkv(static_cast<size_t>(N * 3 * d)), att(static_cast<size_t>(N * d));
  std::vector<float> ff(static_cast<size_t>(N * c.ffn));
  for (const Layer& Ly : layers_) {
    ApplyLayerNorm(pool_, Ly.attn_norm, x.data(), N, d, h.data());
    ApplyLinear(pool_, Ly.q, h.data(), N, d, qkv.data(), 3 * d);
    ApplyLinear(pool_, Ly.k, h.data(), N, d, qkv.data() + d, 3 * d);
    ApplyLinear(pool_, Ly.v, h.data(), N, d, qkv.data() + 2 * d, 3 * d);
    SegmentAttention(pool_, qkv.data(), qkv.data() + d, qkv.data() + 2 * d, 3 * d, c.heads, hd, cu, scale, att.data(), d);
    ApplyLinear(pool_, Ly.o, att.data(), N, d, h.data(), d);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
    ApplyLayerNorm(pool_, Ly.final_norm, x.data(), N, d, h.data());
    ApplyLinear(pool_, Ly.fc1, h.data(), N, d, ff.data(), c.ffn);
    ApplyGelu(pool_, ff.data(), static_cast<int64_t>(ff.size()), false);
    ApplyLinear(pool_, Ly.fc2, ff.data(), N, c.ffn, h.data(), d);
    for (size_t i = 0; i < x.size(); ++i) x[i] += h[i];
  }
  ApplyLayerNorm(pool_, ln_post_, x.data(), N, d, h.data());
  ApplyLinear(pool_, proj1_, h.data(), N, d, x.data(), d);
  ApplyGelu(pool_, x.data(), static_cast<int64_t>(x.size()), false);
  out.resize(static_cast<size_t>(N * c.output_dim));
  ApplyLinear(pool_, proj2_, x.data(), N, d, out.data(), c.output_dim);
}

}  // namespace omni::engine
