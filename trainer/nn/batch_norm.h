// BatchNorm2d over NHWC activations, as PyTorch's nn.BatchNorm2d(C, eps=1e-5,
// momentum=0.1, or PassContext's): in training, normalise with the batch's
// mean and (biased) variance and update the running statistics with the
// unbiased variance; in eval, normalise with the running statistics.
//
// Optionally fused with the ReLU / ReLU6 that follows it (PyTorch's
// ConvBNReLU's BN and ReLU, one pass each way instead of two): training is
// bound by memory traffic, and the fusion writes one tensor where the
// separate layers write three. Backward recomputes x_hat and the clamp's mask
// from the input instead of storing or reading them, for the same reason.
#ifndef QFORGE_TRAINER_NN_BATCH_NORM_H_
#define QFORGE_TRAINER_NN_BATCH_NORM_H_

#include <cmath>
#include <string>
#include <vector>

#include "common/batch_norm_folding.h"
#include "trainer/nn/layer.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"

namespace qforge {

class BatchNorm2d {
 public:
  static constexpr float kEps = kBatchNormEps;

  // Registers "<name>.weight" (gamma, 1), "<name>.bias" (beta, 0) and the
  // buffers "<name>.running_mean" (0) and "<name>.running_var" (1).
  // `clamp_max`: a fused activation y = min(max(bn(x), 0), clamp_max) (INFINITY
  // for ReLU, 6 for ReLU6); NAN for none.
  BatchNorm2d(const std::string& name, int channels, ParameterStore& params,
              float clamp_max = NAN);

  // x [N, H, W, C] -> y, same shape. Keeps a pointer to x for Backward.
  // In training, `moments` (if given) holds x's per-channel sums and sums of
  // squares, gathered by the layer that wrote x; else Forward sums them.
  void Forward(const FloatTensor& x, FloatTensor& y, const PassContext& ctx,
               const ChannelMoments* moments = nullptr);
  // dy -> dx (=); dgamma, dbeta (+=). In eval mode the statistics are constants.
  void Backward(const FloatTensor& dy, FloatTensor& dx);

  // Backward in two parts, for a consumer that takes dx a block of rows at a
  // time (BatchNormInputGradient): BackwardStatistics adds dgamma and dbeta
  // and prepares the per-channel terms; then BackwardRows writes rows
  // [begin, end) of dx to out, from any thread.
  void BackwardStatistics(const FloatTensor& dy);
  void BackwardRows(const float* dy, int64_t begin, int64_t end, float* out) const;

  // BackwardStatistics in three parts, for a producer of dy that hands it
  // over a block of rows at a time as it writes it (BatchNormGradientSums):
  // Start, then Add from the pool's threads (chunk: the pool's chunk index;
  // partial sums are added in chunk order), then Finish.
  void StartGradientSums();
  void AddGradientSums(int chunk, int64_t begin, int64_t end, const float* dy_rows);
  void FinishGradientSums();

  const std::string& name() const { return name_; }
  int channels() const { return channels_; }
  bool fused_activation() const { return !std::isnan(clamp_max_); }
  float clamp_max() const { return clamp_max_; }  // NaN: no fused activation
  int weight_id() const { return gamma_; }
  int bias_id() const { return beta_; }
  int running_mean_id() const { return running_mean_; }
  int running_var_id() const { return running_var_; }

 private:
  std::string name_;
  int channels_;
  ParameterStore& params_;
  float clamp_max_;
  int gamma_, beta_, running_mean_, running_var_;
  bool trained_pass_ = false;  // whether the last Forward used batch statistics
  Collectives* sync_ = nullptr;  // the ranks the last Forward's statistics spanned
  double rows_ = 0;              // the rows they were taken over, on all ranks
  const FloatTensor* input_ = nullptr;
  std::vector<float> mean_, inv_std_;  // [C] of the last Forward
  std::vector<float> scale_, shift_;   // bn(x) = x * scale + shift, [C]
  std::vector<float> mean_g_, mean_g_xhat_;  // [C] of the last BackwardStatistics
  std::vector<double> partial_;         // per-thread channel sums
};

// dL/dx of a batch norm, as GradientRows computed on demand from dy: a conv
// before the batch norm takes its dL/dy block by block and no dx tensor is
// written. Call bn.BackwardStatistics(dy) first.
class BatchNormInputGradient : public GradientRows {
 public:
  BatchNormInputGradient(const BatchNorm2d& bn, const FloatTensor& dy) : bn_(bn), dy_(dy) {}
  const float* Rows(int64_t begin, int64_t end, float* scratch) const override {
    bn_.BackwardRows(dy_.ptr(), begin, end, scratch);
    return scratch;
  }

 private:
  const BatchNorm2d& bn_;
  const FloatTensor& dy_;
};

// The sums a batch norm's backward needs, taken from dy while the layer after
// it writes dy (RowsObserver): dy is then read once less.
class BatchNormGradientSums : public RowsObserver {
 public:
  explicit BatchNormGradientSums(BatchNorm2d& bn) : bn_(bn) {}
  void Observe(int chunk, int64_t begin, int64_t end, const float* rows) override {
    bn_.AddGradientSums(chunk, begin, end, rows);
  }

 private:
  BatchNorm2d& bn_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_BATCH_NORM_H_
