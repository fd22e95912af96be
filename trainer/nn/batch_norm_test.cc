// BN's running statistics under PassContext::bn_momentum: 1/k on the k-th of a
// series of training passes leaves them the plain average of the batches'
// means and unbiased variances (QAT's precise BN statistics rely on it).
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "trainer/nn/batch_norm.h"

namespace qforge {
namespace {

TEST(BatchNorm2d, MomentumOneOverKAveragesTheBatchesExactly) {
  constexpr int kChannels = 3, kRows = 8, kBatches = 4;
  ParameterStore params;
  BatchNorm2d bn("bn", kChannels, params);
  SplitMix64 rng(7);
  std::vector<double> mean_sum(kChannels, 0), var_sum(kChannels, 0);
  FloatTensor x({kRows, 1, 1, kChannels}), y;
  for (int b = 0; b < kBatches; ++b) {
    for (float& v : x.data) v = 3.0f * rng.UniformFloat() + b;  // batches differ
    for (int c = 0; c < kChannels; ++c) {
      double sum = 0, sq = 0;
      for (int r = 0; r < kRows; ++r) sum += x.data[r * kChannels + c];
      const double mean = sum / kRows;
      for (int r = 0; r < kRows; ++r) {
        const double d = x.data[r * kChannels + c] - mean;
        sq += d * d;
      }
      mean_sum[c] += mean;
      var_sum[c] += sq / (kRows - 1);
    }
    PassContext ctx{/*training=*/true};
    ctx.bn_momentum = 1.0f / (b + 1);
    bn.Forward(x, y, ctx);
  }
  for (int c = 0; c < kChannels; ++c) {
    EXPECT_NEAR(params.value(bn.running_mean_id())[c], mean_sum[c] / kBatches, 1e-5) << c;
    EXPECT_NEAR(params.value(bn.running_var_id())[c], var_sum[c] / kBatches, 1e-5) << c;
  }
}

}  // namespace
}  // namespace qforge
