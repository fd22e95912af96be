// Requantization: applying a real multiplier (for a conv, input_scale *
// weight_scale / output_scale) to an int32 accumulator with integer arithmetic
// only. The one representation qforge uses everywhere:
//
//   real_multiplier ~= multiplier * 2^(exponent - 31),
//   multiplier in [2^30, 2^31), exponent in [-31, 8].
//
// exponent > 0 is a left shift, exponent < 0 a right shift; no other sign
// convention exists in qforge. The accepted real range, [2^-32, 256), is
// XNNPACK's requantization-scale limit (shared/DESIGN.md), so a parameter the
// reference path accepts is one the fast path accepts too.
//
// The multiplier is gemmlowp's fixed-point form (TFLite's too). Applying it
// rounds once: the 64-bit product x * multiplier is divided by 2^(31 - exponent)
// and rounded to nearest, ties away from zero, so the result is x *
// real_multiplier correctly rounded for the decomposed multiplier. gemmlowp's
// SaturatingRoundingDoublingHighMul followed by RoundingDivideByPOT (TFLite's
// reference kernels before TFLITE_SINGLE_ROUNDING) rounds twice when there is a
// right shift, and is then one off, away from zero, on about 2^-(right shift + 1)
// of the values: 0.03-0.33% of each conv's int8 outputs in a MobileNetV2
// (README, "Numerics"), where PyTorch's and ONNX Runtime's int8 kernels round
// correctly. (Without a right shift it rounds once but sends negative ties
// toward +infinity.) requantize_test.cc pins both: exact against long double
// arithmetic, and one off gemmlowp's result exactly where that result is wrong.
#ifndef QFORGE_COMMON_REQUANTIZE_H_
#define QFORGE_COMMON_REQUANTIZE_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace qforge {

inline constexpr double kMinRequantMultiplier = 1.0 / 4294967296.0;  // 2^-32
inline constexpr double kMaxRequantMultiplier = 256.0;               // exclusive

struct QuantizedMultiplier {
  int32_t multiplier = 1 << 30;  // in [2^30, 2^31)
  int exponent = 1;              // real = multiplier * 2^(exponent - 31)
};

// Decomposes `real_multiplier`; InvalidArgument unless it is finite and in
// [2^-32, 256).
absl::StatusOr<QuantizedMultiplier> QuantizeMultiplier(double real_multiplier);

// One multiplier per output channel: input_scale * weight_scales[c] / output_scale.
absl::StatusOr<std::vector<QuantizedMultiplier>> QuantizeConvMultipliers(
    float input_scale, absl::Span<const float> weight_scales, float output_scale);

// The real value a QuantizedMultiplier stands for (for tests and diagnostics).
double RealMultiplier(const QuantizedMultiplier& m);

// x * real_multiplier rounded to nearest, ties away from zero, with integer
// arithmetic only; exact while x * 2^max(exponent, 0) fits in int32. Beyond
// that the left shift saturates and the result only keeps its sign and a
// magnitude of at least 2^30: far outside any int8 output range, so a clamp
// after it is exact.
inline int32_t MultiplyByQuantizedMultiplier(int32_t x, const QuantizedMultiplier& m) {
  const int left_shift = m.exponent > 0 ? m.exponent : 0;
  const int shift = 31 + (m.exponent > 0 ? 0 : -m.exponent);
  const int64_t shifted = static_cast<int64_t>(x) * (int64_t{1} << left_shift);
  const int32_t saturated = static_cast<int32_t>(std::clamp<int64_t>(
      shifted, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  // |product| < 2^62; the arithmetic shift is a floor, and subtracting 1 from
  // a negative product turns floor(y + 1/2) into ties away from zero.
  const int64_t product = int64_t{saturated} * m.multiplier;
  const int64_t half = int64_t{1} << (shift - 1);
  return static_cast<int32_t>((product + half - (product < 0 ? 1 : 0)) >> shift);
}

// The whole output stage of an int8 op: requantize the accumulator, add the
// output zero point, clamp to [qmin, qmax] (the fused activation's range).
inline int8_t RequantizeToInt8(int32_t acc, const QuantizedMultiplier& m,
                               int32_t output_zero_point, int32_t qmin, int32_t qmax) {
  const int32_t scaled = MultiplyByQuantizedMultiplier(acc, m);
  // Saturating add: scaled may sit at the int32 limit.
  const int64_t q = static_cast<int64_t>(scaled) + output_zero_point;
  return static_cast<int8_t>(std::clamp<int64_t>(q, qmin, qmax));
}

}  // namespace qforge

#endif  // QFORGE_COMMON_REQUANTIZE_H_
