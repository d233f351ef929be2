#include "thinker.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unordered_map>

#include <sys/mman.h>
#include <unistd.h>

namespace omni::engine {

// ---- KV cache ---------------------------------------------------------------------------------

namespace {
constexpr int64_t kCacheChunk = 256;  // positions added at a time (at least)
}

KvCache::KvCache(int64_t layers, int64_t kv_dim, int64_t max_length)
    : kv_dim_(kv_dim), max_length_(max_length), k_(layers), v_(layers) {}

void KvCache::Reserve(int64_t positions) {
  if (positions <= capacity_) return;
  if (positions > max_length_) {
    throw EngineError("thinker_context_full", "the session holds at most " + std::to_string(max_length_) +
                                                  " positions; this call needs " + std::to_string(positions));
  }
  // Grow by chunks, and by half the current size for long contexts (amortised copies).
  int64_t cap = std::max(positions, capacity_ + std::max(kCacheChunk, capacity_ / 2));
  cap = std::min(max_length_, (cap + kCacheChunk - 1) / kCacheChunk * kCacheChunk);
  cap = std::max(cap, positions);
  for (auto& k : k_) k.resize(static_cast<size_t>(cap * kv_dim_));
  for (auto& v : v_) v.resize(static_cast<size_t>(cap * kv_dim_));
  capacity_ = cap;
}

void KvCache::Free() {
  for (auto& k : k_) std::vector<float>().swap(k);
  for (auto& v : v_) std::vector<float>().swap(v);
  capacity_ = 0;
  length = 0;
}

// ---- loading ------------------------------------------------------------------------------------

namespace {

std::string ShapeText(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

ThinkerModel::ThinkerModel(ThinkerConfig cfg, const std::vector<std::string>& files,
                           const std::vector<TensorRef>& tensors)
    : cfg_(std::move(cfg)), pool_(std::max(1, cfg_.threads)) {
  const ThinkerConfig& c = cfg_;
  if (c.hidden <= 0 || c.vocab <= 0 || c.layers <= 0 || c.heads <= 0 || c.kv_heads <= 0 || c.head_dim <= 0 ||
      c.head_dim % 2 != 0 || c.heads % c.kv_heads != 0 || static_cast<int64_t>(c.sparse.size()) != c.layers ||
      c.mrope[0] + c.mrope[1] + c.mrope[2] != c.head_dim / 2 || 3 * std::max(c.mrope[1], c.mrope[2]) > c.head_dim / 2) {
    throw EngineError("checkpoint_config_invalid", "inconsistent thinker sizes in the load spec");
  }
  for (bool s : c.sparse) {
    if (s && (c.experts <= 0 || c.top_k <= 0 || c.top_k > c.experts || c.moe_intermediate <= 0)) {
      throw EngineError("checkpoint_config_invalid", "a sparse layer needs experts, top_k <= experts and moe_intermediate");
    }
    if (!s && c.intermediate <= 0) throw EngineError("checkpoint_config_invalid", "a dense layer needs intermediate > 0");
  }
  for (const auto& f : files) files_.push_back(std::make_unique<MappedFile>(f));

  std::unordered_map<std::string, const TensorRef*> by_key;
  for (const auto& t : tensors) by_key[t.key] = &t;
  auto find = [&](const std::string& key, const std::vector<int64_t>& shape) -> const uint8_t* {
    auto it = by_key.find(key);
    if (it == by_key.end()) throw EngineError("checkpoint_tensor_missing", "checkpoint tensor " + key + " is missing");
    const TensorRef& t = *it->second;
    if (t.shape != shape) {
      throw EngineError("checkpoint_tensor_shape", "checkpoint tensor " + t.name + " has shape " + ShapeText(t.shape) +
                                                       ", the config implies " + ShapeText(shape));
    }
    uint64_t count = 1;
    for (int64_t d : shape) count *= static_cast<uint64_t>(d);
    if (t.file < 0 || t.file >= static_cast<int>(files_.size())) {
      throw EngineError("checkpoint_file_invalid", "checkpoint tensor " + t.name + " names file " + std::to_string(t.file));
    }
    const MappedFile& f = *files_[t.file];
    if (t.bytes != count * DTypeBytes(t.dtype) || t.offset > f.size() || t.bytes > f.size() - t.offset) {
      throw EngineError("checkpoint_file_invalid", "checkpoint tensor " + t.name + " lies outside " + f.path() +
                                                       " or its byte count does not match its shape");
    }
    return f.data() + t.offset;
  };
  auto dtype_of = [&](const std::string& key) { return by_key.at(key)->dtype; };
  auto matrix = [&](const std::string& key, int64_t rows, int64_t cols) {
    Matrix m;
    m.data = find(key, {rows, cols});
    m.dtype = dtype_of(key);
    m.rows = rows;
    m.cols = cols;
    return m;
  };
  auto vec = [&](const std::string& key, int64_t n) {
    Matrix m;
    m.data = find(key, {n});
    m.dtype = dtype_of(key);
    m.rows = 1;
    m.cols = n;
    std::vector<float> out(static_cast<size_t>(n));
    RowToF32(m, 0, out.data());
    return out;
  };

  const int64_t H = c.hidden, hd = c.head_dim;
  if (c.embed_tensors.empty()) throw EngineError("checkpoint_config_invalid", "the load spec names no embedding table");
  for (const auto& name : c.embed_tensors) embeds_.push_back(matrix(name, c.vocab, H));
  if (!c.head_tensors.empty()) {
    for (const auto& name : c.head_tensors) heads_.push_back(matrix(name, c.vocab, H));
  } else {
    heads_.push_back(c.tie_embeddings ? embeds_[0] : matrix("lm_head.weight", c.vocab, H));
  }
  final_norm_ = vec("model.norm.weight", H);
  layers_.resize(static_cast<size_t>(c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& L = layers_[l];
    const std::string p = "model.layers." + std::to_string(l) + ".";
    L.in_norm = vec(p + "input_layernorm.weight", H);
    L.post_norm = vec(p + "post_attention_layernorm.weight", H);
    L.q = matrix(p + "self_attn.q_proj.weight", c.heads * hd, H);
    L.k = matrix(p + "self_attn.k_proj.weight", c.kv_heads * hd, H);
    L.v = matrix(p + "self_attn.v_proj.weight", c.kv_heads * hd, H);
    L.o = matrix(p + "self_attn.o_proj.weight", H, c.heads * hd);
    L.q_norm = vec(p + "self_attn.q_norm.weight", hd);
    L.k_norm = vec(p + "self_attn.k_norm.weight", hd);
    L.sparse = c.sparse[l];
    if (L.sparse) {
      const int64_t E = c.experts, I = c.moe_intermediate;
      L.router = matrix(p + "mlp.gate.weight", E, H);
      const std::string fused = p + "mlp.experts.gate_up_proj";
      if (by_key.count(fused)) {
        const uint8_t* gu = find(fused, {E, 2 * I, H});
        const uint8_t* dn = find(p + "mlp.experts.down_proj", {E, H, I});
        const DType dg = dtype_of(fused), dd = dtype_of(p + "mlp.experts.down_proj");
        for (int64_t e = 0; e < E; ++e) {
          const size_t bg = DTypeBytes(dg), bd = DTypeBytes(dd);
          L.gate.push_back(Matrix{gu + static_cast<size_t>(e * 2 * I * H) * bg, dg, I, H});
          L.up.push_back(Matrix{gu + static_cast<size_t>((e * 2 * I + I) * H) * bg, dg, I, H});
          L.down.push_back(Matrix{dn + static_cast<size_t>(e * H * I) * bd, dd, H, I});
        }
      } else {
        for (int64_t e = 0; e < E; ++e) {
          const std::string q = p + "mlp.experts." + std::to_string(e) + ".";
          L.gate.push_back(matrix(q + "gate_proj.weight", I, H));
          L.up.push_back(matrix(q + "up_proj.weight", I, H));
          L.down.push_back(matrix(q + "down_proj.weight", H, I));
        }
      }
      if (c.shared_intermediate > 0) {
        const int64_t S = c.shared_intermediate;
        L.shared_gate = matrix(p + "mlp.shared_expert.gate_proj.weight", S, H);
        L.shared_up = matrix(p + "mlp.shared_expert.up_proj.weight", S, H);
        L.shared_down = matrix(p + "mlp.shared_expert.down_proj.weight", H, S);
        L.shared_router = matrix(p + "mlp.shared_expert_gate.weight", 1, H);
      }
    } else {
      const int64_t I = c.intermediate;
      L.gate.push_back(matrix(p + "mlp.gate_proj.weight", I, H));
      L.up.push_back(matrix(p + "mlp.up_proj.weight", I, H));
      L.down.push_back(matrix(p + "mlp.down_proj.weight", H, I));
    }
  }

  for (const auto& name : c.projections) {
    if (c.proj_in <= 0 || c.intermediate <= 0) throw EngineError("checkpoint_config_invalid", "a projection needs proj_in and intermediate sizes");
    Projection pr;
    pr.fc1 = matrix(name + ".linear_fc1.weight", c.intermediate, c.proj_in);
    pr.b1 = vec(name + ".linear_fc1.bias", c.intermediate);
    pr.fc2 = matrix(name + ".linear_fc2.weight", H, c.intermediate);
    pr.b2 = vec(name + ".linear_fc2.bias", H);
    projs_.push_back(std::move(pr));
  }

  // Rotary: inv_freq[i] = 1 / theta^(2i / head_dim) in f32 as the reference computes it; frequency i
  // takes the h row for i = 1, 4, 7, ... < 3 * section[1], the w row for i = 2, 5, ... < 3 * section[2],
  // else the t row (apply_interleaved_mrope / recomposition_frequencies).
  const int64_t half = hd / 2;
  inv_freq_.resize(static_cast<size_t>(half));
  freq_row_.resize(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const float e = static_cast<float>(2 * i) / static_cast<float>(hd);
    const float p = static_cast<float>(std::pow(static_cast<double>(static_cast<float>(c.theta)), static_cast<double>(e)));
    inv_freq_[i] = 1.0f / p;
    int row = 0;
    if (i % 3 == 1 && i < 3 * c.mrope[1]) row = 1;
    if (i % 3 == 2 && i < 3 * c.mrope[2]) row = 2;
    freq_row_[i] = row;
  }

  int mode = c.weights;
  if (const char* env = std::getenv("OMNI_ENGINE_WEIGHTS")) {
    const std::string v(env);
    if (v == "map") mode = ThinkerConfig::kWeightsMap;
    if (v == "copy") mode = ThinkerConfig::kWeightsCopy;
    if (v == "auto") mode = ThinkerConfig::kWeightsAuto;
  }
  if (mode != ThinkerConfig::kWeightsMap) CopyWeights(mode == ThinkerConfig::kWeightsCopy);
}

void ThinkerModel::CopyWeights(bool always) {
  // Every matrix the forward pass streams (not the embedding tables, read one row per token): their
  // byte ranges in the mappings, merged where they overlap or touch (fused expert tensors).
  std::vector<Matrix*> mats;
  for (Layer& L : layers_) {
    for (Matrix* m : {&L.q, &L.k, &L.v, &L.o, &L.router, &L.shared_gate, &L.shared_up, &L.shared_down, &L.shared_router})
      mats.push_back(m);
    for (auto* list : {&L.gate, &L.up, &L.down})
      for (Matrix& m : *list) mats.push_back(&m);
  }
  for (Matrix& m : heads_) mats.push_back(&m);
  for (Projection& p : projs_) {
    mats.push_back(&p.fc1);
    mats.push_back(&p.fc2);
  }
  struct Range {
    const uint8_t *lo, *hi;
    uint64_t dst;
  };
  std::vector<Range> ranges;
  for (const Matrix* m : mats)
    if (m->data) ranges.push_back({m->data, m->data + static_cast<size_t>(m->rows * m->cols) * DTypeBytes(m->dtype), 0});
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
  std::vector<Range> merged;
  uint64_t total = 0;
  for (const Range& r : ranges) {
    if (!merged.empty() && r.lo <= merged.back().hi) {
      merged.back().hi = std::max(merged.back().hi, r.hi);
      continue;
    }
    if (!merged.empty()) total += static_cast<uint64_t>(merged.back().hi - merged.back().lo + 63) / 64 * 64;
    merged.push_back({r.lo, r.hi, total});
  }
  if (merged.empty()) return;
  total += static_cast<uint64_t>(merged.back().hi - merged.back().lo + 63) / 64 * 64;
  if (!always) {
    const uint64_t avail = AvailableMemoryBytes();
    if (avail == 0 || total > avail / 2) return;
  }
  try {
    weights_ = std::make_unique<AnonymousBuffer>(total);
  } catch (const EngineError&) {
    if (always) throw;
    return;  // auto: no memory for the copy, read in place
  }
  uint8_t* dst = weights_->data();
  // Copy in 4 MiB pieces on the pool (the first read of a cold checkpoint comes from disk).
  constexpr uint64_t kPiece = 4ull << 20;
  std::vector<std::pair<size_t, uint64_t>> pieces;  // (range, offset in it)
  for (size_t i = 0; i < merged.size(); ++i)
    for (uint64_t off = 0; off < static_cast<uint64_t>(merged[i].hi - merged[i].lo); off += kPiece) pieces.push_back({i, off});
  pool_.Run(static_cast<int64_t>(pieces.size()), [&](int64_t p) {
    const Range& r = merged[pieces[p].first];
    const uint64_t off = pieces[p].second, n = std::min<uint64_t>(kPiece, static_cast<uint64_t>(r.hi - r.lo) - off);
    std::memcpy(dst + r.dst + off, r.lo + off, n);
  });
  for (Matrix* m : mats) {
    if (!m->data) continue;
    auto it = std::upper_bound(merged.begin(), merged.end(), m->data, [](const uint8_t* p, const Range& r) { return p < r.lo; });
    --it;
    m->data = dst + it->dst + (m->data - it->lo);
  }
  // The mapped pages of the copied ranges are not read again: drop them from this process (they
  // stay in the page cache, which the kernel may evict).
  const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  for (const Range& r : merged) {
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(r.lo) + page - 1) / page * page, hi = reinterpret_cast<uintptr_t>(r.hi) / page * page;
    if (hi > lo) ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
  }
  huge_page_bytes_ = weights_->HugePageBytes();
}

void ThinkerModel::Embed(const int32_t* ids, int64_t n, float* out, int table) const {
  const Matrix& m = embeds_.at(static_cast<size_t>(table));
  for (int64_t i = 0; i < n; ++i) RowToF32(m, ids[i], out + i * cfg_.hidden);
}

// ---- forward ----------------------------------------------------------------------------------

void ThinkerModel::Parallel(int64_t tasks, double work, const std::function<void(int64_t)>& fn) {
  // About 10 us of single-thread compute: below that, waking a worker costs more than it saves.
  constexpr double kMinParallelWork = 256.0 * 1024.0;
  if (work < kMinParallelWork || pool_.size() == 1) {
    for (int64_t i = 0; i < tasks; ++i) fn(i);
  } else {
    pool_.Run(tasks, fn);
  }
}

void ThinkerModel::MatMuls(const std::vector<MatJob>& jobs) {
  // Tasks: (job, block of output columns, block of rows). Blocks never split the k dimension.
  const int threads = pool_.size();
  struct Split {
    int64_t ob, tb, nob, ntb, first;
  };
  std::vector<Split> splits;
  int64_t total = 0;
  double work = 0;
  for (const auto& j : jobs) {
    work += static_cast<double>(j.T) * static_cast<double>(j.W->rows) * static_cast<double>(j.W->cols);
    const int64_t O = j.W->rows;
    int64_t tb = j.T >= 4 ? 64 : j.T;
    int64_t ob;
    if (j.T >= 4) {
      ob = 48;
    } else {
      // Decode: enough column blocks to keep every thread busy, each at least 32 columns.
      ob = std::max<int64_t>(32, (O + threads * 4 - 1) / (threads * 4));
      ob = (ob + 7) / 8 * 8;
    }
    Split s{ob, tb, (O + ob - 1) / ob, (j.T + tb - 1) / tb, total};
    total += s.nob * s.ntb;
    splits.push_back(s);
  }
  Parallel(total, work, [&](int64_t task) {
    size_t j = 0;
    while (j + 1 < splits.size() && task >= splits[j + 1].first) ++j;
    const Split& s = splits[j];
    const MatJob& job = jobs[j];
    const int64_t local = task - s.first;
    const int64_t bo = local % s.nob, bt = local / s.nob;
    const int64_t o0 = bo * s.ob, o1 = std::min(job.W->rows, o0 + s.ob);
    const int64_t t0 = bt * s.tb, t1 = std::min(job.T, t0 + s.tb);
    MatMulRows(job.X + t0 * job.ldx, t1 - t0, job.ldx, *job.W, o0, o1, job.Y + t0 * job.ldy + o0, job.ldy);
  });
}

void ThinkerModel::Attention(ForwardInput& in, const Layer& L, int64_t layer, float* q, float* k, float* v, float* out) {
  const ThinkerConfig& c = cfg_;
  const int64_t T = static_cast<int64_t>(in.rows.size()), hd = c.head_dim, half = hd / 2;
  const int64_t QD = c.heads * hd, KVD = c.kv_heads * hd, group = c.heads / c.kv_heads;
  // q/k RMSNorm per head, rotary, and K/V into each row's cache slot.
  Parallel(T, static_cast<double>(T) * (QD + KVD) * 8, [&](int64_t t) {
    const StepRow& r = in.rows[t];
    float cs[2][512];
    std::vector<float> big;
    float* cosv = cs[0];
    float* sinv = cs[1];
    if (half > 512) {
      big.resize(static_cast<size_t>(2 * half));
      cosv = big.data();
      sinv = big.data() + half;
    }
    for (int64_t i = 0; i < half; ++i) {
      const float f = inv_freq_[i] * r.pos[freq_row_[i]];
      cosv[i] = static_cast<float>(std::cos(static_cast<double>(f)));
      sinv[i] = static_cast<float>(std::sin(static_cast<double>(f)));
    }
    auto rope = [&](float* x) {
      for (int64_t i = 0; i < half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a * cosv[i] - b * sinv[i];
        x[i + half] = b * cosv[i] + a * sinv[i];
      }
    };
    for (int64_t h = 0; h < c.heads; ++h) {
      float* x = q + t * QD + h * hd;
      RmsNorm(x, L.q_norm.data(), hd, c.eps, x);
      rope(x);
    }
    for (int64_t h = 0; h < c.kv_heads; ++h) {
      float* x = k + t * KVD + h * hd;
      RmsNorm(x, L.k_norm.data(), hd, c.eps, x);
      rope(x);
    }
    std::memcpy(r.cache->K(layer, r.index), k + t * KVD, static_cast<size_t>(KVD) * 4);
    std::memcpy(r.cache->V(layer, r.index), v + t * KVD, static_cast<size_t>(KVD) * 4);
  });
  // Causal attention of each row over its session's slots 0..index, per (row, KV head): the `group`
  // query heads sharing a KV head are scored together against each cached key (DotRows: each score
  // is the same dot product as Dot) and summed over the values in one pass (WeightedRows: per head
  // the same products and sums in slot order as an Axpy per slot, with the sums held in registers),
  // so each cached K/V row is read once per group, not once per head.
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hd)));
  double work = 0;
  for (const StepRow& r : in.rows) work += static_cast<double>(r.index + 1) * 2.0 * static_cast<double>(QD);
  // Few rows on many threads: split each group into `split` tasks of `heads_per` query heads.
  int64_t split = 1;
  while (T * c.kv_heads * split < pool_.size() && group % (split * 2) == 0) split *= 2;
  const int64_t heads_per = group / split;
  Parallel(T * c.kv_heads * split, work, [&](int64_t task) {
    const int64_t t = task / (c.kv_heads * split), g = task / split % c.kv_heads;
    const int64_t h0 = g * group + task % split * heads_per;  // first query head of the task
    const StepRow& r = in.rows[t];
    const int64_t n = r.index + 1;
    thread_local std::vector<float> scores;
    if (static_cast<int64_t>(scores.size()) < heads_per * n) scores.resize(static_cast<size_t>(heads_per * n));
    const float* qg = q + t * QD + h0 * hd;
    // Keys in blocks of slots, so that a block of K rows stays in L1 while every head scores it.
    constexpr int64_t kBlock = 48;
    for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
      const int64_t j1 = std::min(n, j0 + kBlock);
      DotRows(qg, heads_per, hd, r.cache->K(layer, j0) + g * hd, j1 - j0, KVD, hd, scores.data() + j0, n);
    }
    for (int64_t h = 0; h < heads_per; ++h) {
      float* s = scores.data() + h * n;
      for (int64_t j = 0; j < n; ++j) s[j] *= scale;
      Softmax(s, n);
    }
    WeightedRows(scores.data(), heads_per, n, r.cache->V(layer, 0) + g * hd, n, KVD, hd, out + t * QD + h0 * hd, hd);
  });
}

