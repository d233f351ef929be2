// Bindings of the thinker's audio and vision encoders (engine/audio_encoder.h, vision_encoder.h):
//   loadAudioEncoder(spec)  -> Promise<{ encode(features, frames) -> Promise<Float32Array>,
//                                        tokenCount(frames), outputDim, close() }>
//   loadVisionEncoder(spec) -> Promise<{ encode(pixelValues, grids) -> Promise<{ embeds, deepstack }>,
//                                        rowWidth, outputDim, deepstackCount, close() }>
// Loading (mapping the checkpoint, widening norms) and encoding run on the libuv pool; an encode
// spreads its matrix work over the encoder's own thread pool (spec.threads, default one per core).
// Inputs are copied before queueing, so the caller may reuse its buffers at once. close() drops
// the model; encodes already queued finish first (they hold a reference), later ones reject with
// encoder_closed. Errors reject with `code` set (checkpoint_*, encoder_*, out_of_memory).
#include <napi.h>

#include <array>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/audio_encoder.h"
#include "engine/thinker.h"  // EngineError
#include "engine/vision_encoder.h"
#include "engine_spec.h"
#include "modules.h"

namespace omni {
namespace {

using engine::AudioEncoder;
using engine::AudioEncoderConfig;
using engine::EngineError;
using engine::VisionEncoder;
using engine::VisionEncoderConfig;

// ---- spec parsing (on the JS thread) --------------------------------------------------------------

Napi::Error SpecError(Napi::Env env, const std::string& message) {
  return CodedError(env, "checkpoint_config_invalid", "encoder load spec: " + message);
}

double NumberField(const Napi::Object& o, const char* name) {
  Napi::Value v = o.Get(name);
  if (!v.IsNumber()) throw SpecError(o.Env(), std::string(name) + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t IntField(const Napi::Object& o, const char* name, int64_t min = 1) {
  const double d = NumberField(o, name);
  if (!(d >= static_cast<double>(min) && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
    throw SpecError(o.Env(), std::string(name) + " must be an integer >= " + std::to_string(min));
  }
  return static_cast<int64_t>(d);
}

int ThreadsField(const Napi::Object& o) {
  Napi::Value v = o.Get("threads");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (v.IsUndefined() || v.IsNull()) return cores;
  const int64_t t = IntField(o, "threads");
  return static_cast<int>(std::min<int64_t>(t, 1024));
}

using Common = engine_spec::FilesAndTensors;

Common ParseCommon(const Napi::Object& spec) { return engine_spec::ReadFilesAndTensors(spec, "encoders"); }

AudioEncoderConfig ParseAudio(const Napi::Object& s) {
  AudioEncoderConfig c;
  c.num_mel_bins = IntField(s, "numMelBins");
  c.d_model = IntField(s, "dModel");
  c.layers = IntField(s, "numLayers");
  c.heads = IntField(s, "numHeads");
  c.ffn = IntField(s, "ffnDim");
  c.downsample_hidden = IntField(s, "downsampleHiddenSize");
  c.output_dim = IntField(s, "outputDim");
  c.n_window = IntField(s, "nWindow");
  c.n_window_infer = IntField(s, "nWindowInfer");
  c.max_source_positions = IntField(s, "maxSourcePositions");
  c.threads = ThreadsField(s);
  return c;
}

VisionEncoderConfig ParseVision(const Napi::Object& s) {
  VisionEncoderConfig c;
  c.hidden = IntField(s, "hiddenSize");
  c.depth = IntField(s, "depth");
  c.heads = IntField(s, "numHeads");
  c.ffn = IntField(s, "intermediateSize");
  c.patch = IntField(s, "patchSize");
  c.temporal_patch = IntField(s, "temporalPatchSize");
  c.in_channels = IntField(s, "inChannels");
  c.merge = IntField(s, "spatialMergeSize");
  c.num_position_embeddings = IntField(s, "numPositionEmbeddings");
  c.out_hidden = IntField(s, "outHiddenSize");
  c.rope_theta = NumberField(s, "ropeTheta");
  Napi::Value act = s.Get("hiddenAct");
  const std::string a = act.IsString() ? act.As<Napi::String>().Utf8Value() : "";
  if (a == "gelu_pytorch_tanh") {
    c.gelu_tanh = true;
  } else if (a == "gelu") {
    c.gelu_tanh = false;
  } else {
    throw SpecError(s.Env(), "hiddenAct must be \"gelu_pytorch_tanh\" or \"gelu\"");
  }
  Napi::Value ds = s.Get("deepstackVisualIndexes");
  if (!ds.IsArray()) throw SpecError(s.Env(), "deepstackVisualIndexes must be an array");
  Napi::Array da = ds.As<Napi::Array>();
  for (uint32_t i = 0; i < da.Length(); ++i) {
    Napi::Value v = da.Get(i);
    if (!v.IsNumber()) throw SpecError(s.Env(), "deepstackVisualIndexes must hold integers");
    c.deepstack.push_back(v.As<Napi::Number>().Int64Value());
  }
  c.threads = ThreadsField(s);
  return c;
}

// ---- workers ------------------------------------------------------------------------------------

using engine_spec::CodedWorker;
using engine_spec::ToFloat32Array;


// What the JS functions of one loaded encoder share; close() drops `model`.
template <typename M>
struct State {
  std::shared_ptr<M> model;
};

template <typename M>
using StateRef = std::shared_ptr<State<M>>;

template <typename M>
Napi::Function Method(Napi::Env env, const char* name, Napi::Function::Callback cb, const StateRef<M>& state) {
  auto* data = new StateRef<M>(state);
  Napi::Function fn = Napi::Function::New(env, cb, name, data);
  fn.AddFinalizer([](Napi::Env, StateRef<M>* d) { delete d; }, data);
  return fn;
}

template <typename M>
std::shared_ptr<M> Live(const Napi::CallbackInfo& info) {
  auto& state = *static_cast<StateRef<M>*>(info.Data());
  if (!state->model) throw CodedError(info.Env(), "encoder_closed", "the encoder is closed");
  return state->model;
}

template <typename M>
Napi::Value Close(const Napi::CallbackInfo& info) {
  auto& state = *static_cast<StateRef<M>*>(info.Data());
  state->model.reset();
  return info.Env().Undefined();
}

// ---- audio --------------------------------------------------------------------------------------

class AudioEncodeWorker : public CodedWorker {
 public:
  AudioEncodeWorker(Napi::Env env, std::shared_ptr<AudioEncoder> model, const float* features, int64_t frames)
      : CodedWorker(env, "omni.audioEncode"), model_(std::move(model)), frames_(frames),
        features_(features, features + model_->config().num_mel_bins * frames) {}

 protected:
  void Run() override { model_->Encode(features_.data(), frames_, out_); }
  void OnOK() override { deferred_.Resolve(ToFloat32Array(Env(), out_)); }

 private:
  std::shared_ptr<AudioEncoder> model_;
  int64_t frames_;
  std::vector<float> features_, out_;
};

Napi::Value AudioEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto model = Live<AudioEncoder>(info);
    auto features = TypedArg(info, napi_float32_array, "Float32Array of mel features (num_mel_bins x frames)").As<Napi::Float32Array>();
    const double f = info.Length() >= 2 && info[1].IsNumber() ? info[1].As<Napi::Number>().DoubleValue() : -1;
    const int64_t mels = model->config().num_mel_bins;
    if (!(f >= 1 && f <= 2147483647.0) || f != static_cast<double>(static_cast<int64_t>(f))) {
      throw CodedError(env, "encoder_features_invalid", "frames must be a positive integer");
    }
    const int64_t frames = static_cast<int64_t>(f);
    if (static_cast<int64_t>(features.ElementLength()) != mels * frames) {
      throw CodedError(env, "encoder_features_invalid",
                       "expected " + std::to_string(mels) + " x " + std::to_string(frames) + " = " +
                           std::to_string(mels * frames) + " mel values, got " + std::to_string(features.ElementLength()));
    }
    auto* worker = new AudioEncodeWorker(env, std::move(model), features.Data(), frames);
    worker->Queue();
    return worker->Promise();
  });
}

Napi::Value AudioTokenCount(const Napi::CallbackInfo& info) {
  auto model = Live<AudioEncoder>(info);
  const double f = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : -1;
  if (!(f >= 0 && f <= 2147483647.0)) throw CodedError(info.Env(), "encoder_features_invalid", "frames must be a non-negative integer");
  return Napi::Number::New(info.Env(), static_cast<double>(model->TokenCount(static_cast<int64_t>(f))));
}

class AudioLoadWorker : public CodedWorker {
 public:
  AudioLoadWorker(Napi::Env env, AudioEncoderConfig cfg, Common common)
      : CodedWorker(env, "omni.loadAudioEncoder"), cfg_(std::move(cfg)), common_(std::move(common)) {}

