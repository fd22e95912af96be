#include "trainer/import.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/checkpoint.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/train.h"

namespace qforge {
namespace {

// The size of dimension `dim` of the file's tensor `name`, or `otherwise`.
int64_t Dimension(const Checkpoint& tensors, const std::string& name, int dim, int64_t otherwise) {
  for (const NamedTensor& t : tensors.tensors()) {
    if (t.name() == name && t.shape_size() > dim) return t.shape(dim);
  }
  return otherwise;
}

}  // namespace

absl::StatusOr<Checkpoint> ImportTensors(const TrainConfig& config, const Checkpoint& tensors) {
  Checkpoint checkpoint;
  *checkpoint.mutable_config() = config;
  ModelConfig& model = *checkpoint.mutable_config()->mutable_model();
  if (model.num_classes() == 0) {
    model.set_num_classes(static_cast<int>(Dimension(tensors, "classifier.1.weight", 0, 0)));
  }
  if (model.num_classes() <= 0) {
    return absl::InvalidArgumentError("the file has no classifier.1.weight [classes, features]");
  }
  // The first conv's weight is OHWI: its last dimension is the image's channels.
  const int channels = static_cast<int>(Dimension(tensors, "features.0.0.weight", 3, 3));
  const int size = model.geometry() == "small" ? 32 : 224;
  ParameterStore params;
  MobileNetV2Model network(ModelConfigForImages(model, channels, size, model.num_classes()),
                           model.relu6(), params, model.dropout());
  const std::string described =
      absl::StrFormat("MobileNetV2 (width %.2f, %d classes, %d input channels)",
                      model.width_mult(), model.num_classes(), channels);
  if (absl::Status s = RestoreTensors(tensors, params); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(described, ": ", s.message()));
  }
  std::set<std::string> names;
  for (int id = 0; id < params.count(); ++id) names.insert(params.info(id).name);
  for (const NamedTensor& t : tensors.tensors()) {
    if (names.count(t.name()) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(described, " has no tensor ", t.name(), " (a fused or QAT model's?)"));
    }
  }
  CaptureTensors(params, checkpoint);
  return checkpoint;
}

}  // namespace qforge
