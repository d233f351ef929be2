// Pieces shared by the engine bindings (encoders, code-to-wave): the promise worker that turns
// engine exceptions into coded rejections, and the reading of a load spec's mapped files and
// tensor list (built by src/runtime/*.ts from the checkpoint headers).
#pragma once
#include <napi.h>

#include <algorithm>
#include <new>
#include <string>
#include <vector>

#include "engine/thinker.h"  // EngineError, TensorRef
#include "modules.h"

namespace omni::engine_spec {

// An AsyncWorker settling a promise; Run() may throw EngineError (its code is kept), bad_alloc
// (out_of_memory) or any std::exception (internal_error).
class CodedWorker : public Napi::AsyncWorker {
 public:
  CodedWorker(Napi::Env env, const char* name) : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  virtual void Run() = 0;
  void Execute() override {
    try {
      Run();
      return;
    } catch (const engine::EngineError& e) {
      code_ = e.code();
      message_ = e.what();
    } catch (const std::bad_alloc&) {
      code_ = "out_of_memory";
      message_ = "not enough memory for this input";
    } catch (const std::exception& e) {
      code_ = "internal_error";
      message_ = e.what();
    }
    SetError(message_);
  }
  void OnError(const Napi::Error&) override { deferred_.Reject(CodedError(Env(), code_, message_).Value()); }

  Napi::Promise::Deferred deferred_;
  const char* code_ = "internal_error";
  std::string message_;
};

inline Napi::Float32Array ToFloat32Array(Napi::Env env, const std::vector<float>& v) {
  auto out = Napi::Float32Array::New(env, v.size());
  std::copy(v.begin(), v.end(), out.Data());
  return out;
}

struct FilesAndTensors {
  std::vector<std::string> files;
  std::vector<engine::TensorRef> tensors;
};

// `files` (paths) and `tensors` ({key, name?, file, dtype F32|BF16|F16, shape, offset, bytes}) of a
// load spec; `what` names the spec in errors (e.g. "encoder", "code2wav").
inline FilesAndTensors ReadFilesAndTensors(const Napi::Object& spec, const std::string& what) {
  Napi::Env env = spec.Env();
  auto fail = [&](const std::string& m) { return CodedError(env, "checkpoint_config_invalid", what + " load spec: " + m); };
  auto integer = [&](const Napi::Object& o, const char* name) -> int64_t {
    Napi::Value v = o.Get(name);
    const double d = v.IsNumber() ? v.As<Napi::Number>().DoubleValue() : -1;
    if (!(d >= 0 && d <= 9007199254740991.0) || d != static_cast<double>(static_cast<int64_t>(d))) {
      throw fail(std::string(name) + " must be an integer >= 0");
    }
    return static_cast<int64_t>(d);
  };
  FilesAndTensors out;
  Napi::Value files = spec.Get("files");
  if (!files.IsArray()) throw fail("files must be an array of paths");
  Napi::Array fa = files.As<Napi::Array>();
  for (uint32_t i = 0; i < fa.Length(); ++i) {
    Napi::Value f = fa.Get(i);
    if (!f.IsString()) throw fail("files must be an array of paths");
    out.files.push_back(f.As<Napi::String>().Utf8Value());
  }
  Napi::Value tensors = spec.Get("tensors");
  if (!tensors.IsArray()) throw fail("tensors must be an array");
  Napi::Array ta = tensors.As<Napi::Array>();
  for (uint32_t i = 0; i < ta.Length(); ++i) {
    Napi::Value tv = ta.Get(i);
    if (!tv.IsObject()) throw fail("tensors must hold objects");
    Napi::Object t = tv.As<Napi::Object>();
    engine::TensorRef e;
    Napi::Value key = t.Get("key"), name = t.Get("name"), dtype = t.Get("dtype"), shape = t.Get("shape");
    if (!key.IsString() || !dtype.IsString() || !shape.IsArray()) throw fail("tensor entries need key, dtype and shape");
    e.key = key.As<Napi::String>().Utf8Value();
    e.name = name.IsString() ? name.As<Napi::String>().Utf8Value() : e.key;
    const std::string d = dtype.As<Napi::String>().Utf8Value();
    if (d == "F32") {
      e.dtype = engine::DType::F32;
    } else if (d == "BF16") {
      e.dtype = engine::DType::BF16;
    } else if (d == "F16") {
      e.dtype = engine::DType::F16;
    } else {
      throw CodedError(env, "checkpoint_tensor_dtype", "checkpoint tensor " + e.name + " has dtype " + d + "; the " + what + " reads F32, BF16 or F16");
    }
    e.file = static_cast<int>(integer(t, "file"));
    e.offset = static_cast<uint64_t>(integer(t, "offset"));
    e.bytes = static_cast<uint64_t>(integer(t, "bytes"));
    Napi::Array sa = shape.As<Napi::Array>();
    for (uint32_t k = 0; k < sa.Length(); ++k) {
      Napi::Value s = sa.Get(k);
      if (!s.IsNumber() || s.As<Napi::Number>().DoubleValue() < 0) throw fail("tensor shapes must be non-negative integers");
      e.shape.push_back(s.As<Napi::Number>().Int64Value());
    }
    out.tensors.push_back(std::move(e));
  }
  return out;
}

}  // namespace omni::engine_spec
