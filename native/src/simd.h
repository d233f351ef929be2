// Build-time SIMD policy for the hot kernels.
//
// The addon is compiled for the architecture's baseline (SSE2 on x86-64, NEON on arm64), so it
// loads on any machine of that architecture. On x86-64 Linux with GCC or Clang, OMNI_CLONES asks
// the compiler for an extra AVX2 copy of a loop-heavy function; the loader picks the best copy for
// the running CPU once, at load time (ifunc). Elsewhere it expands to nothing.
#pragma once

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(OMNI_NO_CLONES)
#define OMNI_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define OMNI_CLONES
#endif

namespace omni {
// Which instruction set the running CPU gives the cloned kernels; reported for diagnostics.
const char* SimdLevel();
}  // namespace omni
