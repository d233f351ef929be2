// Qwen3-Omni code-to-wave decoder; see code2wav.h.
#include "code2wav.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace omni::engine {

namespace {

std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace

Code2Wav::Code2Wav(Code2WavConfig cfg, const std::vector<std::string>& files, const std::vector<EncoderTensor>& tensors)
    : cfg_(std::move(cfg)), ws_(files, tensors) {
  const Code2WavConfig& c = cfg_;
  if (c.codebook_size < 1 || c.num_quantizers < 1 || c.hidden < 1 || c.layers < 0 || c.heads < 1 || c.kv_heads < 1 ||
      c.head_dim < 2 || c.head_dim % 2 != 0 || c.heads % c.kv_heads != 0 || c.intermediate < 1 || c.sliding_window < 1 ||
      c.decoder_dim < 1 || c.upsample_rates.empty()) {
    throw EngineError("checkpoint_config_invalid", "code2wav config: inconsistent sizes");
  }
  if (c.decoder_dim % (int64_t{1} << c.upsample_rates.size()) != 0) {
    throw EngineError("checkpoint_config_invalid", "code2wav config: decoder_dim must be divisible by 2^len(upsample_rates)");
  }
  pool_ = std::make_unique<ThreadPool>(std::max(1, c.threads));
  const int64_t H = c.hidden, qd = c.heads * c.head_dim, kvd = c.kv_heads * c.head_dim;
  embedding_ = ws_.Mat("code_embedding.weight", {c.codebook_size * c.num_quantizers, H});
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "pre_transformer.layers." + Str(l) + ".";
    Layer L;
    L.in_norm = ws_.Floats(p + "input_layernorm.weight", {H});
    L.post_norm = ws_.Floats(p + "post_attention_layernorm.weight", {H});
    L.attn_scale = ws_.Floats(p + "self_attn_layer_scale.scale", {H});
    L.mlp_scale = ws_.Floats(p + "mlp_layer_scale.scale", {H});
    L.q = LoadLinear(ws_, p + "self_attn.q_proj", qd, H, c.attention_bias);
    L.k = LoadLinear(ws_, p + "self_attn.k_proj", kvd, H, c.attention_bias);
    L.v = LoadLinear(ws_, p + "self_attn.v_proj", kvd, H, c.attention_bias);
    L.o = LoadLinear(ws_, p + "self_attn.o_proj", H, qd, c.attention_bias);
    L.gate = LoadLinear(ws_, p + "mlp.gate_proj", c.intermediate, H, false);
    L.up = LoadLinear(ws_, p + "mlp.up_proj", c.intermediate, H, false);
    L.down = LoadLinear(ws_, p + "mlp.down_proj", H, c.intermediate, false);
    layers_.push_back(std::move(L));
  }
  final_norm_ = ws_.Floats("pre_transformer.norm.weight", {H});
  // transformers' default RoPE: inv_freq = 1 / theta^(2i/d) in float32, freqs = inv_freq * pos.
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.head_dim);
    inv_freq_.push_back(1.0f / std::pow(static_cast<float>(c.rope_theta), e));
  }
  for (size_t i = 0; i < c.upsampling_ratios.size(); ++i) {
    const std::string p = "upsample." + std::to_string(i) + ".";
    const int64_t r = c.upsampling_ratios[i];
    Upsample u;
    u.trans = LoadTransConv(ws_, p + "0.conv", H, H, r, r);
    u.dw = LoadDepthwise(ws_, p + "1.dwconv.conv", H, 7);
    u.norm = LoadLayerNorm(ws_, p + "1.norm", H, 1e-6f);
    u.pw1 = LoadLinear(ws_, p + "1.pwconv1", 4 * H, H, true);
    u.pw2 = LoadLinear(ws_, p + "1.pwconv2", H, 4 * H, true);
    u.gamma = ws_.Floats(p + "1.gamma", {H});
    upsample_.push_back(std::move(u));
    samples_per_frame_ *= r;
  }
  pre_conv_ = LoadCausalConv(ws_, "decoder.0.conv", H, c.decoder_dim, 7, 1);
  const int64_t nb = static_cast<int64_t>(c.upsample_rates.size());
  for (int64_t b = 0; b < nb; ++b) {
    const std::string p = "decoder." + Str(b + 1) + ".block.";
    const int64_t in = c.decoder_dim >> b, out = c.decoder_dim >> (b + 1), r = c.upsample_rates[static_cast<size_t>(b)];
    DecoderBlock B;
    B.act = LoadSnake(ws_, p + "0", in);
    B.trans = LoadTransConv(ws_, p + "1.conv", in, out, 2 * r, r);
    const int64_t dil[3] = {1, 3, 9};
    for (int u = 0; u < 3; ++u) {
      const std::string up = p + std::to_string(2 + u) + ".";
      B.units[u].act1 = LoadSnake(ws_, up + "act1", out);
      B.units[u].conv1 = LoadCausalConv(ws_, up + "conv1.conv", out, out, 7, dil[u]);
      B.units[u].act2 = LoadSnake(ws_, up + "act2", out);
      B.units[u].conv2 = LoadCausalConv(ws_, up + "conv2.conv", out, out, 1, 1);
    }
    blocks_.push_back(std::move(B));
    samples_per_frame_ *= r;
  }
  const int64_t od = c.decoder_dim >> nb;
  post_act_ = LoadSnake(ws_, "decoder." + Str(nb + 1), od);
  post_conv_ = LoadCausalConv(ws_, "decoder." + Str(nb + 2) + ".conv", od, 1, 7, 1);
  tail_ = samples_per_frame_ - SampleCount(1);
}

