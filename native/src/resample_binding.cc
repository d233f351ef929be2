// Binding of the streaming resampler (see resample.h):
//   new Resampler(inputRate, outputRate)
//   process(Float32Array) -> Float32Array   outputs whose look-ahead has arrived
//   processInto(Float32Array, out: Float32Array) -> number
//                         the same outputs written to the start of `out` (a buffer the caller
//                         reuses: no allocation per chunk); their count. `out` too short for them:
//                         RangeError `resample_output_too_small`, and nothing was consumed
//   flush()               -> Float32Array   the zero-padded tail; the stream then restarts
//   reset()                                 drop buffered input, restart at time 0
//   inputRate, outputRate, delaySamples (look-ahead in input samples), filterLength (taps)
// Rates must be integers in [1000, 384000]; otherwise a RangeError with code
// `resample_rate_invalid`. Like the other codec kernels it runs on the calling thread: a 20 ms
// chunk costs a few microseconds.
#include <napi.h>

#include <cmath>
#include <string>

#include "modules.h"
#include "resample.h"

namespace omni {
namespace {

int64_t RateArg(const Napi::CallbackInfo& info, size_t index, const char* name) {
  const double v = info.Length() > index && info[index].IsNumber() ? info[index].As<Napi::Number>().DoubleValue() : NAN;
  if (!(v >= resample::kMinRate && v <= resample::kMaxRate) || std::floor(v) != v) {
    Napi::Error err = Napi::RangeError::New(
        info.Env(), std::string(name) + " must be an integer from " + std::to_string(resample::kMinRate) + " to " +
                        std::to_string(resample::kMaxRate) + " Hz");
    err.Set("code", Napi::String::New(info.Env(), "resample_rate_invalid"));
    throw err;
  }
  return static_cast<int64_t>(v);
}

class ResamplerWrap : public Napi::ObjectWrap<ResamplerWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Resampler",
                       {InstanceMethod<&ResamplerWrap::Process>("process"),
                        InstanceMethod<&ResamplerWrap::ProcessInto>("processInto"),
                        InstanceMethod<&ResamplerWrap::Flush>("flush"),
                        InstanceMethod<&ResamplerWrap::Reset>("reset"),
                        InstanceAccessor<&ResamplerWrap::InputRate>("inputRate"),
                        InstanceAccessor<&ResamplerWrap::OutputRate>("outputRate"),
                        InstanceAccessor<&ResamplerWrap::DelaySamples>("delaySamples"),
                        InstanceAccessor<&ResamplerWrap::FilterLength>("filterLength")});
  }

  explicit ResamplerWrap(const Napi::CallbackInfo& info)
      : Napi::ObjectWrap<ResamplerWrap>(info),
        r_(RateArg(info, 0, "inputRate"), RateArg(info, 1, "outputRate")) {}

 private:
  Napi::Value Process(const Napi::CallbackInfo& info) {
    auto in = TypedArg(info, napi_float32_array, "Float32Array of samples").As<Napi::Float32Array>();
    const int64_t n = static_cast<int64_t>(in.ElementLength());
    return Guarded(info.Env(), [&]() -> Napi::Value {
      auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(r_.ProcessCount(n)));
      r_.Process(in.Data(), n, out.Data());
      return out;
    });
  }

  Napi::Value ProcessInto(const Napi::CallbackInfo& info) {
    auto in = TypedArg(info, napi_float32_array, "Float32Array of samples").As<Napi::Float32Array>();
    if (info.Length() < 2 || !info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array) {
      throw Napi::TypeError::New(info.Env(), "expected a Float32Array to write the output into");
    }
    auto out = info[1].As<Napi::Float32Array>();
    const int64_t n = static_cast<int64_t>(in.ElementLength());
    const int64_t count = r_.ProcessCount(n);
    if (count > static_cast<int64_t>(out.ElementLength())) {
      Napi::Error err = Napi::RangeError::New(
          info.Env(), "output array holds " + std::to_string(out.ElementLength()) + " samples; this chunk completes " +
                          std::to_string(count));
      err.Set("code", Napi::String::New(info.Env(), "resample_output_too_small"));
      throw err;
    }
    return Guarded(info.Env(), [&]() -> Napi::Value {
      r_.Process(in.Data(), n, out.Data());
      return Num(info, count);
    });
  }

  Napi::Value Flush(const Napi::CallbackInfo& info) {
    return Guarded(info.Env(), [&]() -> Napi::Value {
      auto out = Napi::Float32Array::New(info.Env(), static_cast<size_t>(r_.FlushCount()));
      r_.Flush(out.Data());
      return out;
    });
  }

  Napi::Value Reset(const Napi::CallbackInfo& info) {
    r_.Reset();
    return info.Env().Undefined();
  }

  Napi::Value InputRate(const Napi::CallbackInfo& info) { return Num(info, r_.input_rate()); }
  Napi::Value OutputRate(const Napi::CallbackInfo& info) { return Num(info, r_.output_rate()); }
  Napi::Value DelaySamples(const Napi::CallbackInfo& info) { return Num(info, r_.lookahead()); }
  Napi::Value FilterLength(const Napi::CallbackInfo& info) { return Num(info, r_.filter_length()); }

  static Napi::Value Num(const Napi::CallbackInfo& info, int64_t v) {
    return Napi::Number::New(info.Env(), static_cast<double>(v));
  }

  resample::Resampler r_;
};

}  // namespace

void RegisterResample(Napi::Env env, Napi::Object exports) { exports.Set("Resampler", ResamplerWrap::Define(env)); }

}  // namespace omni
