#include "common/quantization.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Real 0 must map to an integer q exactly, and back to 0.
void ExpectZeroExact(const QuantParams& p) {
  EXPECT_EQ(Dequantize(Quantize(0.0f, p), p), 0.0f);
}

TEST(ChooseActivationParams, MixedRangeHandChecked) {
  // [-1, 3]: scale 4/255, zero point -128 - round(-1 / (4/255)) = -128 + 64 = -64.
  absl::StatusOr<QuantParams> p = ChooseActivationParams(-1.0f, 3.0f);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FLOAT_EQ(p->scale, 4.0f / 255.0f);
  EXPECT_EQ(p->zero_point, -64);
  EXPECT_EQ(Quantize(-1.0f, *p), -128);
  EXPECT_EQ(Quantize(3.0f, *p), 127);
  ExpectZeroExact(*p);
}

TEST(ChooseActivationParams, AllPositiveRangeIsWidenedToZero) {
  // [2, 5] is treated as [0, 5]: zero point at the bottom of the int8 range.
  absl::StatusOr<QuantParams> p = ChooseActivationParams(2.0f, 5.0f);
  ASSERT_TRUE(p.ok());
  EXPECT_FLOAT_EQ(p->scale, 5.0f / 255.0f);
  EXPECT_EQ(p->zero_point, -128);
  EXPECT_EQ(Quantize(5.0f, *p), 127);
  ExpectZeroExact(*p);
}

TEST(ChooseActivationParams, AllNegativeRangeIsWidenedToZero) {
  absl::StatusOr<QuantParams> p = ChooseActivationParams(-6.0f, -1.0f);
  ASSERT_TRUE(p.ok());
  EXPECT_FLOAT_EQ(p->scale, 6.0f / 255.0f);
  EXPECT_EQ(p->zero_point, 127);
  EXPECT_EQ(Quantize(-6.0f, *p), -128);
  ExpectZeroExact(*p);
}

TEST(ChooseActivationParams, ZeroRangeUsesMinScale) {
  absl::StatusOr<QuantParams> p = ChooseActivationParams(0.0f, 0.0f);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->scale, kDefaultMinScale);
  EXPECT_EQ(p->zero_point, -128);
  ExpectZeroExact(*p);

  absl::StatusOr<QuantParams> floored = ChooseActivationParams(0.0f, 0.0f, 1.0f / 4096);
  ASSERT_TRUE(floored.ok());
  EXPECT_EQ(floored->scale, 1.0f / 4096);
}

TEST(ChooseActivationParams, TinyRangeIsFlooredHugeRangeKeepsScale) {
  absl::StatusOr<QuantParams> tiny = ChooseActivationParams(-1e-30f, 1e-30f);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->scale, kDefaultMinScale);
  ExpectZeroExact(*tiny);

  absl::StatusOr<QuantParams> huge = ChooseActivationParams(-1e30f, 3e30f);
  ASSERT_TRUE(huge.ok());
  EXPECT_FLOAT_EQ(huge->scale, 4e30f / 255.0f);
  EXPECT_GE(huge->zero_point, kActivationQMin);
  EXPECT_LE(huge->zero_point, kActivationQMax);
  ExpectZeroExact(*huge);
}

TEST(ChooseActivationParams, RangeWiderThanFloatIsRejected) {
  absl::StatusOr<QuantParams> p = ChooseActivationParams(-3e38f, 3e38f);
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(p.status().message(), HasSubstr("too wide"));
}

TEST(ChooseActivationParams, NonFiniteAndInvertedRangesAreRejected) {
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{
           {kNaN, 1.0f}, {0.0f, kNaN}, {-kInf, 1.0f}, {0.0f, kInf}, {kInf, -kInf}}) {
    absl::StatusOr<QuantParams> p = ChooseActivationParams(lo, hi);
    ASSERT_FALSE(p.ok()) << lo << " " << hi;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(p.status().message(), HasSubstr("not finite"));
  }
  absl::StatusOr<QuantParams> inverted = ChooseActivationParams(1.0f, -1.0f);
  ASSERT_FALSE(inverted.ok());
  EXPECT_THAT(inverted.status().message(), HasSubstr("min > max"));
  EXPECT_FALSE(ChooseActivationParams(0.0f, 1.0f, 0.0f).ok());
  EXPECT_FALSE(ChooseActivationParams(0.0f, 1.0f, kNaN).ok());
}