 protected:
  void Run() override { model_ = std::make_shared<AudioEncoder>(cfg_, common_.files, common_.tensors); }
  void OnOK() override {
    Napi::Env env = Env();
    auto state = std::make_shared<State<AudioEncoder>>();
    state->model = model_;
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("encode", Method(env, "encode", AudioEncode, state));
    obj.Set("tokenCount", Method(env, "tokenCount", AudioTokenCount, state));
    obj.Set("close", Method(env, "close", Close<AudioEncoder>, state));
    obj.Set("outputDim", Napi::Number::New(env, static_cast<double>(model_->config().output_dim)));
    obj.Set("numMelBins", Napi::Number::New(env, static_cast<double>(model_->config().num_mel_bins)));
    obj.Set("threads", Napi::Number::New(env, cfg_.threads));
    model_.reset();
    deferred_.Resolve(obj);
  }

 private:
  AudioEncoderConfig cfg_;
  Common common_;
  std::shared_ptr<AudioEncoder> model_;
};

Napi::Value LoadAudioEncoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "expected an audio encoder load spec");
  Napi::Object spec = info[0].As<Napi::Object>();
  return Guarded(env, [&]() -> Napi::Value {
    auto* worker = new AudioLoadWorker(env, ParseAudio(spec), ParseCommon(spec));
    worker->Queue();
    return worker->Promise();
  });
}

