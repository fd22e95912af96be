#include "common/requantize.h"

#include <cmath>
#include <cstddef>

#include "absl/strings/str_cat.h"

namespace qforge {

absl::StatusOr<QuantizedMultiplier> QuantizeMultiplier(double real_multiplier) {
  if (!std::isfinite(real_multiplier) || real_multiplier < kMinRequantMultiplier ||
      real_multiplier >= kMaxRequantMultiplier) {
    return absl::InvalidArgumentError(absl::StrCat(
        "requantization multiplier ", real_multiplier,
        " is outside [2^-32, 256) (finite values only)"));
  }
  int exponent = 0;
  // real = fraction * 2^exponent with fraction in [0.5, 1).
  const double fraction = std::frexp(real_multiplier, &exponent);
  int64_t multiplier = std::llround(fraction * 2147483648.0);  // * 2^31
  if (multiplier == (int64_t{1} << 31)) {  // fraction rounded up to 1.0
    multiplier /= 2;
    ++exponent;
  }
  if (exponent > 8) {  // only reachable when rounding carried just below 256
    return absl::InvalidArgumentError(absl::StrCat(
        "requantization multiplier ", real_multiplier, " rounds to 256 or more"));
  }
  QuantizedMultiplier result;
  result.multiplier = static_cast<int32_t>(multiplier);
  result.exponent = exponent;
  return result;
}

absl::StatusOr<std::vector<QuantizedMultiplier>> QuantizeConvMultipliers(
    float input_scale, absl::Span<const float> weight_scales, float output_scale) {
  std::vector<QuantizedMultiplier> result(weight_scales.size());
  for (size_t c = 0; c < weight_scales.size(); ++c) {
    // Double precision, so the product of scales is exact before rounding.
    const double real = static_cast<double>(input_scale) * weight_scales[c] / output_scale;
    absl::StatusOr<QuantizedMultiplier> m = QuantizeMultiplier(real);
    if (!m.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "channel ", c, " (input scale ", input_scale, ", weight scale ",
          weight_scales[c], ", output scale ", output_scale, "): ", m.status().message()));
    }
    result[c] = *m;
  }
  return result;
}

double RealMultiplier(const QuantizedMultiplier& m) {
  return std::ldexp(static_cast<double>(m.multiplier), m.exponent - 31);
}

}  // namespace qforge
