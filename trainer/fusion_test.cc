// Folding BN into convs changes nothing in eval mode: a fused MobileNetV2 gives
// the unfused model's outputs to 1e-5 relative, on a network whose batch norms
// hold real statistics (a few training steps) rather than the initial ones.
#include "trainer/fusion.h"

#include <algorithm>
#include <cmath>

#include "common/random.h"
#include "gtest/gtest.h"
#include "trainer/loss.h"
#include "trainer/optimizer.h"

namespace qforge {
namespace {

TEST(FoldBatchNorm, HandChecked) {
  // One output channel of two weights: gamma 2, beta 1, mean 3, var 4 - eps.
  const float gamma = 2, beta = 1, mean = 3, var = 4 - BatchNorm2d::kEps;
  float weight[2] = {1.0f, -0.5f}, bias[1] = {5.0f};
  FoldBatchNorm(&gamma, &beta, &mean, &var, BatchNorm2d::kEps, 1, 2, weight, bias);
  // scale = 2 / sqrt(4) = 1: weights unchanged, bias = (5 - 3) * 1 + 1 = 3.
  EXPECT_FLOAT_EQ(weight[0], 1.0f);
  EXPECT_FLOAT_EQ(weight[1], -0.5f);
  EXPECT_FLOAT_EQ(bias[0], 3.0f);
}

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

}  // namespace
}  // namespace qforge
