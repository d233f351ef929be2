// The thinker's MoE text decoder of Qwen3-Omni (transformers' Qwen3OmniMoeThinkerTextModel +
// lm_head) on CPU: GQA attention with per-head q/k RMSNorm and interleaved 3-D rotary, sparse MoE
// (softmax router, top-k, optional renormalisation, SwiGLU experts) or dense SwiGLU MLP per layer,
// final RMSNorm, logits. Weights stay in the mapped checkpoint in their stored dtype.
//
// One forward pass takes rows from any number of sessions (a prefill chunk is rows of one session;
// a batched decode step is one row per session). Each row writes its K/V at its cache index and
// attends to its own session's entries up to that index.
#pragma once
#include <atomic>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels.h"
#include "mapped_file.h"
#include "thread_pool.h"

namespace omni::engine {

// An error with a stable code for JavaScript (checkpoint_*, thinker_*, session_*).
class EngineError : public std::runtime_error {
 public:
  EngineError(const char* code, const std::string& message) : std::runtime_error(message), code_(code) {}
  const char* code() const { return code_; }

 private:
  const char* code_;
};

struct ThinkerConfig {
  int64_t vocab = 0, hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0;
  int64_t intermediate = 0, moe_intermediate = 0, experts = 0, top_k = 0;
  bool norm_topk = true, tie_embeddings = false;
  float eps = 1e-6f;
  double theta = 1e6;
  int mrope[3] = {0, 0, 0};
  std::vector<bool> sparse;
  int threads = 1;
  // Where the decoder's matrices are read from: kWeightsMap = in place in the mapped checkpoint
  // (4 KiB file pages, shared with the page cache, nothing copied); kWeightsCopy = copied at load
  // into anonymous memory with transparent huge pages (see AnonymousBuffer; costs their size in
  // RSS on top of the page cache's evictable copy; load reads them all at once); kWeightsAuto = copy
  // when they take at most half of MemAvailable, else map. The environment variable
  // OMNI_ENGINE_WEIGHTS=map|copy|auto overrides it.
  enum { kWeightsAuto = -1, kWeightsMap = 0, kWeightsCopy = 1 };
  int weights = kWeightsAuto;
  // Generalisations for the talker and the code predictor (the defaults are the thinker's):
  // > 0: sparse layers add a shared SwiGLU expert of this width gated by sigmoid(shared_expert_gate(x)).
  int64_t shared_intermediate = 0;
  // Input embedding tables (vocab x hidden each; Embed(..., table)) and output heads (Forward's
  // `head`). Empty heads: lm_head.weight, or the first embedding when tie_embeddings.
  std::vector<std::string> embed_tensors{"model.embed_tokens.weight"};
  std::vector<std::string> head_tensors;
  // Talker only: 2-layer MLPs (prefix.linear_fc1 proj_in -> intermediate, SiLU, prefix.linear_fc2 ->
  // hidden, both with bias) that map thinker states into the talker (text_projection, hidden_projection).
  std::vector<std::string> projections;
  int64_t proj_in = 0;
};

struct TensorRef {
  std::string key, name;
  int file = 0;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t offset = 0, bytes = 0;
};

// Per-session K/V: per layer, positions x (kv_heads * head_dim) floats, contiguous; grows in
// chunks up to the session's max length.
class KvCache {
 public:
  KvCache(int64_t layers, int64_t kv_dim, int64_t max_length);
  void Reserve(int64_t positions);  // throws EngineError thinker_context_full past max_length
  float* K(int64_t layer, int64_t pos) { return k_[layer].data() + pos * kv_dim_; }
  float* V(int64_t layer, int64_t pos) { return v_[layer].data() + pos * kv_dim_; }
  int64_t max_length() const { return max_length_; }
  int64_t capacity() const { return capacity_; }
  void Free();

  std::atomic<int64_t> length{0};  // positions held

