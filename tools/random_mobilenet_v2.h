// Builds the tutorial's MobileNetV2 as flat models — float and int8 — with
// random but sane weights, so the runtime can be measured and tested before a
// trained model exists.
//
// "Sane" means shaped like a trained network: conv weights are kaiming-normal
// (fan_out) as the tutorial initialises them, and each conv's batch norm is set
// from the statistics of its output on a few random calibration images (then
// folded into the conv), so every layer's pre-activation is roughly
// standardised instead of exploding or vanishing over 52 layers. The same
// calibration pass records each activation's min/max, from which the int8
// model takes its per-tensor activation parameters; weights are quantized
// symmetric per output channel.
#ifndef QFORGE_TOOLS_RANDOM_MOBILENET_V2_H_
#define QFORGE_TOOLS_RANDOM_MOBILENET_V2_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "common/mobilenet_v2.h"
#include "common/model.pb.h"

namespace qforge {

struct RandomMobileNetV2Options {
  MobileNetV2Config config;
  bool relu6 = true;  // the tutorial's text uses ReLU6, its code ReLU
  uint64_t seed = 0;
  int calibration_images = 2;
};

struct RandomMobileNetV2 {
  Model float_model;  // float input [1, S, S, C] -> float logits [1, classes]
  Model int8_model;   // the same input and output, int8 inside
};

absl::StatusOr<RandomMobileNetV2> BuildRandomMobileNetV2(const RandomMobileNetV2Options& options);

}  // namespace qforge

#endif  // QFORGE_TOOLS_RANDOM_MOBILENET_V2_H_
