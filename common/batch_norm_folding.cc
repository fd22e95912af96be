#include "common/batch_norm_folding.h"

#include <cmath>

namespace qforge {

void FoldBatchNorm(const BatchNormStatistics& bn, int64_t channels, int64_t per_output,
                   float* weight, float* bias) {
  for (int64_t c = 0; c < channels; ++c) {
    const float scale = BatchNormScale(bn.gamma[c], bn.running_var[c], bn.eps);
    for (int64_t i = 0; i < per_output; ++i) weight[c * per_output + i] *= scale;
    // One rounding for the multiply-add, as the trainer's -march=native build
    // contracts it, written out so that every build folds to the same bits.
    bias[c] = std::fma(bias[c] - bn.running_mean[c], scale, bn.beta[c]);
  }
}

}  // namespace qforge
