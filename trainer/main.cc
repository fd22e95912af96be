// `bazel run //trainer`: the qforge main job, and the trainer's commands.
//
//   bazel run //trainer                         the main job: float training of the
//                                               default config, post-training
//                                               quantization with two qconfigs and
//                                               quantization-aware training, each
//                                               measured by the runtime
//   bazel run //trainer -- train [--config=FILE] [--epochs=N ...] [--resume]
//   mpirun -np N bazel-bin/trainer/trainer train|qat [--sync_batch_norm ...]
//                                               data-parallel training, QAT
//   bazel run //trainer -- ptq --checkpoint=DIR/checkpoint.pb [--qconfig=NAME]
//                              [--overrides=LAYER=QCONFIG,...] [--float_layers=LAYER,...]
//   bazel run //trainer -- qat --checkpoint=DIR/checkpoint.pb [--config=FILE] [--epochs=N ...]
//   bazel run //trainer -- import --tensors=FILE --output_dir=DIR [--width_mult=W ...]
//                                 (tools/torchvision_checkpoint.py runs it)
//
// Relative paths (config, output_dir, data_dir) are taken from the directory
// `bazel run` was started in.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/checkpoint.h"
#include "trainer/dist/mpi_collectives.h"
#include "trainer/import.h"
#include "trainer/nn/gemm.h"
#include "trainer/ptq.h"
#include "trainer/qat.h"
#include "trainer/quant/convert.h"
#include "trainer/report.h"
#include "trainer/train.h"

ABSL_FLAG(std::string, config, "",
          "Text-format TrainConfig (train, the main job) or QatConfig (qat) "
          "(trainer/config.proto); default: the main job's.");
ABSL_FLAG(std::string, dataset, "", "fashion-mnist, cifar10 or imagefolder.");
ABSL_FLAG(std::string, data_dir, "", "Dataset directory (default: Debian's Fashion-MNIST).");
ABSL_FLAG(float, width_mult, 0, "MobileNetV2 width multiplier.");
ABSL_FLAG(bool, relu6, true, "ReLU6 (true) or ReLU (false) activations.");
ABSL_FLAG(std::string, geometry, "",
          "MobileNetV2 strides: imagenet (the tutorial's) or small (28x28, 32x32 inputs); "
          "import: imagenet unless given.");
ABSL_FLAG(int, num_classes, 0, "Classifier outputs (0: the dataset's).");
ABSL_FLAG(int, image_size, 0, "imagefolder: the models' input size (0: 224).");
ABSL_FLAG(int, decode_threads, 0,
          "imagefolder: threads decoding the next batch (0: as many as the machine has cores).");
ABSL_FLAG(std::string, tensors, "",
          "import: the tensors file tools/torchvision_checkpoint.py writes.");
ABSL_FLAG(int, epochs, 0, "Training epochs.");
ABSL_FLAG(int, batch_size, 0, "Images per training batch.");
ABSL_FLAG(float, lr, 0, "Learning rate (the peak, for onecycle).");
ABSL_FLAG(std::string, schedule, "", "constant, step, cosine or onecycle.");
ABSL_FLAG(float, weight_decay, -1, "SGD weight decay.");
ABSL_FLAG(uint64_t, seed, 0,
          "Seed of initialisation, data order, augmentation, dropout; ptq: of which training "
          "images calibrate (default: the float run's).");
ABSL_FLAG(int, threads, 0, "Threads (the trainer's loops and GEMMs).");
ABSL_FLAG(std::string, output_dir, "",
          "train: checkpoint and metrics.jsonl go here; qat: its checkpoint, metrics and model.");
ABSL_FLAG(int64_t, max_train_images, -1, "Train on the first N images only (0: all).");
ABSL_FLAG(int64_t, max_test_images, -1, "Evaluate on the first N test images only (0: all).");
ABSL_FLAG(bool, sync_batch_norm, false,
          "train, qat under mpirun: batch-norm statistics over all ranks' shards (SyncBatchNorm).");
ABSL_FLAG(double, collective_timeout, 300,
          "train, qat under mpirun: seconds a rank waits in a collective before it stops the run.");
ABSL_FLAG(double, bucket_mb, qforge::Collectives::kDefaultBucketMegabytes,
          "train, qat under mpirun: gradients are summed in pieces of about this many MB (10^6 "
          "bytes), each started as soon as the backward pass has finished it (DDP's "
          "bucket_cap_mb).");
