#include "buffer_pool.h"

#include <mutex>
#include <vector>

namespace omni {
namespace {

constexpr size_t kMaxCachedBytes = size_t{128} << 20;
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
  return PooledFloats{new float[count > 0 ? count : 1], count > 0 ? count : 1};
}

void ReleaseFloats(PooledFloats buffer) {
  Pool& pool = GetPool();
  const size_t bytes = buffer.capacity * sizeof(float);
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    if (bytes <= kMaxCachedBytes / 4) {
      while (!pool.free.empty() &&
             (pool.cached_bytes + bytes > kMaxCachedBytes || pool.free.size() >= kMaxCachedBuffers)) {
        PooledFloats old = pool.free.front();  // evict the oldest
        pool.free.erase(pool.free.begin());
        pool.cached_bytes -= old.capacity * sizeof(float);
        delete[] old.data;
      }
      pool.free.push_back(buffer);
      pool.cached_bytes += bytes;
      return;
    }
  }
  delete[] buffer.data;
}

}  // namespace omni
