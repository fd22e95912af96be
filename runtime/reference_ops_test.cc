// The reference kernels against hand-checked cases, and against the real-valued
// computation they approximate: on random shapes and quantization parameters,
// every int8 output is within 1 step of round(real result / output scale).
#include "runtime/reference_ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/quantization.h"
#include "runtime/int8_test_layers.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge::reference {
namespace {

using ::testing::ElementsAre;

QuantizedMultiplier Multiplier(double real) { return *QuantizeMultiplier(real); }

TEST(Conv2DInt8, PointwiseHandChecked) {
  Conv2DInt8Params params;
  params.geometry.input_channels = 2;
  params.input_zero_point = 5;
  params.multipliers = {Multiplier(0.5)};
  params.output.zero_point = -3;
  const std::vector<int8_t> input = {10, 21};
  const std::vector<int8_t> filter = {1, 2};
  const std::vector<int32_t> bias = {4};
  int8_t out = 0;
  Conv2DInt8(params, input.data(), filter.data(), bias.data(), &out);
  // ((10 - 5) * 1 + (21 - 5) * 2 + 4) * 0.5 = 20.5 -> 21 (ties away from zero),
  // then + (-3).
  EXPECT_EQ(out, 18);
}

// A 3x3 box filter over a 3x3 image with padding 1: each output sums its
// in-bounds neighbourhood; padding contributes nothing even with a zero point.
TEST(Conv2DInt8, PaddingContributesRealZero) {
  Conv2DInt8Params params;
  ConvGeometry& g = params.geometry;
  g.input_height = g.input_width = 3;
  g.output_height = g.output_width = 3;
  g.kernel_height = g.kernel_width = 3;
  g.pad_top = g.pad_left = 1;
  params.input_zero_point = -10;
  params.multipliers = {Multiplier(1.0)};
  // Real input values 1..9 stored with zero point -10.
  std::vector<int8_t> input(9);
  for (int i = 0; i < 9; ++i) input[i] = static_cast<int8_t>(i + 1 - 10);
  const std::vector<int8_t> filter(9, 1);
  std::vector<int8_t> out(9);
  Conv2DInt8(params, input.data(), filter.data(), nullptr, out.data());
  EXPECT_THAT(out, ElementsAre(12, 21, 16, 27, 45, 33, 24, 39, 28));
}

TEST(Conv2DInt8, DepthwiseUsesOneFilterPerChannelAndFusedClamp) {
  Conv2DInt8Params params;
  params.geometry.input_channels = params.geometry.output_channels = 3;
  params.geometry.groups = 3;
  params.multipliers = {Multiplier(1.0), Multiplier(0.5), Multiplier(1.0)};
  params.output = Int8Output{/*zero_point=*/0, /*qmin=*/0, /*qmax=*/50};  // a ReLU-like clamp
  const std::vector<int8_t> input = {10, 20, 30};
  const std::vector<int8_t> filter = {2, 3, -1};
  std::vector<int8_t> out(3);
  Conv2DInt8(params, input.data(), filter.data(), nullptr, out.data());
  EXPECT_THAT(out, ElementsAre(20, 30, 0));
}

TEST(Conv2DFloat, StridedDilatedGroupedHandChecked) {
  Conv2DFloatParams params;
  ConvGeometry& g = params.geometry;
  g.input_width = 5;
  g.input_channels = 2;
  g.output_channels = 2;
  g.groups = 2;
  g.kernel_width = 2;
  g.dilation_w = 2;
  g.stride_w = 2;
  g.output_width = 2;  // taps at x and x + 2, for x = 0, 2
  // Channel 0 holds 0..4, channel 1 holds 10..14.
  std::vector<float> input;
  for (int x = 0; x < 5; ++x) input.insert(input.end(), {float(x), float(10 + x)});
  const std::vector<float> filter = {1, 10, -1, 1};  // [O=2][KW=2][I=1]
  const std::vector<float> bias = {0.5f, 0};
  std::vector<float> out(4);
  Conv2DFloat(params, input.data(), filter.data(), bias.data(), out.data());
  // Output x=0: ch0 0*1 + 2*10 + 0.5, ch1 -10 + 12; x=1: ch0 2 + 40 + 0.5, ch1 -12 + 14.
  EXPECT_THAT(out, ElementsAre(20.5f, 2.0f, 42.5f, 2.0f));
}

TEST(AddInt8, HandChecked) {
  // a: scale 0.5, zero point 0; b: scale 0.25, zero point 4; out: scale 1, zero point -1.
  AddInt8Params params;
  params.size = 2;
  params.a_zero_point = 0;
  params.b_zero_point = 4;
  params.a_multiplier = Multiplier(0.5 / (2 * 0.5));
  params.b_multiplier = Multiplier(0.25 / (2 * 0.5));
  params.output_multiplier = Multiplier(2 * 0.5 / (1 << kAddLeftShift));
  params.output.zero_point = -1;
  const std::vector<int8_t> a = {10, -7};   // 5.0, -3.5
  const std::vector<int8_t> b = {12, 100};  // 2.0, 24.0
  std::vector<int8_t> out(2);
  AddInt8(params, a.data(), b.data(), out.data());
  EXPECT_THAT(out, ElementsAre(6, 20));  // 7 - 1; 20.5 -> 21 (ties away) - 1
}

TEST(MeanInt8AndFloat, HandChecked) {
  MeanInt8Params params;
  params.height = 2;
  params.channels = 2;
  params.input_zero_point = 1;
  params.multiplier = Multiplier(1.0 / 2);  // equal scales, H * W = 2
  const std::vector<int8_t> input = {5, -3, 9, 7};  // channel 0: 5, 9; channel 1: -3, 7
  std::vector<int8_t> out(2);
  MeanInt8(params, input.data(), out.data());
  EXPECT_THAT(out, ElementsAre(6, 1));  // mean of (4, 8) = 6; of (-4, 6) = 1; no zero point out

  MeanFloatParams float_params{/*batch=*/1, /*height=*/2, /*width=*/1, /*channels=*/2};
  const std::vector<float> float_input = {5, -3, 9, 7};
  std::vector<float> float_out(2);
  MeanFloat(float_params, float_input.data(), float_out.data());
  EXPECT_THAT(float_out, ElementsAre(7.0f, 2.0f));
}

TEST(QuantizeDequantize, RoundTrip) {
  const std::vector<float> x = {-1.0f, 0.0f, 0.26f, 0.25f, 100.0f};
  std::vector<int8_t> q(5);
  QuantizeToInt8(5, 0.5f, 2, x.data(), q.data());
  EXPECT_THAT(q, ElementsAre(0, 2, 3, 2, 127));  // 0.25 / 0.5 = 0.5 rounds to even 0
  std::vector<float> back(5);
  DequantizeInt8(5, 0.5f, 2, q.data(), back.data());
  EXPECT_THAT(back, ElementsAre(-1.0f, 0.0f, 0.5f, 0.0f, 62.5f));
}

// ---- Randomized checks against real-valued arithmetic ----

using Rng = qforge::testing::Random;
using qforge::testing::FitOutput;

using qforge::testing::OutputStats;

// Most expected outputs must be inside the clamp range and spread over it, or
// the 1-step checks below would check little.
void ExpectMostlyInside(const OutputStats& stats) {
  EXPECT_LT(stats.OnBoundShare(), 0.15);
  EXPECT_GT(stats.CodeSd(), 15);
}

// The int8 output an exact computation would give for `real`.
int ExpectedQ(double real, float scale, int32_t zero_point, const Int8Output& out) {
  const double q = std::nearbyint(real / scale) + zero_point;
  return static_cast<int>(std::clamp<double>(q, out.qmin, out.qmax));
}

TEST(Conv2DInt8, RandomGeometriesMatchRealArithmeticWithinOneStep) {
  Rng rng(2024);
  OutputStats clamped;
  for (int trial = 0; trial < 300; ++trial) {
    ConvGeometry g;
    g.batch = rng.Int(1, 2);
    g.groups = rng.Int(1, 3);
    const bool depthwise = rng.Int(0, 2) == 0;
    const int group_in = depthwise ? 1 : rng.Int(1, 4);
    g.input_channels = g.groups * group_in;
    g.output_channels = g.groups * (depthwise ? rng.Int(1, 2) : rng.Int(1, 4));
    g.kernel_height = rng.Int(1, 3);
    g.kernel_width = rng.Int(1, 3);
    g.stride_h = rng.Int(1, 2);
    g.stride_w = rng.Int(1, 2);
    g.dilation_h = rng.Int(1, 2);
    g.dilation_w = rng.Int(1, 2);
    g.pad_top = rng.Int(0, 2);
    g.pad_left = rng.Int(0, 2);
    const int pad_bottom = rng.Int(0, 2), pad_right = rng.Int(0, 2);
    g.input_height = rng.Int(g.dilation_h * (g.kernel_height - 1) + 1, 7);
    g.input_width = rng.Int(g.dilation_w * (g.kernel_width - 1) + 1, 7);
    g.output_height = static_cast<int>(ConvOutputSize(g.input_height, g.kernel_height, g.stride_h,
                                                      g.dilation_h, g.pad_top, pad_bottom));
    g.output_width = static_cast<int>(ConvOutputSize(g.input_width, g.kernel_width, g.stride_w,
                                                     g.dilation_w, g.pad_left, pad_right));

    const float input_scale = rng.Float(0.01f, 0.1f);
    const int32_t input_zero_point = rng.Int(-128, 127);
    const int group_in_channels = g.input_channels / g.groups;
    const int64_t filter_per_out = int64_t{g.kernel_height} * g.kernel_width * group_in_channels;
    const qforge::testing::ProductLayer layer = qforge::testing::RandomProductLayer(
        rng, filter_per_out, g.output_channels, input_scale, input_zero_point,
        /*per_channel=*/true, /*positive=*/false);
    const std::vector<float>& weight_scales = layer.weight_scales;
    const std::vector<int32_t>& bias = layer.bias;
    Conv2DInt8Params params;
    params.geometry = g;
    params.input_zero_point = input_zero_point;
    params.output.qmin = rng.Int(-128, -100);
    params.output.qmax = rng.Int(100, 127);
    const auto fit = FitOutput(rng, layer.real_mean - 3.5 * layer.real_sd,
                               layer.real_mean + 3.5 * layer.real_sd, params.output.qmin,
                               params.output.qmax);
    const float output_scale = fit.scale;
    params.output.zero_point = fit.zero_point;
    params.multipliers = *QuantizeConvMultipliers(input_scale, weight_scales, output_scale);

    const std::vector<int8_t> input =
        rng.Int8s(int64_t{g.batch} * g.input_height * g.input_width * g.input_channels);
    const std::vector<int8_t> filter = rng.Int8s(g.output_channels * filter_per_out, -127, 127);
    std::vector<int8_t> out(int64_t{g.batch} * g.output_height * g.output_width *
                            g.output_channels);
    Conv2DInt8(params, input.data(), filter.data(), bias.data(), out.data());

    // The same layer in real numbers, through the float reference.
    std::vector<float> real_input(input.size()), real_filter(filter.size()), real_bias(bias.size());
    for (size_t i = 0; i < input.size(); ++i) {
      real_input[i] = input_scale * (input[i] - input_zero_point);
    }
    for (size_t i = 0; i < filter.size(); ++i) {
      real_filter[i] = weight_scales[i / filter_per_out] * filter[i];
    }
    for (size_t o = 0; o < bias.size(); ++o) {
      real_bias[o] = static_cast<float>(double{input_scale} * weight_scales[o] * bias[o]);
    }
    Conv2DFloatParams float_params;
    float_params.geometry = g;
    std::vector<float> real_out(out.size());
    Conv2DFloat(float_params, real_input.data(), real_filter.data(), real_bias.data(),
                real_out.data());
    for (size_t i = 0; i < out.size(); ++i) {
      const int expected =
          ExpectedQ(real_out[i], output_scale, params.output.zero_point, params.output);
      ASSERT_LE(std::abs(out[i] - expected), 1) << "trial " << trial << " output " << i;
      clamped.Add(expected, params.output.qmin, params.output.qmax);
    }
  }
  ExpectMostlyInside(clamped);
}

TEST(AddInt8, RandomScalesMatchRealArithmeticWithinOneStep) {
  Rng rng(77);
  OutputStats clamped;
  for (int trial = 0; trial < 200; ++trial) {
    const float a_scale = rng.Float(0.01f, 0.2f), b_scale = rng.Float(0.01f, 0.2f);
    const double max_scale = std::max(a_scale, b_scale);
    AddInt8Params params;
    params.size = 64;
    params.a_zero_point = rng.Int(-40, 40);
    params.b_zero_point = rng.Int(-40, 40);
    const double mean =
        a_scale * (-0.5 - params.a_zero_point) + b_scale * (-0.5 - params.b_zero_point);
    const double sd = std::sqrt((a_scale * a_scale + b_scale * b_scale) * 65535.0 / 12);
    const auto fit = FitOutput(rng, mean - 3.5 * sd, mean + 3.5 * sd);
    const float out_scale = fit.scale;
    params.a_multiplier = Multiplier(a_scale / (2 * max_scale));
    params.b_multiplier = Multiplier(b_scale / (2 * max_scale));
    params.output_multiplier = Multiplier(2 * max_scale / ((1 << kAddLeftShift) * double{out_scale}));
    params.output = Int8Output{fit.zero_point, -128, 127};
    const std::vector<int8_t> a = rng.Int8s(64), b = rng.Int8s(64);
    std::vector<int8_t> out(64);
    AddInt8(params, a.data(), b.data(), out.data());
    for (int i = 0; i < 64; ++i) {
      const double real = double{a_scale} * (a[i] - params.a_zero_point) +
                          double{b_scale} * (b[i] - params.b_zero_point);
      const int expected = ExpectedQ(real, out_scale, params.output.zero_point, params.output);
      ASSERT_LE(std::abs(out[i] - expected), 1) << "trial " << trial;
      clamped.Add(expected, params.output.qmin, params.output.qmax);
    }
  }
  ExpectMostlyInside(clamped);
}

TEST(MeanInt8, RandomShapesMatchRealArithmeticWithinOneStep) {
  Rng rng(5);
  OutputStats clamped;
  for (int trial = 0; trial < 200; ++trial) {
    MeanInt8Params params;
    params.batch = rng.Int(1, 2);
    params.height = rng.Int(1, 9);
    params.width = rng.Int(1, 9);
    params.channels = rng.Int(1, 5);
    params.input_zero_point = rng.Int(-128, 127);
    const int64_t pixels = int64_t{params.height} * params.width;
    // The mean of uniform values: about the input's middle, with a spread
    // that shrinks with the pixel count.
    const float in_scale = rng.Float(0.01f, 0.2f);
    const double mean = in_scale * (-0.5 - params.input_zero_point);
    const double sd = in_scale * 74 / std::sqrt(static_cast<double>(pixels));
    const auto fit = FitOutput(rng, mean - 3.5 * sd, mean + 3.5 * sd);
    const float out_scale = fit.scale;
    params.multiplier = Multiplier(double{in_scale} / (double{out_scale} * params.height * params.width));
    params.output = Int8Output{fit.zero_point, -128, 127};
    const std::vector<int8_t> input = rng.Int8s(params.batch * pixels * params.channels);
    std::vector<int8_t> out(params.batch * params.channels);
    MeanInt8(params, input.data(), out.data());
    for (int n = 0; n < params.batch; ++n) {
      for (int c = 0; c < params.channels; ++c) {
        double sum = 0;
        for (int64_t p = 0; p < pixels; ++p) {
          sum += in_scale * (input[(n * pixels + p) * params.channels + c] - params.input_zero_point);
        }
        const int expected =
            ExpectedQ(sum / pixels, out_scale, params.output.zero_point, params.output);
        ASSERT_LE(std::abs(out[n * params.channels + c] - expected), 1);
        clamped.Add(expected, params.output.qmin, params.output.qmax);
      }
    }
  }
  ExpectMostlyInside(clamped);
}

TEST(FullyConnectedInt8, PerTensorAndPerChannelMatchRealArithmeticWithinOneStep) {
  Rng rng(9);
  OutputStats clamped;
  for (int trial = 0; trial < 200; ++trial) {
    FullyConnectedInt8Params params;
    params.batch = rng.Int(1, 3);
    params.input_features = rng.Int(1, 40);
    params.output_features = rng.Int(1, 10);
    params.input_zero_point = rng.Int(-128, 127);
    const bool per_channel = trial % 2 == 0;
    const float in_scale = rng.Float(0.01f, 0.1f);
    const qforge::testing::ProductLayer layer = qforge::testing::RandomProductLayer(
        rng, params.input_features, params.output_features, in_scale, params.input_zero_point,
        per_channel, /*positive=*/false);
    const std::vector<float>& w_scales = layer.weight_scales;
    const auto fit = FitOutput(rng, layer.real_mean - 3.5 * layer.real_sd,
                               layer.real_mean + 3.5 * layer.real_sd);
    const float out_scale = fit.scale;
    // Per-tensor weights: the same multiplier for every output, as Prepare makes it.
    std::vector<float> spread(params.output_features);
    for (int o = 0; o < params.output_features; ++o) spread[o] = w_scales[per_channel ? o : 0];
    params.multipliers = *QuantizeConvMultipliers(in_scale, spread, out_scale);
    params.output = Int8Output{fit.zero_point, -128, 127};
    const std::vector<int8_t> x = rng.Int8s(params.batch * params.input_features);
    const std::vector<int8_t> w =
        rng.Int8s(params.output_features * params.input_features, -127, 127);
    const std::vector<int32_t>& bias = layer.bias;
    std::vector<int8_t> out(params.batch * params.output_features);
    FullyConnectedInt8(params, x.data(), w.data(), bias.data(), out.data());
    for (int n = 0; n < params.batch; ++n) {
      for (int o = 0; o < params.output_features; ++o) {
        const double ws = w_scales[per_channel ? o : 0];
        double real = double{in_scale} * ws * bias[o];
        for (int k = 0; k < params.input_features; ++k) {
          real += in_scale * (x[n * params.input_features + k] - params.input_zero_point) * ws *
                  w[o * params.input_features + k];
        }
        const int expected = ExpectedQ(real, out_scale, params.output.zero_point, params.output);
        ASSERT_LE(std::abs(out[n * params.output_features + o] - expected), 1);
        clamped.Add(expected, params.output.qmin, params.output.qmax);
      }
    }
  }
  ExpectMostlyInside(clamped);
}

}  // namespace
}  // namespace qforge::reference
