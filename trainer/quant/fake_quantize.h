// PyTorch's FakeQuantize module (torch/ao/quantization/fake_quantize.py) with
// moving-average min/max observers, as the QAT qconfig uses it. Forward, when
// observing, moves the observed range by the batch's (constant 0.01) and takes
// the quantization parameters from it; when fake-quantizing, it outputs the
// input quantized and dequantized with them (trainer/quant/fake_quant.h) and keeps
// the straight-through mask for Backward. The two switches are independent, as
// PyTorch's enable_observer / enable_fake_quant.
//
// The observed ranges live in buffers of a ParameterStore, so a QAT
// checkpoint carries them and a resumed run quantizes exactly as before.
#ifndef QFORGE_TRAINER_QUANT_FAKE_QUANTIZE_H_
#define QFORGE_TRAINER_QUANT_FAKE_QUANTIZE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/quantization.h"
#include "trainer/dist/collectives.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"
#include "trainer/quant/observers.h"

namespace qforge {

inline constexpr float kFakeQuantAveragingConstant = 0.01f;

// An activation range as the scale and the real-valued zero point that learn
// it: [min, max] = [(-128 - zero_point) * scale, (127 - zero_point) * scale].
struct AffineRange {
  float scale = 1, zero_point = 0;
};
// ChooseActivationParams's scale for `range`, and its zero point unrounded.
absl::StatusOr<AffineRange> ToAffineRange(const Range& range);
Range FromAffineRange(const AffineRange& affine);

// Per-tensor int8 activations in [-128, 127] (asymmetric, scale floored at
// kActivationMinScale, the parameters convert gives an activation).
class FakeQuantize {
 public:
  // Registers the buffers "<name>.min_val" and "<name>.max_val" ([1] each).
  FakeQuantize(const std::string& name, ParameterStore& state);

  // x -> y, same shape. Before anything was observed there are no parameters
  // and y = x (PyTorch would quantize with its initial scale 1).
  void Forward(const FloatTensor& x, FloatTensor& y);
  // dy -> dx: dy where Forward's input lay inside the range, else 0.
  void Backward(const FloatTensor& dy, FloatTensor& dx);

  // FailedPrecondition before the first observation.
  absl::StatusOr<Range> ObservedRange() const;
  absl::StatusOr<QuantParams> Params() const;
  // Replaces the observed range, e.g. with a calibrated one.
  void SetRange(const Range& range);

  void set_observer_enabled(bool on) { observer_enabled_ = on; }
  void set_fake_quant_enabled(bool on) { fake_quant_enabled_ = on; }

  // Learned ranges (LSQ), as PyTorch's _LearnableFakeQuantize with gradient
  // scaling computes them: while on, Backward also accumulates the loss's
  // gradient with respect to the scale and the zero point of the range it
  // quantized with, and StepRange moves the range by it. The zero point
  // learns as a real number and quantizes rounded. The range buffers stay the
  // state, so convert and checkpoints take a learned range as any other.
  void set_range_learning(bool on) { range_learning_ = on; }
  // {d scale, d zero point}, accumulated since the last StepRange.
  double* range_gradient() { return range_gradient_; }
  // scale -= lr * d scale and zero point -= lr * d zero point, the scale
  // floored at kActivationMinScale and the zero point kept in [-128, 127];
  // clears the gradient.
  void StepRange(float lr);

  // Data-parallel QAT: each batch's range is the min of the ranks' minima and
  // the max of their maxima, so every rank observes, and converts with, the
  // range one process would. Null: this process's batch.
  void set_ranks(Collectives* ranks) { ranks_ = ranks; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  ParameterStore& state_;
  int min_, max_;
  bool observer_enabled_ = true, fake_quant_enabled_ = true;
  Collectives* ranks_ = nullptr;
  bool masked_ = false;  // whether mask_ applies to the last Forward
  std::vector<uint8_t> mask_;
  bool range_learning_ = false;
  // Whether the last Forward, learning, left its per-value d y / d scale and
  // d y / d zero point, and the gradient scale 1 / sqrt(values * 127).
  bool derivatives_ = false;
  std::vector<float> dy_dscale_, dy_dzero_point_;
  double gradient_factor_ = 0;
  double range_gradient_[2] = {0, 0};
};

// Per-output-channel symmetric int8 weights in [-127, 127], for weights laid
// out [O, ...] (OHWI convs, [O, I] linears). The gradient passes on [-128, 128]
// (fake_quantize.cc).
class WeightFakeQuantize {
 public:
  // Registers the buffers "<name>.min_val" and "<name>.max_val" ([channels]).
  WeightFakeQuantize(const std::string& name, int64_t channels, ParameterStore& state);

  // w [count] (channels x count / channels) -> y [count].
  void Forward(const float* w, int64_t count, float* y);
  // dy [count] -> dw [count] (=): the straight-through gradient.
  void Backward(const float* dy, int64_t count, float* dw) const;

  // One range / scale per channel; FailedPrecondition before the first observation.
  absl::StatusOr<std::vector<Range>> ObservedRanges() const;
  absl::StatusOr<std::vector<float>> Scales() const;

  void set_observer_enabled(bool on) { observer_enabled_ = on; }
  void set_fake_quant_enabled(bool on) { fake_quant_enabled_ = on; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  ParameterStore& state_;
  int64_t channels_;
  int min_, max_;
  bool observer_enabled_ = true, fake_quant_enabled_ = true;
  bool masked_ = false;
  std::vector<uint8_t> mask_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_FAKE_QUANTIZE_H_
