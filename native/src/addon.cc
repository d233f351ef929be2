// N-API surface of the codec kernels. Each binding validates its argument, allocates the output
// and runs the kernel synchronously: these kernels cost well under a microsecond per 20 ms chunk,
// far below what a hop to a worker thread would cost. Long-running kernels get async bindings.
#include <napi.h>

#include "buffer_pool.h"
#include "g711.h"
#include "modules.h"
#include "pcm.h"
#include "simd.h"

namespace omni {

const char* SimdLevel() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "sse2";
#elif defined(__aarch64__)
  return "neon";
#else
  return "scalar";
#endif
}

namespace {

template <typename T>
const T* Data(const Napi::TypedArray& a) {
  auto* base = static_cast<const uint8_t*>(a.ArrayBuffer().Data());
  return reinterpret_cast<const T*>(base + a.ByteOffset());
}

Napi::Value Pcm16LeToFloat32(const Napi::CallbackInfo& info) {
  auto src = TypedArg(info, napi_uint8_array, "Uint8Array of little-endian PCM16 bytes");
  size_t bytes = src.ByteLength();
  if (bytes % 2 != 0) {
    throw Napi::RangeError::New(info.Env(), "PCM16 data must have an even number of bytes, got " +
                                                std::to_string(bytes));
  }
  auto out = Napi::Float32Array::New(info.Env(), bytes / 2);
  Pcm16LeToFloat(Data<uint8_t>(src), bytes / 2, out.Data());
  return out;
}

Napi::Value Float32ToPcm16Le(const Napi::CallbackInfo& info) {
  auto src = TypedArg(info, napi_float32_array, "Float32Array");
  size_t n = src.ElementLength();
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), n * 2);
  FloatToPcm16Le(Data<float>(src), n, out.Data());
  return out;
}

template <void (*Kernel)(const int16_t*, size_t, uint8_t*)>
Napi::Value Encode(const Napi::CallbackInfo& info) {
  auto src = TypedArg(info, napi_int16_array, "Int16Array of linear PCM samples");
  size_t n = src.ElementLength();
  auto out = Napi::Buffer<uint8_t>::New(info.Env(), n);
  Kernel(Data<int16_t>(src), n, out.Data());
  return out;
}

template <void (*Kernel)(const uint8_t*, size_t, int16_t*)>
Napi::Value Decode(const Napi::CallbackInfo& info) {
  auto src = TypedArg(info, napi_uint8_array, "Uint8Array of G.711 bytes");
  size_t n = src.ByteLength();
  auto out = Napi::Int16Array::New(info.Env(), n);
  Kernel(Data<uint8_t>(src), n, out.Data());
  return out;
}

// recycle(view | ArrayBuffer) -> boolean: see Recycle in buffer_pool.h.
Napi::Value RecycleOutput(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const Napi::Value v = info.Length() > 0 ? info[0] : env.Undefined();
  Napi::ArrayBuffer buffer;
  if (v.IsArrayBuffer()) {
    buffer = v.As<Napi::ArrayBuffer>();
  } else if (v.IsTypedArray()) {
    buffer = v.As<Napi::TypedArray>().ArrayBuffer();
  } else {
    throw Napi::TypeError::New(env, "expected a typed array or an ArrayBuffer");
  }
  return Napi::Boolean::New(env, Recycle(buffer));
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("pcm16leToFloat32", Napi::Function::New(env, Pcm16LeToFloat32, "pcm16leToFloat32"));
  exports.Set("float32ToPcm16le", Napi::Function::New(env, Float32ToPcm16Le, "float32ToPcm16le"));
  exports.Set("mulawEncode", Napi::Function::New(env, Encode<MulawEncode>, "mulawEncode"));
  exports.Set("mulawDecode", Napi::Function::New(env, Decode<MulawDecode>, "mulawDecode"));
  exports.Set("alawEncode", Napi::Function::New(env, Encode<AlawEncode>, "alawEncode"));
  exports.Set("alawDecode", Napi::Function::New(env, Decode<AlawDecode>, "alawDecode"));
  exports.Set("recycle", Napi::Function::New(env, RecycleOutput, "recycle"));
  RegisterMel(env, exports);
  RegisterResample(env, exports);
  RegisterImage(env, exports);
  RegisterEngine(env, exports);
  RegisterEncoders(env, exports);
  RegisterCode2Wav(env, exports);
  exports.Set("simdLevel", Napi::String::New(env, SimdLevel()));
  exports.Set("abiVersion", Napi::Number::New(env, 10));
  return exports;
}

}  // namespace
}  // namespace omni

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return omni::Init(env, exports); }

NODE_API_MODULE(omni_native, InitAddon)
