// Bindings of the native thinker engine (native/src/engine/):
//   loadThinker(spec)               -> Promise<NativeThinker>: maps and checks the checkpoint on the libuv pool
//   thinker.newSession(maxLength)   -> NativeThinkerSession with an empty KV cache
//   thinker.decodeBatch(steps)      -> Promise<Float32Array[]>: one decode step for several sessions
//   thinker.embed(ids)              -> Float32Array (rows x hidden), on the calling thread
//   session.prefill(chunk) / decode(token, position) -> Promise<Float32Array> (logits of the last row)
//   session.truncate(length), session.release(), thinker.close()
//   loadTalker(spec) / loadCodePredictor(spec) -> the same decoder for the talker and the code
//   predictor (specs from src/runtime/talker.ts): sessions also take chunk.embeds (every row's input
//   embedding) and decode(embedRow, position[, head]); talker sessions resolve { logits, hidden }
//   (hidden = final-normed state, the predictor's first prefill row); predictor.generate(prefill)
//   runs the greedy residual-code loop; embed(ids[, table]) reads codec embedding tables.
// Compute runs in AsyncWorkers on the libuv pool, which use the model's own threads inside. A
// session runs one call at a time: a second call while one is in flight is rejected with
// session_busy and leaves the cache untouched.
#include <napi.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "buffer_pool.h"
#include "engine/thinker.h"
#include "modules.h"