int64_t Code2Wav::SampleCount(int64_t frames) const {
  if (frames <= 0) return 0;
  int64_t L = frames;
  for (const auto& u : upsample_) L = std::max<int64_t>(0, L - u.trans.taps + 1) * u.trans.stride;
  for (const auto& b : blocks_) L = std::max<int64_t>(0, L - b.trans.taps + 1) * b.trans.stride;
  return L;
}

std::unique_ptr<Code2WavStream> Code2Wav::NewStream() const {
  return std::make_unique<Code2WavStream>(shared_from_this());
}

void Code2Wav::Render(const int32_t* codes, int64_t frames, std::vector<float>& out) const {
  Code2WavStream s(shared_from_this());
  out.clear();
  s.Push(codes, frames, out);
}

Code2WavStream::Code2WavStream(std::shared_ptr<const Code2Wav> model) : model_(std::move(model)) {
  const Code2Wav& m = *model_;
  kv_.resize(m.layers_.size());
  for (const auto& u : m.upsample_) {
    up_trans_.push_back(History{});
    up_dw_.push_back(DepthwiseHistory(u.dw));
  }
  pre_conv_ = CausalConvHistory(m.pre_conv_);
  for (const auto& b : m.blocks_) {
    Block B;
    for (int u = 0; u < 3; ++u) B.unit[u] = CausalConvHistory(b.units[u].conv1);
    blocks_.push_back(std::move(B));
  }
  post_conv_ = CausalConvHistory(m.post_conv_);
}

void Code2WavStream::Push(const int32_t* codes, int64_t frames, std::vector<float>& out) {
  const Code2WavConfig& c = model_->config();
  if (frames < 0) throw EngineError("code2wav_codes_invalid", "frames must be non-negative");
  for (int64_t i = 0; i < frames * c.num_quantizers; ++i) {
    if (codes[i] < 0 || codes[i] >= c.codebook_size) {
      throw EngineError("code2wav_codes_invalid", "code " + Str(codes[i]) + " at frame " + Str(i / c.num_quantizers) +
                                                      ", codebook " + Str(i % c.num_quantizers) + " is outside [0, " +
                                                      Str(c.codebook_size) + ")");
    }
  }
  if (frames == 0) return;
  std::lock_guard<std::mutex> lock(model_->mu_);
  out.reserve(out.size() + static_cast<size_t>(frames * model_->SamplesPerFrame()));
  for (int64_t f = 0; f < frames; f += Code2Wav::kChunkFrames) {
    model_->Forward(*this, codes + f * c.num_quantizers, std::min(Code2Wav::kChunkFrames, frames - f), out);
  }
}

