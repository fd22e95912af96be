#include "trainer/nn/loss.h"

#include <algorithm>
#include <cmath>

namespace qforge {
namespace {

// log(sum_j exp(z[j])), computed from the largest logit so that exp cannot overflow.
double LogSumExp(const float* z, int64_t k, int64_t argmax) {
  const double max = z[argmax];
  double sum = 0;
  for (int64_t j = 0; j < k; ++j) sum += std::exp(z[j] - max);
  return max + std::log(sum);
}

// One row: its loss against q = (1 - teacher_weight) onehot(label) +
// teacher_weight softmax(teacher) (teacher null: the label alone), and
// g = (softmax(z) - q) / n unless g is null.
double RowLoss(const float* z, int64_t k, int32_t label, const float* teacher,
               double teacher_weight, int64_t n, float* g) {
  const int64_t argmax = std::max_element(z, z + k) - z;
  const double log_sum = LogSumExp(z, k, argmax);
  const double teacher_log_sum =
      teacher != nullptr ? LogSumExp(teacher, k, std::max_element(teacher, teacher + k) - teacher)
                         : 0;
  double loss = log_sum;
  for (int64_t j = 0; j < k; ++j) {
    double q = j == label ? 1.0 - teacher_weight : 0.0;
    if (teacher != nullptr) q += teacher_weight * std::exp(teacher[j] - teacher_log_sum);
    loss -= q * z[j];
    if (g != nullptr) g[j] = static_cast<float>((std::exp(z[j] - log_sum) - q) / n);
  }
  return loss;
}

LossResult BatchLoss(const FloatTensor& logits, const std::vector<int32_t>& labels,
                     const FloatTensor* teacher, double teacher_weight, FloatTensor* dlogits) {
  const int64_t n = logits.dim(0), k = logits.dim(1);
  if (dlogits != nullptr) dlogits->Resize(logits.shape);
  LossResult result;
  for (int64_t i = 0; i < n; ++i) {
    const float* z = logits.ptr() + i * k;
    result.loss +=
        RowLoss(z, k, labels[i], teacher != nullptr ? teacher->ptr() + i * k : nullptr,
                teacher_weight, n, dlogits != nullptr ? dlogits->ptr() + i * k : nullptr);
    result.correct += std::max_element(z, z + k) - z == labels[i];
  }
  result.loss /= n;
  return result;
}

}  // namespace

LossResult CrossEntropy(const FloatTensor& logits, const std::vector<int32_t>& labels,
                        FloatTensor* dlogits) {
  return BatchLoss(logits, labels, nullptr, 0, dlogits);
}

LossResult DistillationCrossEntropy(const FloatTensor& logits, const std::vector<int32_t>& labels,
                                    const FloatTensor& teacher_logits, float teacher_weight,
                                    FloatTensor* dlogits) {
  return BatchLoss(logits, labels, &teacher_logits, teacher_weight, dlogits);
}

}  // namespace qforge
