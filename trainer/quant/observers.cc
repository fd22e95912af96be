#include "trainer/quant/observers.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace qforge {
namespace {

absl::Status NothingObserved() {
  return absl::FailedPreconditionError("the observer has seen no values (run calibration first)");
}

// The L2 norm of values spread uniformly over [begin, end) with `density`:
// density * (end^3 - begin^3) / 3 (PyTorch's HistogramObserver._get_norm).
float Norm(float begin, float end, float density) {
  return density * (end * end * end - begin * begin * begin) / 3.0f;
}

}  // namespace

Range FiniteMinMax(const float* values, int64_t count) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(values[i])) continue;
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  return {lo, hi};
}

void MovingAverageStep(const Range& batch, float averaging_constant, float* min, float* max) {
  if (batch.first > batch.second) return;  // nothing finite in the batch
  if (*min > *max) {  // the first batch
    *min = batch.first;
    *max = batch.second;
    return;
  }
  *min = *min + averaging_constant * (batch.first - *min);
  *max = *max + averaging_constant * (batch.second - *max);
}

void MinMaxObserver::Observe(const float* values, int64_t count) {
  const auto [lo, hi] = FiniteMinMax(values, count);
  min_ = std::min(min_, lo);
  max_ = std::max(max_, hi);
}

absl::StatusOr<Range> MinMaxObserver::GetRange() const {
  if (min_ > max_) return NothingObserved();
  return Range{min_, max_};
}

void MovingAverageMinMaxObserver::Observe(const float* values, int64_t count) {
  MovingAverageStep(FiniteMinMax(values, count), averaging_constant_, &min_, &max_);
}

void PerChannelMinMaxObserver::Observe(const float* values, const std::vector<int64_t>& shape,
                                       int axis) {
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t channels = shape[axis];
  if (mins_.empty()) {
    mins_.assign(channels, std::numeric_limits<float>::infinity());
    maxs_.assign(channels, -std::numeric_limits<float>::infinity());
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      const auto [lo, hi] = FiniteMinMax(values + (o * channels + c) * inner, inner);
      mins_[c] = std::min(mins_[c], lo);
      maxs_[c] = std::max(maxs_[c], hi);
    }
  }
}

absl::StatusOr<std::vector<Range>> PerChannelMinMaxObserver::GetRanges() const {
  if (mins_.empty()) return NothingObserved();
  std::vector<Range> ranges(mins_.size());
  for (size_t c = 0; c < mins_.size(); ++c) ranges[c] = {mins_[c], maxs_[c]};
  return ranges;
}

// torch.histc: `bins_` equal bins over [lo, hi], the last one closed; values
// outside are ignored; an empty range is widened by 1 on each side.
std::vector<float> HistogramObserver::Histc(const float* values, int64_t count, float lo,
                                            float hi) const {
  if (lo == hi) {
    lo -= 1.0f;
    hi += 1.0f;
  }
  std::vector<float> h(bins_, 0.0f);
  for (int64_t i = 0; i < count; ++i) {
    const float x = values[i];
    if (!(x >= lo && x <= hi)) continue;  // also skips NaN
    int64_t bin = static_cast<int64_t>((x - lo) * bins_ / (hi - lo));
    h[std::min<int64_t>(bin, bins_ - 1)] += 1.0f;
  }
  return h;
}

void HistogramObserver::Observe(const float* values, int64_t count) {
  const auto [lo, hi] = FiniteMinMax(values, count);
  if (lo > hi) return;
  if (min_ > max_ || min_ == max_) {  // uninitialised, or a single value so far
    min_ = lo;
    max_ = hi;
    histogram_ = Histc(values, count, min_, max_);
    return;
  }
  float combined_min = std::min(lo, min_);
  float combined_max = std::max(hi, max_);
  // _adjust_min_max: widen the max so that the combined range is a whole number
  // (downsample) of the old range's bins upsampled `upsample_rate_` times.
  const float fine_width = (max_ - min_) / static_cast<float>(bins_ * upsample_rate_);
  const int64_t downsample = static_cast<int64_t>(
      std::ceil((combined_max - combined_min) / (static_cast<float>(bins_) * fine_width)));
  combined_max += static_cast<float>(downsample) * (static_cast<float>(bins_) * fine_width) -
                  (combined_max - combined_min);
  const int64_t start = static_cast<int64_t>(std::nearbyint((min_ - combined_min) / fine_width));
  std::vector<float> combined = Histc(values, count, combined_min, combined_max);
  if (combined_min == min_ && combined_max == max_) {
    for (int b = 0; b < bins_; ++b) combined[b] += histogram_[b];
  } else {
    // _combine_histograms: each old bin covers `upsample_rate_` fine cells from
    // `start`; each new bin sums `downsample` fine cells; the old counts are
    // spread evenly over their cells.
    std::vector<double> moved(bins_, 0.0);
    for (int b = 0; b < bins_; ++b) {
      const int64_t cell_begin = start + int64_t{b} * upsample_rate_;
      const int64_t cell_end = cell_begin + upsample_rate_;
      for (int64_t cell = cell_begin; cell < cell_end;) {
        const int64_t target = cell / downsample;
        const int64_t target_end = std::min(cell_end, (target + 1) * downsample);
        if (target >= bins_) break;
        moved[target] += double{histogram_[b]} * static_cast<double>(target_end - cell);
        cell = target_end;
      }
    }
    for (int b = 0; b < bins_; ++b) combined[b] += static_cast<float>(moved[b] / upsample_rate_);
  }
  histogram_ = std::move(combined);
  min_ = combined_min;
  max_ = combined_max;
}

