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

// Kernels whose vector form needs byte shuffles the compiler does not generate from plain loops
// carry a hand-written AVX2 variant, compiled with OMNI_AVX2 and chosen at run time with
// CpuHasAvx2(); the portable loop is always built too.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(OMNI_NO_CLONES)
#define OMNI_HAVE_AVX2 1
#define OMNI_AVX2 __attribute__((target("avx2")))
#endif

namespace omni {
#if defined(OMNI_HAVE_AVX2)
inline bool CpuHasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
#endif

// Which instruction set the running CPU gives the cloned kernels; reported for diagnostics.
const char* SimdLevel();
}  // namespace omni
