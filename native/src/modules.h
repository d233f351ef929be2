// Each kernel family registers its bindings on the addon's exports from its own *_binding.cc;
// addon.cc calls every Register* function declared here.
#pragma once
#include <napi.h>

namespace omni {
void RegisterMel(Napi::Env env, Napi::Object exports);
void RegisterResample(Napi::Env env, Napi::Object exports);
void RegisterImage(Napi::Env env, Napi::Object exports);
}  // namespace omni
