#include "thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define OMNI_POOL_PAUSE() _mm_pause()
#else
#define OMNI_POOL_PAUSE() ((void)0)
#endif

namespace omni::engine {

namespace {
// How long a thread polls before it sleeps on the condition variable: a decode step runs a few
// dozen short jobs back to back, and a futex wake-up costs more than the gap between two of them.
constexpr auto kSpin = std::chrono::microseconds(50);

// Polls `ready` for up to kSpin; true once it holds.
template <typename F>
bool SpinFor(F ready) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      OMNI_POOL_PAUSE();
    }
    if (std::chrono::steady_clock::now() >= until) return ready();
  }
}
}  // namespace

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true, std::memory_order_release);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::Work(const std::function<void(int64_t)>* fn, int64_t tasks) {
  for (;;) {
    const int64_t i = next_.fetch_add(1, std::memory_order_relaxed);
    if (i >= tasks) return;
    try {
      (*fn)(i);
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_) error_ = std::current_exception();
      next_.store(tasks, std::memory_order_relaxed);  // stop handing out work
    }
  }
}

void ThreadPool::Loop() {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t)>* fn;
    int64_t tasks;
    // Poll first (no lock, no syscall); the job itself is still read under the mutex.
    SpinFor([&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; });
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_relaxed) != seen; });
      if (stop_.load(std::memory_order_relaxed)) return;
      seen = generation_.load(std::memory_order_relaxed);
      fn = fn_;
      tasks = tasks_;
      active_.fetch_add(1, std::memory_order_relaxed);
      joined_.fetch_add(1, std::memory_order_relaxed);
    }
    Work(fn, tasks);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (active_.fetch_sub(1, std::memory_order_release) == 1) done_.notify_all();
    }
  }
}

void ThreadPool::Run(int64_t tasks, const std::function<void(int64_t)>& fn) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (int64_t i = 0; i < tasks; ++i) fn(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    fn_ = &fn;
    tasks_ = tasks;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    joined_.store(0, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();  // no system call when every worker is still polling
  Work(&fn, tasks);
  std::exception_ptr error;
  {
    // Every worker picks up every job (and leaves it) before fn goes out of scope, so none can
    // hold a stale job when the next Run starts.
    const int workers = static_cast<int>(workers_.size());
    auto finished = [&] {
      return joined_.load(std::memory_order_acquire) == workers && active_.load(std::memory_order_acquire) == 0;
    };
    SpinFor(finished);
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, finished);
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace omni::engine
