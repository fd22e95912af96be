// What every trainer layer shares: the pass context, and the contract.
//
// Each layer has Forward and Backward side by side, in the shape of llm.c:
// Forward saves what Backward needs; Backward takes dL/dy, accumulates
// dL/dparameters into the ParameterStore's gradient block (+=, so a gradient
// can gather from several uses) and writes dL/dx (=, unless noted).
#ifndef QFORGE_TRAINER_LAYER_H_
#define QFORGE_TRAINER_LAYER_H_

#include <cstdint>

#include "trainer/tensor.h"

namespace qforge {

struct PassContext {
  bool training = false;  // batch statistics and dropout on
  uint64_t seed = 0;      // the run's seed, for dropout masks
  int64_t step = 0;       // the global iteration: masks differ per step, and a
                          // resumed run draws the same ones
  // How far a training pass moves BN's running statistics toward the batch's
  // (PyTorch's momentum, 0.1 by default); 1/k on the k-th of a series of
  // passes leaves them the exact average of the series.
  float bn_momentum = 0.1f;
};

// dL/dy of a layer's output seen as a matrix [rows, channels], handed over a
// block of rows at a time: from a tensor, or computed on demand by the layer
// after it (a batch norm's backward, trainer/batch_norm.h), so that the
// gradient need not be written whole and read back.
class GradientRows {
 public:
  virtual ~GradientRows() = default;
  // Rows [begin, end): a pointer into a tensor, or `scratch` (room for
  // end - begin rows) once filled.
  virtual const float* Rows(int64_t begin, int64_t end, float* scratch) const = 0;
};

// GradientRows from a tensor of `channels` columns.
class TensorGradientRows : public GradientRows {
 public:
  TensorGradientRows(const FloatTensor& dy, int64_t channels) : dy_(dy), channels_(channels) {}
  const float* Rows(int64_t begin, int64_t, float*) const override {
    return dy_.ptr() + begin * channels_;
  }

 private:
  const FloatTensor& dy_;
  int64_t channels_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_LAYER_H_
