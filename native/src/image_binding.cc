// Bindings of the image kernels:
//   imageToPatches(rgb, width, height, outH, outW, threads?) -> Promise<{ pixelValues, gridT, gridH,
//       gridW }>, resize + normalise + patchify on the libuv pool (a 1080p image is tens of
//       milliseconds), with up to `threads` threads (default 1) for large images
//   temporalPatches(first, second | null, width, height, outH, outW, threads, bf16) -> the same for
//       one temporal step of a video (first -> slot 0, second -> slot 1; null repeats first), as
//       Float32Array or, with bf16, Uint16Array of bfloat16 bits
//   jpegToPatches(jpeg, orientation, width, height, outH, outW, maxPixels, threads?) -> Promise<the
//       same | null>: decode (libjpeg-turbo) + EXIF orientation + the above in one libuv job; null
//       when the fast lane declines the file (see jpeg_decode.h) and the general decoder must run
//   i420ToRgb(i420, width, height) -> Promise<Uint8Array> of RGB from a packed I420 frame
//       (BT.601 limited range, the WebRTC default), on the libuv pool
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
#include "jpeg_decode.h"
#include "modules.h"

namespace omni {
namespace {


// Sides above this are refused: no legitimate target comes close (the reference caps the area at
// 12.8 M pixels) and it keeps every index product far inside size_t and int32.
constexpr int64_t kMaxSide = 1 << 15;

struct Args {
  Napi::Uint8Array rgb;
  int width = 0, height = 0, out_h = 0, out_w = 0;
  int threads = 1;
  Napi::Uint8Array second;  // empty: image (first frame repeated)
  bool bf16 = false;
  // jpegToPatches: `rgb` holds the compressed file, width x height is the upright size.
  bool jpeg = false;
  int orientation = 1;
  int64_t max_pixels = 0;
};

bool IsUint8Array(const Napi::Value& v) {
  return v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
}

// (width, height, outH, outW) from arguments at..at+3: integers in 1..kMaxSide, the output sides
// multiples of 32.
void ReadSizes(const Napi::CallbackInfo& info, size_t at, Args& a) {
  Napi::Env env = info.Env();
  int v[4];
  const char* names[4] = {"width", "height", "outH", "outW"};
  for (int i = 0; i < 4; ++i) {
    const Napi::Value arg = info[at + i];
    const double d = arg.IsNumber() ? arg.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 1 && d <= kMaxSide) || d != static_cast<double>(static_cast<int64_t>(d))) {
      throw CodedError(env, "image_option_invalid",
                       std::string(names[i]) + " must be an integer in 1.." + std::to_string(kMaxSide));
    }
    v[i] = static_cast<int>(d);
  }
  a.width = v[0];
  a.height = v[1];
  a.out_h = v[2];
  a.out_w = v[3];
  if (a.out_h % image::kFactor != 0 || a.out_w % image::kFactor != 0) {
    throw CodedError(env, "image_option_invalid",
                     "outH and outW must be multiples of 32, got " + std::to_string(a.out_h) + "x" + std::to_string(a.out_w));
  }
}

// The optional thread count at argument i, clamped to 1..64.
void ReadThreads(const Napi::CallbackInfo& info, size_t i, Args& a) {
  if (info.Length() > i && info[i].IsNumber()) {
    const int t = info[i].As<Napi::Number>().Int32Value();
    a.threads = t < 1 ? 1 : (t > 64 ? 64 : t);
  }
}

// (rgb, width, height, outH, outW, threads?) from argument `base`; base 1 leaves argument 0 free.
Args ParseArgs(const Napi::CallbackInfo& info, size_t base = 0) {
  Napi::Env env = info.Env();
  if (info.Length() < 5 + base || !IsUint8Array(info[0])) {
    throw CodedError(env, "image_option_invalid", "expected (rgb: Uint8Array, width, height, outH, outW)");
  }
  Args a;
  ReadSizes(info, 1 + base, a);
  a.rgb = info[0].As<Napi::Uint8Array>();
  const size_t need = static_cast<size_t>(a.width) * a.height * 3;
  if (a.rgb.ByteLength() != need) {
    throw CodedError(env, "image_option_invalid",
                     "rgb must hold width * height * 3 = " + std::to_string(need) + " bytes, got " +
                         std::to_string(a.rgb.ByteLength()));
  }
  ReadThreads(info, 5 + base, a);
  return a;
}

