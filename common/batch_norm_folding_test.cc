// The batch-norm fold: a hand-checked channel, and on random layers the folded
// layer's output equals conv-then-BN computed in double.
#include "common/batch_norm_folding.h"

#include <cmath>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

TEST(FoldBatchNorm, HandChecked) {
  // One output channel of two weights: gamma 2, beta 1, mean 3, var 4 - eps.
  const float eps = 1e-5f;
  const float gamma = 2, beta = 1, mean = 3, var = 4 - eps;
  float weight[2] = {1.0f, -0.5f}, bias[1] = {5.0f};
  FoldBatchNorm({&gamma, &beta, &mean, &var, eps}, 1, 2, weight, bias);
  // scale = 2 / sqrt(4) = 1: weights unchanged, bias = (5 - 3) * 1 + 1 = 3.
  EXPECT_FLOAT_EQ(weight[0], 1.0f);
  EXPECT_FLOAT_EQ(weight[1], -0.5f);
  EXPECT_FLOAT_EQ(bias[0], 3.0f);
}

// A layer of C outputs of K inputs each (a 1x1 conv on one pixel): the folded
// layer on random inputs against BN(w x + b) in double.
TEST(FoldBatchNorm, EqualsTheLayerFollowedByBatchNorm) {
  SplitMix64 rng(3);
  const int channels = 24, inputs = 40;
  const float eps = 1e-5f;
  auto uniform = [&](float lo, float hi) { return lo + (hi - lo) * rng.UniformFloat(); };
  std::vector<float> w(channels * inputs), b(channels), gamma(channels), beta(channels),
      mean(channels), var(channels), x(inputs);
  for (float& v : w) v = uniform(-1, 1);
  for (int c = 0; c < channels; ++c) {
    b[c] = uniform(-1, 1);
    gamma[c] = uniform(-2, 2);
    beta[c] = uniform(-1, 1);
    mean[c] = uniform(-3, 3);
    var[c] = c == 0 ? 0.0f : uniform(0, 4);  // a channel BN saw constant
  }
  for (float& v : x) v = uniform(-1, 1);
  std::vector<float> folded_w = w, folded_b = b;
  FoldBatchNorm({gamma.data(), beta.data(), mean.data(), var.data(), eps}, channels, inputs,
                folded_w.data(), folded_b.data());
  for (int c = 0; c < channels; ++c) {
    double layer = b[c], folded = folded_b[c];
    for (int k = 0; k < inputs; ++k) {
      layer += static_cast<double>(w[c * inputs + k]) * x[k];
      folded += static_cast<double>(folded_w[c * inputs + k]) * x[k];
    }
    const double bn = gamma[c] * (layer - mean[c]) / std::sqrt(static_cast<double>(var[c]) + eps) +
                      beta[c];
    EXPECT_NEAR(folded, bn, 1e-4 * (1 + std::fabs(bn))) << "channel " << c;
  }
}

TEST(BatchNormScale, IsGammaOverTheStandardDeviation) {
  EXPECT_FLOAT_EQ(BatchNormStd(4.0f, 0.0f), 2.0f);
  EXPECT_FLOAT_EQ(BatchNormScale(3.0f, 4.0f, 0.0f), 1.5f);
  EXPECT_EQ(BatchNormScale(3.0f, 9.0f - 1e-5f, 1e-5f), 3.0f / std::sqrt(9.0f - 1e-5f + 1e-5f));
}

}  // namespace
}  // namespace qforge