void ThinkerModel::Mlp(const Layer& L, const float* xn, int64_t T, float* out) {
  const ThinkerConfig& c = cfg_;
  const int64_t H = c.hidden;
  if (!L.sparse) {
    const int64_t I = c.intermediate;
    std::vector<float> g(static_cast<size_t>(T * I)), u(static_cast<size_t>(T * I));
    MatMuls({{xn, H, &L.gate[0], g.data(), I, T}, {xn, H, &L.up[0], u.data(), I, T}});
    SiluMul(g.data(), u.data(), T * I);
    MatMuls({{g.data(), I, &L.down[0], out, H, T}});
    return;
  }
  const int64_t E = c.experts, K = c.top_k, I = c.moe_intermediate;
  // Router: softmax over experts, top-k (ties to the lower index), optional renormalisation.
  std::vector<float> logits(static_cast<size_t>(T * E));
  MatMuls({{xn, H, &L.router, logits.data(), E, T}});
  std::vector<int32_t> sel(static_cast<size_t>(T * K));
  std::vector<float> wts(static_cast<size_t>(T * K));
  std::vector<int64_t> count(static_cast<size_t>(E), 0);
  for (int64_t t = 0; t < T; ++t) {
    float* p = logits.data() + t * E;
    Softmax(p, E);
    float sum = 0.0f;
    for (int64_t j = 0; j < K; ++j) {
      int64_t best = -1;
      for (int64_t e = 0; e < E; ++e) {
        bool taken = false;
        for (int64_t i = 0; i < j; ++i) taken |= sel[t * K + i] == e;
        if (!taken && (best < 0 || p[e] > p[best])) best = e;
      }
      sel[t * K + j] = static_cast<int32_t>(best);
      wts[t * K + j] = p[best];
      sum += p[best];
      ++count[best];
    }
    if (c.norm_topk)
      for (int64_t j = 0; j < K; ++j) wts[t * K + j] /= sum;
  }
  // Group the (row, slot) pairs by expert: rows of one expert are contiguous.
  std::vector<int64_t> start(static_cast<size_t>(E + 1), 0);
  for (int64_t e = 0; e < E; ++e) start[e + 1] = start[e] + count[e];
  std::vector<int64_t> fill(start.begin(), start.end() - 1), where(static_cast<size_t>(T * K));
  std::vector<float> gathered(static_cast<size_t>(T * K * H));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t j = 0; j < K; ++j) {
      const int64_t slot = fill[sel[t * K + j]]++;
      where[t * K + j] = slot;
      std::memcpy(gathered.data() + slot * H, xn + t * H, static_cast<size_t>(H) * 4);
    }
  std::vector<float> g(static_cast<size_t>(T * K * I)), u(static_cast<size_t>(T * K * I)), d(static_cast<size_t>(T * K * H));
  std::vector<MatJob> jobs;
  for (int64_t e = 0; e < E; ++e) {
    if (!count[e]) continue;
    const float* x = gathered.data() + start[e] * H;
    jobs.push_back({x, H, &L.gate[e], g.data() + start[e] * I, I, count[e]});
    jobs.push_back({x, H, &L.up[e], u.data() + start[e] * I, I, count[e]});
  }
  MatMuls(jobs);
  SiluMul(g.data(), u.data(), T * K * I);
  jobs.clear();
  for (int64_t e = 0; e < E; ++e) {
    if (!count[e]) continue;
    jobs.push_back({g.data() + start[e] * I, I, &L.down[e], d.data() + start[e] * H, H, count[e]});
  }
  MatMuls(jobs);
  // Combine in increasing expert order (the reference's index_add_ order).
  for (int64_t t = 0; t < T; ++t) {
    float* o = out + t * H;
    std::fill(o, o + H, 0.0f);
    int32_t order[64];
    std::vector<int32_t> big;
    int32_t* ord = order;
    if (K > 64) {
      big.resize(static_cast<size_t>(K));
      ord = big.data();
    }
    for (int64_t j = 0; j < K; ++j) ord[j] = static_cast<int32_t>(j);
    std::sort(ord, ord + K, [&](int32_t a, int32_t b) { return sel[t * K + a] < sel[t * K + b]; });
    for (int64_t i = 0; i < K; ++i) {
      const int64_t j = ord[i];
      const float w = wts[t * K + j];
      const float* src = d.data() + where[t * K + j] * H;
      for (int64_t h = 0; h < H; ++h) o[h] += src[h] * w;
    }
  }
  if (c.shared_intermediate > 0) {
    // Shared expert (Qwen3OmniMoeTalkerTextSparseMoeBlock): routed + sigmoid(gate(x)) * mlp(x).
    const int64_t S = c.shared_intermediate;
    std::vector<float> sg(static_cast<size_t>(T * S)), su(static_cast<size_t>(T * S)), gl(static_cast<size_t>(T));
    std::vector<float> sd(static_cast<size_t>(T * H));
    MatMuls({{xn, H, &L.shared_gate, sg.data(), S, T}, {xn, H, &L.shared_up, su.data(), S, T},
             {xn, H, &L.shared_router, gl.data(), 1, T}});
    SiluMul(sg.data(), su.data(), T * S);
    MatMuls({{sg.data(), S, &L.shared_down, sd.data(), H, T}});
    for (int64_t t = 0; t < T; ++t) {
      const float gate = 1.0f / (1.0f + std::exp(-gl[t]));
      float* o = out + t * H;
      const float* src = sd.data() + t * H;
      for (int64_t h = 0; h < H; ++h) o[h] += gate * src[h];
    }
  }
}

