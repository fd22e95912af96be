// Writes the tutorial's MobileNetV2 with random but sane weights as two flat
// models, float and int8, for benchmarks and tests that need a real-sized
// network before a trained one exists:
//
//   bazel run //tools:make_mobilenet_v2 -- --out_dir=/tmp/qforge
//   -> /tmp/qforge/mobilenet_v2_float.qfm, /tmp/qforge/mobilenet_v2_int8.qfm
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "tools/random_mobilenet_v2.h"

ABSL_FLAG(std::string, out_dir, "/tmp/qforge", "Directory for the two model files.");
ABSL_FLAG(std::string, name, "mobilenet_v2", "File name stem.");
ABSL_FLAG(float, width_mult, 1.0f, "MobileNetV2 width multiplier.");
ABSL_FLAG(int, input_size, 224, "Square input size.");
ABSL_FLAG(int, input_channels, 3, "Input channels.");
ABSL_FLAG(int, num_classes, 1000, "Classifier outputs.");
ABSL_FLAG(bool, small_input, false, "Stride-1 first conv and second stage (28x28, 32x32).");
ABSL_FLAG(bool, relu6, true, "ReLU6 (the tutorial's text) instead of ReLU (its code).");
ABSL_FLAG(uint64_t, seed, 0, "Seed of the random weights and calibration images.");

namespace qforge {
namespace {

bool WriteModel(const Model& model, const std::string& path) {
  // Write to a temporary file and rename, so a crash never leaves half a model.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out || !model.SerializeToOstream(&out)) return false;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  return !ec;
}

int Run() {
  RandomMobileNetV2Options options;
  options.config.width_mult = absl::GetFlag(FLAGS_width_mult);
  options.config.input_size = absl::GetFlag(FLAGS_input_size);
  options.config.input_channels = absl::GetFlag(FLAGS_input_channels);
  options.config.num_classes = absl::GetFlag(FLAGS_num_classes);
  options.config.small_input = absl::GetFlag(FLAGS_small_input);
  options.relu6 = absl::GetFlag(FLAGS_relu6);
  options.seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<RandomMobileNetV2> models = BuildRandomMobileNetV2(options);
  if (!models.ok()) {
    std::fprintf(stderr, "make_mobilenet_v2: %s\n", std::string(models.status().message()).c_str());
    return 1;
  }
  const std::string dir = absl::GetFlag(FLAGS_out_dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  for (const auto& [model, kind] : {std::pair{&models->float_model, "float"},
                                    std::pair{&models->int8_model, "int8"}}) {
    const std::string path = absl::StrCat(dir, "/", absl::GetFlag(FLAGS_name), "_", kind, ".qfm");
    if (!WriteModel(*model, path)) {
      std::fprintf(stderr, "make_mobilenet_v2: cannot write %s\n", path.c_str());
      return 1;
    }
    std::printf("%s: %.2f MB\n", path.c_str(), model->ByteSizeLong() / 1e6);
  }
  return 0;
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return qforge::Run();
}
