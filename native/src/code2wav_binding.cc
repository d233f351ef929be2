// Binding of the code-to-wave decoder (engine/code2wav.h):
//   loadCode2Wav(spec) -> Promise<{ render(codes, frames) -> Promise<Float32Array>,
//                                   stream() -> { push(codes, frames) -> Promise<Float32Array>,
//                                                 flush() -> Promise<Float32Array> },
//                                   sampleCount(frames), samplesPerFrame, numQuantizers,
//                                   codebookSize, threads, close() }>
// codes: Int32Array of frames x numQuantizers (frame-major). Loading and decoding run on the libuv
// pool (the decoder spreads its matrix work over its own threads); inputs are copied before
// queueing. A stream's pushes are applied in call order even if the caller does not await them
// (each takes a ticket; a worker waits for its turn). flush() resolves after the pushes before it
// with the samples still owed (none: every sample the pushed frames determine has been emitted)
// and ends the stream. close() drops the model; queued work finishes first, later calls reject
// with code2wav_closed. Errors carry `code` (checkpoint_*, code2wav_*, out_of_memory).
#include <napi.h>

#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/code2wav.h"
#include "engine/thinker.h"  // EngineError
#include "engine_spec.h"
#include "modules.h"

namespace omni {
namespace {

using engine::Code2Wav;
using engine::Code2WavConfig;
using engine::Code2WavStream;
using engine::EncoderTensor;
using engine::EngineError;

Napi::Error SpecError(Napi::Env env, const std::string& message) {
  return CodedError(env, "checkpoint_config_invalid", "code2wav load spec: " + message);
}

double NumberField(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsNumber()) throw SpecError(o.Env(), std::string(name) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t IntValue(Napi::Env env, double d, const std::string& name, int64_t min) {
  if (!(d >= static_cast<double>(min) && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw SpecError(env, name + " must be an integer >= " + std::to_string(min));
  }
  return static_cast<int64_t>(d);
}

int64_t IntField(const Napi::Object& o, const char* name, int64_t min = 1) { return IntValue(o.Env(), NumberField(o, name), name, min); }

std::vector<int64_t> IntList(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsArray()) throw SpecError(o.Env(), std::string(name) + " must be an array of positive integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value e = a.Get(i);
    if (!e.IsNumber()) throw SpecError(o.Env(), std::string(name) + " must be an array of positive integers");
    out.push_back(IntValue(o.Env(), e.As<Napi::Number>().DoubleValue(), name, 1));
  }
  return out;
}

struct Parsed {
  Code2WavConfig cfg;
  std::vector<std::string> files;
  std::vector<EncoderTensor> tensors;
};

Parsed ParseSpec(const Napi::Object& s) {
  Parsed p;
  Code2WavConfig& c = p.cfg;
  c.codebook_size = IntField(s, "codebookSize");
  c.num_quantizers = IntField(s, "numQuantizers");
  c.hidden = IntField(s, "hiddenSize");
  c.layers = IntField(s, "numLayers", 0);
  c.heads = IntField(s, "numHeads");
  c.kv_heads = IntField(s, "numKvHeads");
  c.head_dim = IntField(s, "headDim");
  c.intermediate = IntField(s, "intermediateSize");
  c.sliding_window = IntField(s, "slidingWindow");
  c.decoder_dim = IntField(s, "decoderDim");
  c.rope_theta = NumberField(s, "ropeTheta");
  c.rms_eps = static_cast<float>(NumberField(s, "rmsNormEps"));
  c.attention_bias = s.Get("attentionBias").ToBoolean().Value();
  c.upsampling_ratios = IntList(s, "upsamplingRatios");
  c.upsample_rates = IntList(s, "upsampleRates");
  Napi::Value th = s.Get("threads");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  c.threads = th.IsUndefined() || th.IsNull() ? cores : static_cast<int>(std::min<int64_t>(IntField(s, "threads"), 1024));

  engine_spec::FilesAndTensors ft = engine_spec::ReadFilesAndTensors(s, "code2wav");
  p.files = std::move(ft.files);
  p.tensors = std::move(ft.tensors);
  return p;
}

using engine_spec::CodedWorker;
using engine_spec::ToFloat32Array;


struct ModelState {
  std::shared_ptr<Code2Wav> model;
};
using ModelRef = std::shared_ptr<ModelState>;

// One stream: the decoder state plus the ticket order of its pushes.
struct StreamState {
  ModelRef owner;
  std::unique_ptr<Code2WavStream> stream;
  std::shared_ptr<Code2Wav> model;  // keeps the weights while queued work runs
  std::mutex mu;
  std::condition_variable turn;
  uint64_t issued = 0, done = 0;
  bool finished = false;
};
using StreamRef = std::shared_ptr<StreamState>;

template <typename R>
Napi::Function Method(Napi::Env env, const char* name, Napi::Function::Callback cb, const R& ref) {
  auto* data = new R(ref);
  Napi::Function fn = Napi::Function::New(env, cb, name, data);
  fn.AddFinalizer([](Napi::Env, R* d) { delete d; }, data);
  return fn;
}

std::shared_ptr<Code2Wav> Live(Napi::Env env, const ModelRef& state) {
  if (!state->model) throw CodedError(env, "code2wav_closed", "the code2wav decoder is closed");
  return state->model;
}

// Validates (codes, frames) at info[0], info[1] and copies the codes.
std::vector<int32_t> CodesArg(const Napi::CallbackInfo& info, const Code2Wav& model, int64_t* frames_out) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_int32_array) {
    throw CodedError(env, "code2wav_codes_invalid", "codes must be an Int32Array of frames x numQuantizers");
  }
  auto codes = info[0].As<Napi::Int32Array>();
  const double f = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
  if (!(f >= 0 && f <= 2147483647.0) || f != static_cast<double>(static_cast<int64_t>(f))) {
    throw CodedError(env, "code2wav_codes_invalid", "frames must be a non-negative integer");
  }
  const int64_t frames = static_cast<int64_t>(f), Q = model.config().num_quantizers, V = model.config().codebook_size;
  if (static_cast<int64_t>(codes.ElementLength()) != frames * Q) {
    throw CodedError(env, "code2wav_codes_invalid", "expected " + std::to_string(frames) + " x " + std::to_string(Q) + " = " +
                                                        std::to_string(frames * Q) + " codes, got " + std::to_string(codes.ElementLength()));
  }
  const int32_t* d = codes.Data();
  for (int64_t i = 0; i < frames * Q; ++i) {
    if (d[i] < 0 || d[i] >= V) {
      throw CodedError(env, "code2wav_codes_invalid", "code " + std::to_string(d[i]) + " at frame " + std::to_string(i / Q) +
                                                          ", codebook " + std::to_string(i % Q) + " is outside [0, " + std::to_string(V) + ")");
    }
  }
  *frames_out = frames;
  return std::vector<int32_t>(d, d + frames * Q);
}

class RenderWorker : public CodedWorker {
 public:
  RenderWorker(Napi::Env env, std::shared_ptr<Code2Wav> model, std::vector<int32_t> codes, int64_t frames)
      : CodedWorker(env, "omni.code2wavRender"), model_(std::move(model)), codes_(std::move(codes)), frames_(frames) {}