namespace omni {
namespace {

using engine::DType;
using engine::EngineError;
using engine::ForwardInput;
using engine::KvCache;
using engine::StepRow;
using engine::TensorRef;
using engine::ThinkerConfig;
using engine::ThinkerModel;

constexpr const char* kInvalid = "thinker_input_invalid";

// The constructors of one model kind (thinker, talker, code predictor: the same decoder family).
struct Classes {
  Napi::FunctionReference thinker, session;
  bool with_hidden = false;  // prefill/decode resolve { logits, hidden } (the talker)
};

// Shared by a thinker object and its sessions; the model pointer is dropped by close() (work
// already queued holds its own reference and finishes).
struct Core {
  std::mutex mu;
  std::shared_ptr<ThinkerModel> model;
  bool with_hidden = false;
  std::shared_ptr<ThinkerModel> Get() {
    std::lock_guard<std::mutex> lock(mu);
    return model;
  }
};

struct SessionState {
  std::shared_ptr<Core> core;
  std::unique_ptr<KvCache> cache;
  std::atomic<bool> busy{false};
  bool released = false;  // touched on the JavaScript thread only
};

Napi::Error Coded(Napi::Env env, const char* code, const std::string& message) { return CodedError(env, code, message); }

[[noreturn]] void Fail(Napi::Env env, const char* code, const std::string& message) { throw Coded(env, code, message); }

// Runs body (which returns a promise); an exception becomes a rejected promise.
template <typename F>
Napi::Value AsyncGuard(Napi::Env env, F&& body) {
  try {
    return Guarded(env, body);
  } catch (const Napi::Error& e) {
    auto d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

double NumberField(Napi::Env env, const Napi::Object& o, const char* name, bool optional = false, double fallback = 0) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined() && optional) return fallback;
  if (!v.IsNumber()) Fail(env, kInvalid, std::string("spec.") + name + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t IntField(Napi::Env env, const Napi::Object& o, const char* name, int64_t min, bool optional = false,
                 int64_t fallback = 0) {
  const double d = NumberField(env, o, name, optional, static_cast<double>(fallback));
  if (!(d == std::floor(d)) || d < static_cast<double>(min) || d > 9.0e15) {
    Fail(env, kInvalid, std::string("spec.") + name + " must be an integer >= " + std::to_string(min));
  }
  return static_cast<int64_t>(d);
}

bool BoolField(Napi::Env env, const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsBoolean()) Fail(env, kInvalid, std::string("spec.") + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Napi::Array ArrayField(Napi::Env env, const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsArray()) Fail(env, kInvalid, std::string("spec.") + name + " must be an array");
  return v.As<Napi::Array>();
}

void ParseSpec(Napi::Env env, Napi::Value arg, ThinkerConfig& c, std::vector<std::string>& files,
               std::vector<TensorRef>& tensors) {
  if (!arg.IsObject()) Fail(env, kInvalid, "loadThinker(spec): spec must be an object from readThinkerCheckpoint()");
  Napi::Object s = arg.As<Napi::Object>();
  c.vocab = IntField(env, s, "vocabSize", 1);
  c.hidden = IntField(env, s, "hiddenSize", 1);
  c.layers = IntField(env, s, "numLayers", 1);
  c.heads = IntField(env, s, "numHeads", 1);
  c.kv_heads = IntField(env, s, "numKvHeads", 1);
  c.head_dim = IntField(env, s, "headDim", 2);
  c.intermediate = IntField(env, s, "intermediateSize", 0);
  c.moe_intermediate = IntField(env, s, "moeIntermediateSize", 0);
  c.experts = IntField(env, s, "numExperts", 0);
  c.top_k = IntField(env, s, "numExpertsPerTok", 0);
  c.norm_topk = BoolField(env, s, "normTopkProb");
  c.tie_embeddings = BoolField(env, s, "tieWordEmbeddings");
  c.eps = static_cast<float>(NumberField(env, s, "rmsNormEps"));
  c.theta = NumberField(env, s, "ropeTheta");
  if (!(c.eps > 0) || !(c.theta > 0)) Fail(env, kInvalid, "spec.rmsNormEps and spec.ropeTheta must be positive");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  c.threads = static_cast<int>(std::min<int64_t>(IntField(env, s, "threads", 1, true, cores), 256));
  Napi::Array sec = ArrayField(env, s, "mropeSection");
  if (sec.Length() != 3) Fail(env, kInvalid, "spec.mropeSection must hold 3 integers");
  for (uint32_t i = 0; i < 3; ++i) {
    Napi::Value v = sec.Get(i);
    if (!v.IsNumber() || v.As<Napi::Number>().Int32Value() < 0) Fail(env, kInvalid, "spec.mropeSection must hold 3 integers");
    c.mrope[i] = v.As<Napi::Number>().Int32Value();
  }
  c.shared_intermediate = IntField(env, s, "sharedExpertIntermediateSize", 0, true, 0);
  auto names = [&](const char* field, std::vector<std::string>& out) {
    Napi::Value v = s.Get(field);
    if (v.IsUndefined()) return;
    if (!v.IsArray()) Fail(env, kInvalid, std::string("spec.") + field + " must be an array of tensor keys");
    Napi::Array a = v.As<Napi::Array>();
    out.clear();
    for (uint32_t i = 0; i < a.Length(); ++i) {
      Napi::Value x = a.Get(i);
      if (!x.IsString()) Fail(env, kInvalid, std::string("spec.") + field + " must be an array of tensor keys");
      out.push_back(x.As<Napi::String>().Utf8Value());
    }
  };
  names("embedTensors", c.embed_tensors);
  names("headTensors", c.head_tensors);
  names("projectionTensors", c.projections);
  c.proj_in = IntField(env, s, "projectionInputSize", 0, true, 0);
  Napi::Array sparse = ArrayField(env, s, "sparseLayers");
  for (uint32_t i = 0; i < sparse.Length(); ++i) c.sparse.push_back(sparse.Get(i).ToBoolean().Value());
  Napi::Array f = ArrayField(env, s, "files");
  for (uint32_t i = 0; i < f.Length(); ++i) {
    Napi::Value v = f.Get(i);
    if (!v.IsString()) Fail(env, kInvalid, "spec.files must hold paths");
    files.push_back(v.As<Napi::String>().Utf8Value());
  }
  Napi::Array t = ArrayField(env, s, "tensors");
  for (uint32_t i = 0; i < t.Length(); ++i) {
    Napi::Value v = t.Get(i);
    if (!v.IsObject()) Fail(env, kInvalid, "spec.tensors must hold tensor entries");
    Napi::Object o = v.As<Napi::Object>();
    TensorRef r;
    Napi::Value key = o.Get("key"), name = o.Get("name"), dtype = o.Get("dtype");
    if (!key.IsString() || !dtype.IsString()) Fail(env, kInvalid, "spec.tensors[" + std::to_string(i) + "] needs key and dtype");
    r.key = key.As<Napi::String>().Utf8Value();
    r.name = name.IsString() ? name.As<Napi::String>().Utf8Value() : r.key;
    const std::string d = dtype.As<Napi::String>().Utf8Value();
    if (d == "F32") {
      r.dtype = DType::F32;
    } else if (d == "BF16") {
      r.dtype = DType::BF16;
    } else if (d == "F16") {
      r.dtype = DType::F16;
    } else {
      Fail(env, "checkpoint_tensor_dtype", "checkpoint tensor " + r.name + " has dtype " + d + "; the engine reads F32, BF16 or F16");
    }
    r.file = static_cast<int>(IntField(env, o, "file", 0));
    r.offset = static_cast<uint64_t>(IntField(env, o, "offset", 0));
    r.bytes = static_cast<uint64_t>(IntField(env, o, "bytes", 0));
    Napi::Array shape = ArrayField(env, o, "shape");
    for (uint32_t k = 0; k < shape.Length(); ++k) r.shape.push_back(shape.Get(k).As<Napi::Number>().Int64Value());
    tensors.push_back(std::move(r));
  }
}

// ---- workers -----------------------------------------------------------------------------------

// Runs one forward pass; resolves with the logits of each requested row (one Float32Array, or an
// array of them for a batch). Busy flags of its sessions are cleared before the promise settles.
class ForwardWorker : public Napi::AsyncWorker {
 public:
  struct Part {  // one session's rows in this pass
    std::shared_ptr<SessionState> session;
    int64_t first_row, rows;
  };

  ForwardWorker(Napi::Env env, std::shared_ptr<ThinkerModel> model, bool batch)
      : Napi::AsyncWorker(env, "omni.thinker"), deferred_(Napi::Promise::Deferred::New(env)), model_(std::move(model)), batch_(batch) {}
  ~ForwardWorker() override {
    Unbusy();
    if (logits_.data) ReleaseFloats(logits_);
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  std::vector<Part> parts;
  std::vector<int32_t> ids;          // one per row (empty: `embeds` holds every row)
  std::vector<float> embeds;         // rows x hidden input embeddings, when ids is empty
  bool with_hidden = false;          // resolve { logits, hidden }
  std::vector<int32_t> media_rows;   // rows whose embedding is replaced
  std::vector<float> media;          // media_rows.size() x hidden
  bool capture = false;              // resolve { logits, captured } (input.capture_rows' states)
  ForwardInput input;

  void Execute() override {
    try {
      const ThinkerConfig& c = model_->config();
      const int64_t T = static_cast<int64_t>(input.rows.size()), H = c.hidden;
      for (Part& p : parts) {
        const int64_t base = p.session->cache->length.load();
        p.session->cache->Reserve(base + p.rows);
        for (int64_t i = 0; i < p.rows; ++i) {
          StepRow& r = input.rows[p.first_row + i];
          r.cache = p.session->cache.get();
          r.index = base + i;
        }
      }
      if (ids.empty()) {
        input.x = std::move(embeds);
      } else {
        input.x.resize(static_cast<size_t>(T * H));
        model_->Embed(ids.data(), T, input.x.data());
      }
      for (size_t i = 0; i < media_rows.size(); ++i) {
        std::memcpy(input.x.data() + static_cast<int64_t>(media_rows[i]) * H, media.data() + i * H, static_cast<size_t>(H) * 4);
      }
      const size_t count = input.logit_rows.size() * static_cast<size_t>(c.vocab);
      logits_ = AcquireFloats(count);
      if (with_hidden) {
        hidden_.resize(input.logit_rows.size() * static_cast<size_t>(H));
        input.hidden_out = hidden_.data();
      }
      if (capture) {
        captured_.resize(input.capture_rows.size() * static_cast<size_t>(H));
        input.capture_out = captured_.data();
      }
      model_->Forward(input, logits_.data);
      for (Part& p : parts) p.session->cache->length += p.rows;
    } catch (const EngineError& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = "out_of_memory";
      message_ = "not enough memory for this step";
    } catch (const std::exception& e) {
      code_ = "internal_error";
      message_ = e.what();
    }
    if (code_) SetError(message_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    Unbusy();
    const size_t vocab = static_cast<size_t>(model_->config().vocab), n = input.logit_rows.size();
    const PooledFloats buf = logits_;
    logits_ = PooledFloats{nullptr, 0};
    Napi::ArrayBuffer ab = ToArrayBuffer(env, buf, n * vocab);
    if ((with_hidden || capture) && !batch_) {
      Napi::Object o = Napi::Object::New(env);
      o.Set("logits", Napi::Float32Array::New(env, vocab, ab, 0));
      auto copy = [&](const std::vector<float>& v) {
        auto a = Napi::Float32Array::New(env, v.size());
        if (!v.empty()) std::memcpy(a.Data(), v.data(), v.size() * 4);
        return a;
      };
      if (with_hidden) o.Set("hidden", copy(hidden_));
      if (capture) o.Set("captured", copy(captured_));
      deferred_.Resolve(o);
      return;
    }
    if (!batch_) {
      deferred_.Resolve(Napi::Float32Array::New(env, vocab, ab, 0));
      return;
    }
    Napi::Array out = Napi::Array::New(env, n);
    for (size_t i = 0; i < n; ++i) out.Set(static_cast<uint32_t>(i), Napi::Float32Array::New(env, vocab, ab, i * vocab * 4));
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error&) override {
    Unbusy();
    deferred_.Reject(Coded(Env(), code_, message_).Value());
  }

 private:
  void Unbusy() {
    for (Part& p : parts) p.session->busy = false;
    parts.clear();
  }

  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ThinkerModel> model_;
  bool batch_;
  PooledFloats logits_{nullptr, 0};
  std::vector<float> hidden_, captured_;
  const char* code_ = nullptr;
  std::string message_;
};

class LoadWorker : public Napi::AsyncWorker {
 public:
  LoadWorker(Napi::Env env, Classes* classes)
      : Napi::AsyncWorker(env, "omni.loadThinker"), deferred_(Napi::Promise::Deferred::New(env)), classes_(classes) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  ThinkerConfig config;
  std::vector<std::string> files;
  std::vector<TensorRef> tensors;

  void Execute() override {
    try {
      model_ = std::make_shared<ThinkerModel>(config, files, tensors);
    } catch (const EngineError& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = "out_of_memory";
      message_ = "not enough memory to load the thinker";
    } catch (const std::exception& e) {
      code_ = "internal_error";
      message_ = e.what();
    }
    if (code_) SetError(message_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    auto core = std::make_shared<Core>();
    core->model = std::move(model_);
    core->with_hidden = classes_->with_hidden;
    auto* holder = new std::shared_ptr<Core>(core);
    Napi::Object obj;
    try {
      obj = classes_->thinker.New({Napi::External<std::shared_ptr<Core>>::New(env, holder), Napi::External<Classes>::New(env, classes_)});
    } catch (const Napi::Error& e) {
      delete holder;
      deferred_.Reject(e.Value());
      return;
    }
    delete holder;
    deferred_.Resolve(obj);
  }
  void OnError(const Napi::Error&) override { deferred_.Reject(Coded(Env(), code_, message_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Classes* classes_;
  std::shared_ptr<ThinkerModel> model_;
  const char* code_ = nullptr;
  std::string message_;
};

// Code predictor generation (all steps on the libuv pool): resolves { codes, logits }.
class PredictWorker : public Napi::AsyncWorker {
 public:
  PredictWorker(Napi::Env env, std::shared_ptr<ThinkerModel> model)
      : Napi::AsyncWorker(env, "omni.codePredictor"), deferred_(Napi::Promise::Deferred::New(env)), model_(std::move(model)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  std::vector<float> prefill;

  void Execute() override {
    try {
      const ThinkerConfig& c = model_->config();
      const int64_t H = c.hidden, V = c.vocab, G = model_->heads(), n = static_cast<int64_t>(prefill.size()) / H;
      if (G - 1 > model_->embed_tables()) throw EngineError("checkpoint_config_invalid", "fewer embedding tables than steps");
      KvCache cache(c.layers, c.kv_heads * c.head_dim, n + G);
      cache.Reserve(n + G);
      logits_.resize(static_cast<size_t>(G * V));
      codes_.resize(static_cast<size_t>(G));
      for (int64_t g = 0; g < G; ++g) {
        ForwardInput in;
        const int64_t rows = g == 0 ? n : 1, first = g == 0 ? 0 : n + g - 1;
        in.rows.resize(static_cast<size_t>(rows));
        for (int64_t i = 0; i < rows; ++i) {
          StepRow& r = in.rows[i];
          r.cache = &cache;
          r.index = first + i;
          r.pos[0] = r.pos[1] = r.pos[2] = static_cast<float>(first + i);
        }
        if (g == 0) {
          in.x = std::move(prefill);
        } else {
          in.x.resize(static_cast<size_t>(H));
          model_->Embed(&codes_[g - 1], 1, in.x.data(), static_cast<int>(g - 1));
        }
        in.logit_rows = {rows - 1};
        in.head = static_cast<int>(g);
        float* lg = logits_.data() + g * V;
        model_->Forward(in, lg);
        int32_t best = 0;
        for (int64_t v = 1; v < V; ++v)
          if (lg[v] > lg[best]) best = static_cast<int32_t>(v);
        codes_[g] = best;
      }
    } catch (const EngineError& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = "out_of_memory";
      message_ = "not enough memory for the code predictor";
    } catch (const std::exception& e) {
      code_ = "internal_error";
      message_ = e.what();
    }
    if (code_) SetError(message_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object o = Napi::Object::New(env);
    auto codes = Napi::Int32Array::New(env, codes_.size());
    std::memcpy(codes.Data(), codes_.data(), codes_.size() * 4);
    auto logits = Napi::Float32Array::New(env, logits_.size());
    std::memcpy(logits.Data(), logits_.data(), logits_.size() * 4);
    o.Set("codes", codes);
    o.Set("logits", logits);
    deferred_.Resolve(o);
  }
  void OnError(const Napi::Error&) override { deferred_.Reject(Coded(Env(), code_, message_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ThinkerModel> model_;
  std::vector<float> logits_;
  std::vector<int32_t> codes_;
  const char* code_ = nullptr;
  std::string message_;
};

// Talker projection MLP over rows (text_projection / hidden_projection): resolves n x hidden.
class ProjectWorker : public Napi::AsyncWorker {
 public:
  ProjectWorker(Napi::Env env, std::shared_ptr<ThinkerModel> model, int which)
      : Napi::AsyncWorker(env, "omni.talkerProject"), deferred_(Napi::Promise::Deferred::New(env)), model_(std::move(model)), which_(which) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

  std::vector<float> rows;

  void Execute() override {
    try {
      const int64_t n = static_cast<int64_t>(rows.size()) / model_->config().proj_in;
      out_.resize(static_cast<size_t>(n * model_->config().hidden));
      if (n > 0) model_->Project(which_, rows.data(), n, out_.data());
    } catch (const std::bad_alloc&) {
      SetError("not enough memory for the projection");
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    auto a = Napi::Float32Array::New(Env(), out_.size());
    if (!out_.empty()) std::memcpy(a.Data(), out_.data(), out_.size() * 4);
    deferred_.Resolve(a);
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(Coded(Env(), "internal_error", e.Message()).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<ThinkerModel> model_;
  int which_;
  std::vector<float> out_;
};

// ---- argument helpers -----------------------------------------------------------------------------

template <typename T>
std::vector<T> CopyTyped(Napi::Env env, Napi::Value v, napi_typedarray_type type, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != type) Fail(env, kInvalid, std::string(what) + " has the wrong type");
  Napi::TypedArray a = v.As<Napi::TypedArray>();
  const auto* base = static_cast<const uint8_t*>(a.ArrayBuffer().Data()) + a.ByteOffset();
  std::vector<T> out(a.ElementLength());
  if (!out.empty()) std::memcpy(out.data(), base, out.size() * sizeof(T));
  return out;
}

void CheckIds(Napi::Env env, const int32_t* ids, size_t n, int64_t vocab) {
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab) {
      Fail(env, "token_id_invalid", "token id " + std::to_string(ids[i]) + " at index " + std::to_string(i) +
                                        " is outside the vocabulary (0.." + std::to_string(vocab - 1) + ")");
    }
  }
}

void CheckFinite(Napi::Env env, const float* x, size_t n, const char* what) {
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) Fail(env, kInvalid, std::string(what) + "[" + std::to_string(i) + "] is not a finite number");
}

// An output head index (the code predictor's lm_head.{g}); undefined: 0.
int ReadHead(Napi::Env env, Napi::Value v, const ThinkerModel& model) {
  if (v.IsUndefined()) return 0;
  const double h = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
  if (h != std::floor(h) || h < 0 || h >= static_cast<double>(model.heads())) {
    Fail(env, kInvalid, "head must be an integer from 0 to " + std::to_string(model.heads() - 1));
  }
  return static_cast<int>(h);
}

void ReadPosition(Napi::Env env, Napi::Value v, float out[3]) {
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 3) Fail(env, kInvalid, "position must be [t, h, w]");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < 3; ++i) {
    Napi::Value x = a.Get(i);
    if (!x.IsNumber() || !std::isfinite(x.As<Napi::Number>().DoubleValue())) Fail(env, kInvalid, "position must hold 3 finite numbers");
    out[i] = x.As<Napi::Number>().FloatValue();
  }
}

// ---- session -------------------------------------------------------------------------------------

class SessionWrap : public Napi::ObjectWrap<SessionWrap> {
 public:
  static Napi::Function Define(Napi::Env env, const char* name = "NativeThinkerSession") {
    return DefineClass(env, name,
                       {InstanceMethod<&SessionWrap::Prefill>("prefill"), InstanceMethod<&SessionWrap::Decode>("decode"),
                        InstanceMethod<&SessionWrap::Truncate>("truncate"), InstanceMethod<&SessionWrap::Release>("release"),
                        InstanceAccessor<&SessionWrap::Length>("length"), InstanceAccessor<&SessionWrap::MaxLength>("maxLength")});
  }

  explicit SessionWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SessionWrap>(info) {
    if (info.Length() < 1 || !info[0].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NativeThinkerSession is created by NativeThinker.newSession()");
    }
    state_ = *info[0].As<Napi::External<std::shared_ptr<SessionState>>>().Data();
  }

  const std::shared_ptr<SessionState>& state() const { return state_; }

  // The model of a usable session (not released, thinker open), else throws.
  static std::shared_ptr<ThinkerModel> Usable(Napi::Env env, SessionState& s) {
    if (s.released) Fail(env, "session_released", "this thinker session was released");
    auto model = s.core->Get();
    if (!model) Fail(env, "thinker_closed", "the thinker of this session was closed");
    return model;
  }

 private:
  Napi::Value Prefill(const Napi::CallbackInfo& info) {
    return AsyncGuard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto model = Usable(env, *state_);
      const ThinkerConfig& c = model->config();
      if (info.Length() < 1 || !info[0].IsObject()) Fail(env, kInvalid, "prefill(chunk): chunk must be an object");
      Napi::Object chunk = info[0].As<Napi::Object>();
      auto worker = std::make_unique<ForwardWorker>(env, model, false);
      worker->with_hidden = state_->core->with_hidden;
      size_t n;
      Napi::Value embeds = chunk.Get("embeds");
      if (chunk.Get("ids").IsUndefined() && !embeds.IsUndefined()) {
        // Every row's input embedding given by the caller (talker, code predictor).
        worker->embeds = CopyTyped<float>(env, embeds, napi_float32_array, "chunk.embeds (Float32Array)");
        n = worker->embeds.size() / static_cast<size_t>(c.hidden);
        if (n == 0 || worker->embeds.size() != n * static_cast<size_t>(c.hidden)) {
          Fail(env, kInvalid, "chunk.embeds must hold rows x " + std::to_string(c.hidden) + " floats (at least one row)");
        }
        CheckFinite(env, worker->embeds.data(), worker->embeds.size(), "chunk.embeds");
        if (!chunk.Get("media").IsUndefined() || !chunk.Get("deepstack").IsUndefined()) {
          Fail(env, kInvalid, "chunk.media and chunk.deepstack go with chunk.ids, not chunk.embeds");
        }
      } else {
        worker->ids = CopyTyped<int32_t>(env, chunk.Get("ids"), napi_int32_array, "chunk.ids (Int32Array)");
        n = worker->ids.size();
        if (n == 0) Fail(env, kInvalid, "chunk.ids is empty");
        CheckIds(env, worker->ids.data(), n, c.vocab);
      }
      worker->input.head = ReadHead(env, chunk.Get("head"), *model);
      std::vector<float> pos = CopyTyped<float>(env, chunk.Get("positions"), napi_float32_array, "chunk.positions (Float32Array)");
      if (pos.size() != 3 * n) {
        Fail(env, kInvalid, "chunk.positions must hold 3 x " + std::to_string(n) + " floats (t row, h row, w row), got " + std::to_string(pos.size()));
      }
      CheckFinite(env, pos.data(), pos.size(), "chunk.positions");
      worker->input.rows.resize(n);
      for (size_t i = 0; i < n; ++i) {
        StepRow& r = worker->input.rows[i];
        r.cache = nullptr;
        r.index = 0;
        for (int k = 0; k < 3; ++k) r.pos[k] = pos[k * n + i];
      }
      Napi::Value media = chunk.Get("media");
      if (!media.IsUndefined() && !media.IsNull()) {
        if (!media.IsObject()) Fail(env, kInvalid, "chunk.media must be { indices, embeds }");
        Napi::Object m = media.As<Napi::Object>();
        worker->media_rows = CopyTyped<int32_t>(env, m.Get("indices"), napi_int32_array, "chunk.media.indices (Int32Array)");
        worker->media = CopyTyped<float>(env, m.Get("embeds"), napi_float32_array, "chunk.media.embeds (Float32Array)");
        if (worker->media.size() != worker->media_rows.size() * static_cast<size_t>(c.hidden)) {
          Fail(env, kInvalid, "chunk.media.embeds must hold indices.length x " + std::to_string(c.hidden) + " floats");
        }
        for (int32_t r : worker->media_rows)
          if (r < 0 || static_cast<size_t>(r) >= n) Fail(env, kInvalid, "chunk.media.indices holds " + std::to_string(r) + ", outside the chunk");
        CheckFinite(env, worker->media.data(), worker->media.size(), "chunk.media.embeds");
      }
      Napi::Value ds = chunk.Get("deepstack");
      if (!ds.IsUndefined() && !ds.IsNull()) {
        if (!ds.IsObject()) Fail(env, kInvalid, "chunk.deepstack must be { indices, layers }");
        Napi::Object d = ds.As<Napi::Object>();
        worker->input.ds_rows = CopyTyped<int32_t>(env, d.Get("indices"), napi_int32_array, "chunk.deepstack.indices (Int32Array)");
        for (int32_t r : worker->input.ds_rows)
          if (r < 0 || static_cast<size_t>(r) >= n) Fail(env, kInvalid, "chunk.deepstack.indices holds " + std::to_string(r) + ", outside the chunk");
        Napi::Value layers = d.Get("layers");
        if (!layers.IsArray()) Fail(env, kInvalid, "chunk.deepstack.layers must be an array of Float32Array");
        Napi::Array la = layers.As<Napi::Array>();
        if (la.Length() > static_cast<uint32_t>(c.layers)) Fail(env, kInvalid, "chunk.deepstack.layers has more entries than decoder layers");
        for (uint32_t i = 0; i < la.Length(); ++i) {
          auto rows = CopyTyped<float>(env, la.Get(i), napi_float32_array, "chunk.deepstack.layers[i] (Float32Array)");
          if (rows.size() != worker->input.ds_rows.size() * static_cast<size_t>(c.hidden)) {
            Fail(env, kInvalid, "chunk.deepstack.layers[" + std::to_string(i) + "] must hold indices.length x " + std::to_string(c.hidden) + " floats");
          }
          CheckFinite(env, rows.data(), rows.size(), "chunk.deepstack.layers[i]");
          worker->input.ds_layers.push_back(std::move(rows));
        }
      }
      Napi::Value cap = chunk.Get("capture");
      if (!cap.IsUndefined() && !cap.IsNull()) {
        // capture: { layer, indices }: hidden_states[layer] of these chunk rows (talker prompts).
        if (!cap.IsObject()) Fail(env, kInvalid, "chunk.capture must be { layer, indices }");
        Napi::Object co = cap.As<Napi::Object>();
        const double layer = co.Get("layer").IsNumber() ? co.Get("layer").As<Napi::Number>().DoubleValue() : -1;
        if (layer != std::floor(layer) || layer < 0 || layer > static_cast<double>(c.layers)) {
          Fail(env, kInvalid, "chunk.capture.layer must be an integer from 0 to " + std::to_string(c.layers));
        }
        worker->input.capture_layer = static_cast<int64_t>(layer);
        for (int32_t r : CopyTyped<int32_t>(env, co.Get("indices"), napi_int32_array, "chunk.capture.indices (Int32Array)")) {
          if (r < 0 || static_cast<size_t>(r) >= n) Fail(env, kInvalid, "chunk.capture.indices holds " + std::to_string(r) + ", outside the chunk");
          worker->input.capture_rows.push_back(r);
        }
        worker->capture = true;
      }
      worker->input.logit_rows = {static_cast<int64_t>(n - 1)};
      return Start(env, std::move(worker), static_cast<int64_t>(n));
    });
  }

  Napi::Value Decode(const Napi::CallbackInfo& info) {
    return AsyncGuard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto model = Usable(env, *state_);
      auto worker = std::make_unique<ForwardWorker>(env, model, false);
      worker->with_hidden = state_->core->with_hidden;
      if (info.Length() >= 2 && info[0].IsTypedArray()) {
        // decode(embed, position[, head]): one input embedding row.
        worker->embeds = CopyTyped<float>(env, info[0], napi_float32_array, "decode(embed, position): embed (Float32Array)");
        if (worker->embeds.size() != static_cast<size_t>(model->config().hidden)) {
          Fail(env, kInvalid, "decode(embed, position): embed must hold " + std::to_string(model->config().hidden) + " floats");
        }
        CheckFinite(env, worker->embeds.data(), worker->embeds.size(), "embed");
      } else {
        if (info.Length() < 2 || !info[0].IsNumber()) Fail(env, kInvalid, "decode(token, position): token must be a number");
        const double tok = info[0].As<Napi::Number>().DoubleValue();
        if (tok != std::floor(tok) || tok < 0 || tok >= static_cast<double>(model->config().vocab)) {
          Fail(env, "token_id_invalid", "token id " + info[0].ToString().Utf8Value() + " is outside the vocabulary");
        }
        worker->ids = {static_cast<int32_t>(tok)};
      }
      worker->input.head = ReadHead(env, info.Length() >= 3 ? info[2] : env.Undefined(), *model);
      worker->input.rows.resize(1);
      ReadPosition(env, info[1], worker->input.rows[0].pos);
      worker->input.logit_rows = {0};
      return Start(env, std::move(worker), 1);
    });
  }

  Napi::Value Start(Napi::Env env, std::unique_ptr<ForwardWorker> worker, int64_t rows) {
    SessionState& s = *state_;
    if (s.cache->length.load() + rows > s.cache->max_length()) {
      Fail(env, "thinker_context_full", "the session holds " + std::to_string(s.cache->length.load()) + " of at most " +
                                            std::to_string(s.cache->max_length()) + " positions; " + std::to_string(rows) + " more do not fit");
    }
    bool expected = false;
    if (!s.busy.compare_exchange_strong(expected, true)) {
      Fail(env, "session_busy", "this thinker session is already running a prefill or decode; await it first");
    }
    worker->parts.push_back({state_, 0, rows});
    Napi::Promise p = worker->Promise();
    worker.release()->Queue();
    return p;
  }

  Napi::Value Truncate(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Usable(env, *state_);
    if (state_->busy) Fail(env, "session_busy", "cannot truncate while a prefill or decode is running; await it first");
    const int64_t len = state_->cache->length.load();
    if (info.Length() < 1 || !info[0].IsNumber()) Fail(env, kInvalid, "truncate(length): length must be a number");
    const double n = info[0].As<Napi::Number>().DoubleValue();
    if (n != std::floor(n) || n < 0 || n > static_cast<double>(len)) {
      Fail(env, kInvalid, "truncate(length): length must be an integer from 0 to " + std::to_string(len));
    }
    state_->cache->length = static_cast<int64_t>(n);
    return env.Undefined();
  }

  Napi::Value Release(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (state_->released) return env.Undefined();
    if (state_->busy) Fail(env, "session_busy", "cannot release while a prefill or decode is running; await it first");
    state_->released = true;
    state_->cache->Free();
    return env.Undefined();
  }

  Napi::Value Length(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(state_->cache->length.load()));
  }
  Napi::Value MaxLength(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(state_->cache->max_length()));
  }

  std::shared_ptr<SessionState> state_;
};

// ---- thinker ---------------------------------------------------------------------------------------

class ThinkerWrap : public Napi::ObjectWrap<ThinkerWrap> {
 public:
  static Napi::Function Define(Napi::Env env, const char* name = "NativeThinker", bool predictor = false) {
    std::vector<PropertyDescriptor> props = {
        InstanceMethod<&ThinkerWrap::NewSession>("newSession"), InstanceMethod<&ThinkerWrap::DecodeBatch>("decodeBatch"),
        InstanceMethod<&ThinkerWrap::EmbedIds>("embed"), InstanceMethod<&ThinkerWrap::Close>("close"),
        InstanceAccessor<&ThinkerWrap::VocabSize>("vocabSize"), InstanceAccessor<&ThinkerWrap::HiddenSize>("hiddenSize"),
        InstanceAccessor<&ThinkerWrap::NumLayers>("numLayers"), InstanceAccessor<&ThinkerWrap::Threads>("threads")};
    if (predictor) {
      props.push_back(InstanceMethod<&ThinkerWrap::Generate>("generate"));
      props.push_back(InstanceAccessor<&ThinkerWrap::NumHeads>("numHeads"));
    }
    props.push_back(InstanceMethod<&ThinkerWrap::ProjectRows>("project"));
    return DefineClass(env, name, props);
  }

  explicit ThinkerWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ThinkerWrap>(info) {
    if (info.Length() < 2 || !info[0].IsExternal() || !info[1].IsExternal()) {
      throw Napi::TypeError::New(info.Env(), "NativeThinker is created by loadThinker()");
    }
    core_ = *info[0].As<Napi::External<std::shared_ptr<Core>>>().Data();
    classes_ = info[1].As<Napi::External<Classes>>().Data();
    cfg_ = core_->model->config();
  }

 private:
  std::shared_ptr<ThinkerModel> Open(Napi::Env env) {
    auto model = core_->Get();
    if (!model) Fail(env, "thinker_closed", "this thinker was closed");
    return model;
  }

  Napi::Value NewSession(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      Open(env);
      const double n = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : NAN;
      if (!(n >= 1 && n <= 2147483647.0 && n == std::floor(n))) Fail(env, kInvalid, "newSession(maxLength): maxLength must be an integer from 1 to 2^31-1");
      auto state = std::make_shared<SessionState>();
      state->core = core_;
      state->cache = std::make_unique<KvCache>(cfg_.layers, cfg_.kv_heads * cfg_.head_dim, static_cast<int64_t>(n));
      return classes_->session.New({Napi::External<std::shared_ptr<SessionState>>::New(env, &state)});
    });
  }

  Napi::Value DecodeBatch(const Napi::CallbackInfo& info) {
    return AsyncGuard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto model = Open(env);
      if (info.Length() < 1 || !info[0].IsArray()) Fail(env, kInvalid, "decodeBatch(steps): steps must be an array");
      Napi::Array steps = info[0].As<Napi::Array>();
      const uint32_t n = steps.Length();
      auto worker = std::make_unique<ForwardWorker>(env, model, true);
      if (n == 0) Fail(env, kInvalid, "decodeBatch(steps): steps is empty");
      std::vector<std::shared_ptr<SessionState>> sessions;
      std::unordered_set<SessionState*> seen;
      worker->input.rows.resize(n);
      for (uint32_t i = 0; i < n; ++i) {
        Napi::Value v = steps.Get(i);
        const std::string where = "decodeBatch: steps[" + std::to_string(i) + "]";
        if (!v.IsObject()) Fail(env, kInvalid, where + " must be { session, token, position }");
        Napi::Object step = v.As<Napi::Object>();
        Napi::Value sv = step.Get("session");
        if (!sv.IsObject() || !sv.As<Napi::Object>().InstanceOf(classes_->session.Value())) {
          Fail(env, kInvalid, where + ".session is not a NativeThinkerSession");
        }
        const auto& state = SessionWrap::Unwrap(sv.As<Napi::Object>())->state();
        if (state->core != core_) Fail(env, kInvalid, where + ".session belongs to another thinker");
        SessionWrap::Usable(env, *state);
        if (!seen.insert(state.get()).second) Fail(env, kInvalid, where + ".session appears twice in one batch");
        if (state->cache->length.load() + 1 > state->cache->max_length()) {
          Fail(env, "thinker_context_full", where + ": the session is full (" + std::to_string(state->cache->max_length()) + " positions)");
        }
        Napi::Value tv = step.Get("token");
        const double tok = tv.IsNumber() ? tv.As<Napi::Number>().DoubleValue() : -1;
        if (tok != std::floor(tok) || tok < 0 || tok >= static_cast<double>(cfg_.vocab)) {
          Fail(env, "token_id_invalid", where + ".token is not a token id of the vocabulary");
        }
        worker->ids.push_back(static_cast<int32_t>(tok));
        ReadPosition(env, step.Get("position"), worker->input.rows[i].pos);
        worker->input.logit_rows.push_back(i);
        sessions.push_back(state);
      }
      // Claim every session, or none.
      for (size_t i = 0; i < sessions.size(); ++i) {
        bool expected = false;
        if (!sessions[i]->busy.compare_exchange_strong(expected, true)) {
          for (size_t j = 0; j < i; ++j) sessions[j]->busy = false;
          Fail(env, "session_busy", "decodeBatch: steps[" + std::to_string(i) + "].session is already running a prefill or decode");
        }
      }
      for (uint32_t i = 0; i < n; ++i) worker->parts.push_back({sessions[i], static_cast<int64_t>(i), 1});
      Napi::Promise p = worker->Promise();
      worker.release()->Queue();
      return p;
    });
  }

  Napi::Value EmbedIds(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guarded(env, [&]() -> Napi::Value {
      auto model = Open(env);
      if (info.Length() < 1) Fail(env, kInvalid, "embed(ids): ids must be an Int32Array");
      auto ids = CopyTyped<int32_t>(env, info[0], napi_int32_array, "embed(ids): ids (Int32Array)");
      CheckIds(env, ids.data(), ids.size(), cfg_.vocab);
      int table = 0;
      if (info.Length() >= 2 && !info[1].IsUndefined()) {
        const double t = info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
        if (t != std::floor(t) || t < 0 || t >= static_cast<double>(model->embed_tables())) {
          Fail(env, kInvalid, "embed(ids, table): table must be an integer from 0 to " + std::to_string(model->embed_tables() - 1));
        }
        table = static_cast<int>(t);
      }
      auto out = Napi::Float32Array::New(env, ids.size() * static_cast<size_t>(cfg_.hidden));
      model->Embed(ids.data(), static_cast<int64_t>(ids.size()), out.Data(), table);
      return out;
    });
  }

  // Code predictor: generate(prefill) runs the prefill rows (positions 0..n-1) and then one greedy
  // step per further head: code g+1 = argmax(head g); step g feeds embed(code g, table g - 1).
  Napi::Value Generate(const Napi::CallbackInfo& info) {
    return AsyncGuard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto model = Open(env);
      if (info.Length() < 1) Fail(env, kInvalid, "generate(prefill): prefill must be a Float32Array");
      auto worker = std::make_unique<PredictWorker>(env, model);
      worker->prefill = CopyTyped<float>(env, info[0], napi_float32_array, "generate(prefill): prefill (Float32Array)");
      const size_t H = static_cast<size_t>(cfg_.hidden);
      if (worker->prefill.empty() || worker->prefill.size() % H != 0) {
        Fail(env, kInvalid, "generate(prefill): prefill must hold rows x " + std::to_string(H) + " floats (at least one row)");
      }
      CheckFinite(env, worker->prefill.data(), worker->prefill.size(), "prefill");
      Napi::Promise p = worker->Promise();
      worker.release()->Queue();
      return p;
    });
  }
  // project(rows, which): projection MLP `which` (spec.projectionTensors order) over rows of
  // projectionInputSize floats, on the libuv pool.
  Napi::Value ProjectRows(const Napi::CallbackInfo& info) {
    return AsyncGuard(info.Env(), [&]() -> Napi::Value {
      Napi::Env env = info.Env();
      auto model = Open(env);
      const double w = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
      if (w != std::floor(w) || w < 0 || w >= static_cast<double>(model->projections())) {
        Fail(env, kInvalid, "project(rows, which): which must be an integer from 0 to " + std::to_string(model->projections() - 1) +
                                " (this model has " + std::to_string(model->projections()) + " projections)");
      }
      auto worker = std::make_unique<ProjectWorker>(env, model, static_cast<int>(w));
      worker->rows = CopyTyped<float>(env, info.Length() >= 1 ? info[0] : env.Undefined(), napi_float32_array, "project(rows): rows (Float32Array)");
      const size_t in = static_cast<size_t>(cfg_.proj_in);
      if (worker->rows.size() % in != 0) Fail(env, kInvalid, "project(rows): rows must hold n x " + std::to_string(in) + " floats");
      CheckFinite(env, worker->rows.data(), worker->rows.size(), "rows");
      Napi::Promise p = worker->Promise();
      worker.release()->Queue();
      return p;
    });
  }

