#include "common/requantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

TEST(QuantizeMultiplier, HandCheckedValues) {
  absl::StatusOr<QuantizedMultiplier> half = QuantizeMultiplier(0.5);
  ASSERT_TRUE(half.ok());
  EXPECT_EQ(half->multiplier, 1 << 30);
  EXPECT_EQ(half->exponent, 0);

  absl::StatusOr<QuantizedMultiplier> one = QuantizeMultiplier(1.0);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one->multiplier, 1 << 30);
  EXPECT_EQ(one->exponent, 1);

  absl::StatusOr<QuantizedMultiplier> three_quarters = QuantizeMultiplier(0.75);
  ASSERT_TRUE(three_quarters.ok());
  EXPECT_EQ(three_quarters->multiplier, 3 << 29);
  EXPECT_EQ(three_quarters->exponent, 0);
}

TEST(QuantizeMultiplier, ExtremesOfTheAcceptedRange) {
  absl::StatusOr<QuantizedMultiplier> smallest = QuantizeMultiplier(kMinRequantMultiplier);
  ASSERT_TRUE(smallest.ok());
  EXPECT_EQ(smallest->exponent, -31);
  EXPECT_EQ(RealMultiplier(*smallest), kMinRequantMultiplier);

  absl::StatusOr<QuantizedMultiplier> largest = QuantizeMultiplier(255.99);
  ASSERT_TRUE(largest.ok());
  EXPECT_EQ(largest->exponent, 8);
  EXPECT_NEAR(RealMultiplier(*largest), 255.99, 1e-6);

  // Just below 256, rounding the fraction would carry to 256: rejected.
  absl::StatusOr<QuantizedMultiplier> carried = QuantizeMultiplier(256.0 - 1e-12);
  ASSERT_FALSE(carried.ok());
  EXPECT_THAT(carried.status().message(), HasSubstr("rounds to 256"));

  // A fraction just below 1 rounds up to 2^31 and must renormalise.
  absl::StatusOr<QuantizedMultiplier> carry = QuantizeMultiplier(1.0 - 1e-12);
  ASSERT_TRUE(carry.ok());
  EXPECT_EQ(carry->multiplier, 1 << 30);
  EXPECT_EQ(carry->exponent, 1);
}

TEST(QuantizeMultiplier, RejectsOutOfRange) {
  for (double bad : {0.0, -0.5, kMinRequantMultiplier / 2, 256.0, 1e10,
                     std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    absl::StatusOr<QuantizedMultiplier> m = QuantizeMultiplier(bad);
    ASSERT_FALSE(m.ok()) << bad;
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(m.status().message(), HasSubstr("outside [2^-32, 256)"));
  }
}

TEST(QuantizeMultiplier, RelativeErrorIsBelowTwoToTheMinus30) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> log2_dist(-32.0, 7.999);
  for (int i = 0; i < 100000; ++i) {
    const double real = std::exp2(log2_dist(rng));
    absl::StatusOr<QuantizedMultiplier> m = QuantizeMultiplier(real);
    ASSERT_TRUE(m.ok()) << real;
    ASSERT_GE(m->multiplier, 1 << 30);
    ASSERT_GE(m->exponent, -31);
    ASSERT_LE(m->exponent, 8);
    ASSERT_LE(std::fabs(RealMultiplier(*m) - real) / real, std::exp2(-31)) << real;
  }
}

TEST(QuantizeConvMultipliers, PerChannelAndErrorsNameTheChannel) {
  absl::StatusOr<std::vector<QuantizedMultiplier>> ms =
      QuantizeConvMultipliers(0.5f, {0.25f, 0.5f}, 0.25f);
  ASSERT_TRUE(ms.ok());
  EXPECT_DOUBLE_EQ(RealMultiplier((*ms)[0]), 0.5);
  EXPECT_DOUBLE_EQ(RealMultiplier((*ms)[1]), 1.0);

  absl::StatusOr<std::vector<QuantizedMultiplier>> bad =
      QuantizeConvMultipliers(1.0f, {0.5f, 0.0f}, 0.25f);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("channel 1"));
}

