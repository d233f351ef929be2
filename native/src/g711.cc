// G.711 as specified by the ITU-T G.191 reference implementation (g711.c): the scalar functions
// below are transcriptions of it; the kernels run through tables built from them at load time
// (64 Ki entries per encoder, 256 per decoder), which is both exact and faster than the branchy
// segment search.
#include "g711.h"

#include <array>

namespace omni {
namespace {

uint8_t MulawCompressRef(int16_t lin) {
  int absno = lin < 0 ? ((~lin) >> 2) : (lin >> 2);  // 14-bit magnitude, one's complement
  absno += 33;
  if (absno > 0x1FFF) absno = 0x1FFF;
  int i = absno >> 6;
  int segno = 1;
  while (i != 0) {
    segno++;
    i >>= 1;
  }
  int high_nibble = 0x0008 - segno;
  int low_nibble = 0x000F - ((absno >> segno) & 0x000F);
  int out = (high_nibble << 4) | low_nibble;
  if (lin >= 0) out |= 0x0080;
  return static_cast<uint8_t>(out);
}

int16_t MulawExpandRef(uint8_t log) {
  int sign = log < 0x0080 ? -1 : 1;
  int mantissa = ~static_cast<int>(log);
  int exponent = (mantissa >> 4) & 0x0007;
  int segment = exponent + 1;
  mantissa &= 0x000F;
  int step = 4 << segment;
  return static_cast<int16_t>(sign * ((0x0080 << exponent) + step * mantissa + step / 2 - 4 * 33));
}

uint8_t AlawCompressRef(int16_t lin) {
  int ix = lin < 0 ? ((~lin) >> 4) : (lin >> 4);  // 12-bit magnitude, one's complement
  if (ix > 15) {
    int iexp = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      iexp++;
    }
    ix -= 16;
    ix += iexp << 4;
  }
  if (lin >= 0) ix |= 0x0080;
  return static_cast<uint8_t>(ix ^ 0x0055);
}

int16_t AlawExpandRef(uint8_t log) {
  int ix = (log ^ 0x0055) & 0x007F;
  int iexp = ix >> 4;
  int mant = ix & 0x000F;
  if (iexp > 0) mant += 16;
  mant = (mant << 4) + 0x0008;
  if (iexp > 1) mant <<= (iexp - 1);
  return static_cast<int16_t>(log > 127 ? mant : -mant);
}

struct Tables {
  std::array<uint8_t, 65536> mulaw_enc;
  std::array<uint8_t, 65536> alaw_enc;
  std::array<int16_t, 256> mulaw_dec;
  std::array<int16_t, 256> alaw_dec;
  Tables() {
    for (int v = -32768; v <= 32767; ++v) {
      auto idx = static_cast<uint16_t>(v);
      mulaw_enc[idx] = MulawCompressRef(static_cast<int16_t>(v));
      alaw_enc[idx] = AlawCompressRef(static_cast<int16_t>(v));
    }
    for (int c = 0; c < 256; ++c) {
      mulaw_dec[c] = MulawExpandRef(static_cast<uint8_t>(c));
      alaw_dec[c] = AlawExpandRef(static_cast<uint8_t>(c));
    }
  }
};

const Tables& T() {
  static const Tables tables;  // thread-safe one-time init
  return tables;
}

}  // namespace

void MulawEncode(const int16_t* src, size_t n, uint8_t* dst) {
  const auto& t = T().mulaw_enc;
  for (size_t i = 0; i < n; ++i) dst[i] = t[static_cast<uint16_t>(src[i])];
}

void MulawDecode(const uint8_t* src, size_t n, int16_t* dst) {
  const auto& t = T().mulaw_dec;
  for (size_t i = 0; i < n; ++i) dst[i] = t[src[i]];
}

void AlawEncode(const int16_t* src, size_t n, uint8_t* dst) {
  const auto& t = T().alaw_enc;
  for (size_t i = 0; i < n; ++i) dst[i] = t[static_cast<uint16_t>(src[i])];
}

void AlawDecode(const uint8_t* src, size_t n, int16_t* dst) {
  const auto& t = T().alaw_dec;
  for (size_t i = 0; i < n; ++i) dst[i] = t[src[i]];
}

}  // namespace omni