class PatchesWorker : public Napi::AsyncWorker {
 public:
  PatchesWorker(Napi::Env env, const Args& a)
      : Napi::AsyncWorker(env, "omni.imageToPatches"),
        deferred_(Napi::Promise::Deferred::New(env)),
        rgb_ref_(Napi::Persistent(a.rgb)),  // keeps the pixels alive while the pool reads them
        rgb_(a.rgb.Data()),
        width_(a.width), height_(a.height), out_h_(a.out_h), out_w_(a.out_w), threads_(a.threads), bf16_(a.bf16),
        jpeg_(a.jpeg), jpeg_size_(a.rgb.ByteLength()), orientation_(a.orientation), max_pixels_(a.max_pixels) {
    if (!a.second.IsEmpty()) {
      second_ref_ = Napi::Persistent(a.second);
      second_ = a.second.Data();
    }
    // The output becomes a JavaScript ArrayBuffer now, before the work starts, not when it ends: a
    // 1080p image is 50 MB of it, and the collection V8 starts for that much external memory then
    // runs on the main thread while the pool computes, instead of after the result is ready
    // (measured: ~3-4.5 ms of mark-compact per 1080p call, which was on the critical path).
    // Throws std::bad_alloc (the bindings reject with image_too_large).
    const PooledFloats out = AcquireFloats(Floats());
    out_ = out.data;
    buffer_ = Napi::Persistent(ToArrayBuffer(env, out, Floats()));
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    try {
      if (jpeg_) {
        PatchesFromJpeg();
      } else {
        image::TemporalPatches(rgb_, second_, width_, height_, out_h_, out_w_, out_, bf16_, threads_);
      }
    } catch (const std::bad_alloc&) {
      SetError("out of memory for the decoded image");
    }
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (declined_) {
      deferred_.Resolve(env.Null());
      return;
    }
    const size_t count = Count();
    Napi::ArrayBuffer buffer = buffer_.Value();
    Napi::Object obj = Napi::Object::New(env);
    if (bf16_) {
      obj.Set("pixelValues", Napi::Uint16Array::New(env, count, buffer, 0));
    } else {
      obj.Set("pixelValues", Napi::Float32Array::New(env, count, buffer, 0));
    }
    obj.Set("gridT", Napi::Number::New(env, 1));
    obj.Set("gridH", Napi::Number::New(env, out_h_ / image::kPatch));
    obj.Set("gridW", Napi::Number::New(env, out_w_ / image::kPatch));
    deferred_.Resolve(obj);
  }

  void OnError(const Napi::Error& e) override {
    // The only failure past argument checks is running out of memory for a decoded JPEG.
    deferred_.Reject(CodedError(Env(), "image_too_large", e.Message()).Value());
  }

 private:
  // Values in the output, and the floats of pool memory they take (bf16 packs two per float).
  size_t Count() const {
    return static_cast<size_t>(out_h_ / image::kPatch) * (out_w_ / image::kPatch) * image::kRowFloats;
  }
  size_t Floats() const { return bf16_ ? Count() / 2 : Count(); }

  // Decodes the JPEG into this pool thread's reusable buffers (fresh multi-MB memory costs more to
  // fault in than decoding into it; oversized leftovers are dropped) and patchifies it: upright
  // files a few rows ahead of the resize, others whole and then turned. Sets declined_ when the
  // decoder gives up or the size is not the one the caller planned for.
  void PatchesFromJpeg() {
#if !defined(OMNI_HAVE_LIBJPEG)
    declined_ = true;  // built without libjpeg's headers (native/has_libjpeg.cjs)
#else
    thread_local std::vector<uint8_t> decoded, upright;
    constexpr size_t kKeep = size_t{64} << 20;
    for (auto* v : {&decoded, &upright}) {
      if (v->capacity() > kKeep) std::vector<uint8_t>().swap(*v);
    }
    image::JpegRows rows;
    image::JpegRgb info;
    const bool swap = orientation_ >= 5;
    if (!rows.Start(rgb_, jpeg_size_, max_pixels_, decoded, info) || (swap ? info.height : info.width) != width_ ||
        (swap ? info.width : info.height) != height_) {
      declined_ = true;
      return;
    }
    if (orientation_ == 1) {
      try {
        image::TemporalPatches(decoded.data(), nullptr, width_, height_, out_h_, out_w_, out_, bf16_, threads_, &rows);
      } catch (const image::JpegDeclined&) {
        declined_ = true;
        return;
      }
      declined_ = !rows.Finish();
      return;
    }
    if (!rows.Finish()) {
      declined_ = true;
      return;
    }
    upright.resize(decoded.size());
    image::OrientRgb(decoded.data(), info.width, info.height, orientation_, upright.data());
    image::TemporalPatches(upright.data(), nullptr, width_, height_, out_h_, out_w_, out_, bf16_, threads_);
#endif
  }

  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> rgb_ref_;
  Napi::Reference<Napi::Uint8Array> second_ref_;
  const uint8_t* rgb_;
  const uint8_t* second_ = nullptr;
  int width_, height_, out_h_, out_w_, threads_;
  bool bf16_;
  bool jpeg_;
  size_t jpeg_size_;
  int orientation_;
  int64_t max_pixels_;
  bool declined_ = false;
  float* out_ = nullptr;  // the backing store of buffer_
  Napi::Reference<Napi::ArrayBuffer> buffer_;
};

