#include "trainer/quant/fake_quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "trainer/nn/parallel.h"
#include "trainer/quant/fake_quant.h"

namespace qforge {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

absl::Status NothingObserved(const std::string& name) {
  return absl::FailedPreconditionError(absl::StrCat(name, ": nothing observed yet"));
}

// The weights' scale, max|w| / 127.5, puts a channel's extremes half a step
// outside [-127, 127] (q = +-128). They keep their gradient: the mask spans
// [-128, 128], as in PyTorch's default QAT, whose fused fake quantizer trains
// on a scale (max / 127 or |min| / 128) that puts both extremes on its grid.
constexpr int32_t kWeightMaskQMin = -128, kWeightMaskQMax = 128;

// Clamps the values to the int8 weights' [-127, 127], leaving the mask.
void ClampToWeightRange(const std::vector<float>& scales, int64_t inner, float* y) {
  Pool().ParallelFor(static_cast<int64_t>(scales.size()), [&](int, int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      const float lo = static_cast<float>(kWeightQMin) * scales[c];
      const float hi = static_cast<float>(kWeightQMax) * scales[c];
      for (float* v = y + c * inner; v < y + (c + 1) * inner; ++v) *v = std::clamp(*v, lo, hi);
    }
  });
}

// The straight-through gradient: dx = dy * mask, or dy where there is no mask.
void MaskGradient(const float* dy, int64_t count, bool masked, const std::vector<uint8_t>& mask,
                  float* dx) {
  if (masked) {
    FakeQuantizeBackward(dy, mask.data(), count, dx);
  } else if (dx != dy) {
    std::memcpy(dx, dy, count * sizeof(float));
  }
}

// FiniteMinMax over chunks of the pool (min and max do not depend on order).
Range ParallelFiniteMinMax(const float* x, int64_t n) {
  std::vector<Range> chunks(Pool().num_threads(), Range{kInf, -kInf});
  Pool().ParallelFor(n, [&](int chunk, int64_t begin, int64_t end) {
    chunks[chunk] = FiniteMinMax(x + begin, end - begin);
  });
  Range all{kInf, -kInf};
  for (const Range& r : chunks) all = {std::min(all.first, r.first), std::max(all.second, r.second)};
  return all;
}

// The derivatives of fake-quantized values y with respect to the scale and the
// zero point (PyTorch's _fake_quantize_learnable_per_tensor_affine): inside
// the range (y - x) / scale and 0; clamped, q - zero_point (an integer,
// recovered exactly from y) and -scale. NaN inputs, which quantize to 0,
// contribute neither.
void RangeDerivatives(const float* x, const float* y, const uint8_t* mask, int64_t n, float scale,
                      float* dy_dscale, float* dy_dzero_point) {
  const float inverse_scale = 1.0f / scale;
  Pool().ParallelFor(n, [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const bool clamped = !mask[i] && x[i] == x[i];
      dy_dscale[i] = mask[i]   ? (y[i] - x[i]) * inverse_scale
                     : clamped ? std::nearbyint(y[i] * inverse_scale)
                               : 0.0f;
      dy_dzero_point[i] = clamped ? -scale : 0.0f;
    }
  });
}

// {sum dy * a, sum dy * b}, in double over chunks of the pool.
std::pair<double, double> DotProducts(const float* dy, const float* a, const float* b, int64_t n) {
  std::vector<std::pair<double, double>> chunks(Pool().num_threads(), {0.0, 0.0});
  Pool().ParallelFor(n, [&](int chunk, int64_t begin, int64_t end) {
    double sa = 0, sb = 0;
    for (int64_t i = begin; i < end; ++i) {
      sa += static_cast<double>(dy[i]) * a[i];
      sb += static_cast<double>(dy[i]) * b[i];
    }
    chunks[chunk] = {sa, sb};
  });
  std::pair<double, double> sum{0.0, 0.0};
  for (const auto& [sa, sb] : chunks) sum = {sum.first + sa, sum.second + sb};
  return sum;
}

}  // namespace

absl::StatusOr<AffineRange> ToAffineRange(const Range& range) {
  absl::StatusOr<QuantParams> p =
      ChooseActivationParams(range.first, range.second, kActivationMinScale);
  if (!p.ok()) return p.status();
  const float min = std::min(range.first, 0.0f);
  return AffineRange{p->scale, static_cast<float>(kActivationQMin) - min / p->scale};
}

Range FromAffineRange(const AffineRange& a) {
  return {(static_cast<float>(kActivationQMin) - a.zero_point) * a.scale,
          (static_cast<float>(kActivationQMax) - a.zero_point) * a.scale};
}

FakeQuantize::FakeQuantize(const std::string& name, ParameterStore& state)
    : name_(name),
      state_(state),
      min_(state.Add(name + ".min_val", {1}, /*trainable=*/false)),
      max_(state.Add(name + ".max_val", {1}, /*trainable=*/false)) {
  *state_.value(min_) = kInf;  // the empty range: nothing observed
  *state_.value(max_) = -kInf;
}