ABSL_FLAG(bool, resume, false, "train, qat: continue the run saved in output_dir.");
ABSL_FLAG(std::string, checkpoint, "",
          "ptq, qat: the float checkpoint (a train run's checkpoint.pb).");
ABSL_FLAG(std::string, qconfig, "per_channel_histogram",
          "ptq: minmax_per_tensor, per_channel_histogram, per_channel_mse or "
          "per_channel_percentile.");
ABSL_FLAG(std::string, overrides, "",
          "ptq: per-layer qconfigs, \"layer=qconfig,...\" (layer names as in the model file).");
ABSL_FLAG(std::string, float_layers, "",
          "ptq: layers left in float, \"layer,...\" (e.g. classifier.1).");
ABSL_FLAG(int, batches_per_epoch, -1, "qat: batches per epoch (0: whole passes).");
ABSL_FLAG(float, momentum, -1, "qat: SGD momentum.");
ABSL_FLAG(int, disable_observer_after_epoch, -2,
          "qat: observers stop after each epoch whose 0-based index exceeds this.");
ABSL_FLAG(int, freeze_bn_after_epoch, -2,
          "qat: BN statistics freeze after each epoch whose 0-based index exceeds this.");
ABSL_FLAG(std::string, calibrate_activations, "",
          "qat: calibrate activation ranges with this observer (histogram, mse, percentile, "
          "minmax) before QAT and hold them fixed; empty: observe them during QAT (the tutorial).");
ABSL_FLAG(int, precise_bn_batches, -1,
          "qat: when BN freezes, re-estimate its statistics over this many training batches "
          "(0: keep the moving average, the tutorial).");
ABSL_FLAG(double, distill, -1,
          "qat: weight of the float model's predictions in the training targets, the rest on "
          "the labels (0: the labels alone, the tutorial).");
ABSL_FLAG(double, range_lr, -1,
          "qat: learning rate of the activation ranges once the observers stop (LSQ); 0: the "
          "ranges stay fixed (the tutorial).");
ABSL_FLAG(int, calib_batches, 32, "ptq: calibration batches (the tutorial: 32).");
ABSL_FLAG(int, calib_batch_size, 30, "ptq: images per calibration batch (the tutorial: 30).");

