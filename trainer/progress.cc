#include "trainer/progress.h"

#include <unistd.h>

#include <algorithm>

namespace qforge {

Progress::Progress(std::string label, int64_t total_batches, std::FILE* out)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total_batches, 1)),
      out_(out),
      terminal_(out != nullptr && isatty(fileno(out)) != 0),
      start_(std::chrono::steady_clock::now()) {}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::Update(int64_t batches_done, int64_t images, double loss_sum, int64_t correct) {
  if (out_ == nullptr) return;
  const double seconds = elapsed_seconds();
  const double fraction = static_cast<double>(batches_done) / total_;
  const int decile = static_cast<int>(fraction * 10);
  if (!terminal_ && decile == last_decile_ && batches_done != total_) return;
  last_decile_ = decile;
  const double eta = fraction > 0 ? seconds * (1 - fraction) / fraction : 0;
  const int width = 30, filled = static_cast<int>(fraction * width);
  const std::string bar = std::string(filled, '=') + std::string(width - filled, ' ');
  std::fprintf(out_, "%s%s [%s] %lld/%lld  %.0f img/s  loss %.4f  acc %.2f%%  ETA %d:%02d%s",
               terminal_ ? "\r" : "", label_.c_str(), bar.c_str(),
               static_cast<long long>(batches_done), static_cast<long long>(total_),
               images / std::max(seconds, 1e-9), loss_sum / std::max<int64_t>(images, 1),
               100.0 * correct / std::max<int64_t>(images, 1), static_cast<int>(eta) / 60,
               static_cast<int>(eta) % 60, terminal_ ? "" : "\n");
  std::fflush(out_);
}

void Progress::Finish() {
  if (out_ == nullptr) return;
  if (terminal_) std::fprintf(out_, "\n");
  std::fflush(out_);
}

}  // namespace qforge
