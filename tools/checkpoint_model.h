// What the tools that take a trainer checkpoint share: its float network
// restored for a given image size, and images read from a float32 file.
#ifndef QFORGE_TOOLS_CHECKPOINT_MODEL_H_
#define QFORGE_TOOLS_CHECKPOINT_MODEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/mobilenet_v2.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"

namespace qforge {

struct CheckpointModel {
  MobileNetV2Config config;
  ParameterStore params;
  std::unique_ptr<MobileNetV2Model> model;
};

// The float network of the checkpoint at `path` for images of `channels` x
// `size` x `size`; its classes are the config's, else its classifier's.
absl::StatusOr<std::unique_ptr<CheckpointModel>> LoadCheckpointModel(const std::string& path,
                                                                     int channels, int size);

// float32 NHWC images of `size` x `size` x `channels` from `path`: exactly
// `count` of them, or (count 0) as many as the file holds whole.
absl::StatusOr<FloatTensor> ReadImages(const std::string& path, int64_t count, int size,
                                       int channels);

}  // namespace qforge

#endif  // QFORGE_TOOLS_CHECKPOINT_MODEL_H_
