// Each kernel family registers its bindings on the addon's exports from its own *_binding.cc;
// addon.cc calls every Register* function declared here.
#pragma once
#include <napi.h>

namespace omni {
}  // namespace omni
