#include "trainer/parallel.h"

#include <algorithm>
#include <memory>

namespace qforge {
namespace {

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

}  // namespace

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  // The calling thread runs chunk 0; workers run the others.
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { Worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n,
                             const std::function<void(int, int64_t, int64_t)>& fn) {
  if (num_threads_ == 1 || n < num_threads_) {
    int64_t begin, end;
    for (int i = 0; i < num_threads_; ++i) {
      ChunkRange(n, num_threads_, i, begin, end);
      if (begin < end) fn(i, begin, end);
    }
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &fn;
    task_size_ = n;
    pending_ = num_threads_ - 1;
    ++generation_;
  }
  start_.notify_all();
  int64_t begin, end;
  ChunkRange(n, num_threads_, 0, begin, end);
  fn(0, begin, end);
  std::unique_lock<std::mutex> lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
  task_ = nullptr;
}

void ThreadPool::Worker(int index) {
  uint64_t seen = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    const auto* task = task_;
    const int64_t n = task_size_;
    lock.unlock();
    int64_t begin, end;
    ChunkRange(n, num_threads_, index, begin, end);
    if (begin < end) (*task)(index, begin, end);
    lock.lock();
    if (--pending_ == 0) done_.notify_one();
  }
}

ThreadPool& Pool() { return *PoolInstance(); }

void ConfigurePool(int num_threads) {
  if (Pool().num_threads() != num_threads) PoolInstance() = std::make_unique<ThreadPool>(num_threads);
}

}  // namespace qforge
