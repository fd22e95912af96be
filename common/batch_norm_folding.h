// Folding an eval-mode batch norm into the conv or linear layer before it: the
// one formula that the trainer's fusion, its QAT modules and the random-weight
// model builder share. In eval mode BN is an affine map per channel c:
//   scale[c] = gamma[c] / sqrt(running_var[c] + eps)
//   w'[c, ...] = w[c, ...] * scale[c]
//   b'[c] = (b[c] - running_mean[c]) * scale[c] + beta[c]   (one fused multiply-add)
// (torch.nn.utils.fusion.fuse_conv_bn_weights; the scale divides by the
// standard deviation as PyTorch's QAT ConvBn modules do, so QAT simulates
// exactly the fold that convert writes).
#ifndef QFORGE_COMMON_BATCH_NORM_FOLDING_H_
#define QFORGE_COMMON_BATCH_NORM_FOLDING_H_

#include <cmath>
#include <cstdint>

namespace qforge {

// PyTorch's BatchNorm2d default eps.
inline constexpr float kBatchNormEps = 1e-5f;

// sqrt(running_var + eps): what an eval-mode batch norm divides by.
inline float BatchNormStd(float running_var, float eps) { return std::sqrt(running_var + eps); }

// gamma / sqrt(running_var + eps): what an eval-mode batch norm multiplies by.
inline float BatchNormScale(float gamma, float running_var, float eps) {
  return gamma / BatchNormStd(running_var, eps);
}

// A batch norm's per-channel parameters and running statistics, [C] each.
struct BatchNormStatistics {
  const float* gamma;
  const float* beta;
  const float* running_mean;
  const float* running_var;
  float eps;
};

// Folds `bn` into weights [C, ...] (per_output values a channel) and bias [C],
// in place.
void FoldBatchNorm(const BatchNormStatistics& bn, int64_t channels, int64_t per_output,
                   float* weight, float* bias);

}  // namespace qforge

#endif  // QFORGE_COMMON_BATCH_NORM_FOLDING_H_
