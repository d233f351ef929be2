#include "thread_pool.h"

namespace omni::engine {

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { Loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
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
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      fn = fn_;
      tasks = tasks_;
      ++active_;
      ++joined_;
    }
    Work(fn, tasks);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_.notify_all();
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
    joined_ = 0;
    ++generation_;
  }
  wake_.notify_all();
  Work(&fn, tasks);
  std::exception_ptr error;
  {
    // Every worker picks up every job (and leaves it) before fn goes out of scope, so none can
    // hold a stale job when the next Run starts.
    std::unique_lock<std::mutex> lock(mu_);
    const int workers = static_cast<int>(workers_.size());
    done_.wait(lock, [&] { return joined_ == workers && active_ == 0; });
    error = error_;
    error_ = nullptr;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace omni::engine
