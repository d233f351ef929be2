#include "pcm.h"

#include <cmath>
#include <cstring>

#include "simd.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "omni_native assumes a little-endian host (x86-64, arm64)"
#endif

namespace omni {

OMNI_CLONES void Pcm16LeToFloat(const uint8_t* src, size_t samples, float* dst) {
  constexpr float kScale = 1.0f / 32768.0f;
  for (size_t i = 0; i < samples; ++i) {
    int16_t s;
    std::memcpy(&s, src + 2 * i, 2);  // unaligned-safe; compiles to a plain load
    dst[i] = static_cast<float>(s) * kScale;
  }
}

OMNI_CLONES void FloatToPcm16Le(const float* src, size_t samples, uint8_t* dst) {
  for (size_t i = 0; i < samples; ++i) {
    float v = src[i] * 32768.0f;
    v = (v == v) ? v : 0.0f;  // NaN -> silence
    v = v < -32768.0f ? -32768.0f : v;
    v = v > 32767.0f ? 32767.0f : v;
    // lrintf rounds half to even under the default rounding mode, like numpy's rint.
    int16_t s = static_cast<int16_t>(std::lrintf(v));
    std::memcpy(dst + 2 * i, &s, 2);
  }
}

}  // namespace omni
