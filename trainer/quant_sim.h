// The trainer's simulation of a converted int8 model, in float: the fused
// network with every int8 layer's weights and bias replaced by the values the
// flat model holds (dequantized), and every tensor the flat model holds in int8
// fake-quantized with that tensor's scale and zero point: the converted
// model's numbers, in float. The parity tests hold it to the runtime's int8
// results.
#ifndef QFORGE_TRAINER_QUANT_SIM_H_
#define QFORGE_TRAINER_QUANT_SIM_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "trainer/fake_quant.h"
#include "trainer/fusion.h"

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

  FusedMobileNetV2& fused_;
  std::map<std::string, FakeQuantParams> int8_layers_;  // by observation point
};

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_SIM_H_