 private:
  int64_t kv_dim_, max_length_, capacity_ = 0;
  std::vector<std::vector<float>> k_, v_;
};

struct StepRow {
  KvCache* cache;
  int64_t index;  // cache slot this row writes and attends up to (inclusive)
  float pos[3];   // rotary positions t, h, w
};

struct ForwardInput {
  std::vector<StepRow> rows;
  std::vector<float> x;  // rows x hidden: input embeddings
  // DeepStack: after decoder layer l (l < ds_layers.size()), x[ds_rows[i]] += ds_layers[l][i].
  std::vector<int32_t> ds_rows;
  std::vector<std::vector<float>> ds_layers;
  std::vector<int64_t> logit_rows;  // rows whose logits are produced, in this order
  int head = 0;                     // output head (index into head_tensors)
  float* hidden_out = nullptr;      // when set: logit_rows.size() x hidden final-normed states
  // When capture_out is set: the residual stream of capture_rows after decoder layer capture_layer - 1
  // (before its DeepStack addition; 0 = the input embeddings), i.e. transformers'
  // hidden_states[capture_layer], capture_rows.size() x hidden.
  int64_t capture_layer = 0;
  std::vector<int64_t> capture_rows;
  float* capture_out = nullptr;
};

class ThinkerModel {
 public:
  ThinkerModel(ThinkerConfig cfg, const std::vector<std::string>& files, const std::vector<TensorRef>& tensors);
  const ThinkerConfig& config() const { return cfg_; }

  // Token embeddings from embedding table `table` (ids and table must be in range).
  void Embed(const int32_t* ids, int64_t n, float* out, int table = 0) const;
  int64_t embed_tables() const { return static_cast<int64_t>(embeds_.size()); }
  int64_t heads() const { return static_cast<int64_t>(heads_.size()); }
  // Runs the decoder over the rows; logits: logit_rows.size() x vocab. Thread-safe (serialised).
  void Forward(ForwardInput& in, float* logits);
  // Projection MLP `which` (config().projections) over n rows of proj_in floats -> n x hidden.
  void Project(int which, const float* x, int64_t n, float* out);
  int64_t projections() const { return static_cast<int64_t>(projs_.size()); }
  // Bytes of matrices copied into anonymous memory at load (0: read in place from the mapping),
  // and how many of those bytes the kernel backs with huge pages (measured at load).
  uint64_t copied_weight_bytes() const { return weights_ ? weights_->size() : 0; }
  uint64_t huge_page_bytes() const { return huge_page_bytes_; }

 private:
  struct Layer {
    std::vector<float> in_norm, post_norm, q_norm, k_norm;
    Matrix q, k, v, o, router;
    bool sparse = false;
    std::vector<Matrix> gate, up, down;  // per expert, or one for a dense MLP
    Matrix shared_gate, shared_up, shared_down, shared_router;  // shared expert (shared_intermediate > 0)
  };
  struct MatJob {
    const float* X;
    int64_t ldx;
    const Matrix* W;
    float* Y;
    int64_t ldy;
    int64_t T;
  };
  void MatMuls(const std::vector<MatJob>& jobs);
  // pool_.Run, or a plain loop when the job is too small to pay for waking the pool's threads.
  void Parallel(int64_t tasks, double work, const std::function<void(int64_t)>& fn);
  void Attention(ForwardInput& in, const Layer& L, int64_t layer, float* q, float* k, float* v, float* out);
  void Mlp(const Layer& L, const float* xn, int64_t T, float* out);
  // Moves every matrix but the embeddings into weights_ (always, or when they fit: see ThinkerConfig::weights).
  void CopyWeights(bool always);

  struct Projection {
    Matrix fc1, fc2;
    std::vector<float> b1, b2;
  };

  ThinkerConfig cfg_;
  std::vector<std::unique_ptr<MappedFile>> files_;
  std::unique_ptr<AnonymousBuffer> weights_;
  uint64_t huge_page_bytes_ = 0;
  std::vector<Projection> projs_;
  std::vector<Matrix> embeds_, heads_;
  std::vector<float> final_norm_, inv_freq_;
  std::vector<int> freq_row_;  // rotary row (0 t, 1 h, 2 w) of each frequency
  std::vector<Layer> layers_;
  std::mutex compute_;
  ThreadPool pool_;
};

}  // namespace omni::engine