TEST(ChooseActivationParams, RandomRangesAlwaysContainZeroAndCoverTheRange) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-50.0f, 50.0f);
  for (int i = 0; i < 10000; ++i) {
    float a = dist(rng), b = dist(rng);
    if (a > b) std::swap(a, b);
    absl::StatusOr<QuantParams> p = ChooseActivationParams(a, b);
    ASSERT_TRUE(p.ok());
    ASSERT_GE(p->zero_point, kActivationQMin);
    ASSERT_LE(p->zero_point, kActivationQMax);
    ExpectZeroExact(*p);
    // The ends of the observed range are within half a step of a representable value.
    for (float x : {a, b}) {
      const float back = Dequantize(Quantize(x, *p), *p);
      ASSERT_LE(std::fabs(back - x), 0.5f * p->scale * (1 + 1e-4f)) << a << " " << b;
    }
  }
}

TEST(ChooseWeightParams, SymmetricHandChecked) {
  absl::StatusOr<QuantParams> p = ChooseWeightParams(-0.5f, 0.25f);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->scale, 0.5f / 127.5f);  // PyTorch's scale, not 0.5 / 127
  EXPECT_EQ(p->zero_point, 0);
  EXPECT_EQ(Quantize(0.25f, *p, kWeightQMin, kWeightQMax), 64);  // 63.75
  // The ends of the range, 127.5 steps out, clamp to [-127, 127].
  EXPECT_EQ(Quantize(-0.5f, *p, kWeightQMin, kWeightQMax), -127);
  EXPECT_EQ(Quantize(0.5f, *p, kWeightQMin, kWeightQMax), 127);
  // Values beyond the range clamp to -127, never -128.
  EXPECT_EQ(Quantize(-9.0f, *p, kWeightQMin, kWeightQMax), -127);
}

TEST(ChooseWeightParams, AllZeroAndRejected) {
  absl::StatusOr<QuantParams> zero = ChooseWeightParams(0.0f, 0.0f);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(zero->scale, kDefaultMinScale);
  EXPECT_FALSE(ChooseWeightParams(kNaN, 0.0f).ok());
  EXPECT_FALSE(ChooseWeightParams(0.0f, kInf).ok());
}

TEST(ChooseWeightScalesPerChannel, OneScalePerChannel) {
  std::vector<float> mins = {-1.0f, 0.0f, -0.1f};
  std::vector<float> maxs = {0.5f, 2.0f, 0.0f};
  absl::StatusOr<std::vector<float>> scales = ChooseWeightScalesPerChannel(mins, maxs);
  ASSERT_TRUE(scales.ok());
  EXPECT_THAT(*scales, ::testing::Pointwise(::testing::FloatEq(),
                                            {1.0f / 127.5f, 2.0f / 127.5f, 0.1f / 127.5f}));
}

TEST(ChooseWeightScalesPerChannel, ErrorsNameTheChannel) {
  std::vector<float> mins = {-1.0f, kNaN};
  std::vector<float> maxs = {1.0f, 1.0f};
  absl::StatusOr<std::vector<float>> scales = ChooseWeightScalesPerChannel(mins, maxs);
  ASSERT_FALSE(scales.ok());
  EXPECT_THAT(scales.status().message(), HasSubstr("channel 1"));
  EXPECT_FALSE(ChooseWeightScalesPerChannel(mins, std::vector<float>{1.0f}).ok());
}

TEST(Quantize, RoundsHalfToEven) {
  const QuantParams p{1.0f, 0};
  EXPECT_EQ(Quantize(0.5f, p), 0);
  EXPECT_EQ(Quantize(1.5f, p), 2);
  EXPECT_EQ(Quantize(2.5f, p), 2);
  EXPECT_EQ(Quantize(-0.5f, p), 0);
  EXPECT_EQ(Quantize(-1.5f, p), -2);
  EXPECT_EQ(Quantize(-2.5f, p), -2);
  EXPECT_EQ(Quantize(0.5000001f, p), 1);
}

