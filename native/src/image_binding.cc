// Bindings of the image kernels:
//   imageToPatches(rgb, width, height, outH, outW, threads?) -> Promise<{ pixelValues, gridT, gridH,
//       gridW }>, resize + normalise + patchify on the libuv pool (a 1080p image is tens of
//       milliseconds), with up to `threads` threads (default 1) for large images
//   compositeOnWhite(rgba) -> Promise<Uint8Array> of RGB over white, rounded as Pillow's paste
//   imageResizeSync(rgb, width, height, outH, outW) -> Uint8Array of the resized RGB, on the calling
//       thread: the reference's uint8 intermediate, for tests and diagnostics
// Bad arguments throw with `code` image_option_invalid; no memory for the output rejects with
// image_too_large.
#include <napi.h>

#include <string>
#include <vector>

#include "buffer_pool.h"
#include "image_resize.h"
#include "modules.h"

namespace omni {
namespace {


// Sides above this are refused: no legitimate target comes close (the reference caps the area at
// 12.8 M pixels) and it keeps every index product far inside size_t and int32.
constexpr int64_t kMaxSide = 1 << 15;

struct Args {
  Napi::Uint8Array rgb;
  int width, height, out_h, out_w;
  int threads = 1;
};

Args ParseArgs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    throw CodedError(env, "image_option_invalid", "expected (rgb: Uint8Array, width, height, outH, outW)");
  }
  int64_t v[4];
  const char* names[4] = {"width", "height", "outH", "outW"};
  for (int i = 0; i < 4; ++i) {
    const double d = info[i + 1].IsNumber() ? info[i + 1].As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 1 && d <= kMaxSide) || d != static_cast<double>(static_cast<int64_t>(d))) {
      throw CodedError(env, "image_option_invalid",
                       std::string(names[i]) + " must be an integer in 1.." + std::to_string(kMaxSide));
    }
    v[i] = static_cast<int64_t>(d);
  }
  Args a{info[0].As<Napi::Uint8Array>(), static_cast<int>(v[0]), static_cast<int>(v[1]), static_cast<int>(v[2]),
         static_cast<int>(v[3])};
  if (a.rgb.ByteLength() != static_cast<size_t>(v[0] * v[1] * 3)) {
    throw CodedError(env, "image_option_invalid",
                     "rgb must hold width * height * 3 = " + std::to_string(v[0] * v[1] * 3) + " bytes, got " +
                         std::to_string(a.rgb.ByteLength()));
  }
  if (info.Length() > 5 && info[5].IsNumber()) {
    const int t = info[5].As<Napi::Number>().Int32Value();
    a.threads = t < 1 ? 1 : (t > 64 ? 64 : t);
  }
  if (a.out_h % image::kFactor != 0 || a.out_w % image::kFactor != 0) {
    throw CodedError(env, "image_option_invalid",
                     "outH and outW must be multiples of 32, got " + std::to_string(a.out_h) + "x" + std::to_string(a.out_w));
  }
  return a;
}

class PatchesWorker : public Napi::AsyncWorker {
 public:
  PatchesWorker(Napi::Env env, const Args& a)
      : Napi::AsyncWorker(env, "omni.imageToPatches"),
        deferred_(Napi::Promise::Deferred::New(env)),
        rgb_ref_(Napi::Persistent(a.rgb)),  // keeps the pixels alive while the pool reads them
        rgb_(a.rgb.Data()),
        width_(a.width), height_(a.height), out_h_(a.out_h), out_w_(a.out_w), threads_(a.threads) {}

  ~PatchesWorker() override {
    if (out_.data) ReleaseFloats(out_);
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      out_ = AcquireFloats(Count());
    } catch (const std::bad_alloc&) {
      SetError("out of memory for " + std::to_string(Count()) + " floats");
      return;
    }
    image::ImageToPatches(rgb_, width_, height_, out_h_, out_w_, out_.data, threads_);
  }

  void OnOK() override {
    Napi::Env env = Env();
    const size_t count = Count();
    const PooledFloats out = out_;
    out_ = PooledFloats{nullptr, 0};  // ToArrayBuffer owns it now, even if it throws
    auto buffer = ToArrayBuffer(env, out, count);
    Napi::Object obj = Napi::Object::New(env);
    obj.Set("pixelValues", Napi::Float32Array::New(env, count, buffer, 0));
    obj.Set("gridT", Napi::Number::New(env, 1));
    obj.Set("gridH", Napi::Number::New(env, out_h_ / image::kPatch));
    obj.Set("gridW", Napi::Number::New(env, out_w_ / image::kPatch));
    deferred_.Resolve(obj);
  }

  void OnError(const Napi::Error& e) override {
    // The only failure past argument checks is running out of memory for the output.
    deferred_.Reject(CodedError(Env(), "image_too_large", e.Message()).Value());
  }

 private:
  size_t Count() const {
    return static_cast<size_t>(out_h_ / image::kPatch) * (out_w_ / image::kPatch) * image::kRowFloats;
  }

  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> rgb_ref_;
  const uint8_t* rgb_;
  int width_, height_, out_h_, out_w_, threads_;
  PooledFloats out_{nullptr, 0};
};

Napi::Value ImageToPatches(const Napi::CallbackInfo& info) {
  auto* worker = new PatchesWorker(info.Env(), ParseArgs(info));
  worker->Queue();
  return worker->Promise();
}

// RGBA -> RGB on white, on the libuv pool (a multi-megapixel image is a few milliseconds).
class CompositeWorker : public Napi::AsyncWorker {
 public:
  CompositeWorker(Napi::Env env, Napi::Uint8Array rgba)
      : Napi::AsyncWorker(env, "omni.compositeOnWhite"),
        deferred_(Napi::Promise::Deferred::New(env)),
        rgba_ref_(Napi::Persistent(rgba)),
        rgba_(rgba.Data()),
        pixels_(rgba.ByteLength() / 4),
        out_(Napi::Persistent(Napi::Uint8Array::New(env, pixels_ * 3))),
        out_data_(out_.Value().Data()) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override { image::CompositeOnWhite(rgba_, pixels_, out_data_); }
  void OnOK() override { deferred_.Resolve(out_.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> rgba_ref_;
  const uint8_t* rgba_;
  size_t pixels_;
  Napi::Reference<Napi::Uint8Array> out_;
  uint8_t* out_data_;
};

Napi::Value CompositeOnWhite(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsTypedArray() ||
      info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array ||
      info[0].As<Napi::Uint8Array>().ByteLength() % 4 != 0) {
    throw CodedError(info.Env(), "image_option_invalid", "expected a Uint8Array of RGBA pixels (length a multiple of 4)");
  }
  auto* worker = new CompositeWorker(info.Env(), info[0].As<Napi::Uint8Array>());
  worker->Queue();
  return worker->Promise();
}

Napi::Value ImageResizeSync(const Napi::CallbackInfo& info) {
  const Args a = ParseArgs(info);
  auto out = Napi::Uint8Array::New(info.Env(), static_cast<size_t>(a.out_h) * a.out_w * 3);
  image::ResizeRgb(a.rgb.Data(), a.width, a.height, a.out_h, a.out_w, out.Data());
  return out;
}

}  // namespace

void RegisterImage(Napi::Env env, Napi::Object exports) {
  exports.Set("imageToPatches", Napi::Function::New(env, ImageToPatches, "imageToPatches"));
  exports.Set("compositeOnWhite", Napi::Function::New(env, CompositeOnWhite, "compositeOnWhite"));
  exports.Set("imageResizeSync", Napi::Function::New(env, ImageResizeSync, "imageResizeSync"));
}

}  // namespace omni
