// Int8 quantization parameters and the conversions between real and quantized
// values: the one definition the trainer, the runtime and the tests share.
//
// The scheme (shared/DESIGN.md, "Numerics"):
//   real = scale * (q - zero_point)
//   activations: asymmetric, per tensor, q in [-128, 127], zero_point in [-128, 127];
//   weights:     symmetric, q in [-127, 127], zero_point 0, per tensor or per channel.
// The represented range always contains real 0 exactly (it is q = zero_point), so
// zero padding and ReLU's zero are exact.
//
// Parameter choice follows PyTorch's observers (torch/ao/quantization/observer.py,
// `_calculate_qparams`): the range is first widened to contain 0, the scale is
// floored at `min_scale`, and the zero point is rounded half to even and clamped.
#ifndef QFORGE_COMMON_QUANTIZATION_H_
#define QFORGE_COMMON_QUANTIZATION_H_

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qforge {

inline constexpr int32_t kActivationQMin = -128;
inline constexpr int32_t kActivationQMax = 127;
// Symmetric weights leave -128 unused so that q and -q are both representable.
inline constexpr int32_t kWeightQMin = -127;
inline constexpr int32_t kWeightQMax = 127;
// Symmetric weight scales are max|w| / 127.5: PyTorch's symmetric observers
// divide by (quant_max - quant_min) / 2, and its fbgemm, x86 and onednn
// qconfigs quantize weights on int8's whole [-128, 127], so qforge's weights
// get the tutorial's scales. The weights at +-max|w| land half a step outside
// [-127, 127] and clamp to its ends; in QAT they keep their gradient
// (trainer/quant/fake_quantize.cc).
inline constexpr float kWeightScaleDivisor = 127.5f;

// PyTorch's default floor for a scale: float32 machine epsilon. Kernels with a
// narrower accepted range (XNNPACK) need a larger floor; callers pass it.
inline constexpr float kDefaultMinScale = std::numeric_limits<float>::epsilon();

// The floor of activation scales in qforge's int8 models (convert and fake
// quantization alike), as PyTorch's XNNPACK-oriented qconfigs set it: a tensor
// seen all zero (a ReLU that never fired) would otherwise get float epsilon as
// its scale, and the layers around it requantization multipliers far outside
// what the kernels accept.
inline constexpr float kActivationMinScale = 1.0f / 4096;

// Per-tensor affine parameters: real = scale * (q - zero_point).
struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
};

// Parameters for an asymmetric int8 activation tensor observed in [min, max].
// InvalidArgument if either bound is NaN or infinite, or min > max.
absl::StatusOr<QuantParams> ChooseActivationParams(
    float min, float max, float min_scale = kDefaultMinScale);

// Parameters for a symmetric int8 weight tensor observed in [min, max]:
// scale = max(|min|, |max|) / kWeightScaleDivisor, zero point 0. Same errors
// as above.
absl::StatusOr<QuantParams> ChooseWeightParams(
    float min, float max, float min_scale = kDefaultMinScale);

// Symmetric scales for per-channel weights, one per (min[c], max[c]) pair.
absl::StatusOr<std::vector<float>> ChooseWeightScalesPerChannel(
    absl::Span<const float> mins, absl::Span<const float> maxs,
    float min_scale = kDefaultMinScale);

// Checks scale is a normal (not subnormal) positive float and zero_point lies
// in [qmin, qmax].
absl::Status ValidateQuantParams(const QuantParams& params, int32_t qmin,
                                 int32_t qmax);

// The one rounding of a real onto the int8 grid, before any clamp, that the
// runtime's quantize op, convert's weights and the trainer's fake quantization
// all use: round_half_even(x * (1 / scale)) + zero_point, in float. Multiplying
// by the float reciprocal rather than dividing is what PyTorch (quantize_val,
// fake_quantize_per_*_affine) and XNNPACK (f32->qs8) do, and a vector unit
// multiplies many times faster than it divides. Half to even is the default
// rounding mode. NaN stays NaN: callers map it (to the zero point, below).
inline float RoundToGrid(float x, float inverse_scale, float zero_point) {
  return std::nearbyint(x * inverse_scale) + zero_point;
}

// The reciprocal RoundToGrid takes, computed in float as PyTorch does.
inline float InverseScale(float scale) { return 1.0f / scale; }

// q = clamp(RoundToGrid(x, 1 / scale, zero_point), qmin, qmax); NaN maps to
// zero_point (real 0), in the runtime and in fake quantization alike.
int8_t Quantize(float x, const QuantParams& params,
                int32_t qmin = kActivationQMin, int32_t qmax = kActivationQMax);

inline float Dequantize(int8_t q, const QuantParams& params) {
  return params.scale * static_cast<float>(static_cast<int32_t>(q) - params.zero_point);
}

// Element-wise Quantize; out.size() must equal values.size().
void QuantizeTensor(absl::Span<const float> values, const QuantParams& params,
                    int32_t qmin, int32_t qmax, absl::Span<int8_t> out);

// Symmetric per-channel quantization of a row-major tensor of `shape` along `axis`
// (scales.size() == shape[axis]) into [-127, 127]. InvalidArgument on a size
// mismatch or a bad axis.
absl::Status QuantizePerChannel(absl::Span<const float> values,
                                absl::Span<const int64_t> shape, int axis,
                                absl::Span<const float> scales,
                                absl::Span<int8_t> out);

// Int32 bias for a conv or linear layer: q = round_half_even(b / (input_scale *
// weight_scale)), saturated to int32. bias_scale holds input_scale * weight_scale.
int32_t QuantizeBias(float bias, float bias_scale);

}  // namespace qforge

#endif  // QFORGE_COMMON_QUANTIZATION_H_
