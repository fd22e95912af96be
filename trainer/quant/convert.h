// Post-training static quantization of a fused MobileNetV2: named qconfigs,
// calibration (observers at every tensor the int8 model holds), and convert to
// the flat model of common/model.proto, int8 or float.
//
// The int8 model: QUANTIZE the float input, then int8 convs (symmetric weights,
// per channel or per tensor; int32 biases at input * weight scale; ReLU/ReLU6
// as output clamps), residual ADDs, MEAN_HW, the classifier as FULLY_CONNECTED,
// and DEQUANTIZE of the logits. Ranges come from a RangeSource: after
// calibration, activations from the qconfig's observers and weights from their
// own minimum and maximum; after QAT, both from its fake quantizers.
#ifndef QFORGE_TRAINER_QUANT_CONVERT_H_
#define QFORGE_TRAINER_QUANT_CONVERT_H_

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "data/transforms.h"
#include "trainer/quant/fusion.h"
#include "trainer/quant/observers.h"

namespace qforge {

struct QConfig {
  std::string name;
  // "minmax", "histogram", "percentile" or "mse" (unused after QAT, whose
  // fake quantizers give the ranges).
  std::string activation_observer;
  bool per_channel_weights = true;
};

// The named presets:
//   minmax_per_tensor      the tutorial's default_qconfig: min/max activations,
//                          per-tensor weights;
//   per_channel_histogram  its x86 recommendation: histogram activations,
//                          per-channel weights;
//   per_channel_mse        per-channel weights, MSE-optimal activation ranges;
//   per_channel_percentile per-channel weights, 99.99th-percentile ranges.
absl::StatusOr<QConfig> NamedQConfig(const std::string& name);
std::vector<std::string> QConfigNames();

// Which qconfig each layer takes, PyTorch's qconfig_dict in small: one for the
// model, overrides by layer name, and layers left in float (PyTorch: a module
// whose qconfig is None) -- the escape hatch when one layer hurts accuracy.
// Layer names are FusedMobileNetV2's observation points. A layer's
// qconfig picks its weights' granularity and its output's observer; a float
// layer reads float inputs (DEQUANTIZE before it when its producer is int8)
// and, when an int8 layer reads its output, QUANTIZE follows it with the
// parameters observed there.
struct LayerQConfigs {
  QConfig global;
  std::map<std::string, QConfig> overrides;
  std::set<std::string> float_layers;

  const QConfig& For(const std::string& layer) const;
  bool IsFloat(const std::string& layer) const { return float_layers.count(layer) > 0; }
};

// The QUANTIZE op after a float layer is named the layer's name + this suffix.
inline constexpr char kQuantizeSuffix[] = ".quantize";

// From the command line's words: `overrides` "layer=qconfig,...", `float_layers`
// "layer,..."; every name must be one of `model`'s layers.
absl::StatusOr<LayerQConfigs> ParseLayerQConfigs(const std::string& global,
                                                 const std::string& overrides,
                                                 const std::string& float_layers,
                                                 const FusedMobileNetV2& model);

// Where convert takes its ranges from: a Calibrator (post-training) or a QAT
// model's fake quantizers.
class RangeSource {
 public:
  virtual ~RangeSource() = default;
  // The range of observation point `point` (see FusedMobileNetV2::ObserveFn).
  virtual absl::StatusOr<Range> ActivationRange(const std::string& point) const = 0;
  // The per-output-channel ranges of `layer`'s folded weights, or nullopt:
  // convert then takes the weights' own minimum and maximum.
  virtual std::optional<absl::StatusOr<std::vector<Range>>> WeightRanges(
      const std::string& layer) const {
    return std::nullopt;
  }
};

// Observers for every quantized tensor of a fused model, fed by its forward.
class Calibrator : public RangeSource {
 public:
  Calibrator(const LayerQConfigs& qconfigs, FusedMobileNetV2& model);
  ~Calibrator();
  // One calibration batch through the model (eval mode), observed.
  void Run(const FloatTensor& batch);
  absl::StatusOr<Range> ActivationRange(const std::string& point) const override;

 private:
  LayerQConfigs qconfigs_;
  FusedMobileNetV2& model_;
  std::map<std::string, std::unique_ptr<RangeObserver>> observers_;
};

// What a converted model records about itself for edge applications.
struct ModelDescription {
  std::vector<int64_t> input_shape;  // [1, H, W, C]
  Normalization normalization;       // per channel, on pixels / 255
  std::vector<std::string> class_names;
  std::string dataset;
  std::string producer;
  int eval_resize = 0;  // Preprocessing.resize: an image folder's, else 0
};

absl::StatusOr<Model> ConvertToInt8(FusedMobileNetV2& model, const RangeSource& ranges,
                                    const LayerQConfigs& qconfigs,
                                    const ModelDescription& description);

absl::StatusOr<Model> ConvertToFloat(FusedMobileNetV2& model, const ModelDescription& description);

}  // namespace qforge

#endif  // QFORGE_TRAINER_QUANT_CONVERT_H_
