// Each kernel family registers its bindings on the addon's exports from its own *_binding.cc;
// addon.cc calls every Register* function declared here. Also the error helpers they share.
#pragma once
#include <napi.h>

#include <exception>
#include <new>
#include <string>

namespace omni {
void RegisterMel(Napi::Env env, Napi::Object exports);
void RegisterResample(Napi::Env env, Napi::Object exports);
void RegisterImage(Napi::Env env, Napi::Object exports);
void RegisterEngine(Napi::Env env, Napi::Object exports);
void RegisterEncoders(Napi::Env env, Napi::Object exports);
void RegisterCode2Wav(Napi::Env env, Napi::Object exports);

// An Error whose `code` the TypeScript side maps onto its catalogue (src/codecs/errors.ts).
inline Napi::Error CodedError(Napi::Env env, const char* code, const std::string& message) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code ? code : "internal_error"));
  return err;
}

// The first argument as a typed array of `type`, else a TypeError "expected a <expected>".
inline Napi::TypedArray TypedArg(const Napi::CallbackInfo& info, napi_typedarray_type type, const char* expected) {
  if (info.Length() < 1 || !info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != type) {
    throw Napi::TypeError::New(info.Env(), std::string("expected a ") + expected);
  }
  return info[0].As<Napi::TypedArray>();
}

// Runs a binding body so that C++ exceptions other than Napi::Error (out of memory, a thread that
// cannot start) reach JavaScript as coded errors instead of terminating the process.
template <typename F>
auto Guarded(Napi::Env env, F&& body) -> decltype(body()) {
  try {
    return body();
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw CodedError(env, "out_of_memory", "not enough memory for this input");
  } catch (const std::exception& e) {
    throw CodedError(env, "internal_error", e.what());
  }
}
}  // namespace omni