// ---- vision -------------------------------------------------------------------------------------

class VisionEncodeWorker : public CodedWorker {
 public:
  VisionEncodeWorker(Napi::Env env, std::shared_ptr<VisionEncoder> model, const float* pixels, int64_t rows,
                     std::vector<std::array<int64_t, 3>> grids)
      : CodedWorker(env, "omni.visionEncode"), model_(std::move(model)), rows_(rows),
        pixels_(pixels, pixels + rows * model_->RowWidth()), grids_(std::move(grids)) {}

 protected:
  void Run() override { model_->Encode(pixels_.data(), rows_, grids_, embeds_, deepstack_); }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("embeds", ToFloat32Array(env, embeds_));
    Napi::Array ds = Napi::Array::New(env, deepstack_.size());
    for (size_t i = 0; i < deepstack_.size(); ++i) ds.Set(static_cast<uint32_t>(i), ToFloat32Array(env, deepstack_[i]));
    obj.Set("deepstack", ds);
    deferred_.Resolve(obj);
  }

 private:
  std::shared_ptr<VisionEncoder> model_;
  int64_t rows_;
  std::vector<float> pixels_;
  std::vector<std::array<int64_t, 3>> grids_;
  std::vector<float> embeds_;
  std::vector<std::vector<float>> deepstack_;
};

