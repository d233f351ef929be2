#pragma once
#include <cstddef>
#include <cstdint>

namespace omni {
// ITU-T G.711 companding, bit-exact with the ITU-T G.191 reference (g711.c).
// Encoders take 16-bit linear PCM (native int16), decoders produce it.
void MulawEncode(const int16_t* src, size_t n, uint8_t* dst);
void MulawDecode(const uint8_t* src, size_t n, int16_t* dst);
void AlawEncode(const int16_t* src, size_t n, uint8_t* dst);
void AlawDecode(const uint8_t* src, size_t n, int16_t* dst);
}  // namespace omni
