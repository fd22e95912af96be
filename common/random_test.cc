#include "common/random.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace qforge {
namespace {

TEST(SplitMix64, MatchesThePublishedReferenceSequence) {
  // First outputs of the reference splitmix64.c (Vigna) seeded with 1234567.
  SplitMix64 rng(1234567);
  EXPECT_EQ(rng.Next(), 6457827717110365317ULL);
  EXPECT_EQ(rng.Next(), 3203168211198807973ULL);
  EXPECT_EQ(rng.Next(), 9817491932198370423ULL);
}

TEST(SplitMix64, BelowIsUniformAndInRange) {
  SplitMix64 rng(3);
  std::vector<int> counts(7, 0);
  constexpr int kDraws = 700000;
  for (int i = 0; i < kDraws; ++i) {
    const uint64_t v = rng.Below(7);
    ASSERT_LT(v, 7u);
    ++counts[v];
  }
  // Each bucket expects 100000 with standard deviation ~293; 5 sigma.
  for (int c : counts) EXPECT_NEAR(c, 100000, 1500);
  EXPECT_EQ(rng.Below(1), 0u);
}

TEST(SplitMix64, UniformFloatStaysInUnitInterval) {
  SplitMix64 rng(5);
  double sum = 0;
  for (int i = 0; i < 100000; ++i) {
    const float u = rng.UniformFloat();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
  }
  EXPECT_NEAR(sum / 100000, 0.5, 0.005);
}

TEST(SplitMix64, SkipLandsWhereNextWould) {
  SplitMix64 stepped(42), skipped(42);
  for (int i = 0; i < 1000; ++i) stepped.Next();
  skipped.Skip(1000);
  EXPECT_EQ(skipped.Next(), stepped.Next());
}

TEST(DeriveSeed, DependsOnEveryKeyAndItsOrder) {
  EXPECT_EQ(DeriveSeed({1, 2, 3}), DeriveSeed({1, 2, 3}));
  EXPECT_NE(DeriveSeed({1, 2, 3}), DeriveSeed({1, 2, 4}));
  EXPECT_NE(DeriveSeed({1, 2, 3}), DeriveSeed({3, 2, 1}));
  EXPECT_NE(DeriveSeed({0}), DeriveSeed({0, 0}));
}

}  // namespace
}  // namespace qforge
