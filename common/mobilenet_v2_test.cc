#include "common/mobilenet_v2.h"

#include "gtest/gtest.h"

namespace qforge {
namespace {

TEST(MakeDivisible, MatchesTheTutorial) {
  EXPECT_EQ(MakeDivisible(32 * 1.0f, 8), 32);
  EXPECT_EQ(MakeDivisible(32 * 0.5f, 8), 16);
  EXPECT_EQ(MakeDivisible(16 * 0.5f, 8), 8);
  EXPECT_EQ(MakeDivisible(24 * 0.35f, 8), 8);   // 8.4 -> 8
  EXPECT_EQ(MakeDivisible(96 * 0.75f, 8), 72);
  EXPECT_EQ(MakeDivisible(20, 8), 24);          // 20 + 4 = 24
  EXPECT_EQ(MakeDivisible(11, 8), 16);          // 8 is more than 10% below 11
  EXPECT_EQ(MakeDivisible(1280 * 1.0f, 8), 1280);
}

TEST(MobileNetV2, TutorialArchitecture) {
  const MobileNetV2Layers layers = BuildMobileNetV2Layers(MobileNetV2Config());
  ASSERT_EQ(layers.features.size(), 19u);  // features.0 ... features.18
  int convs = 0, residuals = 0;
  for (const FeatureBlock& block : layers.features) {
    convs += static_cast<int>(block.convs.size());
    residuals += block.residual;
  }
  EXPECT_EQ(convs, 52);
  EXPECT_EQ(residuals, 10);
  EXPECT_EQ(layers.last_channel, 1280);
  // features.1 (t = 1): depthwise 32 -> pointwise-linear 16, named as in PyTorch.
  const FeatureBlock& first = layers.features[1];
  ASSERT_EQ(first.convs.size(), 2u);
  EXPECT_EQ(first.convs[0].name, "features.1.conv.0.0");
  EXPECT_EQ(first.convs[0].groups, 32);
  EXPECT_EQ(first.convs[1].name, "features.1.conv.1");
  EXPECT_FALSE(first.convs[1].activation);
  // features.2: expand 16 -> 96, depthwise stride 2, project to 24.
  const FeatureBlock& second = layers.features[2];
  EXPECT_EQ(second.convs[0].name, "features.2.conv.0.0");
  EXPECT_EQ(second.convs[0].out_channels, 96);
  EXPECT_EQ(second.convs[1].stride, 2);
  EXPECT_EQ(second.convs[2].name, "features.2.conv.2");
  EXPECT_EQ(layers.features[18].convs[0].name, "features.18.0");
}

TEST(MobileNetV2, MultiplyAccumulatesMatchPublishedAndMeasuredCounts) {
  // ~300 M MACs for MobileNetV2 1.0 at 224x224 (Sandler et al., Table 3).
  const int64_t macs = MobileNetV2Macs(MobileNetV2Config());
  EXPECT_GT(macs, 299'000'000);
  EXPECT_LT(macs, 302'000'000);
  // The 28x28x1 variant of shared/DESIGN.md: 72.9 M (width 1.0) and 23.1 M (0.5).
  MobileNetV2Config small;
  small.input_channels = 1;
  small.input_size = 28;
  small.num_classes = 10;
  small.small_input = true;
  EXPECT_NEAR(MobileNetV2Macs(small) / 1e6, 72.9, 0.05);
  small.width_mult = 0.5f;
  EXPECT_NEAR(MobileNetV2Macs(small) / 1e6, 23.1, 0.05);
}

}  // namespace
}  // namespace qforge
