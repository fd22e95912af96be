// Folding BN into convs changes nothing in eval mode: a fused MobileNetV2 gives
// the unfused model's outputs to 1e-5 relative, on a network whose batch norms
// hold real statistics (a few training steps) rather than the initial ones.
#include "trainer/quant/fusion.h"

#include <algorithm>
#include <cmath>

#include "common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/optimizer.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

TEST(FusedMobileNetV2, MatchesTheUnfusedModelInEvalMode) {
  MobileNetV2Config config;
  config.input_channels = 1;
  config.input_size = 28;
  config.num_classes = 10;
  config.width_mult = 0.5f;
  config.small_input = true;
  ParameterStore params;
  MobileNetV2Model model(config, /*relu6=*/true, params);
  model.Initialize(3);
  // A few training steps so the running statistics and BN weights are not trivial.
  SplitMix64 rng(4);
  FloatTensor x({16, 28, 28, 1}), dlogits;
  std::vector<int32_t> labels(16);
  Sgd sgd({0.05f, 0.9f, 0.0f, false});
  for (int step = 0; step < 5; ++step) {
    for (float& v : x.data) v = 2.0f * rng.UniformFloat() - 1.0f;
    for (int32_t& l : labels) l = static_cast<int32_t>(rng.Below(10));
    params.ZeroGrads();
    CrossEntropy(model.Forward(x, PassContext{true, 1, step}), labels, &dlogits);
    model.Backward(dlogits);
    sgd.Step(params.values(), params.grads(), 0.05f, 0.9f);
  }
  for (float& v : x.data) v = 2.0f * rng.UniformFloat() - 1.0f;
  const FloatTensor expected = model.Forward(x, PassContext{});
  FusedMobileNetV2 fused(model, params);
  const FloatTensor& got = fused.Forward(x);
  ASSERT_EQ(got.shape, expected.shape);
  float max_ref = 0, max_diff = 0;
  for (int64_t i = 0; i < got.size(); ++i) {
    max_ref = std::max(max_ref, std::fabs(expected.data[i]));
    max_diff = std::max(max_diff, std::fabs(got.data[i] - expected.data[i]));
  }
  EXPECT_LE(max_diff, 1e-5f * max_ref) << "max difference " << max_diff << " of " << max_ref;
  // The fused model has no batch norms: convs with bias, and the classifier.
  for (int id = 0; id < fused.params().count(); ++id) {
    EXPECT_EQ(fused.params().info(id).name.find("running"), std::string::npos);
  }
}

// Module groups by name, as the tutorial's fuse_modules calls take them.
class FuseModulesTest : public ::testing::Test {
 protected:
  FuseModulesTest()
      : conv_("conv", {/*in_channels=*/1, /*out_channels=*/2, /*kernel=*/1}, params_),
        biased_conv_("biased", {1, 2, 1, 1, 0, 1, /*bias=*/true}, params_),
        bn_("bn", 2, params_),
        bn3_("bn3", 3, params_),
        fc_("fc", /*in_features=*/2, /*out_features=*/3, params_) {
    modules_ = {{"conv", Module::kConv2d, &conv_},
                {"biased", Module::kConv2d, &biased_conv_},
                {"bn", Module::kBatchNorm2d, nullptr, &bn_},
                {"bn3", Module::kBatchNorm2d, nullptr, &bn3_},
                {"relu", Module::kReLU},
                {"relu6", Module::kReLU6},
                {"fc", Module::kLinear, nullptr, nullptr, &fc_}};
    Set(conv_.weight_id(), {1.0f, -2.0f});
    Set(biased_conv_.weight_id(), {3.0f, 4.0f});
    Set(biased_conv_.bias_id(), {0.5f, -0.5f});
    Set(bn_.weight_id(), {2.0f, 6.0f});
    Set(bn_.bias_id(), {1.0f, 0.0f});
    Set(bn_.running_mean_id(), {3.0f, -1.0f});
    Set(bn_.running_var_id(), {4.0f - BatchNorm2d::kEps, 9.0f - BatchNorm2d::kEps});
    Set(fc_.weight_id(), {1, 2, 3, 4, 5, 6});
    Set(fc_.bias_id(), {7, 8, 9});
  }
  void Set(int id, const std::vector<float>& v) {
    std::copy(v.begin(), v.end(), params_.value(id));
  }
  absl::StatusOr<FusedLayer> Fuse(const std::vector<std::string>& group) {
    return FuseModules(modules_, params_, group);
  }