 protected:
  void Run() override { model_->Render(codes_.data(), frames_, out_); }
  void OnOK() override { deferred_.Resolve(ToFloat32Array(Env(), out_)); }

 private:
  std::shared_ptr<Code2Wav> model_;
  std::vector<int32_t> codes_;
  int64_t frames_;
  std::vector<float> out_;
};

Napi::Value Render(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto model = Live(env, *static_cast<ModelRef*>(info.Data()));
    int64_t frames = 0;
    std::vector<int32_t> codes = CodesArg(info, *model, &frames);
    auto* worker = new RenderWorker(env, std::move(model), std::move(codes), frames);
    worker->Queue();
    return worker->Promise();
  });
}

// A push (or, with flush = true, the end) of a stream, run in ticket order.
class StreamWorker : public CodedWorker {
 public:
  StreamWorker(Napi::Env env, StreamRef s, uint64_t ticket, std::vector<int32_t> codes, int64_t frames)
      : CodedWorker(env, "omni.code2wavPush"), s_(std::move(s)), ticket_(ticket), codes_(std::move(codes)), frames_(frames) {}

 protected:
  void Run() override {
    std::unique_lock<std::mutex> lock(s_->mu);
    s_->turn.wait(lock, [&] { return s_->done == ticket_; });
    lock.unlock();
    struct Next {
      StreamState* s;
      ~Next() {
        std::lock_guard<std::mutex> l(s->mu);
        ++s->done;
        s->turn.notify_all();
      }
    } next{s_.get()};
    if (frames_ > 0) s_->stream->Push(codes_.data(), frames_, out_);
  }
  void OnOK() override { deferred_.Resolve(ToFloat32Array(Env(), out_)); }

