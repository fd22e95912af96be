// Prepare on small models: the parameters it derives, and a named error for
// each way an op can be wrong that the structural validator cannot see.
#include "runtime/prepare.h"

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/model_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model_validator.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

// int8 [1,4,4,2] -> CONV2D 3x3 (3 out, per-channel) -> ADD with itself -> MEAN_HW
// -> RESHAPE -> FULLY_CONNECTED -> DEQUANTIZE. Tensor ids in comments.
Model Int8Chain() {
  ModelBuilder b;
  const int x = b.AddInt8Tensor("x", {1, 4, 4, 2}, 0.02f, 3);                              // 0
  const int w = b.AddInt8Constant("conv.w", {3, 3, 3, 2}, std::vector<int8_t>(54, 5),
                                  {0.01f, 0.02f, 0.04f});                                   // 1
  const int bias = b.AddInt32Constant("conv.b", {3}, {10, -10, 0},
                                      {0.02f * 0.01f, 0.02f * 0.02f, 0.02f * 0.04f});       // 2
  const int conv = b.AddInt8Tensor("conv", {1, 4, 4, 3}, 0.1f, -128);                      // 3
  const int sum = b.AddInt8Tensor("sum", {1, 4, 4, 3}, 0.2f, -128);                        // 4
  const int mean = b.AddInt8Tensor("mean", {1, 1, 1, 3}, 0.2f, -128);                      // 5
  const int flat = b.AddInt8Tensor("flat", {1, 3}, 0.2f, -128);                            // 6
  const int fc_w = b.AddInt8Constant("fc.w", {2, 3}, {1, 2, 3, 4, 5, 6}, {0.5f});         // 7
  const int fc = b.AddInt8Tensor("fc", {1, 2}, 1.0f, 0);                                   // 8
  const int out = b.AddFloatTensor("out", {1, 2});                                          // 9
  b.AddConv2D("conv", x, w, bias, conv, 1, 1, 1, RELU6);
  b.AddOp(ADD, "add", {conv, conv}, sum);
  b.AddOp(MEAN_HW, "pool", {sum}, mean);
  b.AddOp(RESHAPE, "flatten", {mean}, flat);
  b.AddOp(FULLY_CONNECTED, "fc", {flat, fc_w}, fc);
  b.AddOp(DEQUANTIZE, "dequant", {fc}, out);
  b.AddInput(x);
  b.AddOutput(out);
  return b.model();
}

absl::Status PrepareAll(const Model& model) {
  if (absl::Status s = ValidateModel(model); !s.ok()) return s;
  for (int i = 0; i < model.ops_size(); ++i) {
    absl::StatusOr<PreparedOp> op = PrepareOp(model, i);
    if (!op.ok()) return op.status();
  }
  return absl::OkStatus();
}

TEST(PrepareOp, DerivesConvParameters) {
  const Model model = Int8Chain();
  ASSERT_TRUE(PrepareAll(model).ok()) << PrepareAll(model);
  absl::StatusOr<PreparedOp> conv = PrepareOp(model, 0);
  ASSERT_TRUE(conv.ok());
  const auto& params = std::get<reference::Conv2DInt8Params>(conv->params);
  EXPECT_EQ(params.geometry.output_height, 4);
  EXPECT_EQ(params.geometry.pad_top, 1);
  EXPECT_EQ(params.input_zero_point, 3);
  ASSERT_EQ(params.multipliers.size(), 3u);
  EXPECT_NEAR(RealMultiplier(params.multipliers[2]), 0.02 * 0.04 / 0.1, 1e-9);
  // ReLU6 on scale 0.1, zero point -128: [-128, -128 + 60].
  EXPECT_EQ(params.output.qmin, -128);
  EXPECT_EQ(params.output.qmax, -68);
}

// A bias without quantization takes the implied scale input * weight scale;
// the weights' zero points, left out, are all zero.
TEST(PrepareOp, BiasScaleAndWeightZeroPointsMayBeImplied) {
  Model model = Int8Chain();
  EXPECT_EQ(model.tensors(1).quantization().zero_point_size(), 0);
  model.mutable_tensors(2)->clear_quantization();
  ASSERT_TRUE(PrepareAll(model).ok()) << PrepareAll(model);
  absl::StatusOr<PreparedOp> conv = PrepareOp(model, 0);
  ASSERT_TRUE(conv.ok());
  const auto& params = std::get<reference::Conv2DInt8Params>(conv->params);
  EXPECT_NEAR(RealMultiplier(params.multipliers[2]), 0.02 * 0.04 / 0.1, 1e-9);
  model.mutable_tensors(2)->mutable_quantization()->add_zero_point(0);  // zero points, no scales
  EXPECT_THAT(PrepareAll(model).message(), HasSubstr("INT32 tensor has no quantization scale"));
}

