// Post-training static quantization end to end, the tutorial's section 4:
// a float checkpoint -> fuse -> calibrate on training images in eval mode ->
// convert -> int8 and float flat models, each measured by the runtime on the
// full test set. The accuracy a user reads is always the runtime's.
#ifndef QFORGE_TRAINER_PTQ_H_
#define QFORGE_TRAINER_PTQ_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "data/dataset.h"
#include "data/transforms.h"

namespace qforge {

struct PtqOptions {
  std::string checkpoint;  // a trainer checkpoint.pb
  std::string qconfig = "per_channel_histogram";
  int calib_batches = 32;     // the tutorial: 32 batches
  int calib_batch_size = 30;  // of 30 training images
  std::string output_dir;     // model files go here
  int threads = 0;  // 0: the checkpoint's config
};

struct PtqResult {
  std::string int8_path, float_path;
  int64_t int8_bytes = 0, float_bytes = 0;
  double int8_accuracy = 0, float_accuracy = 0;  // runtime, full test set
  int64_t test_images = 0;
};

absl::StatusOr<PtqResult> RunPtq(const PtqOptions& options);

// Top-1 accuracy of a flat model run by the runtime (XNNPACK) on `test`, fed
// the normalized images in batches.
absl::StatusOr<double> RuntimeAccuracy(const Model& model, const Dataset& test,
                                       const Normalization& normalization, int threads);

}  // namespace qforge

#endif  // QFORGE_TRAINER_PTQ_H_