TEST(MultiplyByQuantizedMultiplier, HandCheckedRounding) {
  const QuantizedMultiplier half = *QuantizeMultiplier(0.5);
  EXPECT_EQ(MultiplyByQuantizedMultiplier(4, half), 2);
  // With exponent 0 only the high multiply rounds: its ties go toward +infinity.
  EXPECT_EQ(MultiplyByQuantizedMultiplier(3, half), 2);    // 1.5
  EXPECT_EQ(MultiplyByQuantizedMultiplier(-3, half), -1);  // -1.5
  EXPECT_EQ(MultiplyByQuantizedMultiplier(-5, half), -2);  // -2.5

  const QuantizedMultiplier quarter = *QuantizeMultiplier(0.25);
  // Here the shift rounds the tie: ties away from zero.
  EXPECT_EQ(MultiplyByQuantizedMultiplier(6, quarter), 2);    // 1.5
  EXPECT_EQ(MultiplyByQuantizedMultiplier(-6, quarter), -2);  // -1.5
  // Double rounding: 5 * 0.25 = 1.25, but the high multiply rounds 2.5 up to 3
  // and the shift rounds 1.5 away to 2. This is the 1-off the bound allows, and
  // what TFLite's reference kernels do too.
  EXPECT_EQ(MultiplyByQuantizedMultiplier(5, quarter), 2);

  const QuantizedMultiplier four = *QuantizeMultiplier(4.0);
  EXPECT_EQ(MultiplyByQuantizedMultiplier(-7, four), -28);
}

TEST(MultiplyByQuantizedMultiplier, OverflowingLeftShiftKeepsSignAndMagnitude) {
  const QuantizedMultiplier big = *QuantizeMultiplier(200.0);
  const int32_t up = MultiplyByQuantizedMultiplier(std::numeric_limits<int32_t>::max(), big);
  const int32_t down = MultiplyByQuantizedMultiplier(std::numeric_limits<int32_t>::min(), big);
  EXPECT_GE(up, 1 << 30);
  EXPECT_LE(down, -(1 << 30));
  // ... which is all an int8 output stage needs.
  EXPECT_EQ(RequantizeToInt8(std::numeric_limits<int32_t>::max(), big, 0, -128, 127), 127);
  EXPECT_EQ(RequantizeToInt8(std::numeric_limits<int32_t>::min(), big, 0, -128, 127), -128);
}

// The fixed-point path against double arithmetic over many random accumulators
// and multipliers: never more than 1 away from round(x * real). The two roundings
// disagree with one exact rounding only when the high multiply lands within half
// a unit of a tie of the shift: about 2^-(shift + 1) of cases for a right shift
// by `shift`, so 1.2% over these exponents (measured); 2% is the guard.
TEST(MultiplyByQuantizedMultiplier, MatchesDoubleArithmeticWithinOne) {
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> log2_dist(-32.0, 7.9);
  int inexact = 0;
  constexpr int kCases = 1000000;
  for (int i = 0; i < kCases; ++i) {
    const QuantizedMultiplier m = *QuantizeMultiplier(std::exp2(log2_dist(rng)));
    // Accumulators whose left shift stays inside int32 (the exact domain).
    const int32_t limit = std::numeric_limits<int32_t>::max() >> std::max(m.exponent, 0);
    const int32_t x = std::uniform_int_distribution<int32_t>(-limit, limit)(rng);
    // The reference rounds the exact product with the decomposed multiplier.
    const double exact = static_cast<double>(x) * RealMultiplier(m);
    if (std::fabs(exact) >= 2147483647.0) continue;
    const double expected = std::round(exact);
    const int32_t got = MultiplyByQuantizedMultiplier(x, m);
    ASSERT_LE(std::fabs(got - expected), 1.0) << "x=" << x << " m=" << m.multiplier
                                              << " e=" << m.exponent;
    inexact += got != expected;
  }
  EXPECT_LT(inexact, kCases / 50);
}

TEST(RequantizeToInt8, AddsZeroPointAndClamps) {
  const QuantizedMultiplier half = *QuantizeMultiplier(0.5);
  EXPECT_EQ(RequantizeToInt8(10, half, -3, -128, 127), 2);
  EXPECT_EQ(RequantizeToInt8(1000, half, 0, -128, 127), 127);
  EXPECT_EQ(RequantizeToInt8(-1000, half, 0, -128, 127), -128);
  // A fused ReLU6 is a narrower clamp.
  EXPECT_EQ(RequantizeToInt8(-100, half, -128, -128, 20), -128);
  EXPECT_EQ(RequantizeToInt8(400, half, -128, -128, 20), 20);
  // A saturated accumulator plus a zero point must not overflow.
  const QuantizedMultiplier big = *QuantizeMultiplier(100.0);
  EXPECT_EQ(RequantizeToInt8(std::numeric_limits<int32_t>::max(), big, 127, -128, 127), 127);
}

}  // namespace
}  // namespace qforge
