// `bazel run //trainer`: the qforge main job, and the trainer's commands.
//
//   bazel run //trainer                         the main job: float training of the
//                                               default config (later issues add
//                                               post-training quantization and QAT)
//   bazel run //trainer -- train [--config=FILE] [--epochs=N ...] [--resume]
//
// Relative paths (config, output_dir, data_dir) are taken from the directory
// `bazel run` was started in.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "trainer/train.h"

ABSL_FLAG(std::string, config, "", "Text-format TrainConfig (trainer/config.proto); "
                                   "default: the main job's config.");
ABSL_FLAG(std::string, dataset, "", "fashion-mnist or cifar10.");
ABSL_FLAG(std::string, data_dir, "", "Dataset directory (default: Debian's Fashion-MNIST).");
ABSL_FLAG(float, width_mult, 0, "MobileNetV2 width multiplier.");
ABSL_FLAG(bool, relu6, true, "ReLU6 (true) or ReLU (false) activations.");
ABSL_FLAG(int, epochs, 0, "Training epochs.");
ABSL_FLAG(int, batch_size, 0, "Images per training batch.");
ABSL_FLAG(float, lr, 0, "Learning rate (the peak, for onecycle).");
ABSL_FLAG(std::string, schedule, "", "constant, step, cosine or onecycle.");
ABSL_FLAG(float, weight_decay, -1, "SGD weight decay.");
ABSL_FLAG(uint64_t, seed, 0, "Seed of initialisation, data order, augmentation, dropout.");
ABSL_FLAG(int, threads, 0, "Threads (trainer loops and OpenBLAS).");
ABSL_FLAG(std::string, output_dir, "", "Checkpoint, metrics.jsonl go here.");
ABSL_FLAG(int64_t, max_train_images, -1, "Train on the first N images only (0: all).");
ABSL_FLAG(int64_t, max_test_images, -1, "Evaluate on the first N test images only (0: all).");
ABSL_FLAG(bool, resume, false, "Continue the run saved in output_dir.");

namespace qforge {
namespace {

// Names of the flags on the command line ("--name=v", "--name v", "--noname"),
// so that only those override the config file, even when given their default.
std::set<std::string>& GivenFlags() {
  static std::set<std::string> given;
  return given;
}

void RecordGivenFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.rfind("--", 0) != 0) continue;
    arg = arg.substr(2, arg.find('=') - 2);
    GivenFlags().insert(arg);
    if (arg.rfind("no", 0) == 0) GivenFlags().insert(arg.substr(2));
  }
}

template <typename T>
bool Given(const absl::Flag<T>& flag) {
  return GivenFlags().count(std::string(absl::GetFlagReflectionHandle(flag).Name())) > 0;
}

// A path as the user meant it: relative to where `bazel run` was started.
std::string UserPath(const std::string& path) {
  const char* cwd = std::getenv("BUILD_WORKING_DIRECTORY");
  if (path.empty() || cwd == nullptr || std::filesystem::path(path).is_absolute()) return path;
  return (std::filesystem::path(cwd) / path).string();
}

absl::StatusOr<TrainConfig> ConfigFromFlags() {
  TrainConfig config = DefaultTrainConfig();
  if (!absl::GetFlag(FLAGS_config).empty()) {
    absl::StatusOr<TrainConfig> loaded = LoadTrainConfig(UserPath(absl::GetFlag(FLAGS_config)));
    if (!loaded.ok()) return loaded.status();
    config = *loaded;
  }
  if (Given(FLAGS_dataset)) config.set_dataset(absl::GetFlag(FLAGS_dataset));
  if (Given(FLAGS_data_dir)) config.set_data_dir(absl::GetFlag(FLAGS_data_dir));
  if (Given(FLAGS_width_mult)) config.mutable_model()->set_width_mult(absl::GetFlag(FLAGS_width_mult));
  if (Given(FLAGS_relu6)) config.mutable_model()->set_relu6(absl::GetFlag(FLAGS_relu6));
  if (Given(FLAGS_epochs)) config.set_epochs(absl::GetFlag(FLAGS_epochs));
  if (Given(FLAGS_batch_size)) config.set_batch_size(absl::GetFlag(FLAGS_batch_size));
  if (Given(FLAGS_lr)) config.set_lr(absl::GetFlag(FLAGS_lr));
  if (Given(FLAGS_schedule)) config.set_schedule(absl::GetFlag(FLAGS_schedule));
  if (Given(FLAGS_weight_decay)) config.set_weight_decay(absl::GetFlag(FLAGS_weight_decay));
  if (Given(FLAGS_seed)) config.set_seed(absl::GetFlag(FLAGS_seed));
  if (Given(FLAGS_threads)) config.set_threads(absl::GetFlag(FLAGS_threads));
  if (Given(FLAGS_output_dir)) config.set_output_dir(absl::GetFlag(FLAGS_output_dir));
  if (Given(FLAGS_max_train_images)) config.set_max_train_images(absl::GetFlag(FLAGS_max_train_images));
  if (Given(FLAGS_max_test_images)) config.set_max_test_images(absl::GetFlag(FLAGS_max_test_images));
  config.set_data_dir(UserPath(config.data_dir()));
  config.set_output_dir(UserPath(config.output_dir()));
  return config;
}

int Train() {
  absl::StatusOr<TrainConfig> config = ConfigFromFlags();
  if (!config.ok()) {
    std::fprintf(stderr, "qforge: %s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config);
  absl::Status status = trainer.ok() ? absl::OkStatus() : trainer.status();
  if (status.ok() && absl::GetFlag(FLAGS_resume)) status = (*trainer)->Resume();
  if (!status.ok()) {
    std::fprintf(stderr, "qforge: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  std::printf("training MobileNetV2 (width %.2f) on %s for %d epochs, output in %s\n",
              config->model().width_mult(), config->dataset().c_str(), config->epochs(),
              config->output_dir().c_str());
  if ((*trainer)->epochs_done() > 0) {
    std::printf("resuming after epoch %d\n", (*trainer)->epochs_done());
  }
  absl::StatusOr<std::vector<EpochResult>> results = (*trainer)->Run();
  if (!results.ok()) {
    std::fprintf(stderr, "qforge: %s\n", std::string(results.status().message()).c_str());
    return 1;
  }
  if (!results->empty()) {
    std::printf("float test accuracy: %.2f%%\n", 100 * results->back().test_accuracy);
  }
  return 0;
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "qforge trainer.\n  bazel run //trainer                 the main job\n"
      "  bazel run //trainer -- train [flags] float training");
  qforge::RecordGivenFlags(argc, argv);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() > 2 || (args.size() == 2 && std::string(args[1]) != "train")) {
    std::fprintf(stderr, "qforge: unknown command '%s' (try: train)\n", args[1]);
    return 2;
  }
  // Both the main job and `train` train today; PTQ and QAT join the main job later.
  return qforge::Train();
}
