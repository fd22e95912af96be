#include "trainer/nn/parallel.h"

#include <immintrin.h>

#include <algorithm>
#include <memory>

namespace qforge {
namespace {

// About 20 microseconds of polling before a thread blocks.
constexpr int kSpinIterations = 4000;

// Chunk i of num_chunks over [0, n): sizes differ by at most one.
void ChunkRange(int64_t n, int num_chunks, int i, int64_t& begin, int64_t& end) {
  const int64_t base = n / num_chunks, extra = n % num_chunks;
  begin = i * base + std::min<int64_t>(i, extra);
  end = begin + base + (i < extra ? 1 : 0);
}

std::unique_ptr<ThreadPool>& PoolInstance() {
  static std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>(1);
  return pool;
}

// Polls `done` for a while; true if it became true.
template <typename F>
bool SpinUntil(const F& done) {
  for (int i = 0; i < kSpinIterations; ++i) {
    if (done()) return true;
    _mm_pause();
  }
  return done();
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  // The calling thread runs chunk 0; workers run the others.
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { Worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true);
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n,
                             const std::function<void(int, int64_t, int64_t)>& fn) {
  int64_t begin, end;
  if (num_threads_ == 1 || n < num_threads_) {
    for (int i = 0; i < num_threads_; ++i) {
      ChunkRange(n, num_threads_, i, begin, end);
      if (begin < end) fn(i, begin, end);
    }
    return;
  }
  task_ = &fn;
  task_size_ = n;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  {
    // Under the mutex, so a worker deciding to sleep cannot miss the new task.
    std::lock_guard<std::mutex> lock(mutex_);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();
  ChunkRange(n, num_threads_, 0, begin, end);
  fn(0, begin, end);
  auto finished = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (SpinUntil(finished)) return;
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, finished);
}

void ThreadPool::Worker(int index) {
  uint64_t seen = 0;
  while (true) {
    auto ready = [&] {
      return stopping_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen;
    };
    if (!SpinUntil(ready)) {
      std::unique_lock<std::mutex> lock(mutex_);
      start_.wait(lock, ready);
    }
    if (stopping_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    int64_t begin, end;
    ChunkRange(task_size_, num_threads_, index, begin, end);
    if (begin < end) (*task_)(index, begin, end);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the caller's wait
      done_.notify_one();
    }
  }
}

ThreadPool& Pool() { return *PoolInstance(); }

void ConfigurePool(int num_threads) {
  if (Pool().num_threads() != num_threads) PoolInstance() = std::make_unique<ThreadPool>(num_threads);
}

}  // namespace qforge