TEST(PrepareOp, DerivesAddMeanAndFullyConnectedParameters) {
  const Model model = Int8Chain();
  const auto add = std::get<reference::AddInt8Params>(PrepareOp(model, 1)->params);
  EXPECT_EQ(add.size, 48);
  EXPECT_NEAR(RealMultiplier(add.a_multiplier), 0.5, 1e-9);
  EXPECT_NEAR(RealMultiplier(add.output_multiplier), 0.2 / (0.2 * (1 << 20)), 1e-12);
  const auto mean = std::get<reference::MeanInt8Params>(PrepareOp(model, 2)->params);
  EXPECT_NEAR(RealMultiplier(mean.multiplier), 1.0 / 16, 1e-9);
  const auto fc = std::get<reference::FullyConnectedInt8Params>(PrepareOp(model, 4)->params);
  EXPECT_EQ(fc.input_features, 3);
  ASSERT_EQ(fc.multipliers.size(), 2u);  // per-tensor weights spread to each output
  EXPECT_NEAR(RealMultiplier(fc.multipliers[1]), 0.2 * 0.5 / 1.0, 1e-7);  // float scales
}

TEST(Int8ActivationRange, ClampsInQuantizedUnits) {
  const reference::Int8Output none = Int8ActivationRange(ACTIVATION_NONE, 0.1f, 5);
  EXPECT_EQ(none.qmin, -128);
  EXPECT_EQ(none.qmax, 127);
  const reference::Int8Output relu = Int8ActivationRange(RELU, 0.1f, 5);
  EXPECT_EQ(relu.qmin, 5);
  EXPECT_EQ(relu.qmax, 127);
  const reference::Int8Output relu6 = Int8ActivationRange(RELU6, 0.01f, -128);
  EXPECT_EQ(relu6.qmax, 127);  // 6 / 0.01 = 600 steps: beyond the range
  const reference::Int8Output narrow = Int8ActivationRange(RELU6, 0.1f, -10);
  EXPECT_EQ(narrow.qmin, -10);
  EXPECT_EQ(narrow.qmax, 50);
}

struct Break {
  std::string what;
  std::function<void(Model&)> mutate;
  std::string expected;
};