// Queues a PatchesWorker; no memory for its output rejects with image_too_large.
Napi::Value QueuePatches(Napi::Env env, const Args& a) {
  try {
    auto* worker = new PatchesWorker(env, a);
    worker->Queue();
    return worker->Promise();
  } catch (const std::bad_alloc&) {
    auto deferred = Napi::Promise::Deferred::New(env);
    const size_t values = static_cast<size_t>(a.out_h / image::kPatch) * (a.out_w / image::kPatch) * image::kRowFloats;
    deferred.Reject(CodedError(env, "image_too_large", "out of memory for " + std::to_string(values) + " values").Value());
    return deferred.Promise();
  }
}

Napi::Value ImageToPatches(const Napi::CallbackInfo& info) {
  return QueuePatches(info.Env(), ParseArgs(info));
}

// jpegToPatches(jpeg, orientation, width, height, outH, outW, maxPixels, threads?): width x height is
// the upright size the caller read from the header and planned outH x outW for.
Napi::Value JpegToPatches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 7 || !IsUint8Array(info[0]) || !info[1].IsNumber() || !info[6].IsNumber()) {
    throw CodedError(env, "image_option_invalid", "expected (jpeg: Uint8Array, orientation, width, height, outH, outW, maxPixels)");
  }
  const int orientation = info[1].As<Napi::Number>().Int32Value();
  const double max_pixels = info[6].As<Napi::Number>().DoubleValue();
  if (orientation < 1 || orientation > 8 || !(max_pixels >= 1)) {
    throw CodedError(env, "image_option_invalid", "orientation must be 1..8 and maxPixels positive");
  }
  Args a;
  ReadSizes(info, 2, a);
  ReadThreads(info, 7, a);
  a.rgb = info[0].As<Napi::Uint8Array>();
  a.jpeg = true;
  a.orientation = orientation;
  a.max_pixels = static_cast<int64_t>(max_pixels);
  return QueuePatches(env, a);
}

// temporalPatches(first, second | null, width, height, outH, outW, threads, bf16)
Napi::Value TemporalPatches(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Args a = ParseArgs(info, 1);
  if (info.Length() > 1 && IsUint8Array(info[1])) {
    a.second = info[1].As<Napi::Uint8Array>();
    if (a.second.ByteLength() != a.rgb.ByteLength()) {
      throw CodedError(env, "image_option_invalid", "both frames of a temporal patch must have the same size");
    }
  } else if (info.Length() < 2 || !(info[1].IsNull() || info[1].IsUndefined())) {
    throw CodedError(env, "image_option_invalid", "second frame must be a Uint8Array or null");
  }
  a.bf16 = info.Length() > 7 && info[7].ToBoolean().Value();
  return QueuePatches(env, a);
}

