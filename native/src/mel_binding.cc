// Bindings of the log-mel kernels:
//   logMel(samples, threads)      -> Promise<{ features, frames, clipMax }>, computed on the libuv
//                                    pool (and up to `threads` threads for long clips)
//   logMelSync(samples, threads)  -> the same, on the calling thread (benchmarks, short clips)
//   new MelStream(maxSamples)     -> push(samples) as audio arrives; finish() applies the clip floor
// `features` is Float32Array(128 * frames), mel-major, exactly the reference's (128, frames).
#include <napi.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "buffer_pool.h"
#include "mel.h"
#include "modules.h"

namespace omni {
namespace {

using mel::kMels;


// Returns the index of the first NaN/Inf sample, or -1.
int64_t FirstNonFinite(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

struct MelResult {
  PooledFloats features{nullptr, 0};  // 128 x frames; recycled memory, no memset
  int64_t frames = 0;
  float clip_max = 0.0f;
  ~MelResult() {
    if (features.data) ReleaseFloats(features);
  }
};

// Validation shared by the sync and async paths; returns an error code or nullptr.
const char* Compute(const float* x, int64_t n, int threads, MelResult& out, std::string& message) {
  if (n < mel::kMinSamples) {
    message = "audio too short for log-mel features: need at least " + std::to_string(mel::kMinSamples) +
              " samples (12.6 ms at 16 kHz), got " + std::to_string(n);
    return "audio_too_short";
  }
  if (int64_t bad = FirstNonFinite(x, n); bad >= 0) {
    message = "audio sample " + std::to_string(bad) + " is not a finite number";
    return "audio_invalid_samples";
  }
  out.frames = mel::FrameCount(n);
  const size_t count = static_cast<size_t>(out.frames) * kMels;
  out.features = AcquireFloats(count);
  mel::RawFramesMelMajor(x, n, out.features.data, threads);
  out.clip_max = mel::MaxOf(out.features.data, count);
  mel::NormalizeInPlace(out.features.data, count, out.clip_max);
  return nullptr;
}

Napi::Object ToJs(Napi::Env env, MelResult&& r) {
  const size_t count = static_cast<size_t>(r.frames) * kMels;
  const PooledFloats features = r.features;
  r.features = PooledFloats{nullptr, 0};  // ToArrayBuffer owns it now, even if it throws
  auto buffer = ToArrayBuffer(env, features, count);
  Napi::Object obj = Napi::Object::New(env);
  obj.Set("features", Napi::Float32Array::New(env, count, buffer, 0));
  obj.Set("frames", Napi::Number::New(env, static_cast<double>(r.frames)));
  obj.Set("clipMax", Napi::Number::New(env, r.clip_max));
  return obj;
}

Napi::Float32Array SamplesArg(const Napi::CallbackInfo& info) {
  return TypedArg(info, napi_float32_array, "Float32Array of 16 kHz samples").As<Napi::Float32Array>();
}

// At most one thread per core for one clip: more only competes with other sessions.
int ThreadsArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || info[index].IsUndefined()) return 1;
  if (!info[index].IsNumber()) throw CodedError(info.Env(), "audio_option_invalid", "threads must be a number");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int t = info[index].As<Napi::Number>().Int32Value();
  return t < 1 ? 1 : (t > cores ? cores : t);
}

class LogMelWorker : public Napi::AsyncWorker {
 public:
  // The samples are copied (into recycled memory) before queueing: a JavaScript buffer can be
  // transferred or detached while the pool thread would still be reading it.
  LogMelWorker(Napi::Env env, Napi::Float32Array samples, int threads)
      : Napi::AsyncWorker(env, "omni.logMel"),
        deferred_(Napi::Promise::Deferred::New(env)),
        n_(static_cast<int64_t>(samples.ElementLength())),
        threads_(threads) {
    input_ = AcquireFloats(static_cast<size_t>(n_));
    std::copy(samples.Data(), samples.Data() + n_, input_.data);
  }
  ~LogMelWorker() override { ReleaseFloats(input_); }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      code_ = Compute(input_.data, n_, threads_, result_, message_);
    } catch (const std::bad_alloc&) {
      code_ = "out_of_memory";
      message_ = "not enough memory for this input";
    } catch (const std::exception& e) {
      code_ = "internal_error";
      message_ = e.what();
    }
    if (code_) SetError(message_);
  }
  void OnOK() override { deferred_.Resolve(ToJs(Env(), std::move(result_))); }
  void OnError(const Napi::Error&) override { deferred_.Reject(CodedError(Env(), code_, message_).Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  PooledFloats input_{nullptr, 0};
  int64_t n_;
  int threads_;
  MelResult result_;
  const char* code_ = nullptr;
  std::string message_;
};

Napi::Value LogMel(const Napi::CallbackInfo& info) {
  auto* worker = new LogMelWorker(info.Env(), SamplesArg(info), ThreadsArg(info, 1));
  worker->Queue();
  return worker->Promise();
}

Napi::Value LogMelSync(const Napi::CallbackInfo& info) {
  auto samples = SamplesArg(info);
  const int threads = ThreadsArg(info, 1);
  return Guarded(info.Env(), [&]() -> Napi::Value {
    MelResult r;
    std::string message;
    if (const char* code = Compute(samples.Data(), static_cast<int64_t>(samples.ElementLength()), threads, r, message)) {
      throw CodedError(info.Env(), code, message);
    }
    return ToJs(info.Env(), std::move(r));
  });
}

// Streaming extractor: frames are computed as soon as their 400-sample window has arrived, so at
// the end of a turn only the last one or two frames (which reflect at the clip's end) and the
// clip-level floor remain. finish() gives exactly what logMel gives for the same samples.
class MelStream : public Napi::ObjectWrap<MelStream> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "MelStream",
                       {InstanceMethod<&MelStream::Push>("push"), InstanceMethod<&MelStream::Finish>("finish"),
                        InstanceMethod<&MelStream::Reset>("reset"),
                        InstanceAccessor<&MelStream::Samples>("samples"),
                        InstanceAccessor<&MelStream::Frames>("frames")});
  }

  explicit MelStream(const Napi::CallbackInfo& info) : Napi::ObjectWrap<MelStream>(info) {
    const double max = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().DoubleValue() : NAN;
    // Up to 2^36 samples (about 50 days at 16 kHz): bounds every size computed from it.
    if (!(max >= mel::kMinSamples && max <= 68719476736.0)) {
      throw CodedError(info.Env(), "audio_option_invalid", "MelStream(maxSamples): maxSamples must be from 201 to 2^36");
    }
    max_samples_ = static_cast<int64_t>(info[0].As<Napi::Number>().DoubleValue());
  }

 private:
  Napi::Value Push(const Napi::CallbackInfo& info) {
    return Guarded(info.Env(), [&] { return PushBody(info); });
  }
  Napi::Value Finish(const Napi::CallbackInfo& info) {
    return Guarded(info.Env(), [&] { return FinishBody(info); });
  }

  Napi::Value PushBody(const Napi::CallbackInfo& info) {
    auto samples = SamplesArg(info);
    const float* x = samples.Data();
    const int64_t n = static_cast<int64_t>(samples.ElementLength());
    if (received_ + n > max_samples_) {
      throw CodedError(info.Env(), "audio_too_long",
                       "audio too long for one utterance: limit is " + std::to_string(max_samples_) + " samples, got " +
                           std::to_string(received_ + n));
    }
    if (int64_t bad = FirstNonFinite(x, n); bad >= 0) {
      throw CodedError(info.Env(), "audio_invalid_samples",
                       "audio sample " + std::to_string(received_ + bad) + " is not a finite number");
    }
    buf_.insert(buf_.end(), x, x + n);
    received_ += n;
    const int64_t ready = mel::FramesReadyWithoutEnd(received_);
    if (ready > frames_) {
      ComputeFrames(ready, -1);
      // Keep only what later frames can still reach: from the next frame's window start.
      const int64_t keep_from = std::max<int64_t>(0, frames_ * mel::kHop - mel::kFft / 2);
      if (keep_from > base_) {
        buf_.erase(buf_.begin(), buf_.begin() + (keep_from - base_));
        base_ = keep_from;
      }
    }
    return Napi::Number::New(info.Env(), static_cast<double>(frames_));
  }

  Napi::Value FinishBody(const Napi::CallbackInfo& info) {
    if (received_ < mel::kMinSamples) {
      throw CodedError(info.Env(), "audio_too_short",
                       "audio too short for log-mel features: need at least " + std::to_string(mel::kMinSamples) +
                           " samples (12.6 ms at 16 kHz), got " + std::to_string(received_));
    }
    // The last frames reflect at the clip's end: compute them for this answer only and drop them
    // afterwards, so audio pushed after finish() recomputes them without the reflection.
    const int64_t committed = frames_;
    const float committed_max = max_;
    ComputeFrames(mel::FrameCount(received_), received_);
    MelResult r;
    r.frames = frames_;
    r.clip_max = max_;
    r.features = AcquireFloats(raw_.size());
    mel::Normalize(raw_.data(), frames_, max_, r.features.data);
    frames_ = committed;
    max_ = committed_max;
    raw_.resize(static_cast<size_t>(committed) * kMels);
    return ToJs(info.Env(), std::move(r));
  }

  Napi::Value Reset(const Napi::CallbackInfo& info) {
    buf_.clear();
    raw_.clear();
    base_ = received_ = frames_ = 0;
    max_ = -std::numeric_limits<float>::infinity();
    return info.Env().Undefined();
  }

  Napi::Value Samples(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(received_)); }
  Napi::Value Frames(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), static_cast<double>(frames_)); }

  void ComputeFrames(int64_t upto, int64_t total) {
    if (upto <= frames_) return;
    raw_.resize(static_cast<size_t>(upto) * kMels);
    const mel::SampleView view{buf_.data(), base_, total};
    float* out = raw_.data() + frames_ * kMels;
    mel::RawFrames(view, frames_, upto, out);
    max_ = std::max(max_, mel::MaxOf(out, static_cast<size_t>(upto - frames_) * kMels));
    frames_ = upto;
  }

  std::vector<float> buf_;  // samples from absolute index base_
  std::vector<float> raw_;  // frames_ x 128 raw log10-mel values
  int64_t base_ = 0, received_ = 0, frames_ = 0, max_samples_ = 0;
  float max_ = -std::numeric_limits<float>::infinity();
};

Napi::Value MelFilterBank(const Napi::CallbackInfo& info) {
  const auto& fb = mel::FilterBank();
  auto out = Napi::Float32Array::New(info.Env(), fb.size());
  std::copy(fb.begin(), fb.end(), out.Data());
  return out;
}

}  // namespace

void RegisterMel(Napi::Env env, Napi::Object exports) {
  exports.Set("logMel", Napi::Function::New(env, LogMel, "logMel"));
  exports.Set("logMelSync", Napi::Function::New(env, LogMelSync, "logMelSync"));
  exports.Set("melFilterBank", Napi::Function::New(env, MelFilterBank, "melFilterBank"));
  exports.Set("MelStream", MelStream::Define(env));
}

}  // namespace omni