 private:
  StreamRef s_;
  uint64_t ticket_;
  std::vector<int32_t> codes_;
  int64_t frames_;
  std::vector<float> out_;
};

StreamRef LiveStream(const Napi::CallbackInfo& info) {
  StreamRef s = *static_cast<StreamRef*>(info.Data());
  Live(info.Env(), s->owner);
  if (s->finished) throw CodedError(info.Env(), "code2wav_stream_finished", "the stream was flushed; start a new one");
  return s;
}

Napi::Value StreamPush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    StreamRef s = LiveStream(info);
    int64_t frames = 0;
    std::vector<int32_t> codes = CodesArg(info, *s->model, &frames);
    auto* worker = new StreamWorker(env, s, s->issued++, std::move(codes), frames);
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value StreamFlush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    StreamRef s = LiveStream(info);
    s->finished = true;
    auto* worker = new StreamWorker(env, s, s->issued++, {}, 0);
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value NewStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    const ModelRef& state = *static_cast<ModelRef*>(info.Data());
    auto model = Live(env, state);
    auto s = std::make_shared<StreamState>();
    s->owner = state;
    s->model = model;
    s->stream = model->NewStream();
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("push", Method(env, "push", StreamPush, s));
    obj.Set("flush", Method(env, "flush", StreamFlush, s));
    return obj;
  });
}

Napi::Value SampleCount(const Napi::CallbackInfo& info) {
  auto model = Live(info.Env(), *static_cast<ModelRef*>(info.Data()));
  const double f = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(f >= 0 && f <= 2147483647.0)) throw CodedError(info.Env(), "code2wav_codes_invalid", "frames must be a non-negative integer");
  return Napi::Number::New(info.Env(), static_cast<double>(model->SampleCount(static_cast<int64_t>(f))));
}

Napi::Value Close(const Napi::CallbackInfo& info) {
  (*static_cast<ModelRef*>(info.Data()))->model.reset();
  return info.Env().Undefined();
}

class LoadWorker : public CodedWorker {
 public:
  LoadWorker(Napi::Env env, Parsed p) : CodedWorker(env, "omni.loadCode2Wav"), p_(std::move(p)) {}

 protected:
  void Run() override { model_ = std::make_shared<Code2Wav>(p_.cfg, p_.files, p_.tensors); }
  void OnOK() override {
    Napi::Env env = Env();
    auto state = std::make_shared<ModelState>();
    state->model = model_;
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("render", Method(env, "render", Render, state));
    obj.Set("stream", Method(env, "stream", NewStream, state));
    obj.Set("sampleCount", Method(env, "sampleCount", SampleCount, state));
    obj.Set("close", Method(env, "close", Close, state));
    obj.Set("samplesPerFrame", Napi::Number::New(env, static_cast<double>(model_->SamplesPerFrame())));
    obj.Set("numQuantizers", Napi::Number::New(env, static_cast<double>(p_.cfg.num_quantizers)));
    obj.Set("codebookSize", Napi::Number::New(env, static_cast<double>(p_.cfg.codebook_size)));
    obj.Set("threads", Napi::Number::New(env, p_.cfg.threads));
    model_.reset();
    deferred_.Resolve(obj);
  }

 private:
  Parsed p_;
  std::shared_ptr<Code2Wav> model_;
};

Napi::Value LoadCode2Wav(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "expected a code2wav load spec");
  Napi::Object spec = info[0].As<Napi::Object>();
  return Guarded(env, [&]() -> Napi::Value {
    auto* worker = new LoadWorker(env, ParseSpec(spec));
    worker->Queue();
    return worker->Promise();
  });
}

}  // namespace

void RegisterCode2Wav(Napi::Env env, Napi::Object exports) {
  exports.Set("loadCode2Wav", Napi::Function::New(env, LoadCode2Wav, "loadCode2Wav"));
}

}  // namespace omni