void Code2Wav::Transformer(Code2WavStream& s, float* x, int64_t m) const {
  const Code2WavConfig& c = cfg_;
  ThreadPool& pool = *pool_;
  const int64_t H = c.hidden, hd = c.head_dim, nh = c.heads, nkv = c.kv_heads, qd = nh * hd, kvd = nkv * hd;
  const int64_t half = hd / 2, group = nh / nkv, W = c.sliding_window;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  std::vector<float> xn(static_cast<size_t>(m * H)), q(static_cast<size_t>(m * qd)), k(static_cast<size_t>(m * kvd)),
      v(static_cast<size_t>(m * kvd)), att(static_cast<size_t>(m * qd)), o(static_cast<size_t>(m * H));
  std::vector<float> g(static_cast<size_t>(m * c.intermediate)), u(static_cast<size_t>(m * c.intermediate));
  // cos/sin per new row.
  std::vector<float> cs(static_cast<size_t>(m * half)), sn(static_cast<size_t>(m * half));
  for (int64_t t = 0; t < m; ++t) {
    const float pos = static_cast<float>(s.position_ + t);
    for (int64_t i = 0; i < half; ++i) {
      const float f = inv_freq_[static_cast<size_t>(i)] * pos;
      cs[static_cast<size_t>(t * half + i)] = std::cos(f);
      sn[static_cast<size_t>(t * half + i)] = std::sin(f);
    }
  }
  auto rope = [&](float* row, int64_t heads, int64_t t) {
    const float* cr = cs.data() + t * half;
    const float* sr = sn.data() + t * half;
    for (int64_t h = 0; h < heads; ++h) {
      float* r = row + h * hd;
      for (int64_t i = 0; i < half; ++i) {
        const float a = r[i], b = r[i + half];
        r[i] = a * cr[i] - b * sr[i];
        r[i + half] = b * cr[i] + a * sr[i];
      }
    }
  };
  for (size_t l = 0; l < layers_.size(); ++l) {
    const Layer& L = layers_[l];
    Code2WavStream::Kv& kv = s.kv_[l];
    for (int64_t t = 0; t < m; ++t) RmsNorm(x + t * H, L.in_norm.data(), H, c.rms_eps, xn.data() + t * H);
    ApplyLinear(pool, L.q, xn.data(), m, H, q.data(), qd);
    ApplyLinear(pool, L.k, xn.data(), m, H, k.data(), kvd);
    ApplyLinear(pool, L.v, xn.data(), m, H, v.data(), kvd);
    for (int64_t t = 0; t < m; ++t) {
      rope(q.data() + t * qd, nh, t);
      rope(k.data() + t * kvd, nkv, t);
    }
    // Cache = the previous rows (at most W-1) then the new ones; row j of the cache is at absolute
    // position base + j.
    const int64_t prev = kv.rows, base = s.position_ - prev;
    kv.k.insert(kv.k.end(), k.begin(), k.end());
    kv.v.insert(kv.v.end(), v.begin(), v.end());
    kv.rows += m;
    pool.Run(m * nh, [&](int64_t task) {
      const int64_t t = task / nh, h = task % nh, kh = h / group;
      const int64_t pos = s.position_ + t;
      const int64_t j0 = std::max<int64_t>(base, pos - W + 1), j1 = pos;  // keys in (pos - W, pos]
      const int64_t n = j1 - j0 + 1;
      std::vector<float> sc(static_cast<size_t>(n));
      const float* qr = q.data() + t * qd + h * hd;
      for (int64_t j = 0; j < n; ++j) {
        sc[static_cast<size_t>(j)] = Dot(qr, kv.k.data() + (j0 - base + j) * kvd + kh * hd, hd) * scale;
      }
      Softmax(sc.data(), n);
      float* ar = att.data() + t * qd + h * hd;
      std::fill(ar, ar + hd, 0.0f);
      for (int64_t j = 0; j < n; ++j) Axpy(sc[static_cast<size_t>(j)], kv.v.data() + (j0 - base + j) * kvd + kh * hd, ar, hd);
    });
    const int64_t keep = std::min<int64_t>(kv.rows, W - 1);
    if (keep < kv.rows) {
      kv.k.erase(kv.k.begin(), kv.k.begin() + (kv.rows - keep) * kvd);
      kv.v.erase(kv.v.begin(), kv.v.begin() + (kv.rows - keep) * kvd);
      kv.rows = keep;
    }
    ApplyLinear(pool, L.o, att.data(), m, qd, o.data(), H);
    for (int64_t t = 0; t < m; ++t) {
      for (int64_t i = 0; i < H; ++i) x[t * H + i] += L.attn_scale[static_cast<size_t>(i)] * o[static_cast<size_t>(t * H + i)];
      RmsNorm(x + t * H, L.post_norm.data(), H, c.rms_eps, xn.data() + t * H);
    }
    ApplyLinear(pool, L.gate, xn.data(), m, H, g.data(), c.intermediate);
    ApplyLinear(pool, L.up, xn.data(), m, H, u.data(), c.intermediate);
    SiluMul(g.data(), u.data(), m * c.intermediate);
    ApplyLinear(pool, L.down, g.data(), m, c.intermediate, o.data(), H);
    for (int64_t t = 0; t < m; ++t) {
      for (int64_t i = 0; i < H; ++i) x[t * H + i] += L.mlp_scale[static_cast<size_t>(i)] * o[static_cast<size_t>(t * H + i)];
    }
  }
  for (int64_t t = 0; t < m; ++t) RmsNorm(x + t * H, final_norm_.data(), H, c.rms_eps, x + t * H);
}

