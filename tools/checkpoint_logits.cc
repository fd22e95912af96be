// The trainer's float logits of a checkpoint on given images: how a checkpoint
// imported from PyTorch (tools/torchvision_checkpoint.py) is checked against
// PyTorch's own forward pass on the same inputs.
//
//   checkpoint_logits --checkpoint=checkpoint.pb --images=x.f32 --count=N
//       --size=224 --channels=3 --logits=y.f32
//
// Images are float32 NHWC, already normalized; the logits are float32 [N, classes].
// The model runs in eval mode (running batch-norm statistics, no dropout).
#include <cstdio>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "tools/checkpoint_model.h"
#include "trainer/nn/parallel.h"

ABSL_FLAG(std::string, checkpoint, "", "The trainer's checkpoint.pb.");
ABSL_FLAG(std::string, images, "", "float32 NHWC images, normalized.");
ABSL_FLAG(int, count, 1, "Images in the file.");
ABSL_FLAG(int, size, 224, "Image height and width.");
ABSL_FLAG(int, channels, 3, "Image channels.");
ABSL_FLAG(std::string, logits, "", "Where the float32 [count, classes] logits go.");
ABSL_FLAG(int, threads, 1, "Threads.");

namespace qforge {
namespace {

absl::Status Run() {
  const int size = absl::GetFlag(FLAGS_size), channels = absl::GetFlag(FLAGS_channels);
  if (absl::GetFlag(FLAGS_count) < 1) return absl::InvalidArgumentError("count must be >= 1");
  ConfigurePool(absl::GetFlag(FLAGS_threads));
  absl::StatusOr<std::unique_ptr<CheckpointModel>> loaded =
      LoadCheckpointModel(absl::GetFlag(FLAGS_checkpoint), channels, size);
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<FloatTensor> images =
      ReadImages(absl::GetFlag(FLAGS_images), absl::GetFlag(FLAGS_count), size, channels);
  if (!images.ok()) return images.status();
  const FloatTensor& logits = (*loaded)->model->Forward(*images, PassContext{});
  std::ofstream out(absl::GetFlag(FLAGS_logits), std::ios::binary);
  out.write(reinterpret_cast<const char*>(logits.ptr()),
            static_cast<std::streamsize>(logits.size() * sizeof(float)));
  if (!out.flush()) {
    return absl::InternalError(absl::StrCat("cannot write ", absl::GetFlag(FLAGS_logits)));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = qforge::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "checkpoint_logits: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
