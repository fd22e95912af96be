// The tutorial's MobileNetV2 as flat models, float and int8, made the way a
// user makes them: the trainer's network, fused, calibrated and converted by
// trainer/quant/convert.h (the one code that writes quantized layers), so the
// runtime's benchmarks and tests measure what `trainer ptq` writes.
//
// The network comes from a checkpoint (e.g. torchvision weights brought in
// with `trainer import`) or is built with random but sane weights, so the
// runtime can be measured and tested before a trained model exists. "Sane"
// means shaped like a trained network: conv weights are kaiming-normal
// (fan_out) as the tutorial initialises them, batch-norm weights and biases
// are drawn around 1 and 0 (and the classifier's biases around 0, where the
// tutorial leaves them 0), and the running statistics are those of a
// training-mode pass over the calibration images, so every layer's
// pre-activation is roughly standardised instead of exploding or vanishing
// over 52 layers.
#ifndef QFORGE_TOOLS_RANDOM_MOBILENET_V2_H_
#define QFORGE_TOOLS_RANDOM_MOBILENET_V2_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/mobilenet_v2.h"
#include "common/model.pb.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"
#include "trainer/quant/convert.h"

namespace qforge {

struct MobileNetV2Models {
  Model float_model;  // float input [1, S, S, C] -> float logits [1, classes]
  Model int8_model;   // the same input and output, int8 inside
};

// Fuses `model` (its parameters in `params`), calibrates `qconfig`'s
// observers on `calibration` (normalized images [N, S, S, C], fed in batches
// of at most 8) and converts it to both flat models.
absl::StatusOr<MobileNetV2Models> ConvertMobileNetV2(MobileNetV2Model& model,
                                                     const ParameterStore& params,
                                                     const FloatTensor& calibration,
                                                     const std::string& qconfig,
                                                     const ModelDescription& description);

// ImageNet's normalization for RGB inputs, (x - 0.5) / 0.5 otherwise, and
// placeholder class names "class k".
ModelDescription PlaceholderDescription(const MobileNetV2Config& config,
                                        const std::string& producer);

struct RandomMobileNetV2Options {
  MobileNetV2Config config;
  bool relu6 = true;  // the tutorial's text uses ReLU6, its code ReLU
  uint64_t seed = 0;
  // Uniform in [-2, 2.5], a normalized image's range; the batch-norm pass
  // takes them in one batch.
  int calibration_images = 8;
  std::string qconfig = "per_channel_histogram";
};

absl::StatusOr<MobileNetV2Models> BuildRandomMobileNetV2(const RandomMobileNetV2Options& options);

}  // namespace qforge

#endif  // QFORGE_TOOLS_RANDOM_MOBILENET_V2_H_
