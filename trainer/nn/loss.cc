#include "trainer/nn/loss.h"

#include <algorithm>
#include <cmath>

namespace qforge {

LossResult CrossEntropy(const FloatTensor& logits, const std::vector<int32_t>& labels,
                        FloatTensor* dlogits) {
  const int64_t n = logits.dim(0), k = logits.dim(1);
  if (dlogits != nullptr) dlogits->Resize(logits.shape);
  LossResult result;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.ptr() + i * k;
    const int64_t argmax = std::max_element(z, z + k) - z;
    const double max = z[argmax];
    double sum = 0;
    for (int64_t j = 0; j < k; ++j) sum += std::exp(z[j] - max);
    const double log_sum = max + std::log(sum);
    result.loss += log_sum - z[labels[i]];
    result.correct += argmax == labels[i];
    if (dlogits == nullptr) continue;
    float* g = dlogits->ptr() + i * k;
    for (int64_t j = 0; j < k; ++j) {
      g[j] = static_cast<float>((std::exp(z[j] - log_sum) - (j == labels[i] ? 1.0 : 0.0)) / n);
    }
  }
  result.loss /= n;
  return result;
}

}  // namespace qforge
