// What every trainer layer shares: the pass context, and the contract.
//
// Each layer has Forward and Backward side by side, in the shape of llm.c:
// Forward saves what Backward needs; Backward takes dL/dy, accumulates
// dL/dparameters into the ParameterStore's gradient block (+=, so a gradient
// can gather from several uses) and writes dL/dx (=, unless noted).
#ifndef QFORGE_TRAINER_NN_LAYER_H_
#define QFORGE_TRAINER_NN_LAYER_H_

#include <cstdint>
#include <vector>

#include "trainer/nn/tensor.h"

namespace qforge {

class Collectives;

struct PassContext {
  bool training = false;  // batch statistics and dropout on
  uint64_t seed = 0;      // the run's seed, for dropout masks
  int64_t step = 0;       // the global iteration: masks differ per step, and a
                          // resumed run draws the same ones
  // How far a training pass moves BN's running statistics toward the batch's
  // (PyTorch's momentum, 0.1 by default); 1/k on the k-th of a series of
  // passes leaves them the exact average of the series.
  float bn_momentum = 0.1f;
  // Data-parallel training, where this pass holds one rank's shard of a batch:
  // the shard's first row in the whole batch (dropout draws the masks the
  // whole batch would get), and, for synchronised batch norm (PyTorch's
  // SyncBatchNorm), the ranks whose batch statistics are summed; null: this
  // pass's rows only (DistributedDataParallel's default).
  int64_t row_offset = 0;
  Collectives* sync_batch_norm = nullptr;
};

// dL/dy of a layer's output seen as a matrix [rows, channels], handed over a
// block of rows at a time: from a tensor, or computed on demand by the layer
// after it (a batch norm's backward, trainer/nn/batch_norm.h), so that the
// gradient need not be written whole and read back.
class GradientRows {
 public:
  virtual ~GradientRows() = default;
  // Rows [begin, end): a pointer into a tensor, or `scratch` (room for
  // end - begin rows) once filled.
  virtual const float* Rows(int64_t begin, int64_t end, float* scratch) const = 0;
};

// Per-channel sums and sums of squares of an activation [rows, channels],
// gathered by the layer that writes it (one partial per chunk of rows, totalled
// in chunk order): the batch statistics of the batch norm after it, without a
// pass of their own.
class ChannelMoments {
 public:
  void Start(int64_t channels, int chunks) {
    channels_ = channels;
    partials_.assign(static_cast<size_t>(chunks) * 2 * channels, 0.0);
  }
  // Chunk i's partials: sums at [0, channels), sums of squares after them.
  double* chunk(int i) { return partials_.data() + static_cast<size_t>(i) * 2 * channels_; }
  int64_t channels() const { return channels_; }
  void Total(std::vector<double>& sum, std::vector<double>& sum_sq) const {
    sum.assign(channels_, 0.0);
    sum_sq.assign(channels_, 0.0);
    for (size_t at = 0; at < partials_.size(); at += 2 * channels_) {
      for (int64_t c = 0; c < channels_; ++c) {
        sum[c] += partials_[at + c];
        sum_sq[c] += partials_[at + channels_ + c];
      }
    }
  }

 private:
  int64_t channels_ = 0;
  std::vector<double> partials_;
};

// Sees a layer's dx [rows, channels] a block of rows at a time as the layer
// writes it, while the rows are in cache: the batch norm before the layer
// takes the sums its backward needs from them (trainer/nn/batch_norm.h).
class RowsObserver {
 public:
  virtual ~RowsObserver() = default;
  // Final rows [begin, end) of dx, from the pool thread running chunk `chunk`.
  virtual void Observe(int chunk, int64_t begin, int64_t end, const float* rows) = 0;
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

#endif  // QFORGE_TRAINER_NN_LAYER_H_
