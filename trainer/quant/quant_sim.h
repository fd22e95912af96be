// The trainer's simulation of a converted int8 model, in float: the fused
// network with every int8 layer's weights and bias replaced by the values the
// flat model holds (dequantized), and every tensor the flat model holds in int8
// fake-quantized with that tensor's scale and zero point: the converted
// model's numbers, in float. The parity tests hold it to the runtime's int8
// results.
//
// The int8 output of a conv, a linear layer or the mean is requantized as the
// runtime does it: the float output is turned back into the integer
// accumulator it stands for (value / (input_scale * weight_scale[c]), or
// value * H * W / input_scale; exact but for float rounding in the sum) and
// requantized with common/requantize.h's fixed-point multiplier, rounded once
// with ties away from zero, where a float round-half-even would differ at
// ties and by the multiplier's own rounding. Adds rescale at 2^20 times the
// output's precision, so there one round-to-nearest is what the runtime does
// but for rare ties.
#ifndef QFORGE_TRAINER_QUANT_QUANT_SIM_H_
#define QFORGE_TRAINER_QUANT_QUANT_SIM_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "common/requantize.h"
#include "runtime/reference_ops.h"
#include "trainer/quant/fake_quant.h"
#include "trainer/quant/fusion.h"

namespace qforge {

class QuantSimulation {
 public:
  // `fused` must be the model `int8_model` was converted from; its int8 layers
  // take the flat model's weights, so it no longer computes the float model.
  // Unimplemented when a float layer's output is read both in float and, via
  // QUANTIZE, in int8 (the simulation hands every reader the same tensor).
  static absl::StatusOr<std::unique_ptr<QuantSimulation>> Create(FusedMobileNetV2& fused,
                                                                 const Model& int8_model);
  ~QuantSimulation();
  QuantSimulation(const QuantSimulation&) = delete;
  QuantSimulation& operator=(const QuantSimulation&) = delete;

  // x [N, S, S, C] (normalized) -> logits [N, classes].
  const FloatTensor& Forward(const FloatTensor& x) { return fused_.Forward(x); }

 private:
  explicit QuantSimulation(FusedMobileNetV2& fused) : fused_(fused) {}
  absl::Status LoadConstants(const Model& model, const Op& op);

  // The runtime's output stage of an int8 conv, linear layer or mean.
  struct IntegerOutput {
    std::vector<double> accumulator_scale;  // [C] input_scale * weight_scale[c]
    std::vector<QuantizedMultiplier> multipliers;  // [C]
    reference::Int8Output output;
  };
  static absl::StatusOr<IntegerOutput> IntegerOutputOf(const Model& model, const Op& op,
                                                      int index);
  void Requantize(const IntegerOutput& stage, const FakeQuantParams& params,
                  FloatTensor& value) const;

  FusedMobileNetV2& fused_;
  std::map<std::string, FakeQuantParams> int8_layers_;  // by observation point
  std::map<std::string, IntegerOutput> integer_outputs_;  // by observation point
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_QUANT_SIM_H_