class I420Worker : public Napi::AsyncWorker {
 public:
  I420Worker(Napi::Env env, Napi::Uint8Array i420, int width, int height)
      : Napi::AsyncWorker(env, "omni.i420ToRgb"),
        deferred_(Napi::Promise::Deferred::New(env)),
        in_ref_(Napi::Persistent(i420)),
        in_(i420.Data()),
        width_(width), height_(height),
        out_(Napi::Persistent(Napi::Uint8Array::New(env, static_cast<size_t>(width) * height * 3))),
        out_data_(out_.Value().Data()) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override {
    const int cw = (width_ + 1) / 2, ch = (height_ + 1) / 2;
    const uint8_t* u = in_ + static_cast<size_t>(width_) * height_;
    const uint8_t* v = u + static_cast<size_t>(cw) * ch;
    image::I420ToRgb(in_, width_, u, v, cw, width_, height_, out_data_);
  }
  void OnOK() override { deferred_.Resolve(out_.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::Reference<Napi::Uint8Array> in_ref_;
  const uint8_t* in_;
  int width_, height_;
  Napi::Reference<Napi::Uint8Array> out_;
  uint8_t* out_data_;
};

Napi::Value I420ToRgb(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guarded(env, [&]() -> Napi::Value {
    if (info.Length() < 3 || !IsUint8Array(info[0]) || !info[1].IsNumber() || !info[2].IsNumber()) {
      throw CodedError(env, "frame_invalid", "expected (i420: Uint8Array, width, height)");
    }
    const double w = info[1].As<Napi::Number>().DoubleValue(), h = info[2].As<Napi::Number>().DoubleValue();
    if (!(w >= 1 && w <= kMaxSide && h >= 1 && h <= kMaxSide) || w != static_cast<int>(w) || h != static_cast<int>(h)) {
      throw CodedError(env, "frame_invalid", "width and height must be integers in 1.." + std::to_string(kMaxSide));
    }
    const int width = static_cast<int>(w), height = static_cast<int>(h);
    const size_t need = static_cast<size_t>(width) * height + 2 * static_cast<size_t>((width + 1) / 2) * ((height + 1) / 2);
    auto i420 = info[0].As<Napi::Uint8Array>();
    if (i420.ByteLength() != need) {
      throw CodedError(env, "frame_invalid", "an I420 frame of " + std::to_string(width) + "x" + std::to_string(height) +
                                                 " is " + std::to_string(need) + " bytes, got " +
                                                 std::to_string(i420.ByteLength()));
    }
    auto* worker = new I420Worker(env, i420, width, height);
    worker->Queue();
    return worker->Promise();
  });
}

// RGBA -> RGB on white, on the libuv pool (a multi-megapixel image is a few milliseconds).
// Four channels in, RGB out, on the libuv pool: RGBA over white, or CMYK as Pillow converts it.
class CompositeWorker : public Napi::AsyncWorker {
 public:
  using Convert = void (*)(const uint8_t*, size_t, uint8_t*);
  CompositeWorker(Napi::Env env, Napi::Uint8Array rgba, Convert convert = image::CompositeOnWhite)
      : Napi::AsyncWorker(env, "omni.compositeOnWhite"),
        convert_(convert),
        deferred_(Napi::Promise::Deferred::New(env)),
        rgba_ref_(Napi::Persistent(rgba)),
        rgba_(rgba.Data()),
        pixels_(rgba.ByteLength() / 4),
        out_(Napi::Persistent(Napi::Uint8Array::New(env, pixels_ * 3))),
        out_data_(out_.Value().Data()) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }
  void Execute() override { convert_(rgba_, pixels_, out_data_); }
  void OnOK() override { deferred_.Resolve(out_.Value()); }

 private:
  Convert convert_;
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

Napi::Value CmykToRgb(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !IsUint8Array(info[0]) || info[0].As<Napi::Uint8Array>().ByteLength() % 4 != 0) {
    throw CodedError(info.Env(), "image_option_invalid", "expected a Uint8Array of CMYK pixels (length a multiple of 4)");
  }
  auto* worker = new CompositeWorker(info.Env(), info[0].As<Napi::Uint8Array>(), image::CmykToRgb);
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
  TuneAllocator();  // before the first image is decoded (decode.ts loads the addon first)
  exports.Set("imageToPatches", Napi::Function::New(env, ImageToPatches, "imageToPatches"));
  exports.Set("compositeOnWhite", Napi::Function::New(env, CompositeOnWhite, "compositeOnWhite"));
  exports.Set("jpegToPatches", Napi::Function::New(env, JpegToPatches, "jpegToPatches"));
  exports.Set("temporalPatches", Napi::Function::New(env, TemporalPatches, "temporalPatches"));
  exports.Set("i420ToRgb", Napi::Function::New(env, I420ToRgb, "i420ToRgb"));
  exports.Set("cmykToRgb", Napi::Function::New(env, CmykToRgb, "cmykToRgb"));
  exports.Set("imageResizeSync", Napi::Function::New(env, ImageResizeSync, "imageResizeSync"));
}

}  // namespace omni