// _compute_quantization_error: the L2 error of quantizing the histogram into
// dst_bins_ levels spanning source bins [start_bin, end_bin].
float HistogramObserver::QuantizationError(int start_bin, int end_bin) const {
  const float bin_width = (max_ - min_) / static_cast<float>(bins_);
  const float dst_width =
      bin_width * static_cast<float>(end_bin - start_bin + 1) / static_cast<float>(dst_bins_);
  if (dst_width == 0.0f) return 0.0f;
  float total = 0.0f;
  const float last = static_cast<float>(dst_bins_ - 1);
  for (int b = 0; b < bins_; ++b) {
    const float src_begin = static_cast<float>(b - start_bin) * bin_width;
    const float src_end = src_begin + bin_width;
    const float dst_of_begin = std::clamp(std::floor(src_begin / dst_width), 0.0f, last);
    const float dst_of_end = std::clamp(std::floor(src_end / dst_width), 0.0f, last);
    const float density = histogram_[b] / bin_width;
    const float half = dst_width / 2.0f;
    float norm = Norm(src_begin - (dst_of_begin + 0.5f) * dst_width, half, density);
    norm += (dst_of_end - dst_of_begin - 1.0f) * Norm(-half, half, density);
    norm += Norm(-half, src_end - (dst_of_end * dst_width + half), density);
    total += norm;
  }
  return total;
}

// _non_linear_param_search: move whichever end of [start_bin, end_bin] cuts the
// smaller tail, 1e-5 of the mass at a time, while the error keeps falling.
absl::StatusOr<Range> HistogramObserver::GetRange() const {
  if (min_ > max_) return NothingObserved();
  const float bin_width = (max_ - min_) / static_cast<float>(bins_);
  std::vector<float> cumulative(bins_);
  double total = 0;
  float running = 0;
  for (int b = 0; b < bins_; ++b) {
    total += histogram_[b];
    running += histogram_[b];
    cumulative[b] = running;
  }
  constexpr double kStep = 1e-5;
  double alpha = 0.0, beta = 1.0;
  int start_bin = 0, end_bin = bins_ - 1;
  float norm_min = std::numeric_limits<float>::infinity();
  while (alpha < beta) {
    const double next_alpha = alpha + kStep, next_beta = beta - kStep;
    int l = start_bin, r = end_bin;
    while (l < end_bin && cumulative[l] < static_cast<float>(next_alpha * total)) ++l;
    while (r > start_bin && cumulative[r] > static_cast<float>(next_beta * total)) --r;
    int next_start = start_bin, next_end = end_bin;
    if (l - start_bin > end_bin - r) {
      next_start = l;
      alpha = next_alpha;
    } else {
      next_end = r;
      beta = next_beta;
    }
    if (next_start == start_bin && next_end == end_bin) continue;
    const float norm = QuantizationError(next_start, next_end);
    if (norm > norm_min) break;
    norm_min = norm;
    start_bin = next_start;
    end_bin = next_end;
  }
  return Range{min_ + bin_width * static_cast<float>(start_bin),
               min_ + bin_width * static_cast<float>(end_bin + 1)};
}

float HistogramObserver::Quantile(double fraction) const {
  double total = 0;
  for (float count : histogram_) total += count;
  const double target = fraction * total;
  const float bin_width = (max_ - min_) / static_cast<float>(bins_);
  double below = 0;
  for (int b = 0; b < bins_; ++b) {
    if (below + histogram_[b] >= target && histogram_[b] > 0) {
      const double inside = (target - below) / histogram_[b];  // in [0, 1]
      return min_ + bin_width * static_cast<float>(b + inside);
    }
    below += histogram_[b];
  }
  return max_;
}

absl::StatusOr<Range> PercentileObserver::GetRange() const {
  if (empty()) return NothingObserved();
  return Range{Quantile(1.0 - percentile_), Quantile(percentile_)};
}

double MseObserver::SquaredError(float lo, float hi) const {
  const std::vector<float>& h = histogram();
  const float bin_width = (max() - min()) / static_cast<float>(bins());
  const double step = (double{hi} - lo) / (dst_bins() - 1);
  double error = 0;
  for (int b = 0; b < bins(); ++b) {
    if (h[b] == 0) continue;
    const double x = min() + bin_width * (b + 0.5);  // the bin's centre stands for its values
    const double clipped = std::clamp(x, double{lo}, double{hi});
    // Clipping error, plus the uniform rounding error within a step: step^2 / 12.
    const double rounding = step > 0 ? step * step / 12.0 : 0.0;
    error += h[b] * ((x - clipped) * (x - clipped) + (x == clipped ? rounding : 0.0));
  }
  return error;
}

absl::StatusOr<Range> MseObserver::GetRange() const {
  if (empty()) return NothingObserved();
  const float lo = std::min(min(), 0.0f), hi = std::max(max(), 0.0f);
  Range best{lo, hi};
  double best_error = SquaredError(lo, hi);
  constexpr int kCandidates = 200;
  for (int i = 1; i < kCandidates; ++i) {
    const float s = 1.0f - static_cast<float>(i) / kCandidates;
    const double error = SquaredError(s * lo, s * hi);
    if (error < best_error) {
      best_error = error;
      best = {s * lo, s * hi};
    }
  }
  return best;
}

}  // namespace qforge
