// The tutorial's MobileNetV2 as a trainable network (common/mobilenet_v2.h gives
// the layers). Forward and Backward read as plain lists of layer calls, llm.c
// style. Parameter names are PyTorch's state_dict names, so checkpoints, golden
// files, fusion and QAT address layers the way the tutorial does.
#ifndef QFORGE_TRAINER_NN_MOBILENET_V2_MODEL_H_
#define QFORGE_TRAINER_NN_MOBILENET_V2_MODEL_H_

#include <memory>
#include <string>
#include <vector>

#include "common/mobilenet_v2.h"
#include "trainer/nn/batch_norm.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/elementwise.h"
#include "trainer/nn/layer.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/module.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/stubs.h"
#include "trainer/nn/tensor.h"

namespace qforge {

// Conv2d (no bias) + BatchNorm2d + optional ReLU/ReLU6 (fused into the BN):
// PyTorch's ConvBNReLU, or the projection conv + BN of an inverted residual.
struct ConvBnAct {
  ConvBnAct(const ConvLayer& layer, bool relu6, ParameterStore& params);
  const FloatTensor& Forward(const FloatTensor& x, const PassContext& ctx);
  // dy -> dx (null: the network input, whose gradient nobody needs).
  // `dy_observed`: the layer after this one handed dy to this layer's
  // GradientSums() as it wrote it. `dx_observer`: the layer before this one's
  // GradientSums(), or null. `accumulate_dx`: dx += instead of = (a residual
  // block's input gradient, which already holds the skip's share).
  void Backward(const FloatTensor& dy, FloatTensor* dx, bool dy_observed = false,
                RowsObserver* dx_observer = nullptr, bool accumulate_dx = false);
  // Starts the batch norm's backward sums and returns the observer that takes
  // them from dy as the next layer writes it.
  RowsObserver* GradientSums();
  // Tells `listener` that the conv's and batch norm's gradients are final.
  void GradientsFinal(GradientListener* listener) const;

  Conv2d conv;
  BatchNorm2d bn;
  FloatTensor conv_out, bn_out;  // saved activations
  ChannelMoments moments;        // conv_out's batch statistics, from the conv
  BatchNormGradientSums bn_sums{bn};
};

// features.i: its ConvBnAct layers and, when shapes allow, the residual add.
struct FeatureBlockLayers {
  std::vector<std::unique_ptr<ConvBnAct>> layers;
  std::unique_ptr<Add> skip_add;  // null without a residual connection
  FloatTensor sum;
};

class MobileNetV2Model {
 public:
  // `dropout` is the classifier's (the tutorial's 0.2).
  MobileNetV2Model(const MobileNetV2Config& config, bool relu6, ParameterStore& params,
                   float dropout = 0.2f);

  // The tutorial's initialisation: kaiming-normal (fan_out) conv weights, BN
  // weight 1 and bias 0, N(0, 0.01) linear weights and zero bias.
  void Initialize(uint64_t seed);

  // x [N, S, S, C] -> logits [N, classes] (owned by the model).
  const FloatTensor& Forward(const FloatTensor& x, const PassContext& ctx);
  // dlogits [N, classes] -> parameter gradients (+=), told to `listener` (if
  // any) layer by layer as they become final.
  void Backward(const FloatTensor& dlogits, GradientListener* listener = nullptr);

  // Its convs, batch norms, activations and classifier under PyTorch's names.
  std::vector<Module> Modules() const;

  const MobileNetV2Layers& layers() const { return layers_; }
  std::vector<FeatureBlockLayers>& features() { return features_; }
  const Linear& classifier() const { return classifier_; }

 private:
  MobileNetV2Layers layers_;
  ParameterStore& params_;
  QuantStub quant_;
  std::vector<FeatureBlockLayers> features_;
  MeanHW pool_;
  Dropout dropout_;
  Linear classifier_;
  DeQuantStub dequant_;
  FloatTensor pooled_, dropped_, logits_;
  FloatTensor d_dropped_, d_pooled_, d_features_, d_block_, d_skip_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_MOBILENET_V2_MODEL_H_
