// Cross-entropy over logits, as PyTorch's nn.CrossEntropyLoss() (mean over the
// batch): loss = mean_n (logsumexp(z_n) - z_n[label_n]).
#ifndef QFORGE_TRAINER_NN_LOSS_H_
#define QFORGE_TRAINER_NN_LOSS_H_

#include <cstdint>
#include <vector>

#include "trainer/nn/tensor.h"

namespace qforge {

struct LossResult {
  double loss = 0;   // mean over the batch
  int64_t correct = 0;  // argmax == label
};

// logits [N, K], labels [N] -> loss; dlogits = (softmax(z) - onehot(label)) / N.
LossResult CrossEntropy(const FloatTensor& logits, const std::vector<int32_t>& labels,
                        FloatTensor* dlogits);

// Knowledge distillation at temperature 1: cross-entropy against targets that
// mix the labels with a teacher's predictions on the same images,
// q = (1 - teacher_weight) onehot(label) + teacher_weight softmax(teacher_logits),
// as PyTorch's cross_entropy with probability targets: loss = mean_n
// (logsumexp(z_n) - q_n . z_n), dlogits = (softmax(z) - q) / N. `correct`
// still counts the labels.
LossResult DistillationCrossEntropy(const FloatTensor& logits, const std::vector<int32_t>& labels,
                                    const FloatTensor& teacher_logits, float teacher_weight,
                                    FloatTensor* dlogits);

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_LOSS_H_
