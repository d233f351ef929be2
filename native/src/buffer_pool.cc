#include "buffer_pool.h"

#include <cstdlib>
#include <mutex>
#include <new>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace omni {
namespace {

// Large outputs (a 1080p image is 50 MB of patches) come from 2 MiB-aligned blocks with
// transparent huge pages requested: 512x fewer page faults than 4 KiB pages.
constexpr size_t kHuge = size_t{2} << 20;
constexpr size_t kMaxCachedBytes = size_t{256} << 20;
constexpr size_t kMaxCachedBuffers = 64;

struct Pool {
  std::mutex mu;
  std::vector<PooledFloats> free;  // most recently released last
  size_t cached_bytes = 0;
};

Pool& GetPool() {
  static Pool* pool = new Pool();  // never destroyed: finalizers may run during process exit
  return *pool;
}

PooledFloats Allocate(size_t count) {
  size_t bytes = (count > 0 ? count : 1) * sizeof(float);
  const bool huge = bytes >= kHuge;
  const size_t align = huge ? kHuge : 64;
  bytes = (bytes + align - 1) / align * align;
  void* p = nullptr;
  if (posix_memalign(&p, align, bytes) != 0) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (huge) madvise(p, bytes, MADV_HUGEPAGE);  // advisory: ignored where THP is off
#endif
  return PooledFloats{static_cast<float*>(p), bytes / sizeof(float)};
}

}  // namespace

PooledFloats AcquireFloats(size_t count) {
  Pool& pool = GetPool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    // Smallest cached buffer that fits without wasting more than half of it.
    size_t best = pool.free.size();
    for (size_t i = 0; i < pool.free.size(); ++i) {
      const size_t cap = pool.free[i].capacity;
      if (cap >= count && cap <= 2 * count + 4096 &&
          (best == pool.free.size() || cap < pool.free[best].capacity)) {
        best = i;
      }
    }
    if (best != pool.free.size()) {
      PooledFloats b = pool.free[best];
      pool.free.erase(pool.free.begin() + static_cast<std::ptrdiff_t>(best));
      pool.cached_bytes -= b.capacity * sizeof(float);
      return b;
    }
  }
  return Allocate(count);
}

void ReleaseFloats(PooledFloats buffer) {
  Pool& pool = GetPool();
  const size_t bytes = buffer.capacity * sizeof(float);
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (bytes <= kMaxCachedBytes / 2) {
      while (!pool.free.empty() &&
             (pool.cached_bytes + bytes > kMaxCachedBytes || pool.free.size() >= kMaxCachedBuffers)) {
        PooledFloats old = pool.free.front();  // evict the oldest
        pool.free.erase(pool.free.begin());
        pool.cached_bytes -= old.capacity * sizeof(float);
        std::free(old.data);
      }
      pool.free.push_back(buffer);
      pool.cached_bytes += bytes;
      return;
    }
  }
  std::free(buffer.data);
}

Napi::ArrayBuffer ToArrayBuffer(Napi::Env env, PooledFloats buffer, size_t count) {
  auto* held = new PooledFloats(buffer);
  const int64_t bytes = static_cast<int64_t>(held->capacity * sizeof(float));
  Napi::ArrayBuffer array_buffer;
  try {
    array_buffer = Napi::ArrayBuffer::New(
        env, held->data, count * sizeof(float),
        [](Napi::Env e, void*, PooledFloats* b) {
          Napi::MemoryManagement::AdjustExternalMemory(e, -static_cast<int64_t>(b->capacity * sizeof(float)));
          ReleaseFloats(*b);
          delete b;
        },
        held);
  } catch (...) {
    ReleaseFloats(*held);
    delete held;
    throw;
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return array_buffer;
}

}  // namespace omni