Napi::Value VisionEncode(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    auto model = Live<VisionEncoder>(info);
    auto pixels = TypedArg(info, napi_float32_array, "Float32Array of pixel_values rows").As<Napi::Float32Array>();
    const int64_t width = model->RowWidth();
    const int64_t n = static_cast<int64_t>(pixels.ElementLength());
    if (n == 0 || n % width != 0) {
      throw CodedError(env, "encoder_pixels_invalid",
                       "pixel values must be whole rows of " + std::to_string(width) + " floats, got " + std::to_string(n));
    }
    if (info.Length() < 2 || !info[1].IsArray()) throw CodedError(env, "encoder_grid_invalid", "grids must be an array of [t, h, w]");
    Napi::Array ga = info[1].As<Napi::Array>();
    std::vector<std::array<int64_t, 3>> grids;
    for (uint32_t i = 0; i < ga.Length(); ++i) {
      Napi::Value g = ga.Get(i);
      if (!g.IsArray() || g.As<Napi::Array>().Length() != 3) throw CodedError(env, "encoder_grid_invalid", "grids must be an array of [t, h, w]");
      std::array<int64_t, 3> v{};
      for (uint32_t k = 0; k < 3; ++k) {
        Napi::Value e = g.As<Napi::Array>().Get(k);
        const double d = e.IsNumber() ? e.As<Napi::Number>().DoubleValue() : -1;
        if (!(d >= 1 && d <= 1048576.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
          throw CodedError(env, "encoder_grid_invalid", "grid entries must be positive integers");
        }
        v[k] = static_cast<int64_t>(d);
      }
      grids.push_back(v);
    }
    auto* worker = new VisionEncodeWorker(env, std::move(model), pixels.Data(), n / width, std::move(grids));
    worker->Queue();
    return worker->Promise();
  });
}

class VisionLoadWorker : public CodedWorker {
 public:
  VisionLoadWorker(Napi::Env env, VisionEncoderConfig cfg, Common common)
      : CodedWorker(env, "omni.loadVisionEncoder"), cfg_(std::move(cfg)), common_(std::move(common)) {}

 protected:
  void Run() override { model_ = std::make_shared<VisionEncoder>(cfg_, common_.files, common_.tensors); }
  void OnOK() override {
    Napi::Env env = Env();
    auto state = std::make_shared<State<VisionEncoder>>();
    state->model = model_;
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("encode", Method(env, "encode", VisionEncode, state));
    obj.Set("close", Method(env, "close", Close<VisionEncoder>, state));
    obj.Set("rowWidth", Napi::Number::New(env, static_cast<double>(model_->RowWidth())));
    obj.Set("outputDim", Napi::Number::New(env, static_cast<double>(model_->config().out_hidden)));
    obj.Set("spatialMergeSize", Napi::Number::New(env, static_cast<double>(model_->config().merge)));
    obj.Set("deepstackCount", Napi::Number::New(env, static_cast<double>(model_->config().deepstack.size())));
    obj.Set("threads", Napi::Number::New(env, cfg_.threads));
    model_.reset();
    deferred_.Resolve(obj);
  }

 private:
  VisionEncoderConfig cfg_;
  Common common_;
  std::shared_ptr<VisionEncoder> model_;
};

Napi::Value LoadVisionEncoder(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw Napi::TypeError::New(env, "expected a vision encoder load spec");
  Napi::Object spec = info[0].As<Napi::Object>();
  return Guarded(env, [&]() -> Napi::Value {
    auto* worker = new VisionLoadWorker(env, ParseVision(spec), ParseCommon(spec));
    worker->Queue();
    return worker->Promise();
  });
}

}  // namespace

void RegisterEncoders(Napi::Env env, Napi::Object exports) {
  exports.Set("loadAudioEncoder", Napi::Function::New(env, LoadAudioEncoder, "loadAudioEncoder"));
  exports.Set("loadVisionEncoder", Napi::Function::New(env, LoadVisionEncoder, "loadVisionEncoder"));
}

}  // namespace omni