namespace qforge {
namespace {

// Names of the flags on the command line ("--name=v", "-name v", "--noname"),
// so that only those override the config file, even when given their default.
std::set<std::string>& GivenFlags() {
  static std::set<std::string> given;
  return given;
}

void RecordGivenFlags(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    arg = arg.substr(arg[1] == '-' ? 2 : 1);  // absl accepts "-name" and "--name"
    arg = arg.substr(0, arg.find('='));
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
  if (Given(FLAGS_geometry)) config.mutable_model()->set_geometry(absl::GetFlag(FLAGS_geometry));
  if (Given(FLAGS_image_size)) config.set_image_size(absl::GetFlag(FLAGS_image_size));
  if (Given(FLAGS_decode_threads)) config.set_decode_threads(absl::GetFlag(FLAGS_decode_threads));
  if (Given(FLAGS_num_classes)) {
    config.mutable_model()->set_num_classes(absl::GetFlag(FLAGS_num_classes));
  }
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
  if (Given(FLAGS_sync_batch_norm))
    config.set_sync_batch_norm(absl::GetFlag(FLAGS_sync_batch_norm));
  config.set_data_dir(UserPath(config.data_dir()));
  config.set_output_dir(UserPath(config.output_dir()));
  return config;
}

// Prints the error; returns `result` for the caller to pass on.
template <typename T>
T Fail(const absl::Status& status, T result) {
  std::fprintf(stderr, "qforge: %s\n", std::string(status.message()).c_str());
  return result;
}

// Fail, and on a data-parallel run stop every rank: the others would wait
// for this one in their next collective.
template <typename T>
T FailOnEveryRank(Collectives& ranks, const absl::Status& status, T result) {
  if (ranks.size() > 1) ranks.Abort(std::string(status.message()));
  return Fail(status, result);
}

// Writes `dir`/report.html and says so; a report that cannot be made is a
// warning, not a failed run.
void Report(const std::string& dir) {
  std::fflush(stdout);
  const absl::Status status = WriteRunReport(dir);
  if (status.ok()) {
    std::printf("wrote %s\n", (std::filesystem::path(dir) / "report.html").c_str());
  } else {
    std::fprintf(stderr, "qforge: no report: %s\n", std::string(status.message()).c_str());
  }
}

// Trains as the flags and config say; returns the checkpoint path, or "" after
// printing the error.
std::string Train(Collectives& ranks) {
  auto fail = [&ranks](const absl::Status& status) {
    return FailOnEveryRank(ranks, status, std::string());
  };
  absl::StatusOr<TrainConfig> config = ConfigFromFlags();
  if (!config.ok()) return fail(config.status());
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(*config, &ranks);
  absl::Status status = trainer.ok() ? absl::OkStatus() : trainer.status();
  if (status.ok() && absl::GetFlag(FLAGS_resume)) status = (*trainer)->Resume();
  if (!status.ok()) return fail(status);
  const bool rank0 = ranks.rank() == 0;
  if (rank0) {
    std::printf("training MobileNetV2 (width %.2f) on %s for %d epochs (%s GEMMs), output in %s\n",
                config->model().width_mult(), config->dataset().c_str(), config->epochs(),
                GemmInstructionSet(), config->output_dir().c_str());
  }
  if (rank0 && ranks.size() > 1) {
    std::printf("data-parallel on %d ranks of %d thread(s) each, batch-norm statistics %s\n",
                ranks.size(), config->threads(),
                config->sync_batch_norm() ? "synchronised" : "per rank");
  }
  if (rank0 && (*trainer)->epochs_done() > 0) {
    std::printf("resuming after epoch %d\n", (*trainer)->epochs_done());
  }
  absl::StatusOr<std::vector<EpochResult>> results = (*trainer)->Run();
  if (!results.ok()) return fail(results.status());
  if (rank0 && !results->empty()) {
    std::printf("float test accuracy: %.2f%%\n", 100 * results->back().test_accuracy);
  }
  return (std::filesystem::path(config->output_dir()) / "checkpoint.pb").string();
}

absl::StatusOr<PtqResult> Ptq(const std::string& checkpoint, const std::string& qconfig,
                              std::optional<uint64_t> calibration_seed = std::nullopt) {
  PtqOptions options;
  options.checkpoint = checkpoint;
  options.qconfig = qconfig;
  options.overrides = absl::GetFlag(FLAGS_overrides);
  options.float_layers = absl::GetFlag(FLAGS_float_layers);
  options.calib_batches = absl::GetFlag(FLAGS_calib_batches);
  options.calib_batch_size = absl::GetFlag(FLAGS_calib_batch_size);
  options.output_dir = std::filesystem::path(checkpoint).parent_path().string();
  options.threads = Given(FLAGS_threads) ? absl::GetFlag(FLAGS_threads) : 0;
  options.calibration_seed = calibration_seed;
  std::printf("post-training quantization, qconfig %s: %d calibration batches of %d images\n",
              qconfig.c_str(), options.calib_batches, options.calib_batch_size);
  std::fflush(stdout);
  absl::StatusOr<PtqResult> r = RunPtq(options);
  if (r.ok() && r->int8_top5 >= 0) {
    std::printf("top-5 in the runtime: int8 %.2f%%, float %.2f%%\n", 100 * r->int8_top5,
                100 * r->float_top5);
  }
  if (r.ok() && !r->simulation_note.empty()) {
    std::printf("int8 in the runtime: %.2f%% (no fake-quant simulation: %s)\n",
                100 * r->int8_accuracy, r->simulation_note.c_str());
  } else if (r.ok()) {
    std::printf("int8 in the runtime: %.2f%%; its fake-quant simulation in the trainer: %.2f%%, "
                "the same top-1 class on %.2f%% of the %lld test images\n",
                100 * r->int8_accuracy, 100 * r->simulation_accuracy,
                100 * r->simulation_agreement, static_cast<long long>(r->test_images));
  }
  return r;
}

// The QAT recipe: a config file or the tutorial's, flags over it.
absl::StatusOr<QatConfig> QatConfigFromFlags(const std::string& checkpoint) {
  QatConfig config = DefaultQatConfig();
  if (!absl::GetFlag(FLAGS_config).empty()) {
    absl::StatusOr<QatConfig> loaded = LoadQatConfig(UserPath(absl::GetFlag(FLAGS_config)));
    if (!loaded.ok()) return loaded.status();
    config = *loaded;
  }
  if (Given(FLAGS_checkpoint)) config.set_checkpoint(checkpoint);
  config.set_checkpoint(UserPath(config.checkpoint()));
  if (Given(FLAGS_epochs)) config.set_epochs(absl::GetFlag(FLAGS_epochs));
  if (Given(FLAGS_batches_per_epoch)) {
    config.set_batches_per_epoch(absl::GetFlag(FLAGS_batches_per_epoch));
  }
  if (Given(FLAGS_batch_size)) config.set_batch_size(absl::GetFlag(FLAGS_batch_size));
  if (Given(FLAGS_lr)) config.set_lr(absl::GetFlag(FLAGS_lr));
  if (Given(FLAGS_momentum)) config.set_momentum(absl::GetFlag(FLAGS_momentum));
  if (Given(FLAGS_weight_decay)) config.set_weight_decay(absl::GetFlag(FLAGS_weight_decay));
  if (Given(FLAGS_disable_observer_after_epoch)) {
    config.set_disable_observer_after_epoch(absl::GetFlag(FLAGS_disable_observer_after_epoch));
  }
  if (Given(FLAGS_freeze_bn_after_epoch)) {
    config.set_freeze_bn_after_epoch(absl::GetFlag(FLAGS_freeze_bn_after_epoch));
  }
  if (Given(FLAGS_calibrate_activations)) {
    config.set_calibrate_activations(absl::GetFlag(FLAGS_calibrate_activations));
  }
  if (Given(FLAGS_sync_batch_norm))
    config.set_sync_batch_norm(absl::GetFlag(FLAGS_sync_batch_norm));
  if (Given(FLAGS_precise_bn_batches)) {
    config.set_precise_bn_batches(absl::GetFlag(FLAGS_precise_bn_batches));
  }
  if (Given(FLAGS_distill)) config.set_distill(static_cast<float>(absl::GetFlag(FLAGS_distill)));
  if (Given(FLAGS_range_lr)) config.set_range_lr(static_cast<float>(absl::GetFlag(FLAGS_range_lr)));
  if (Given(FLAGS_seed)) config.set_seed(absl::GetFlag(FLAGS_seed));
  if (Given(FLAGS_threads)) config.set_threads(absl::GetFlag(FLAGS_threads));
  if (Given(FLAGS_output_dir)) config.set_output_dir(absl::GetFlag(FLAGS_output_dir));
  config.set_output_dir(UserPath(config.output_dir()));
  return config;
}

absl::StatusOr<QatResult> Qat(const QatConfig& config, bool resume, Collectives& ranks) {
  if (ranks.rank() != 0) return RunQat(config, resume, &ranks);
  std::printf("quantization-aware training: %d epochs of %d batches of %d images, lr %g",
              config.epochs(), config.batches_per_epoch(), config.batch_size(), config.lr());
  if (!config.calibrate_activations().empty()) {
    std::printf("; activation ranges calibrated (%s) and fixed",
                config.calibrate_activations().c_str());
  }
  if (config.precise_bn_batches() > 0) {
    std::printf("; BN statistics re-estimated over %d batches when they freeze",
                config.precise_bn_batches());
  }
  if (config.distill() > 0) {
    std::printf("; distilled from the float model (its predictions %g of each target)",
                config.distill());
  }
  if (config.range_lr() > 0) {
    std::printf("; activation ranges learned at lr %g once the observers stop", config.range_lr());
  }
  if (ranks.size() > 1) {
    std::printf("; data-parallel on %d ranks, batch-norm statistics %s", ranks.size(),
                config.sync_batch_norm() ? "synchronised" : "per rank");
  }
  std::printf("\n");
  std::fflush(stdout);
  absl::StatusOr<QatResult> r = RunQat(config, resume, &ranks);
  if (r.ok() && r->int8_top5 >= 0) {
    std::printf("int8 QAT top-5 in the runtime: %.2f%%\n", 100 * r->int8_top5);
  }
  if (r.ok()) {
    std::printf("int8 QAT in the runtime: %.2f%%; its fake-quant simulation in the trainer: "
                "%.2f%%, the same top-1 class on %.2f%% of the %lld test images\n",
                100 * r->int8_accuracy, 100 * r->simulation_accuracy,
                100 * r->simulation_agreement, static_cast<long long>(r->test_images));
  }
  return r;
}

// `qat`: quantization-aware training of a float checkpoint.
int QatCommand(Collectives& ranks) {
  const std::string checkpoint = UserPath(absl::GetFlag(FLAGS_checkpoint));
  absl::StatusOr<QatConfig> config = QatConfigFromFlags(checkpoint);
  if (!config.ok()) return FailOnEveryRank(ranks, config.status(), 1);
  absl::StatusOr<QatResult> r = Qat(*config, absl::GetFlag(FLAGS_resume), ranks);
  if (!r.ok()) return FailOnEveryRank(ranks, r.status(), 1);
  if (ranks.rank() != 0) return 0;
  std::printf("wrote %s (%.2f MB)\n", r->int8_path.c_str(), r->int8_bytes / 1e6);
  Report(std::filesystem::path(r->int8_path).parent_path().string());
  return 0;
}

void PrintRow(const std::string& what, double accuracy, int64_t bytes, int64_t float_bytes) {
  std::printf("| %-32s | %6.2f%% | %6.2f MB | %.3fx |\n", what.c_str(), 100 * accuracy, bytes / 1e6,
              static_cast<double>(bytes) / float_bytes);
}

// `ptq`: one qconfig on a given checkpoint.
int PtqCommand() {
  const std::string checkpoint = UserPath(absl::GetFlag(FLAGS_checkpoint));
  if (checkpoint.empty()) return Fail(absl::InvalidArgumentError("ptq needs --checkpoint"), 1);
  std::optional<uint64_t> seed;
  if (Given(FLAGS_seed)) seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<PtqResult> r = Ptq(checkpoint, absl::GetFlag(FLAGS_qconfig), seed);
  if (!r.ok()) return Fail(r.status(), 1);
  std::printf("| model (runtime, %lld test images) | top-1 | size | vs float |\n|---|---|---|---|\n",
              static_cast<long long>(r->test_images));
  PrintRow("float", r->float_accuracy, r->float_bytes, r->float_bytes);
  PrintRow("int8 " + absl::GetFlag(FLAGS_qconfig), r->int8_accuracy, r->int8_bytes, r->float_bytes);
  std::printf("wrote %s and %s\n", r->int8_path.c_str(), r->float_path.c_str());
  Report(std::filesystem::path(r->int8_path).parent_path().string());
  return 0;
}

// `report`: report.html again from what output_dir holds.
int ReportCommand() {
  const std::string dir = UserPath(absl::GetFlag(FLAGS_output_dir));
  if (dir.empty()) return Fail(absl::InvalidArgumentError("report needs --output_dir"), 1);
  const absl::Status status = WriteRunReport(dir);
  if (!status.ok()) return Fail(status, 1);
  std::printf("wrote %s\n", (std::filesystem::path(dir) / "report.html").c_str());
  return 0;
}

// `import`: a float checkpoint from weights trained elsewhere, in output_dir.
int ImportCommand() {
  absl::StatusOr<TrainConfig> config = ConfigFromFlags();
  if (!config.ok()) return Fail(config.status(), 1);
  if (!Given(FLAGS_geometry)) config->mutable_model()->set_geometry("imagenet");
  if (absl::Status s = ValidateTrainConfig(*config); !s.ok()) return Fail(s, 1);
  const std::string tensors_path = UserPath(absl::GetFlag(FLAGS_tensors));
  if (tensors_path.empty()) return Fail(absl::InvalidArgumentError("import needs --tensors"), 1);
  absl::StatusOr<Checkpoint> tensors = ReadCheckpoint(tensors_path);
  if (!tensors.ok()) return Fail(tensors.status(), 1);
  absl::StatusOr<Checkpoint> checkpoint = ImportTensors(*config, *tensors);
  if (!checkpoint.ok()) {
    return Fail(absl::InvalidArgumentError(
                    absl::StrCat(tensors_path, ": ", checkpoint.status().message())),
                1);
  }
  std::error_code ec;
  std::filesystem::create_directories(config->output_dir(), ec);
  const std::string path = (std::filesystem::path(config->output_dir()) / "checkpoint.pb").string();
  if (absl::Status s = WriteCheckpoint(*checkpoint, path); !s.ok()) return Fail(s, 1);
  std::printf("wrote %s: MobileNetV2 width %.2f, %s geometry, %d classes, %d tensors\n",
              path.c_str(), config->model().width_mult(), config->model().geometry().c_str(),
              checkpoint->config().model().num_classes(), checkpoint->tensors_size());
  return 0;
}

// The main job: float training, the tutorial's two PTQ qconfigs, then QAT.
int MainJob(Collectives& ranks) {
  const std::string checkpoint = Train(ranks);
  if (checkpoint.empty()) return 1;
  std::vector<std::pair<std::string, PtqResult>> rows;
  for (const std::string qconfig : {"minmax_per_tensor", "per_channel_histogram"}) {
    absl::StatusOr<PtqResult> r = Ptq(checkpoint, qconfig);
    if (!r.ok()) return Fail(r.status(), 1);
    rows.emplace_back(qconfig, *r);
  }
  // QAT from the same checkpoint: the tutorial's recipe, with BN statistics
  // re-estimated precisely when they freeze -- the moving average of the last
  // few batches of 30 left the int8 accuracy a seed's luck away from PTQ's
  // (README). --resume continues a stopped QAT run too.
  QatConfig qat_config = DefaultQatConfig();
  qat_config.set_checkpoint(checkpoint);
  qat_config.set_precise_bn_batches(200);
  const bool resume_qat =
      absl::GetFlag(FLAGS_resume) &&
      std::filesystem::exists(std::filesystem::path(checkpoint).parent_path() / "qat_checkpoint.pb");
  absl::StatusOr<QatResult> qat = Qat(qat_config, resume_qat, ranks);
  if (!qat.ok()) return Fail(qat.status(), 1);
  const PtqResult& first = rows[0].second;
  std::printf("\n| model (runtime, %lld test images) | top-1 | size | vs float |\n|---|---|---|---|\n",
              static_cast<long long>(first.test_images));
  PrintRow("float (fused, runtime)", first.float_accuracy, first.float_bytes, first.float_bytes);
  for (const auto& [qconfig, r] : rows) {
    PrintRow("int8 PTQ " + qconfig, r.int8_accuracy, r.int8_bytes, r.float_bytes);
  }
  PrintRow("int8 QAT", qat->int8_accuracy, qat->int8_bytes, first.float_bytes);
  Report(std::filesystem::path(checkpoint).parent_path().string());
  return 0;
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "qforge trainer.\n  bazel run //trainer                 the main job\n"
      "  bazel run //trainer -- train [flags] float training\n"
      "  bazel run //trainer -- ptq --checkpoint=... [--qconfig=...]  post-training quantization\n"
      "  bazel run //trainer -- qat --checkpoint=... [flags]  quantization-aware training\n"
      "  bazel run //trainer -- report --output_dir=...      report.html of a run's models\n"
      "  bazel run //trainer -- import --tensors=... --output_dir=...  a checkpoint from "
      "weights trained elsewhere (tools/torchvision_checkpoint.py)");
  qforge::RecordGivenFlags(argc, argv);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  const std::string command = args.size() >= 2 ? args[1] : "";
  if (args.size() > 2 ||
      (command != "" && command != "train" && command != "ptq" && command != "qat" &&
       command != "report" && command != "import")) {
    std::fprintf(stderr, "qforge: unknown command '%s' (try: train, ptq, qat, report, import)\n",
                 command.c_str());
    return 2;
  }
  if (!(absl::GetFlag(FLAGS_collective_timeout) > 0)) {
    std::fprintf(stderr, "qforge: --collective_timeout must be a positive number of seconds\n");
    return 2;
  }
  if (!(absl::GetFlag(FLAGS_bucket_mb) > 0)) {
    std::fprintf(stderr, "qforge: --bucket_mb must be a positive number of megabytes\n");
    return 2;
  }
  const std::unique_ptr<qforge::Collectives> ranks =
      qforge::StartCollectives(absl::GetFlag(FLAGS_collective_timeout));
  // Capped where one bucket holds any model, so the conversion cannot overflow.
  ranks->set_bucket_bytes(
      static_cast<int64_t>(std::min(absl::GetFlag(FLAGS_bucket_mb), 1e9) * 1e6));
  if (ranks->size() > 1 && command != "train" && command != "qat") {
    ranks->Abort(absl::StrCat("only train and qat run on several ranks; run ",
                              command.empty() ? "the main job" : command, " without mpirun"));
  }
  if (command == "train") return qforge::Train(*ranks).empty() ? 1 : 0;
  if (command == "ptq") return qforge::PtqCommand();
  if (command == "qat") return qforge::QatCommand(*ranks);
  if (command == "report") return qforge::ReportCommand();
  if (command == "import") return qforge::ImportCommand();
  return qforge::MainJob(*ranks);
}
