#include "buffer_pool.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace omni {
namespace {

// Large outputs (a 1080p image is 50 MB of patches) come from 2 MiB-aligned mappings with
// transparent huge pages requested: 512x fewer page faults than 4 KiB pages.
constexpr size_t kHuge = size_t{2} << 20;
constexpr size_t kMaxCachedBytes = size_t{128} << 20;
constexpr size_t kMaxCachedBuffers = 64;

struct Pool {
  std::mutex mu;
  std::vector<PooledFloats> free;  // most recently released last
  size_t cached_bytes = 0;
  std::unordered_set<const void*> lent;  // data of the ArrayBuffers JavaScript holds (Recycle's check)
};

Pool& GetPool() {
  static Pool* pool = new Pool();  // never destroyed: finalizers may run during process exit
  return *pool;
}

PooledFloats Allocate(size_t count) {
  size_t bytes = ((count > 0 ? count : 1) * sizeof(float) + 63) / 64 * 64;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes >= kHuge) {
    // mmap'd directly, not through malloc (whose thresholds TuneAllocator raises): an evicted
    // buffer goes straight back to the kernel, and the 2 MiB alignment costs no heap space.
    bytes = (bytes + kHuge - 1) / kHuge * kHuge;
    void* raw = mmap(nullptr, bytes + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const uintptr_t start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = (start + kHuge - 1) / kHuge * kHuge;
    if (aligned > start) munmap(raw, aligned - start);
    if (aligned + bytes < start + bytes + kHuge) {
      munmap(reinterpret_cast<void*>(aligned + bytes), start + bytes + kHuge - (aligned + bytes));
    }
    madvise(reinterpret_cast<void*>(aligned), bytes, MADV_HUGEPAGE);  // advisory: ignored where THP is off
    return PooledFloats{reinterpret_cast<float*>(aligned), bytes / sizeof(float)};
  }
#endif
  void* p = nullptr;
  if (posix_memalign(&p, 64, bytes) != 0) throw std::bad_alloc();
  return PooledFloats{static_cast<float*>(p), bytes / sizeof(float)};
}

void Free(PooledFloats buffer) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (buffer.capacity * sizeof(float) >= kHuge) {
    munmap(buffer.data, buffer.capacity * sizeof(float));
    return;
  }
#endif
  std::free(buffer.data);
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
        Free(old);
      }
      pool.free.push_back(buffer);
      pool.cached_bytes += bytes;
      return;
    }
  }
  Free(buffer);
}

Napi::ArrayBuffer ToArrayBuffer(Napi::Env env, PooledFloats buffer, size_t count) {
  // No AdjustExternalMemory: V8 already counts an ArrayBuffer's external backing store towards
  // its GC trigger. Reporting it a second time doubled the rate of full mark-compact collections
  // (one per 1080p image instead of one per two), which cost more than the patches themselves.
  auto* held = new PooledFloats(buffer);
  Pool& pool = GetPool();
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    pool.lent.insert(held->data);
  }
  try {
    return Napi::ArrayBuffer::New(
        env, held->data, count * sizeof(float),
        [](Napi::Env, void*, PooledFloats* b) {
          {
            Pool& p = GetPool();
            std::lock_guard<std::mutex> lock(p.mu);
            p.lent.erase(b->data);
          }
          ReleaseFloats(*b);
          delete b;
        },
        held);
  } catch (...) {
    {
      std::lock_guard<std::mutex> lock(pool.mu);
      pool.lent.erase(held->data);
    }
    ReleaseFloats(*held);
    delete held;
    throw;
  }
}

bool Recycle(Napi::ArrayBuffer buffer) {
  // The memory goes back through the ArrayBuffer's own finalizer (Node runs it on the main thread
  // once the backing store is gone), never from here: whoever still holds the backing store -- an
  // in-flight write, a native job -- keeps it until done.
  const void* data = buffer.IsDetached() ? nullptr : buffer.Data();
  if (data == nullptr) return false;
  {
    Pool& pool = GetPool();
    std::lock_guard<std::mutex> lock(pool.mu);
    if (pool.lent.count(data) == 0) return false;
  }
  buffer.Detach();
  return true;
}

void TuneAllocator() {
#if defined(__GLIBC__)
  // Image decoding (sharp / libvips) allocates and frees several MB per image from libuv threads.
  // With glibc's defaults those blocks are mmap'd, or trimmed back to the kernel when freed, so
  // every decode page-faults its output in again: ~1000 faults per 1080p image, each several
  // microseconds under a hypervisor -- two thirds of the decode time. Serving blocks up to 32 MB
  // from the heap and keeping up to 32 MB free per arena lets them be reused. Left alone when the
  // operator tuned malloc through the environment.
  static const bool done = [] {
    for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
      if (std::getenv(name) != nullptr) return false;
    }
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if (tunables != nullptr && std::strstr(tunables, "glibc.malloc.") != nullptr) return false;
    constexpr int kThreshold = 32 << 20;  // glibc's largest mmap threshold on 64-bit
    mallopt(M_MMAP_THRESHOLD, kThreshold);
    mallopt(M_TRIM_THRESHOLD, kThreshold);
    return true;
  }();
  (void)done;
#endif
}

}  // namespace omni
