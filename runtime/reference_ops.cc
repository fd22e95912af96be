#include "runtime/reference_ops.h"

#include <algorithm>

#include "common/quantization.h"

namespace qforge::reference {
namespace {

// sum over the receptive field of output (n, oy, ox, oc) of (x - input_offset) * w.
// Float layers accumulate in double: the reference should be the most exact path.
template <typename Acc, typename In>
Acc ConvDot(const ConvGeometry& g, const In* input, const In* filter, int n, int oy, int ox,
            int oc, Acc input_offset) {
  const int group_in = g.input_channels / g.groups;
  const int group_out = g.output_channels / g.groups;
  const int first_in = (oc / group_out) * group_in;
  Acc acc = 0;
  for (int ky = 0; ky < g.kernel_height; ++ky) {
    const int64_t iy = int64_t{oy} * g.stride_h - g.pad_top + int64_t{ky} * g.dilation_h;
    if (iy < 0 || iy >= g.input_height) continue;  // zero padding: real 0 adds nothing
    for (int kx = 0; kx < g.kernel_width; ++kx) {
      const int64_t ix = int64_t{ox} * g.stride_w - g.pad_left + int64_t{kx} * g.dilation_w;
      if (ix < 0 || ix >= g.input_width) continue;
      const In* x = input + ((int64_t{n} * g.input_height + iy) * g.input_width + ix) *
                                g.input_channels + first_in;
      const In* w = filter + ((int64_t{oc} * g.kernel_height + ky) * g.kernel_width + kx) * group_in;
      for (int ic = 0; ic < group_in; ++ic) {
        acc += (static_cast<Acc>(x[ic]) - input_offset) * static_cast<Acc>(w[ic]);
      }
    }
  }
  return acc;
}

int64_t OutputIndex(const ConvGeometry& g, int n, int oy, int ox, int oc) {
  return ((int64_t{n} * g.output_height + oy) * g.output_width + ox) * g.output_channels + oc;
}

}  // namespace

void Conv2DInt8(const Conv2DInt8Params& params, const int8_t* input, const int8_t* filter,
                const int32_t* bias, int8_t* output) {
  const ConvGeometry& g = params.geometry;
  for (int n = 0; n < g.batch; ++n) {
    for (int oy = 0; oy < g.output_height; ++oy) {
      for (int ox = 0; ox < g.output_width; ++ox) {
        for (int oc = 0; oc < g.output_channels; ++oc) {
          int32_t acc = ConvDot<int32_t>(g, input, filter, n, oy, ox, oc, params.input_zero_point);
          if (bias != nullptr) acc += bias[oc];
          output[OutputIndex(g, n, oy, ox, oc)] =
              RequantizeToInt8(acc, params.multipliers[oc], params.output.zero_point,
                               params.output.qmin, params.output.qmax);
        }
      }
    }
  }
}

void Conv2DFloat(const Conv2DFloatParams& params, const float* input, const float* filter,
                 const float* bias, float* output) {
  const ConvGeometry& g = params.geometry;
  for (int n = 0; n < g.batch; ++n) {
    for (int oy = 0; oy < g.output_height; ++oy) {
      for (int ox = 0; ox < g.output_width; ++ox) {
        for (int oc = 0; oc < g.output_channels; ++oc) {
          double acc = ConvDot<double>(g, input, filter, n, oy, ox, oc, 0.0);
          if (bias != nullptr) acc += bias[oc];
          output[OutputIndex(g, n, oy, ox, oc)] = std::clamp(
              static_cast<float>(acc), params.output_min, params.output_max);
        }
      }
    }
  }
}

void FullyConnectedInt8(const FullyConnectedInt8Params& params, const int8_t* input,
                        const int8_t* weights, const int32_t* bias, int8_t* output) {
  const int k = params.input_features;
  for (int n = 0; n < params.batch; ++n) {
    for (int o = 0; o < params.output_features; ++o) {
      int32_t acc = bias != nullptr ? bias[o] : 0;
      for (int i = 0; i < k; ++i) {
        acc += (int32_t{input[int64_t{n} * k + i]} - params.input_zero_point) *
               int32_t{weights[int64_t{o} * k + i]};
      }
      output[int64_t{n} * params.output_features + o] =
          RequantizeToInt8(acc, params.multipliers[o], params.output.zero_point,
                           params.output.qmin, params.output.qmax);
    }
  }
}

void FullyConnectedFloat(const FullyConnectedFloatParams& params, const float* input,
                         const float* weights, const float* bias, float* output) {
  const int k = params.input_features;
  for (int n = 0; n < params.batch; ++n) {
    for (int o = 0; o < params.output_features; ++o) {
      double acc = bias != nullptr ? bias[o] : 0.0;
      for (int i = 0; i < k; ++i) {
        acc += double{input[int64_t{n} * k + i]} * weights[int64_t{o} * k + i];
      }
      output[int64_t{n} * params.output_features + o] =
          std::clamp(static_cast<float>(acc), params.output_min, params.output_max);
    }
  }
}

void AddInt8(const AddInt8Params& params, const int8_t* a, const int8_t* b, int8_t* output) {
  for (int64_t i = 0; i < params.size; ++i) {
    // (q - zero_point) fits in 9 bits, so shifting left by 20 stays inside int32.
    const int32_t shifted_a = (int32_t{a[i]} - params.a_zero_point) * (1 << kAddLeftShift);
    const int32_t shifted_b = (int32_t{b[i]} - params.b_zero_point) * (1 << kAddLeftShift);
    // Each rescaled input is at most half its shifted value, so the sum fits too.
    const int32_t sum = MultiplyByQuantizedMultiplier(shifted_a, params.a_multiplier) +
                        MultiplyByQuantizedMultiplier(shifted_b, params.b_multiplier);
    output[i] = RequantizeToInt8(sum, params.output_multiplier, params.output.zero_point,
                                 params.output.qmin, params.output.qmax);
  }
}

void AddFloat(const AddFloatParams& params, const float* a, const float* b, float* output) {
  for (int64_t i = 0; i < params.size; ++i) {
    output[i] = std::clamp(a[i] + b[i], params.output_min, params.output_max);
  }
}

void MeanInt8(const MeanInt8Params& params, const int8_t* input, int8_t* output) {
  const int64_t pixels = int64_t{params.height} * params.width;
  for (int n = 0; n < params.batch; ++n) {
    for (int c = 0; c < params.channels; ++c) {
      int32_t sum = 0;
      for (int64_t p = 0; p < pixels; ++p) {
        sum += int32_t{input[(n * pixels + p) * params.channels + c]} - params.input_zero_point;
      }
      output[int64_t{n} * params.channels + c] =
          RequantizeToInt8(sum, params.multiplier, params.output.zero_point,
                           params.output.qmin, params.output.qmax);
    }
  }
}

void MeanFloat(const MeanFloatParams& params, const float* input, float* output) {
  const int64_t pixels = int64_t{params.height} * params.width;
  for (int n = 0; n < params.batch; ++n) {
    for (int c = 0; c < params.channels; ++c) {
      double sum = 0;
      for (int64_t p = 0; p < pixels; ++p) sum += input[(n * pixels + p) * params.channels + c];
      output[int64_t{n} * params.channels + c] = static_cast<float>(sum / pixels);
    }
  }
}

void QuantizeToInt8(int64_t size, float scale, int32_t zero_point, const float* input,
                    int8_t* output) {
  const QuantParams params{scale, zero_point};
  for (int64_t i = 0; i < size; ++i) output[i] = Quantize(input[i], params);
}

void DequantizeInt8(int64_t size, float scale, int32_t zero_point, const int8_t* input,
                    float* output) {
  const QuantParams params{scale, zero_point};
  for (int64_t i = 0; i < size; ++i) output[i] = Dequantize(input[i], params);
}

}  // namespace qforge::reference
