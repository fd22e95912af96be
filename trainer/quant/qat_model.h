// The tutorial's MobileNetV2 after fuse_model() and prepare_qat(): every
// ConvBNReLU and every conv + BN of an inverted residual a QatConvBn, each
// residual add a QatAdd, the QuantStub's output and the pooled features
// fake-quantized, the classifier a QatLinear. It trains the float model's own
// parameters (a float checkpoint starts it; FusedMobileNetV2 folds the result)
// and keeps the fake-quant state in state(). Its observation points carry
// FusedMobileNetV2's names, so convert takes its ranges from here.
#ifndef QFORGE_TRAINER_QUANT_QAT_MODEL_H_
#define QFORGE_TRAINER_QUANT_QAT_MODEL_H_

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "trainer/nn/elementwise.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/quant/convert.h"
#include "trainer/quant/fake_quantize.h"
#include "trainer/quant/qat_modules.h"

namespace qforge {

class QatMobileNetV2 : public RangeSource {
 public:
  // `model`'s parameters live in `params`; `dropout` is the classifier's.
  QatMobileNetV2(MobileNetV2Model& model, ParameterStore& params, float dropout);

  // x [N, S, S, C] -> logits [N, classes].
  const FloatTensor& Forward(const FloatTensor& x, const PassContext& ctx);
  // dlogits -> parameter gradients (+=), told to `listener` (if any) layer by
  // layer as they become final.
  void Backward(const FloatTensor& dlogits, GradientListener* listener = nullptr);

  // PyTorch's disable_observer / enable_observer, for the activations' and
  // the weights' fake quantizers apart, and freeze_bn_stats; each applied to
  // every module.
  void set_activation_observers_enabled(bool on);
  void set_weight_observers_enabled(bool on);
  void set_freeze_bn(bool on);
  // Data-parallel QAT: activation ranges observed over all ranks' shards
  // (FakeQuantize::set_ranks). The weights are the same on every rank.
  void set_ranks(Collectives* ranks);

  // Every activation range learned (FakeQuantize::set_range_learning), and
  // one SGD step of them on the gradients of the Backward passes since the
  // last step, summed over `ranks` if given.
  void set_range_learning(bool on);
  void StepRanges(float lr, Collectives* ranks);

  // Starts every activation fake quantizer from `ranges` (a calibration),
  // instead of from its first observed batch.
  absl::Status SetActivationRanges(const RangeSource& ranges);

  ParameterStore& state() { return state_; }

  // RangeSource: what the fake quantizers observed.
  absl::StatusOr<Range> ActivationRange(const std::string& point) const override;
  std::optional<absl::StatusOr<std::vector<Range>>> WeightRanges(
      const std::string& layer) const override;

 private:
  struct Block {
    std::vector<std::unique_ptr<QatConvBn>> layers;
    std::unique_ptr<QatAdd> skip_add;  // null without a residual connection
  };

  void SumRangeGradients(Collectives& ranks);

  ParameterStore state_;
  FakeQuantize quant_fq_;
  std::vector<Block> blocks_;
  MeanHW pool_;
  FakeQuantize pool_fq_;
  Dropout dropout_;
  QatLinear classifier_;
  std::map<std::string, FakeQuantize*> outputs_;        // by observation point
  std::map<std::string, WeightFakeQuantize*> weights_;  // by layer
  FloatTensor input_q_, pooled_, pooled_q_, dropped_;
  FloatTensor d_dropped_, d_pooled_q_, d_pooled_, d_features_, d_block_, d_skip_;
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_QAT_MODEL_H_