void Code2Wav::Forward(Code2WavStream& s, const int32_t* codes, int64_t frames, std::vector<float>& out) const {
  const Code2WavConfig& c = cfg_;
  ThreadPool& pool = *pool_;
  const int64_t H = c.hidden, Q = c.num_quantizers;
  // 1. Mean of the codebook embeddings (sum in codebook order, then / Q).
  std::vector<float>& x = cur_;
  if (static_cast<int64_t>(x.size()) < frames * H) x.resize(static_cast<size_t>(frames * H));
  std::fill(x.begin(), x.begin() + frames * H, 0.0f);
  std::vector<float> row(static_cast<size_t>(H));
  for (int64_t t = 0; t < frames; ++t) {
    float* xr = x.data() + t * H;
    for (int64_t q = 0; q < Q; ++q) {
      RowToF32(embedding_, q * c.codebook_size + codes[t * Q + q], row.data());
      for (int64_t i = 0; i < H; ++i) xr[i] += row[static_cast<size_t>(i)];
    }
    for (int64_t i = 0; i < H; ++i) xr[i] /= static_cast<float>(Q);
  }
  // 2. Transformer.
  Transformer(s, x.data(), frames);
  s.position_ += frames;
  // 3. Upsampling: ConvTranspose(k = s = ratio) + ConvNeXt block.
  std::vector<float>&cur = cur_, &tmp = tmp_, &hid = hid_, &a = act_;
  int64_t rows = frames;
  for (size_t i = 0; i < upsample_.size(); ++i) {
    const Upsample& u = upsample_[i];
    rows = TransConvForward(pool, u.trans, s.up_trans_[i], cur.data(), rows, tmp);
    cur.swap(tmp);
    DepthwiseForward(pool, u.dw, s.up_dw_[i], cur.data(), rows, tmp);
    ApplyLayerNorm(pool, u.norm, tmp.data(), rows, H, tmp.data());
    if (static_cast<int64_t>(hid.size()) < rows * 4 * H) hid.resize(static_cast<size_t>(rows * 4 * H));
    ApplyLinear(pool, u.pw1, tmp.data(), rows, H, hid.data(), 4 * H);
    ApplyGelu(pool, hid.data(), rows * 4 * H, false);
    ApplyLinear(pool, u.pw2, hid.data(), rows, 4 * H, tmp.data(), H);
    for (int64_t t = 0; t < rows; ++t) {
      for (int64_t ch = 0; ch < H; ++ch) cur[static_cast<size_t>(t * H + ch)] += u.gamma[static_cast<size_t>(ch)] * tmp[static_cast<size_t>(t * H + ch)];
    }
  }
  // 4. Decoder.
  CausalConvForward(pool, pre_conv_, s.pre_conv_, cur.data(), rows, tmp);
  cur.swap(tmp);
  for (size_t b = 0; b < blocks_.size(); ++b) {
    const DecoderBlock& B = blocks_[b];
    const int64_t in = B.trans.cin, od = B.trans.cout;
    if (static_cast<int64_t>(a.size()) < rows * in) a.resize(static_cast<size_t>(rows * in));
    SnakeForward(pool, B.act, cur.data(), rows, a.data());
    rows = TransConvForward(pool, B.trans, s.blocks_[b].trans, a.data(), rows, cur);
    for (int u = 0; u < 3; ++u) {
      const Unit& U = B.units[u];
      if (static_cast<int64_t>(a.size()) < rows * od) a.resize(static_cast<size_t>(rows * od));
      SnakeForward(pool, U.act1, cur.data(), rows, a.data());
      CausalConvForward(pool, U.conv1, s.blocks_[b].unit[u], a.data(), rows, tmp);
      SnakeForward(pool, U.act2, tmp.data(), rows, tmp.data());
      History none;  // k = 1: no history
      CausalConvForward(pool, U.conv2, none, tmp.data(), rows, a);
      for (int64_t i = 0; i < rows * od; ++i) cur[static_cast<size_t>(i)] += a[static_cast<size_t>(i)];
    }
  }
  SnakeForward(pool, post_act_, cur.data(), rows, cur.data());
  CausalConvForward(pool, post_conv_, s.post_conv_, cur.data(), rows, tmp);
  const size_t at = out.size();
  out.resize(at + static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) out[at + static_cast<size_t>(i)] = std::min(1.0f, std::max(-1.0f, tmp[static_cast<size_t>(i)]));
  s.samples_ += rows;
}

}  // namespace omni::engine