void ThinkerModel::Project(int which, const float* x, int64_t n, float* out) {
  std::lock_guard<std::mutex> lock(compute_);
  const Projection& p = projs_.at(static_cast<size_t>(which));
  const int64_t I = cfg_.intermediate, H = cfg_.hidden;
  std::vector<float> mid(static_cast<size_t>(n * I));
  MatMuls({{x, cfg_.proj_in, &p.fc1, mid.data(), I, n}});
  for (int64_t t = 0; t < n; ++t) {
    float* m = mid.data() + t * I;
    for (int64_t i = 0; i < I; ++i) {
      const float v = m[i] + p.b1[i];
      m[i] = v / (1.0f + std::exp(-v));  // SiLU (the talker's hidden_act)
    }
  }
  MatMuls({{mid.data(), I, &p.fc2, out, H, n}});
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h) out[t * H + h] += p.b2[h];
}

void ThinkerModel::Forward(ForwardInput& in, float* logits) {
  std::lock_guard<std::mutex> lock(compute_);
  const ThinkerConfig& c = cfg_;
  const int64_t T = static_cast<int64_t>(in.rows.size()), H = c.hidden;
  const int64_t QD = c.heads * c.head_dim, KVD = c.kv_heads * c.head_dim;
  float* x = in.x.data();
  std::vector<float> xn(static_cast<size_t>(T * H)), q(static_cast<size_t>(T * QD)), k(static_cast<size_t>(T * KVD)),
      v(static_cast<size_t>(T * KVD)), att(static_cast<size_t>(T * QD)), tmp(static_cast<size_t>(T * H));
  auto norm_rows = [&](const std::vector<float>& w) {
    Parallel(T, static_cast<double>(T * H) * 4, [&](int64_t t) { RmsNorm(x + t * H, w.data(), H, c.eps, xn.data() + t * H); });
  };
  auto add_rows = [&]() {
    for (int64_t i = 0; i < T * H; ++i) x[i] += tmp[i];
  };
  auto capture = [&](int64_t after_layer) {
    if (!in.capture_out || in.capture_layer != after_layer + 1) return;
    for (size_t i = 0; i < in.capture_rows.size(); ++i)
      std::memcpy(in.capture_out + i * H, x + in.capture_rows[i] * H, static_cast<size_t>(H) * 4);
  };
  capture(-1);
  for (int64_t l = 0; l < c.layers; ++l) {
    const Layer& L = layers_[l];
    norm_rows(L.in_norm);
    MatMuls({{xn.data(), H, &L.q, q.data(), QD, T}, {xn.data(), H, &L.k, k.data(), KVD, T},
             {xn.data(), H, &L.v, v.data(), KVD, T}});
    Attention(in, L, l, q.data(), k.data(), v.data(), att.data());
    MatMuls({{att.data(), QD, &L.o, tmp.data(), H, T}});
    add_rows();
    norm_rows(L.post_norm);
    Mlp(L, xn.data(), T, tmp.data());
    add_rows();
    capture(l);
    if (l < static_cast<int64_t>(in.ds_layers.size())) {
      const std::vector<float>& add = in.ds_layers[l];
      for (size_t i = 0; i < in.ds_rows.size(); ++i) {
        float* dst = x + static_cast<int64_t>(in.ds_rows[i]) * H;
        const float* src = add.data() + i * H;
        for (int64_t h = 0; h < H; ++h) dst[h] += src[h];
      }
    }
  }
  const int64_t R = static_cast<int64_t>(in.logit_rows.size());
  if (R == 0) return;
  if (in.head < 0 || in.head >= static_cast<int>(heads_.size())) throw EngineError("thinker_input_invalid", "no such output head");
  std::vector<float> fin(static_cast<size_t>(R * H));
  for (int64_t i = 0; i < R; ++i) RmsNorm(x + in.logit_rows[i] * H, final_norm_.data(), H, c.eps, fin.data() + i * H);
  if (in.hidden_out) std::memcpy(in.hidden_out, fin.data(), fin.size() * 4);
  MatMuls({{fin.data(), H, &heads_[static_cast<size_t>(in.head)], logits, c.vocab, R}});
}

}  // namespace omni::engine
