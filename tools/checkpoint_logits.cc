// The trainer's float logits of a checkpoint on given images: how a checkpoint
// imported from PyTorch (tools/torchvision_checkpoint.py) is checked against
// PyTorch's own forward pass on the same inputs.
//
//   checkpoint_logits --checkpoint=checkpoint.pb --images=x.f32 --count=N \
//       --size=224 --channels=3 --logits=y.f32
//
// Images are float32 NHWC, already normalized; the logits are float32 [N, classes].
// The model runs in eval mode (running batch-norm statistics, no dropout).
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "trainer/checkpoint.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/parallel.h"
#include "trainer/train.h"

ABSL_FLAG(std::string, checkpoint, "", "The trainer's checkpoint.pb.");
ABSL_FLAG(std::string, images, "", "float32 NHWC images, normalized.");
ABSL_FLAG(int, count, 1, "Images in the file.");
ABSL_FLAG(int, size, 224, "Image height and width.");
ABSL_FLAG(int, channels, 3, "Image channels.");
ABSL_FLAG(std::string, logits, "", "Where the float32 [count, classes] logits go.");
ABSL_FLAG(int, threads, 1, "Threads.");

namespace qforge {
namespace {

absl::StatusOr<std::vector<float>> ReadFloats(const std::string& path, int64_t count) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::vector<float> values(count);
  in.read(reinterpret_cast<char*>(values.data()), count * static_cast<int64_t>(sizeof(float)));
  if (in.gcount() != count * static_cast<int64_t>(sizeof(float)) || in.peek() != EOF) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " does not hold exactly ", count, " float32 values"));
  }
  return values;
}

// The config's classes, or those of the checkpoint's classifier.
int Classes(const Checkpoint& checkpoint) {
  if (checkpoint.config().model().num_classes() > 0) {
    return checkpoint.config().model().num_classes();
  }
  for (const NamedTensor& t : checkpoint.tensors()) {
    if (t.name() == "classifier.1.weight" && t.shape_size() == 2) {
      return static_cast<int>(t.shape(0));
    }
  }
  return 0;
}

absl::Status Run() {
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(absl::GetFlag(FLAGS_checkpoint));
  if (!checkpoint.ok()) return checkpoint.status();
  const int n = absl::GetFlag(FLAGS_count), size = absl::GetFlag(FLAGS_size),
            channels = absl::GetFlag(FLAGS_channels);
  if (n < 1 || size < 1 || channels < 1) {
    return absl::InvalidArgumentError("count, size and channels must be >= 1");
  }
  const ModelConfig& model_config = checkpoint->config().model();
  ConfigurePool(absl::GetFlag(FLAGS_threads));
  ParameterStore params;
  MobileNetV2Model model(ModelConfigForImages(model_config, channels, size, Classes(*checkpoint)),
                         model_config.relu6(), params, model_config.dropout());
  if (absl::Status s = RestoreTensors(*checkpoint, params); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(absl::GetFlag(FLAGS_checkpoint), ": ", s.message()));
  }
  absl::StatusOr<std::vector<float>> images =
      ReadFloats(absl::GetFlag(FLAGS_images), int64_t{n} * size * size * channels);
  if (!images.ok()) return images.status();
  FloatTensor x;
  x.Resize({n, size, size, channels});
  std::copy(images->begin(), images->end(), x.data.begin());
  const FloatTensor& logits = model.Forward(x, PassContext{});
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
