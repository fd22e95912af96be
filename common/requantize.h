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
// Applying it follows gemmlowp's fixedpoint.h, as TFLite's reference kernels do:
// SaturatingRoundingDoublingHighMul (round to nearest; an exact tie goes toward
// +infinity, since its nudge for negative products is 1 - 2^30) then
// RoundingDivideByPOT (round to nearest, ties away from zero). The two roundings
// put the result within 1 of round(x * real_multiplier); measured against double
// arithmetic in requantize_test.cc.
#ifndef QFORGE_COMMON_REQUANTIZE_H_
#define QFORGE_COMMON_REQUANTIZE_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "gemmlowp/fixedpoint/fixedpoint.h"

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

// x * real_multiplier rounded to nearest (within 1) with integer arithmetic only,
// exact in that sense while x * 2^max(exponent, 0) fits in int32. Beyond that the
// left shift saturates and the result only keeps its sign and a magnitude of at
// least 2^30: far outside any int8 output range, so a clamp after it is exact.
inline int32_t MultiplyByQuantizedMultiplier(int32_t x, const QuantizedMultiplier& m) {
  const int left_shift = m.exponent > 0 ? m.exponent : 0;
  const int right_shift = m.exponent > 0 ? 0 : -m.exponent;
  const int64_t shifted = static_cast<int64_t>(x) * (int64_t{1} << left_shift);
  const int32_t saturated = static_cast<int32_t>(std::clamp<int64_t>(
      shifted, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
  return gemmlowp::RoundingDivideByPOT(
      gemmlowp::SaturatingRoundingDoublingHighMul(saturated, m.multiplier), right_shift);
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
