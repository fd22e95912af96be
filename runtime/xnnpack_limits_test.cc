// Checks the facts about Debian's XNNPACK (snapshot 2022-02-16) that qforge's
// numerics rely on (shared/DESIGN.md), against the installed library itself:
// the operators exist, compute what the scheme says, and accept exactly the
// requantization scales common/requantize.h allows. The runtime is built on
// these operators; if a Debian update changes a limit, this test says so first.
#include <xnnpack.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "common/requantize.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

class XnnpackLimits : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(xnn_initialize(/*allocator=*/nullptr), xnn_status_success); }
};

// Creates a 1x1, 2-in 1-out qc8 convolution whose requantization scale is
// `requant_scale` (input scale 1, kernel scale 1, output scale 1/requant_scale).
xnn_status CreateConv(float requant_scale, xnn_operator_t* op) {
  static const int8_t kernel[2] = {1, 2};
  static const int32_t bias[1] = {0};
  const float kernel_scale = 1.0f;
  return xnn_create_convolution2d_nhwc_qc8(
      /*padding=*/0, 0, 0, 0, /*kernel=*/1, 1, /*subsampling=*/1, 1, /*dilation=*/1, 1,
      /*groups=*/1, /*group_input_channels=*/2, /*group_output_channels=*/1,
      /*input_channel_stride=*/2, /*output_channel_stride=*/1, /*input_zero_point=*/0,
      /*input_scale=*/1.0f, &kernel_scale, kernel, bias, /*output_zero_point=*/0,
      /*output_scale=*/1.0f / requant_scale, /*output_min=*/-128, /*output_max=*/127,
      /*flags=*/0, op);
}

TEST_F(XnnpackLimits, Qc8ConvolutionComputesTheScheme) {
  xnn_operator_t op = nullptr;
  ASSERT_EQ(CreateConv(/*requant_scale=*/0.5f, &op), xnn_status_success);
  const std::vector<int8_t> input = {10, 21};
  std::vector<int8_t> output(1);
  ASSERT_EQ(xnn_setup_convolution2d_nhwc_qc8(op, /*batch=*/1, /*height=*/1, /*width=*/1,
                                             input.data(), output.data(), nullptr),
            xnn_status_success);
  ASSERT_EQ(xnn_run_operator(op, nullptr), xnn_status_success);
  // (10 * 1 + 21 * 2) * 0.5 = 26.
  EXPECT_EQ(output[0], 26);
  xnn_delete_operator(op);
}

// Every requantization scale qforge accepts, XNNPACK accepts too, and both
// refuse 256 and up. Below, qforge is the stricter: its floor of 2^-32 comes from
// its multiplier's shift limit (31, gemmlowp's), while this XNNPACK's qc8 convolution requantizes
// in fp32 and takes scales down to 2^-126 (measured).
TEST_F(XnnpackLimits, ConvolutionAcceptsEveryScaleQforgeAccepts) {
  for (double scale : {0x1.0p-33, 0x1.0p-32, 0x1.0p-20, 0.5, 1.0, 255.0, 255.99, 256.0, 300.0}) {
    xnn_operator_t op = nullptr;
    const bool xnnpack_accepts = CreateConv(static_cast<float>(scale), &op) == xnn_status_success;
    if (op != nullptr) xnn_delete_operator(op);
    const bool qforge_accepts = QuantizeMultiplier(scale).ok();
    if (qforge_accepts) {
      EXPECT_TRUE(xnnpack_accepts) << "scale " << scale;
    }
    if (scale >= 256.0) {
      EXPECT_FALSE(xnnpack_accepts) << "scale " << scale;
      EXPECT_FALSE(qforge_accepts) << "scale " << scale;
    }
  }
  xnn_operator_t op = nullptr;
  EXPECT_EQ(CreateConv(0x1.0p-126f, &op), xnn_status_success);
  xnn_delete_operator(op);
}

xnn_status CreateAdd(float input_over_output, xnn_operator_t* op) {
  return xnn_create_add_nd_qs8(/*input1_zero_point=*/0, /*input1_scale=*/input_over_output,
                               /*input2_zero_point=*/0, /*input2_scale=*/1.0f,
                               /*output_zero_point=*/0, /*output_scale=*/1.0f, -128, 127,
                               /*flags=*/0, op);
}

TEST_F(XnnpackLimits, AddAcceptsInputToOutputScaleRatiosInTwoToTheMinus10To256) {
  for (auto [ratio, accepted] : std::vector<std::pair<float, bool>>{
           {0x1.0p-11f, false}, {0x1.0p-10f, true}, {1.0f, true}, {255.0f, true}, {256.0f, false}}) {
    xnn_operator_t op = nullptr;
    EXPECT_EQ(CreateAdd(ratio, &op) == xnn_status_success, accepted) << "ratio " << ratio;
    if (op != nullptr) xnn_delete_operator(op);
  }
}

xnn_status CreateMean(float input_over_output, xnn_operator_t* op) {
  return xnn_create_global_average_pooling_nwc_qs8(
      /*channels=*/4, /*input_stride=*/4, /*output_stride=*/4, /*input_zero_point=*/0,
      /*input_scale=*/input_over_output, /*output_zero_point=*/0, /*output_scale=*/1.0f, -128,
      127, /*flags=*/0, op);
}

TEST_F(XnnpackLimits, GlobalAveragePoolingAcceptsScaleRatiosInTwoToTheMinus8To256) {
  for (auto [ratio, accepted] : std::vector<std::pair<float, bool>>{
           {0x1.0p-9f, false}, {0x1.0p-8f, true}, {1.0f, true}, {255.0f, true}, {256.0f, false}}) {
    xnn_operator_t op = nullptr;
    EXPECT_EQ(CreateMean(ratio, &op) == xnn_status_success, accepted) << "ratio " << ratio;
    if (op != nullptr) xnn_delete_operator(op);
  }
}

TEST_F(XnnpackLimits, FullyConnectedIsPerTensor) {
  // One kernel scale for all outputs: a per-channel classifier must run as a
  // 1x1 qc8 convolution instead.
  const std::vector<int8_t> kernel = {1, 2, 3, 4};
  const std::vector<int32_t> bias = {0, 0};
  xnn_operator_t op = nullptr;
  ASSERT_EQ(xnn_create_fully_connected_nc_qs8(
                /*input_channels=*/2, /*output_channels=*/2, /*input_stride=*/2,
                /*output_stride=*/2, /*input_zero_point=*/0, /*input_scale=*/1.0f,
                /*kernel_scale=*/0.5f, kernel.data(), bias.data(), /*output_zero_point=*/0,
                /*output_scale=*/1.0f, -128, 127, /*flags=*/0, &op),
            xnn_status_success);
  xnn_delete_operator(op);
}

}  // namespace
}  // namespace qforge
