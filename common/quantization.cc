#include "common/quantization.h"

#include <algorithm>
#include <cmath>
#include <cstddef>

#include "absl/strings/str_cat.h"

namespace qforge {
namespace {

absl::Status CheckRange(float min, float max) {
  if (!std::isfinite(min) || !std::isfinite(max)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization range [", min, ", ", max, "] is not finite"));
  }
  if (min > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("quantization range [", min, ", ", max, "] has min > max"));
  }
  return absl::OkStatus();
}

absl::Status CheckMinScale(float min_scale) {
  if (!(min_scale > 0.0f) || !std::isfinite(min_scale)) {
    return absl::InvalidArgumentError(
        absl::StrCat("min_scale ", min_scale, " must be finite and > 0"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QuantParams> ChooseActivationParams(float min, float max,
                                                   float min_scale) {
  if (absl::Status s = CheckRange(min, max); !s.ok()) return s;
  if (absl::Status s = CheckMinScale(min_scale); !s.ok()) return s;
  // Widen to contain 0 so that real 0 is exactly representable.
  const float lo = std::min(min, 0.0f);
  const float hi = std::max(max, 0.0f);
  // Float32 arithmetic in the same order as PyTorch, so parameters match its
  // observers bit for bit.
  float scale = (hi - lo) / static_cast<float>(kActivationQMax - kActivationQMin);
  if (!std::isfinite(scale)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization range [", min, ", ", max, "] is too wide for float32"));
  }
  scale = std::max(scale, min_scale);
  const float zero_point =
      static_cast<float>(kActivationQMin) - std::nearbyint(lo / scale);
  QuantParams params;
  params.scale = scale;
  params.zero_point = static_cast<int32_t>(std::clamp(
      zero_point, static_cast<float>(kActivationQMin), static_cast<float>(kActivationQMax)));
  return params;
}

absl::StatusOr<QuantParams> ChooseWeightParams(float min, float max,
                                               float min_scale) {
  if (absl::Status s = CheckRange(min, max); !s.ok()) return s;
  if (absl::Status s = CheckMinScale(min_scale); !s.ok()) return s;
  const float abs_max = std::max(-std::min(min, 0.0f), std::max(max, 0.0f));
  QuantParams params;
  params.scale = std::max(abs_max / kWeightScaleDivisor, min_scale);
  params.zero_point = 0;
  return params;
}

absl::StatusOr<std::vector<float>> ChooseWeightScalesPerChannel(
    absl::Span<const float> mins, absl::Span<const float> maxs, float min_scale) {
  if (mins.size() != maxs.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "per-channel ranges: ", mins.size(), " minimums but ", maxs.size(), " maximums"));
  }
  std::vector<float> scales(mins.size());
  for (size_t c = 0; c < mins.size(); ++c) {
    absl::StatusOr<QuantParams> params = ChooseWeightParams(mins[c], maxs[c], min_scale);
    if (!params.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("channel ", c, ": ", params.status().message()));
    }
    scales[c] = params->scale;
  }
  return scales;
}

absl::Status ValidateQuantParams(const QuantParams& params, int32_t qmin,
                                 int32_t qmax) {
  // Subnormal scales are rejected too: no observer produces them, and XNNPACK
  // refuses them.
  if (!std::isnormal(params.scale) || !(params.scale > 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale ", params.scale, " must be finite, normal and > 0"));
  }
  if (params.zero_point < qmin || params.zero_point > qmax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zero point ", params.zero_point, " is outside [", qmin, ", ", qmax, "]"));
  }
  return absl::OkStatus();
}

int8_t Quantize(float x, const QuantParams& params, int32_t qmin, int32_t qmax) {
  if (std::isnan(x)) return static_cast<int8_t>(std::clamp(params.zero_point, qmin, qmax));
  // Clamp in float before converting so huge values cannot overflow the int cast.
  const float q = RoundToGrid(x, InverseScale(params.scale), static_cast<float>(params.zero_point));
  return static_cast<int8_t>(
      std::clamp(q, static_cast<float>(qmin), static_cast<float>(qmax)));
}

void QuantizeTensor(absl::Span<const float> values, const QuantParams& params,
                    int32_t qmin, int32_t qmax, absl::Span<int8_t> out) {
  for (size_t i = 0; i < values.size(); ++i) {
    out[i] = Quantize(values[i], params, qmin, qmax);
  }
}

absl::Status QuantizePerChannel(absl::Span<const float> values,
                                absl::Span<const int64_t> shape, int axis,
                                absl::Span<const float> scales,
                                absl::Span<int8_t> out) {
  if (axis < 0 || axis >= static_cast<int>(shape.size())) {
    return absl::InvalidArgumentError(
        absl::StrCat("axis ", axis, " is out of range for rank ", shape.size()));
  }
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t channels = shape[axis];
  if (static_cast<int64_t>(scales.size()) != channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        scales.size(), " scales for ", channels, " channels along axis ", axis));
  }
  const int64_t count = outer * channels * inner;
  if (static_cast<int64_t>(values.size()) != count ||
      static_cast<int64_t>(out.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        "shape holds ", count, " elements but values has ", values.size(),
        " and out has ", out.size()));
  }
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t c = 0; c < channels; ++c) {
      const QuantParams params{scales[c], 0};
      const int64_t begin = (o * channels + c) * inner;
      QuantizeTensor(values.subspan(begin, inner), params, kWeightQMin, kWeightQMax,
                     out.subspan(begin, inner));
    }
  }
  return absl::OkStatus();
}

int32_t QuantizeBias(float bias, float bias_scale) {
  const double q = std::nearbyint(static_cast<double>(bias) / bias_scale);
  if (std::isnan(q)) return 0;
  return static_cast<int32_t>(std::clamp(
      q, static_cast<double>(std::numeric_limits<int32_t>::min()),
      static_cast<double>(std::numeric_limits<int32_t>::max())));
}

}  // namespace qforge
