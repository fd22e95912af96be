// Observers: what calibration runs over a tensor to choose its quantization
// range. The contract is PyTorch's (torch/ao/quantization/observer.py):
// Observe() only gathers statistics; GetRange() computes the (min, max) to
// quantize with; common/quantization.h turns that into scale and zero point
// (widening the range to contain 0, flooring the scale at eps).
//
// NaNs and infinities are skipped (PyTorch's would carry them into the range).
#ifndef QFORGE_TRAINER_QUANT_OBSERVERS_H_
#define QFORGE_TRAINER_QUANT_OBSERVERS_H_

#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace qforge {

using Range = std::pair<float, float>;  // (min, max)

// Minimum and maximum of the finite values; (inf, -inf) if there are none.
Range FiniteMinMax(const float* values, int64_t count);

// PyTorch's moving-average update of a range (*min, *max) by a batch's range:
// the first batch (while *min > *max) is taken as is, later ones move the
// range by averaging_constant of the difference. A batch with nothing finite
// changes nothing.
void MovingAverageStep(const Range& batch, float averaging_constant, float* min, float* max);

class RangeObserver {
 public:
  virtual ~RangeObserver() = default;
  virtual void Observe(const float* values, int64_t count) = 0;
  // FailedPrecondition if no finite value was observed.
  virtual absl::StatusOr<Range> GetRange() const = 0;
};

// The running minimum and maximum (PyTorch's MinMaxObserver).
class MinMaxObserver : public RangeObserver {
 public:
  void Observe(const float* values, int64_t count) override;
  absl::StatusOr<Range> GetRange() const override;

 protected:
  float min_ = std::numeric_limits<float>::infinity();
  float max_ = -std::numeric_limits<float>::infinity();
};

// An exponential moving average of each batch's minimum and maximum, the first
// batch taken as is (PyTorch's MovingAverageMinMaxObserver, constant 0.01).
class MovingAverageMinMaxObserver : public MinMaxObserver {
 public:
  explicit MovingAverageMinMaxObserver(float averaging_constant = 0.01f)
      : averaging_constant_(averaging_constant) {}
  void Observe(const float* values, int64_t count) override;

 private:
  float averaging_constant_;
};

// Minimum and maximum per slice along `axis` of a row-major tensor, for
// per-channel weights (PyTorch's PerChannelMinMaxObserver, ch_axis 0).
class PerChannelMinMaxObserver {
 public:
  void Observe(const float* values, const std::vector<int64_t>& shape, int axis);
  // One range per channel; FailedPrecondition before any observation.
  absl::StatusOr<std::vector<Range>> GetRanges() const;

 private:
  std::vector<float> mins_, maxs_;
};

// PyTorch's HistogramObserver: a histogram of `bins` bins whose range grows to
// cover every batch (the old histogram is upsampled by `upsample_rate` and
// re-binned onto the wider grid), and a range chosen by the greedy search that
// minimises the L2 error of quantizing the histogram into `dst_bins` levels
// (Caffe2's NormMinimization::NonlinearQuantizationParamsSearch).
//
// Port of PyTorch 1.13's algorithm with one fix: 1.13 passes int(min) and
// int(max) to torch.histc, truncating the histogram's range to integers
// (dropping values outside it); qforge uses the true range, as later PyTorch
// versions do. tools/make_observer_goldens.py checks against PyTorch's code with
// that one line fixed.
class HistogramObserver : public RangeObserver {
 public:
  explicit HistogramObserver(int bins = 2048, int upsample_rate = 128, int dst_bins = 256)
      : bins_(bins), upsample_rate_(upsample_rate), dst_bins_(dst_bins), histogram_(bins, 0.0f) {}
  void Observe(const float* values, int64_t count) override;
  absl::StatusOr<Range> GetRange() const override;

  const std::vector<float>& histogram() const { return histogram_; }
  float min() const { return min_; }
  float max() const { return max_; }

 protected:
  // The value below which `fraction` of the histogram's mass lies, linear
  // within a bin.
  float Quantile(double fraction) const;
  bool empty() const { return min_ > max_; }
  int bins() const { return bins_; }
  int dst_bins() const { return dst_bins_; }

 private:
  std::vector<float> Histc(const float* values, int64_t count, float lo, float hi) const;
  float QuantizationError(int start_bin, int end_bin) const;

  int bins_, upsample_rate_, dst_bins_;
  std::vector<float> histogram_;
  float min_ = std::numeric_limits<float>::infinity();
  float max_ = -std::numeric_limits<float>::infinity();
};

// The histogram's percentiles: [quantile(1 - p), quantile(p)], e.g. p = 0.9999
// clips the 0.01% most extreme values at each end. Beyond PyTorch's set: a
// cheap, robust choice when rare outliers would otherwise stretch the range.
class PercentileObserver : public HistogramObserver {
 public:
  explicit PercentileObserver(double percentile = 0.9999) : percentile_(percentile) {}
  absl::StatusOr<Range> GetRange() const override;

 private:
  double percentile_;
};

// The range that minimises the expected squared error of quantizing the
// histogram into dst_bins levels, clipping included, among ranges [s * min,
// s * max] for s in (0, 1] (200 candidates; zero stays inside). Beyond
// PyTorch's set: unlike the histogram observer's greedy search, it compares
// every candidate, so it finds a clip past a gap in the distribution.
class MseObserver : public HistogramObserver {
 public:
  absl::StatusOr<Range> GetRange() const override;
  // Expected squared error of quantizing the histogram over [lo, hi].
  double SquaredError(float lo, float hi) const;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_OBSERVERS_H_
