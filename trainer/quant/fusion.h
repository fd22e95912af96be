// Folding batch norm into the convolution before it, as PyTorch's fuse_model()
// does for Conv+BN(+ReLU), with common/batch_norm_folding.h's formula. It folds
// the model convert writes, after PTQ and after QAT alike (QatConvBn simulates
// the same fold).
//
// FuseModules fuses one group of modules by name, as
// torch.ao.quantization.fuse_modules does: [conv, bn], [conv, bn, relu],
// [conv, bn, relu6], [conv, relu], [conv, relu6], [linear, relu] (and a lone
// conv or linear, unchanged). FusedMobileNetV2 is the tutorial's model after
// fuse_model(), which fuses every ConvBNReLU as [0, 1, 2] and every conv + BN
// of an inverted residual: each a conv with bias and a clamp, BN gone;
// inference (eval mode) only.
#ifndef QFORGE_TRAINER_QUANT_FUSION_H_
#define QFORGE_TRAINER_QUANT_FUSION_H_

#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/nn/batch_norm.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/elementwise.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/module.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"

namespace qforge {


// One fused group: a conv or linear with bias, then an optional clamp.
struct FusedLayer {
  std::string name;           // the conv's or linear's
  const Conv2d* conv = nullptr;  // the source conv (its options), or
  const Linear* linear = nullptr;
  std::vector<int64_t> weight_shape;
  std::vector<float> weight, bias;  // BN folded in
  float clamp_max = NAN;            // NaN: none; INFINITY: ReLU; 6: ReLU6
};

// Fuses `group` (module names, in order) of `modules`, parameters read from
// `source`; an error names the group when it is not a fusable pattern.
absl::StatusOr<FusedLayer> FuseModules(const std::vector<Module>& modules,
                                       const ParameterStore& source,
                                       const std::vector<std::string>& group);

// The tutorial's fuse_model() as groups of names: [conv, bn(, relu6)] for each
// ConvBNReLU and each conv of an inverted residual, in order.
std::vector<std::vector<std::string>> MobileNetV2FusionGroups(const MobileNetV2Model& model);

// A conv with bias followed by an optional clamp (the fused ReLU / ReLU6).
struct FusedConv {
  // `layer` must hold a conv; its weights are copied into `params`.
  FusedConv(const FusedLayer& layer, ParameterStore& params);
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
  // Called with each tensor the quantized model may hold in int8, in order:
  // "quant" (the input), every conv's name (its output after the activation),
  // "<block>.skip_add", "pool" and "classifier.1" (the logits). Calibration
  // observes the value; the quantization simulation fake-quantizes it in place.
  using ObserveFn = std::function<void(const std::string& point, FloatTensor& value)>;

  // Fuses `model` by MobileNetV2FusionGroups, parameters read from `source`,
  // into its own store.
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

#endif  // QFORGE_TRAINER_QUANT_FUSION_H_