TEST(PrepareOp, EveryBrokenOpGivesANamedError) {
  const std::vector<Break> breaks = {
      {"conv arity", [](Model& m) { m.mutable_ops(0)->mutable_inputs()->RemoveLast(); m.mutable_ops(0)->mutable_inputs()->RemoveLast(); },
       "op 0 'conv' (CONV2D): takes 2 to 3 inputs, not 1"},
      {"conv stride", [](Model& m) { m.mutable_ops(0)->mutable_conv2d()->set_stride_h(0); },
       "bad attributes: stride 0x1"},
      {"conv groups", [](Model& m) { m.mutable_ops(0)->mutable_conv2d()->set_groups(0); },
       "groups 0"},
      {"conv negative pad", [](Model& m) { m.mutable_ops(0)->mutable_conv2d()->set_pad_left(-1); },
       "padding 1/1/-1/1"},
      {"conv groups mismatch", [](Model& m) { m.mutable_ops(0)->mutable_conv2d()->set_groups(2); },
       "do not fit 2 input channels in 2 groups"},
      {"conv output shape", [](Model& m) { m.mutable_tensors(3)->set_shape(1, 3); },
       "'conv' has shape [1, 3, 4, 3] but the op needs [1, 4, 4, 3]"},
      {"conv kernel too big",
       [](Model& m) {
         auto* a = m.mutable_ops(0)->mutable_conv2d();
         a->set_pad_top(0); a->set_pad_bottom(0); a->set_dilation_h(3);
       },
       "larger than the padded input"},
      {"conv weights not constant",
       [](Model& m) {
         m.mutable_tensors(1)->clear_data();
         m.mutable_tensors(1)->mutable_quantization()->mutable_scale()->Truncate(1);
         m.add_inputs(1);
       },
       "must be a constant"},
      {"conv bias shape", [](Model& m) { m.mutable_ops(0)->set_inputs(2, 7); },
       "'fc.w' has shape [2, 3] but the op needs [3]"},
      {"asymmetric weights",
       [](Model& m) {
         for (int zp : {0, 4, 0}) m.mutable_tensors(1)->mutable_quantization()->add_zero_point(zp);
       },
       "weights must be symmetric, not zero point 4"},
      {"weights -128", [](Model& m) { (*m.mutable_tensors(1)->mutable_data())[7] = -128; },
       "weights hold -128"},
      {"bias scale", [](Model& m) { m.mutable_tensors(2)->mutable_quantization()->set_scale(1, 1.0f); },
       "bias scale 1 of channel 1"},
      {"requant range",
       [](Model& m) { m.mutable_tensors(3)->mutable_quantization()->set_scale(0, 1e-9f); },
       "outside [2^-32, 256)"},
      {"float input to int8 conv", [](Model& m) {
         m.mutable_tensors(0)->set_type(FLOAT32); m.mutable_tensors(0)->clear_quantization(); },
       "int8 layers take per-tensor int8 input"},
      {"per-channel input",
       [](Model& m) {
         auto* q = m.mutable_tensors(0)->mutable_quantization();
         q->add_scale(0.1f); q->add_zero_point(0); q->set_axis(3);
       },
       "'x': has 2 scales; only constants may be quantized per channel"},
      {"add shape", [](Model& m) { m.mutable_tensors(4)->set_shape(3, 6); },
       "'conv' has shape [1, 4, 4, 3] but the op needs [1, 4, 4, 6]"},
      {"add scale ratio",
       [](Model& m) { m.mutable_tensors(4)->mutable_quantization()->set_scale(0, 1000.0f); },
       "scale ratio 0.0001 of 'conv' to 'sum' is outside [2^-10, 256)"},
      {"mean output", [](Model& m) { m.mutable_tensors(5)->set_shape(3, 4); },
       "is neither [1, 3] nor [1, 1, 1, 3]"},
      {"mean scale ratio",
       [](Model& m) { m.mutable_tensors(5)->mutable_quantization()->set_scale(0, 0.0001f); },
       "outside [2^-8, 256)"},
      {"reshape count", [](Model& m) { m.mutable_tensors(6)->set_shape(1, 4); },
       "RESHAPE from [1, 1, 1, 3] to [1, 4]"},
      {"reshape quantization",
       [](Model& m) { m.mutable_tensors(6)->mutable_quantization()->set_zero_point(0, 0); },
       "must keep the element count, type and quantization"},
      {"fc weights", [](Model& m) { m.mutable_tensors(7)->set_shape(1, 2);
                                    m.mutable_tensors(7)->mutable_data()->resize(4); },
       "'fc.w' has shape [2, 2] but the op needs [2, 3]"},
      {"fc output", [](Model& m) { m.mutable_tensors(8)->set_shape(1, 3); },
       "'fc' has shape [1, 3] but the op needs [1, 2]"},
      {"dequantize types", [](Model& m) { m.mutable_ops(5)->set_kind(QUANTIZE); },
       "QUANTIZE takes float input and per-tensor int8 output"},
      {"activation on mean", [](Model& m) { m.mutable_ops(2)->set_activation(RELU); },
       "only CONV2D, ADD and FULLY_CONNECTED can fuse an activation"},
      {"bad activation", [](Model& m) { m.mutable_ops(0)->set_activation(static_cast<Activation>(7)); },
       "activation 7 is not valid"},
      {"bias headroom",
       [](Model& m) {
         const int32_t huge = 2147000000;
         std::memcpy(m.mutable_tensors(2)->mutable_data()->data() + 4, &huge, 4);
       },
       "bias 2147000000 of channel 1 could overflow"},
      {"padding beyond the kernel",
       [](Model& m) { m.mutable_ops(0)->mutable_conv2d()->set_pad_bottom(3); },
       "is not smaller than the kernel span 3x3"},
      {"huge stride", [](Model& m) { m.mutable_ops(0)->mutable_conv2d()->set_stride_w(1 << 30); },
       "bad attributes: stride 1x1073741824"},
      {"single-value clamp",
       [](Model& m) {
         m.mutable_ops(0)->set_activation(RELU);
         m.mutable_tensors(3)->mutable_quantization()->set_zero_point(0, 127);
       },
       "activation RELU leaves only [127, 127] of 'conv'"},
  };
  for (const Break& b : breaks) {
    Model model = Int8Chain();
    b.mutate(model);
    const absl::Status status = PrepareAll(model);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << b.what << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(b.expected)) << b.what;
  }
}

}  // namespace
}  // namespace qforge
