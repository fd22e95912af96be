#include "tools/random_mobilenet_v2.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "data/image_folder.h"
#include "trainer/quant/fusion.h"

namespace qforge {
namespace {

constexpr int64_t kCalibrationBatch = 8;  // bounds the activations' memory at 224x224

// Images [first, first + count) of `images`.
FloatTensor Slice(const FloatTensor& images, int64_t first, int64_t count) {
  const int64_t per_image = images.size() / images.dim(0);
  std::vector<int64_t> shape = images.shape;
  shape[0] = count;
  FloatTensor slice(std::move(shape));
  std::copy_n(images.ptr() + first * per_image, count * per_image, slice.ptr());
  return slice;
}

// Batch-norm weights in [0.5, 1.5] and biases in [-0.1, 0.1], as a trained
// network's vary by channel, and classifier biases in [-0.05, 0.05] (the
// tutorial's init leaves them 0, which would hide a bias lost on the way);
// then running statistics from one training-mode pass over `images`
// (momentum 1: exactly that batch's), so that eval mode standardises each
// pre-activation as training mode did.
void SetBatchNormsAndBias(MobileNetV2Model& model, ParameterStore& params,
                          const FloatTensor& images, uint64_t seed) {
  SplitMix64 rng(DeriveSeed({seed, 0x626e}));
  for (FeatureBlockLayers& block : model.features()) {
    for (auto& layer : block.layers) {
      const int channels = static_cast<int>(params.info(layer->bn.weight_id()).size);
      float* gamma = params.value(layer->bn.weight_id());
      float* beta = params.value(layer->bn.bias_id());
      for (int c = 0; c < channels; ++c) {
        gamma[c] = 0.5f + rng.UniformFloat();
        beta[c] = 0.2f * (rng.UniformFloat() - 0.5f);
      }
    }
  }
  const int bias_id = model.classifier().bias_id();
  float* bias = params.value(bias_id);
  for (int64_t k = 0; k < params.info(bias_id).size; ++k) bias[k] = 0.1f * (rng.UniformFloat() - 0.5f);
  PassContext training;
  training.training = true;
  training.seed = seed;
  training.bn_momentum = 1.0f;
  model.Forward(images, training);
}

}  // namespace

absl::StatusOr<MobileNetV2Models> ConvertMobileNetV2(MobileNetV2Model& model,
                                                     const ParameterStore& params,
                                                     const FloatTensor& calibration,
                                                     const std::string& qconfig,
                                                     const ModelDescription& description) {
  if (calibration.shape.size() != 4 || calibration.dim(0) < 1) {
    return absl::InvalidArgumentError("calibration must hold at least one image [N, S, S, C]");
  }
  FusedMobileNetV2 fused(model, params);
  absl::StatusOr<LayerQConfigs> qconfigs = ParseLayerQConfigs(qconfig, "", "", fused);
  if (!qconfigs.ok()) return qconfigs.status();
  Calibrator calibrator(*qconfigs, fused);
  for (int64_t first = 0; first < calibration.dim(0); first += kCalibrationBatch) {
    calibrator.Run(Slice(calibration, first, std::min(kCalibrationBatch, calibration.dim(0) - first)));
  }
  absl::StatusOr<Model> int8_model = ConvertToInt8(fused, calibrator, *qconfigs, description);
  if (!int8_model.ok()) return int8_model.status();
  absl::StatusOr<Model> float_model = ConvertToFloat(fused, description);
  if (!float_model.ok()) return float_model.status();
  return MobileNetV2Models{*std::move(float_model), *std::move(int8_model)};
}

ModelDescription PlaceholderDescription(const MobileNetV2Config& config,
                                        const std::string& producer) {
  ModelDescription d;
  d.input_shape = {1, config.input_size, config.input_size, config.input_channels};
  for (int c = 0; c < config.input_channels; ++c) {
    d.normalization.mean.push_back(config.input_channels == 3 ? kImageNetMean[c] : 0.5f);
    d.normalization.std.push_back(config.input_channels == 3 ? kImageNetStd[c] : 0.5f);
  }
  for (int k = 0; k < config.num_classes; ++k) d.class_names.push_back(absl::StrCat("class ", k));
  d.producer = producer;
  return d;
}

absl::StatusOr<MobileNetV2Models> BuildRandomMobileNetV2(const RandomMobileNetV2Options& options) {
  if (options.calibration_images < 1) {
    return absl::InvalidArgumentError("calibration_images must be at least 1");
  }
  const MobileNetV2Config& config = options.config;
  FloatTensor images({options.calibration_images, config.input_size, config.input_size,
                      config.input_channels});
  SplitMix64 rng(DeriveSeed({options.seed, 0x696d67}));
  for (float& v : images.data) v = -2.0f + 4.5f * rng.UniformFloat();
  ParameterStore params;
  MobileNetV2Model model(config, options.relu6, params);
  model.Initialize(options.seed);
  SetBatchNormsAndBias(model, params, images, options.seed);
  return ConvertMobileNetV2(model, params, images, options.qconfig,
                            PlaceholderDescription(config, "qforge make_mobilenet_v2 (random weights)"));
}

}  // namespace qforge
