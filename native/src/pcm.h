#pragma once
#include <cstddef>
#include <cstdint>

namespace omni {
// Little-endian PCM16 bytes to float in [-1, 1): x / 32768. Reads bytes, so any alignment works.
void Pcm16LeToFloat(const uint8_t* src, size_t samples, float* dst);
// Float to little-endian PCM16 bytes: round-to-nearest of x * 32768, clamped to [-32768, 32767].
// NaN becomes 0. PCM16 -> float -> PCM16 is the identity.
void FloatToPcm16Le(const float* src, size_t samples, uint8_t* dst);
}  // namespace omni
