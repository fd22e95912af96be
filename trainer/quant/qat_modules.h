// Quantization-aware training modules: the float model's layers with their
// weights fake-quantized per output channel and their outputs fake-quantized
// per tensor (trainer/quant/fake_quantize.h), trained through straight-through
// gradients. Each reads and trains the float model's own parameters (same
// names, so a float checkpoint starts QAT and convert folds the result as it
// folds a float model); the fake-quant state lives in a separate store.
//
// QatConvBn is PyTorch's intrinsic QAT ConvBn2d / ConvBnReLU2d (and, with a
// ReLU6 clamp, the tutorial's ConvBNReLU), torch/ao/nn/intrinsic/qat/modules/
// conv_fused.py _ConvBnNd._forward: BN's folding is simulated (arXiv
// 1806.08342, section 3.2.2) so that the weights fake-quantized are those the
// int8 model will hold, while BN keeps training on batch statistics:
//   s = gamma / sqrt(running_var + eps)               [O]
//   w_q = fake_quant(w * s)                           (per channel)
//   z = conv(x, w_q) / s (+ conv bias)                (the unscaled conv output)
//   y = fake_quant(act(bn(z)))                        (bn: batch statistics in
//                                                      training, running ones
//                                                      once frozen or in eval)
#ifndef QFORGE_TRAINER_QUANT_QAT_MODULES_H_
#define QFORGE_TRAINER_QUANT_QAT_MODULES_H_

#include <vector>

#include "trainer/nn/batch_norm.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/elementwise.h"
#include "trainer/nn/layer.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"
#include "trainer/quant/fake_quantize.h"

namespace qforge {

class QatConvBn {
 public:
  // `conv` and `bn` (with its fused clamp, if any) are the float model's, their
  // parameters in `params`. Fake-quant state: "<conv>.weight_fake_quant.*" and
  // "<conv>.activation_post_process.*" in `state`.
  QatConvBn(Conv2d& conv, BatchNorm2d& bn, ParameterStore& params, ParameterStore& state);

  // x [N, H, W, C] -> y [N, OH, OW, O].
  const FloatTensor& Forward(const FloatTensor& x, const PassContext& ctx);
  // dy -> dx (skipped if null); gradients of w, gamma, beta (and conv bias) +=.
  void Backward(const FloatTensor& dy, FloatTensor* dx);

  // PyTorch's freeze_bn_stats: BN normalises with, and stops updating, its
  // running statistics.
  void set_freeze_bn(bool on) { freeze_bn_ = on; }
  // Tells `listener` that the conv's and batch norm's gradients are final.
  void GradientsFinal(GradientListener* listener) const {
    ReportGradientsFinal(listener,
                         {conv_.weight_id(), conv_.bias_id(), bn_.weight_id(), bn_.bias_id()});
  }
  WeightFakeQuantize& weight_fake_quant() { return weight_fq_; }
  FakeQuantize& output_fake_quant() { return output_fq_; }

 private:
  Conv2d& conv_;
  BatchNorm2d& bn_;
  ParameterStore& params_;
  ParameterStore shadow_;  // holds w_q, and its gradient, for qconv_
  Conv2d qconv_;
  WeightFakeQuantize weight_fq_;
  FakeQuantize output_fq_;
  void ChannelTerms(int64_t out, std::vector<double>& d_scale, std::vector<double>& d_bias);

  bool freeze_bn_ = false;
  std::vector<float> scale_, std_;   // s and sqrt(running_var + eps) [O]
  std::vector<double> partial_;      // per-chunk channel sums of Backward
  std::vector<float> scaled_, d_scaled_;  // w * s and its gradient
  FloatTensor conv_out_, z_, bn_out_, out_;
  FloatTensor d_bn_out_, dz_, d_conv_;
};

// PyTorch's intrinsic QAT ConvReLU2d (and ConvReLU6): a conv with bias, its
// weights fake-quantized, a clamp, the output fake-quantized.
class QatConvAct {
 public:
  // `conv` must have a bias; clamp_max: INFINITY (ReLU) or 6 (ReLU6).
  QatConvAct(Conv2d& conv, float clamp_max, ParameterStore& params, ParameterStore& state);
  const FloatTensor& Forward(const FloatTensor& x);
  void Backward(const FloatTensor& dy, FloatTensor* dx);
  WeightFakeQuantize& weight_fake_quant() { return weight_fq_; }
  FakeQuantize& output_fake_quant() { return output_fq_; }

 private:
  Conv2d& conv_;
  ParameterStore& params_;
  ParameterStore shadow_;
  Conv2d qconv_;
  ClampedReLU act_;
  WeightFakeQuantize weight_fq_;
  FakeQuantize output_fq_;
  std::vector<float> d_weight_;
  FloatTensor conv_out_, act_out_, out_, d_act_out_, d_conv_;
};

// PyTorch's QAT Linear: weights fake-quantized per output channel, and (as
// prepare_qat adds it) the output fake-quantized.
class QatLinear {
 public:
  QatLinear(const Linear& linear, ParameterStore& params, ParameterStore& state);
  // x [N, K] -> y [N, O].
  const FloatTensor& Forward(const FloatTensor& x);
  void Backward(const FloatTensor& dy, FloatTensor* dx);
  void GradientsFinal(GradientListener* listener) const {
    ReportGradientsFinal(listener, {linear_.weight_id(), linear_.bias_id()});
  }
  WeightFakeQuantize& weight_fake_quant() { return weight_fq_; }
  FakeQuantize& output_fake_quant() { return output_fq_; }

 private:
  const Linear& linear_;
  ParameterStore& params_;
  ParameterStore shadow_;
  Linear qlinear_;
  WeightFakeQuantize weight_fq_;
  FakeQuantize output_fq_;
  std::vector<float> d_weight_;
  FloatTensor y_, out_, d_y_;
};

// The quantizable residual add (FloatFunctional.add after prepare_qat):
// y = fake_quant(a + b).
class QatAdd {
 public:
  QatAdd(const std::string& name, ParameterStore& state)
      : output_fq_(name + ".activation_post_process", state) {}
  const FloatTensor& Forward(const FloatTensor& a, const FloatTensor& b);
  // da = db = the straight-through gradient of dy (=).
  void Backward(const FloatTensor& dy, FloatTensor& d_sum) { output_fq_.Backward(dy, d_sum); }
  FakeQuantize& output_fake_quant() { return output_fq_; }

 private:
  FakeQuantize output_fq_;
  FloatTensor sum_, out_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_QAT_MODULES_H_
