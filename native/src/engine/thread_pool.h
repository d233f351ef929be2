// A small fixed pool for the engine's data-parallel loops. Run(tasks, fn) calls fn(i) for every
// i in [0, tasks) over the pool's threads and the calling thread, and returns when all are done.
// One Run at a time per pool (the model serialises its forward passes); tasks never split a
// reduction, so results do not depend on the thread count.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace omni::engine {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  void Run(int64_t tasks, const std::function<void(int64_t)>& fn);

 private:
  void Work(const std::function<void(int64_t)>* fn, int64_t tasks);
  void Loop();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  // Written under mu_; atomics so that idle threads can poll them without it (see thread_pool.cc).
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  const std::function<void(int64_t)>* fn_ = nullptr;
  int64_t tasks_ = 0;
  std::atomic<int64_t> next_{0};
  std::atomic<int> joined_{0};  // workers that picked up the current job
  std::atomic<int> active_{0};  // workers still inside the current job
  std::exception_ptr error_;
};

}  // namespace omni::engine