void FakeQuantize::Forward(const FloatTensor& x, FloatTensor& y) {
  if (observer_enabled_) {
    Range batch = ParallelFiniteMinMax(x.ptr(), x.size());
    if (ranks_ != nullptr) {
      float ends[2] = {-batch.first, batch.second};
      ranks_->Max(ends, 2, "the fake quantizers' ranges");
      batch = {-ends[0], ends[1]};
    }
    MovingAverageStep(batch, kFakeQuantAveragingConstant, state_.value(min_), state_.value(max_));
  }
  y.Resize(x.shape);
  absl::StatusOr<QuantParams> p = Params();
  masked_ = fake_quant_enabled_ && p.ok();
  if (!masked_) {
    std::copy(x.data.begin(), x.data.end(), y.data.begin());
    return;
  }
  mask_.resize(x.size());
  FakeQuantizePerTensor(x.ptr(), x.size(), {p->scale, p->zero_point, kActivationQMin,
                                            kActivationQMax},
                        y.ptr(), mask_.data());
  derivatives_ = range_learning_;
  if (!derivatives_) return;
  dy_dscale_.resize(x.size());
  dy_dzero_point_.resize(x.size());
  RangeDerivatives(x.ptr(), y.ptr(), mask_.data(), x.size(), p->scale, dy_dscale_.data(),
                   dy_dzero_point_.data());
  gradient_factor_ = 1.0 / std::sqrt(static_cast<double>(x.size()) * kActivationQMax);
}

void FakeQuantize::Backward(const FloatTensor& dy, FloatTensor& dx) {
  dx.Resize(dy.shape);
  MaskGradient(dy.ptr(), dy.size(), masked_, mask_, dx.ptr());
  if (!masked_ || !derivatives_) return;
  const auto [dscale, dzero_point] =
      DotProducts(dy.ptr(), dy_dscale_.data(), dy_dzero_point_.data(), dy.size());
  range_gradient_[0] += gradient_factor_ * dscale;
  range_gradient_[1] += gradient_factor_ * dzero_point;
}

void FakeQuantize::StepRange(float lr) {
  absl::StatusOr<Range> range = ObservedRange();
  absl::StatusOr<AffineRange> learned =
      range.ok() ? ToAffineRange(*range) : absl::StatusOr<AffineRange>(range.status());
  if (learned.ok()) {  // else nothing was fake-quantized, so nothing learned
    const float scale =
        std::max(static_cast<float>(learned->scale - lr * range_gradient_[0]), kActivationMinScale);
    const float zero_point =
        std::clamp(static_cast<float>(learned->zero_point - lr * range_gradient_[1]),
                   static_cast<float>(kActivationQMin), static_cast<float>(kActivationQMax));
    SetRange(FromAffineRange({scale, zero_point}));
  }
  range_gradient_[0] = range_gradient_[1] = 0;
}

absl::StatusOr<Range> FakeQuantize::ObservedRange() const {
  const float lo = *state_.value(min_), hi = *state_.value(max_);
  if (lo > hi) return NothingObserved(name_);
  return Range{lo, hi};
}

void FakeQuantize::SetRange(const Range& range) {
  *state_.value(min_) = range.first;
  *state_.value(max_) = range.second;
}

absl::StatusOr<QuantParams> FakeQuantize::Params() const {
  absl::StatusOr<Range> range = ObservedRange();
  if (!range.ok()) return range.status();
  return ChooseActivationParams(range->first, range->second, kActivationMinScale);
}

WeightFakeQuantize::WeightFakeQuantize(const std::string& name, int64_t channels,
                                       ParameterStore& state)
    : name_(name),
      state_(state),
      channels_(channels),
      min_(state.Add(name + ".min_val", {channels}, /*trainable=*/false)),
      max_(state.Add(name + ".max_val", {channels}, /*trainable=*/false)) {
  std::fill(state_.value(min_), state_.value(min_) + channels, kInf);
  std::fill(state_.value(max_), state_.value(max_) + channels, -kInf);
}

void WeightFakeQuantize::Forward(const float* w, int64_t count, float* y) {
  const int64_t inner = count / channels_;
  if (observer_enabled_) {
    for (int64_t c = 0; c < channels_; ++c) {
      MovingAverageStep(FiniteMinMax(w + c * inner, inner), kFakeQuantAveragingConstant,
                        state_.value(min_) + c, state_.value(max_) + c);
    }
  }
  absl::StatusOr<std::vector<float>> scales = Scales();
  masked_ = fake_quant_enabled_ && scales.ok();
  if (!masked_) {
    if (y != w) std::memcpy(y, w, count * sizeof(float));
    return;
  }
  mask_.resize(count);
  FakeQuantizePerChannel(
      w, inner, {*scales, std::vector<int32_t>(channels_, 0), kWeightMaskQMin, kWeightMaskQMax}, y,
      mask_.data());
  ClampToWeightRange(*scales, inner, y);
}

void WeightFakeQuantize::Backward(const float* dy, int64_t count, float* dw) const {
  MaskGradient(dy, count, masked_, mask_, dw);
}

absl::StatusOr<std::vector<Range>> WeightFakeQuantize::ObservedRanges() const {
  std::vector<Range> ranges(channels_);
  for (int64_t c = 0; c < channels_; ++c) {
    ranges[c] = {state_.value(min_)[c], state_.value(max_)[c]};
    if (ranges[c].first > ranges[c].second) return NothingObserved(name_);
  }
  return ranges;
}

absl::StatusOr<std::vector<float>> WeightFakeQuantize::Scales() const {
  absl::StatusOr<std::vector<Range>> ranges = ObservedRanges();
  if (!ranges.ok()) return ranges.status();
  std::vector<float> mins(channels_), maxs(channels_);
  for (int64_t c = 0; c < channels_; ++c) std::tie(mins[c], maxs[c]) = (*ranges)[c];
  return ChooseWeightScalesPerChannel(mins, maxs);
}

}  // namespace qforge