  ParameterStore params_;
  Conv2d conv_, biased_conv_;
  BatchNorm2d bn_, bn3_;
  Linear fc_;
  std::vector<Module> modules_;
};

TEST_F(FuseModulesTest, ConvBnReluFoldsTheBatchNormAndKeepsTheClamp) {
  // Scales 2 / sqrt(4) = 1 and 6 / sqrt(9) = 2; bias (0 - mean) * scale + beta.
  for (const auto& [act, clamp] : {std::pair{"relu", INFINITY}, std::pair{"relu6", 6.0f}}) {
    absl::StatusOr<FusedLayer> fused = Fuse({"conv", "bn", act});
    ASSERT_TRUE(fused.ok()) << fused.status();
    EXPECT_EQ(fused->name, "conv");
    EXPECT_EQ(fused->conv, &conv_);
    EXPECT_EQ(fused->weight, (std::vector<float>{1.0f, -4.0f}));
    EXPECT_EQ(fused->bias, (std::vector<float>{-2.0f, 2.0f}));
    EXPECT_EQ(fused->clamp_max, clamp);
  }
  absl::StatusOr<FusedLayer> no_act = Fuse({"conv", "bn"});
  ASSERT_TRUE(no_act.ok());
  EXPECT_TRUE(std::isnan(no_act->clamp_max));
}

TEST_F(FuseModulesTest, ConvReluAndLinearReluKeepTheirWeights) {
  absl::StatusOr<FusedLayer> conv = Fuse({"biased", "relu6"});
  ASSERT_TRUE(conv.ok()) << conv.status();
  EXPECT_EQ(conv->weight, (std::vector<float>{3.0f, 4.0f}));
  EXPECT_EQ(conv->bias, (std::vector<float>{0.5f, -0.5f}));
  EXPECT_EQ(conv->clamp_max, 6.0f);
  absl::StatusOr<FusedLayer> fc = Fuse({"fc", "relu"});
  ASSERT_TRUE(fc.ok()) << fc.status();
  EXPECT_EQ(fc->linear, &fc_);
  EXPECT_EQ(fc->weight_shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(fc->weight, (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(fc->bias, (std::vector<float>{7, 8, 9}));
  EXPECT_EQ(fc->clamp_max, INFINITY);
}

TEST_F(FuseModulesTest, UnfusableGroupsAreErrors) {
  EXPECT_THAT(Fuse({"bn", "conv"}).status().message(),
              HasSubstr("cannot fuse [bn, conv]: it does not start with a conv or linear"));
  EXPECT_THAT(Fuse({"conv", "relu", "bn"}).status().message(), HasSubstr("'bn' is out of place"));
  EXPECT_THAT(Fuse({"fc", "bn"}).status().message(), HasSubstr("'bn' is out of place"));
  EXPECT_THAT(Fuse({"conv", "bn3"}).status().message(),
              HasSubstr("the batch norm's channels are not the conv's outputs"));
  EXPECT_THAT(Fuse({"conv", "dropout"}).status().message(), HasSubstr("no module 'dropout'"));
  EXPECT_THAT(Fuse({}).status().message(), HasSubstr("empty"));
}

TEST(MobileNetV2FusionGroups, AreTheTutorialsFuseModel) {
  MobileNetV2Config config;
  config.input_channels = 1;
  config.input_size = 28;
  config.num_classes = 10;
  config.small_input = true;
  ParameterStore params;
  MobileNetV2Model model(config, /*relu6=*/true, params);
  const std::vector<std::vector<std::string>> groups = MobileNetV2FusionGroups(model);
  ASSERT_GE(groups.size(), 4u);
  // ConvBNReLU: ['0', '1', '2']; an inverted residual's convs: [idx, idx + 1].
  EXPECT_EQ(groups[0], (std::vector<std::string>{"features.0.0", "features.0.1", "features.0.2"}));
  EXPECT_EQ(groups[1], (std::vector<std::string>{"features.1.conv.0.0", "features.1.conv.0.1",
                                                 "features.1.conv.0.2"}));
  EXPECT_EQ(groups[2], (std::vector<std::string>{"features.1.conv.1", "features.1.conv.2"}));
  EXPECT_EQ(groups[3], (std::vector<std::string>{"features.2.conv.0.0", "features.2.conv.0.1",
                                                 "features.2.conv.0.2"}));
  EXPECT_EQ(groups.back(), (std::vector<std::string>{"features.18.0", "features.18.1",
                                                     "features.18.2"}));
}

}  // namespace
}  // namespace qforge
