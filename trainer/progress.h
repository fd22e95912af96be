// The per-epoch progress line: images/s, running loss and accuracy, ETA. On a
// terminal it redraws one line in place; otherwise (logs, CI) it prints a plain
// line every 10% of the epoch.
#ifndef QFORGE_TRAINER_PROGRESS_H_
#define QFORGE_TRAINER_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace qforge {

class Progress {
 public:
  // `out` null: prints nothing (the ranks of a data-parallel run but rank 0).
  Progress(std::string label, int64_t total_batches, std::FILE* out = stdout);
  // After each batch: the epoch's totals so far.
  void Update(int64_t batches_done, int64_t images, double loss_sum, int64_t correct);
  // Ends the line (terminal) so the epoch summary starts on a fresh one.
  void Finish();
  double elapsed_seconds() const;

 private:
  std::string label_;
  int64_t total_;
  std::FILE* out_;
  bool terminal_;
  int last_decile_ = 0;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_PROGRESS_H_
