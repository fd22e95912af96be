// Fuzzes reading a training checkpoint as `--resume` does: parse it, validate
// its config, and restore its tensors and momentum into a model (the default
// Fashion-MNIST MobileNetV2), which must refuse any name, shape or size that
// does not match.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_file.h"
#include "trainer/checkpoint.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/train.h"

namespace qforge {
namespace {

struct Target {
  ParameterStore params;
  MobileNetV2Model model;
  Sgd sgd;
  Target()
      : model(ModelConfigForImages(DefaultTrainConfig().model(), 1, 28, 10),
              DefaultTrainConfig().model().relu6(), params, 0.0f),
        sgd(SgdOptions{}) {}
};

}  // namespace
}  // namespace qforge

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static qforge::Target* target = new qforge::Target();
  const std::string path = qforge::WriteFuzzFile("checkpoint.pb", data, size);
  absl::StatusOr<qforge::Checkpoint> checkpoint = qforge::ReadCheckpoint(path);
  if (!checkpoint.ok()) return 0;
  (void)qforge::ValidateTrainConfig(checkpoint->config());
  (void)qforge::RestoreState(*checkpoint, target->params, target->sgd);
  return 0;
}
