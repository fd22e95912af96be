// Writes the tutorial's MobileNetV2 as two flat models, float and int8, made by
// the trainer's convert (tools/random_mobilenet_v2.h), for benchmarks and tests
// that need a real-sized network:
//
//   bazel run //tools:make_mobilenet_v2 -- --out_dir=/tmp/qforge
//   -> /tmp/qforge/mobilenet_v2_float.qfm, /tmp/qforge/mobilenet_v2_int8.qfm
//
// with random weights, or from a checkpoint (e.g. torchvision weights brought
// in with tools/torchvision_checkpoint.py), calibrated on given images:
//
//   make_mobilenet_v2 --checkpoint=checkpoint.pb --calibration_images=x.f32
//
// where x.f32 holds float32 NHWC images of --input_size, already normalized.
// The models record placeholder metadata either way: ImageNet's mean and std
// for RGB (0.5 and 0.5 for one channel) and classes named "class k"; a model
// for an application comes from `trainer ptq`, which records the dataset's.
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "tools/checkpoint_model.h"
#include "tools/random_mobilenet_v2.h"
#include "trainer/nn/parallel.h"
#include "trainer/checkpoint.h"

ABSL_FLAG(std::string, out_dir, "/tmp/qforge", "Directory for the two model files.");
ABSL_FLAG(std::string, name, "mobilenet_v2", "File name stem.");
ABSL_FLAG(int, input_size, 224, "Square input size.");
ABSL_FLAG(int, input_channels, 3, "Input channels.");
ABSL_FLAG(std::string, qconfig, "per_channel_histogram", "The int8 model's qconfig (see trainer ptq).");
ABSL_FLAG(std::string, checkpoint, "",
          "A trainer checkpoint to convert instead of random weights (needs --calibration_images).");
ABSL_FLAG(std::string, calibration_images, "",
          "With --checkpoint: float32 NHWC normalized images to calibrate on.");
ABSL_FLAG(float, width_mult, 1.0f, "Random weights: MobileNetV2 width multiplier.");
ABSL_FLAG(int, num_classes, 1000, "Random weights: classifier outputs.");
ABSL_FLAG(bool, small_input, false,
          "Random weights: stride-1 first conv and second stage (28x28, 32x32).");
ABSL_FLAG(bool, relu6, true, "Random weights: ReLU6 (the tutorial's text) or ReLU (its code).");
ABSL_FLAG(uint64_t, seed, 0, "Random weights: seed of the weights and calibration images.");

namespace qforge {
namespace {

absl::StatusOr<MobileNetV2Models> FromCheckpoint() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  const int size = absl::GetFlag(FLAGS_input_size), channels = absl::GetFlag(FLAGS_input_channels);
  if (absl::GetFlag(FLAGS_calibration_images).empty()) {
    return absl::InvalidArgumentError("--checkpoint needs --calibration_images");
  }
  absl::StatusOr<std::unique_ptr<CheckpointModel>> loaded = LoadCheckpointModel(path, channels, size);
  if (!loaded.ok()) return loaded.status();
  absl::StatusOr<FloatTensor> images =
      ReadImages(absl::GetFlag(FLAGS_calibration_images), 0, size, channels);
  if (!images.ok()) return images.status();
  CheckpointModel& m = **loaded;
  return ConvertMobileNetV2(*m.model, m.params, *images, absl::GetFlag(FLAGS_qconfig),
                            PlaceholderDescription(m.config, "qforge make_mobilenet_v2 (" + path + ")"));
}

absl::StatusOr<MobileNetV2Models> Random() {
  if (!absl::GetFlag(FLAGS_calibration_images).empty()) {
    return absl::InvalidArgumentError("--calibration_images needs --checkpoint");
  }
  RandomMobileNetV2Options options;
  options.config.width_mult = absl::GetFlag(FLAGS_width_mult);
  options.config.input_size = absl::GetFlag(FLAGS_input_size);
  options.config.input_channels = absl::GetFlag(FLAGS_input_channels);
  options.config.num_classes = absl::GetFlag(FLAGS_num_classes);
  options.config.small_input = absl::GetFlag(FLAGS_small_input);
  options.relu6 = absl::GetFlag(FLAGS_relu6);
  options.seed = absl::GetFlag(FLAGS_seed);
  options.qconfig = absl::GetFlag(FLAGS_qconfig);
  return BuildRandomMobileNetV2(options);
}

absl::Status Run() {
  ConfigurePool(2);
  absl::StatusOr<MobileNetV2Models> models =
      absl::GetFlag(FLAGS_checkpoint).empty() ? Random() : FromCheckpoint();
  if (!models.ok()) return models.status();
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  for (auto [model, kind] : {std::pair{&models->float_model, "float"},
                             std::pair{&models->int8_model, "int8"}}) {
    const std::string path = absl::StrCat(dir, "/", absl::GetFlag(FLAGS_name), "_", kind, ".qfm");
    if (absl::Status s = WriteProtoAtomically(*model, path); !s.ok()) return s;
    std::printf("%s: %.2f MB\n", path.c_str(), model->ByteSizeLong() / 1e6);
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = qforge::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "make_mobilenet_v2: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