  Napi::Value NumHeads(const Napi::CallbackInfo& info) {
    auto model = core_->Get();
    return Napi::Number::New(info.Env(), model ? static_cast<double>(model->heads()) : 0.0);
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(core_->mu);
    core_->model.reset();  // unmapped once the work in flight finishes
    return info.Env().Undefined();
  }

  Napi::Value VocabSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(cfg_.vocab)); }
  Napi::Value HiddenSize(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(cfg_.hidden)); }
  Napi::Value NumLayers(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(cfg_.layers)); }
  Napi::Value Threads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cfg_.threads); }

  std::shared_ptr<Core> core_;
  Classes* classes_ = nullptr;
  ThinkerConfig cfg_;
};

Napi::Value LoadThinker(const Napi::CallbackInfo& info) {
  return AsyncGuard(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    auto* classes = static_cast<Classes*>(info.Data());
    auto worker = std::make_unique<LoadWorker>(env, classes);
    ParseSpec(env, info.Length() >= 1 ? info[0] : env.Undefined(), worker->config, worker->files, worker->tensors);
    Napi::Promise p = worker->Promise();
    worker.release()->Queue();
    return p;
  });
}

}  // namespace

void RegisterEngine(Napi::Env env, Napi::Object exports) {
  auto* classes = new Classes();
  classes->thinker = Napi::Persistent(ThinkerWrap::Define(env));
  classes->session = Napi::Persistent(SessionWrap::Define(env));
  env.AddCleanupHook([classes] { delete classes; });
  exports.Set("loadThinker", Napi::Function::New(env, LoadThinker, "loadThinker", classes));
  // The talker and the code predictor: the same decoder (spec from src/runtime/talker.ts).
  auto* talker = new Classes();
  talker->thinker = Napi::Persistent(ThinkerWrap::Define(env, "NativeTalker"));
  talker->session = Napi::Persistent(SessionWrap::Define(env, "NativeTalkerSession"));
  talker->with_hidden = true;
  env.AddCleanupHook([talker] { delete talker; });
  exports.Set("loadTalker", Napi::Function::New(env, LoadThinker, "loadTalker", talker));
  auto* predictor = new Classes();
  predictor->thinker = Napi::Persistent(ThinkerWrap::Define(env, "NativeCodePredictor", true));
  predictor->session = Napi::Persistent(SessionWrap::Define(env, "NativeCodePredictorSession"));
  env.AddCleanupHook([predictor] { delete predictor; });
  exports.Set("loadCodePredictor", Napi::Function::New(env, LoadThinker, "loadCodePredictor", predictor));
  exports.Set("thinkerKernelLevel", Napi::String::New(env, engine::KernelLevel()));
}

}  // namespace omni
