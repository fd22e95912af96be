// A fixed pool of worker threads with a static-partition parallel for. Work is
// split into the same contiguous chunks for a given thread count on every run,
// so reductions done per chunk are reproducible bit for bit.
//
// A training step makes hundreds of short parallel calls, so waking a sleeping
// thread each time (tens of microseconds) would cost a tenth of the step:
// workers and the caller spin briefly on an atomic before they block.
#ifndef QFORGE_TRAINER_NN_PARALLEL_H_
#define QFORGE_TRAINER_NN_PARALLEL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace qforge {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // Calls fn(chunk, begin, end) for num_threads() contiguous chunks of [0, n)
  // (chunk i is always the same range for the same n) and waits for all. Not
  // reentrant: fn must not call ParallelFor.
  void ParallelFor(int64_t n, const std::function<void(int chunk, int64_t begin, int64_t end)>& fn);

 private:
  void Worker(int index);

  const int num_threads_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(int, int64_t, int64_t)>* task_ = nullptr;
  int64_t task_size_ = 0;
  std::atomic<uint64_t> generation_{0};  // bumped (under mutex_) for each task
  std::atomic<int> pending_{0};          // workers still running the task
  std::atomic<bool> stopping_{false};
};

// The pool the trainer's layers use; Configure before training (default: 1 thread).
ThreadPool& Pool();
void ConfigurePool(int num_threads);

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_PARALLEL_H_
