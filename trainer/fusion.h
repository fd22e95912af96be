// Folding batch norm into the convolution before it, as PyTorch's fuse_model()
// does for Conv+BN(+ReLU): in eval mode BN is an affine map per channel, so
//   w' = w * gamma / sqrt(running_var + eps)            (per output channel)
//   b' = (b - running_mean) * gamma / sqrt(running_var + eps) + beta
// (torch.nn.utils.fusion.fuse_conv_bn_weights). The one formula serves
// post-training conversion and, later, the QAT modules' folding.
//
// FusedMobileNetV2 is the tutorial's model after fuse_model(): each ConvBNReLU a
// conv with bias and a clamp, BN gone; inference (eval mode) only.
#ifndef QFORGE_TRAINER_FUSION_H_
#define QFORGE_TRAINER_FUSION_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "trainer/batch_norm.h"
#include "trainer/conv2d.h"
#include "trainer/elementwise.h"
#include "trainer/linear.h"
#include "trainer/mobilenet_v2_model.h"
#include "trainer/parameters.h"
#include "trainer/tensor.h"

namespace qforge {

// Folds BN (gamma, beta, running mean and variance, [O] each) into conv
// weights [O, ...] (per_output values each) and bias [O], in place.
void FoldBatchNorm(const float* gamma, const float* beta, const float* running_mean,
                   const float* running_var, float eps, int64_t out_channels,
                   int64_t per_output, float* weight, float* bias);

// A conv with bias followed by an optional clamp (the fused ReLU / ReLU6).
struct FusedConv {
  FusedConv(const Conv2d& conv, const BatchNorm2d& bn, const ParameterStore& source,
            ParameterStore& params);
  FloatTensor& Forward(const FloatTensor& x);

  Conv2d conv;  // with bias, named as the original conv
  float clamp_max;  // NaN: no activation
  FloatTensor conv_out, out;
};

class FusedMobileNetV2 {
 public:
  struct Block {
    std::string name;  // "features.i"
    std::vector<std::unique_ptr<FusedConv>> convs;
    bool residual = false;
    FloatTensor sum;
  };
  // Called with each tensor the quantized model will hold in int8, in order:
  // "quant" (the input), every conv's name (its output after the activation),
  // "<block>.skip_add", "pool" and "classifier.1" (the logits). Calibration
  // observes the value; the quantization simulation fake-quantizes it in place.
  using ObserveFn = std::function<void(const std::string& point, FloatTensor& value)>;

  // Copies and folds `model`'s parameters (from `source`) into its own store.
  FusedMobileNetV2(MobileNetV2Model& model, const ParameterStore& source);

  // x [N, S, S, C] -> logits [N, classes], eval mode.
  const FloatTensor& Forward(const FloatTensor& x);
  void set_observer(ObserveFn observe) { observe_ = std::move(observe); }
  // The observation points, in the order Forward reaches them.
  std::vector<std::string> LayerNames() const;

  ParameterStore& params() { return params_; }
  const std::vector<Block>& blocks() const { return blocks_; }
  const Linear& classifier() const { return classifier_; }

 private:
  void Observe(const std::string& point, FloatTensor& value) {
    if (observe_) observe_(point, value);
  }

  ObserveFn observe_;
  ParameterStore params_;
  std::vector<Block> blocks_;
  MeanHW pool_;
  Linear classifier_;
  FloatTensor input_, pooled_, logits_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_FUSION_H_