TEST(Quantize, ClampsSaturatesAndMapsNaNToZeroPoint) {
  const QuantParams p{0.1f, 3};
  EXPECT_EQ(Quantize(1e30f, p), 127);
  EXPECT_EQ(Quantize(-1e30f, p), -128);
  EXPECT_EQ(Quantize(kInf, p), 127);
  EXPECT_EQ(Quantize(-kInf, p), -128);
  EXPECT_EQ(Quantize(kNaN, p), 3);
  EXPECT_EQ(Quantize(0.0f, p), 3);
}

TEST(Quantize, DequantizeRoundTripIsWithinHalfAStep) {
  const QuantParams p{0.05f, -10};
  for (int q = -128; q <= 127; ++q) {
    EXPECT_EQ(Quantize(Dequantize(static_cast<int8_t>(q), p), p), q);
  }
}

TEST(ValidateQuantParams, RejectsBadScaleAndZeroPoint) {
  EXPECT_TRUE(ValidateQuantParams({0.1f, 0}, kActivationQMin, kActivationQMax).ok());
  EXPECT_FALSE(ValidateQuantParams({0.0f, 0}, kActivationQMin, kActivationQMax).ok());
  EXPECT_FALSE(ValidateQuantParams({-1.0f, 0}, kActivationQMin, kActivationQMax).ok());
  EXPECT_FALSE(ValidateQuantParams({kNaN, 0}, kActivationQMin, kActivationQMax).ok());
  EXPECT_FALSE(ValidateQuantParams({kInf, 0}, kActivationQMin, kActivationQMax).ok());
  EXPECT_FALSE(ValidateQuantParams({1e-40f, 0}, kActivationQMin, kActivationQMax).ok());
  absl::Status s = ValidateQuantParams({0.1f, 128}, kActivationQMin, kActivationQMax);
  EXPECT_THAT(s.message(), HasSubstr("zero point 128"));
  EXPECT_FALSE(ValidateQuantParams({0.1f, -128}, kWeightQMin, kWeightQMax).ok());
}

TEST(QuantizePerChannel, QuantizesEachChannelWithItsScale) {
  // Shape [2, 3] along axis 1: three channels of two values each.
  const std::vector<float> values = {1.0f, 1.0f, -3.0f, -1.0f, 4.0f, 3.0f};
  const std::vector<int64_t> shape = {2, 3};
  const std::vector<float> scales = {1.0f / 127, 4.0f / 127, 3.0f / 127};
  std::vector<int8_t> out(6);
  ASSERT_TRUE(QuantizePerChannel(values, shape, 1, scales, absl::MakeSpan(out)).ok());
  EXPECT_THAT(out, ::testing::ElementsAre(127, 32, -127, -127, 127, 127));
}

TEST(QuantizePerChannel, RejectsMismatches) {
  const std::vector<float> values(6);
  std::vector<int8_t> out(6);
  const std::vector<int64_t> shape = {2, 3};
  EXPECT_FALSE(QuantizePerChannel(values, shape, 2, {1, 1, 1}, absl::MakeSpan(out)).ok());
  EXPECT_FALSE(QuantizePerChannel(values, shape, -1, {1, 1}, absl::MakeSpan(out)).ok());
  absl::Status s = QuantizePerChannel(values, shape, 0, {1, 1, 1}, absl::MakeSpan(out));
  EXPECT_THAT(s.message(), HasSubstr("3 scales for 2 channels"));
  std::vector<int8_t> short_out(5);
  EXPECT_FALSE(
      QuantizePerChannel(values, shape, 0, {1, 1}, absl::MakeSpan(short_out)).ok());
}

TEST(QuantizeBias, RoundsAndSaturates) {
  EXPECT_EQ(QuantizeBias(1.0f, 0.25f), 4);
  EXPECT_EQ(QuantizeBias(-0.375f, 0.25f), -2);  // -1.5 rounds half to even
  EXPECT_EQ(QuantizeBias(1e30f, 1e-10f), std::numeric_limits<int32_t>::max());
  EXPECT_EQ(QuantizeBias(-1e30f, 1e-10f), std::numeric_limits<int32_t>::min());
}

}  // namespace
}  // namespace qforge
