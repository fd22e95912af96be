// Training throughput of the trainer: MobileNetV2 on random 28x28x1 images
// (Fashion-MNIST's shape), timed steps of forward, loss, backward and SGD.
//
//   bazel run //tools:train_benchmark -- --width_mult=0.5 --batch=64
//   --threads=2
//
// Prints images/s (median over the timed steps); --json for scripts
// (tools/compare_training_speed.py runs it next to PyTorch). --loader feeds the
// steps through the trainer's batch loader (random 8-bit images, the main
// job's crop and flip, prepared on its background thread) instead of one fixed
// batch; --profile adds where a step's time goes, by pass and kind of layer.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/random.h"
#include "data/batch_loader.h"
#include "trainer/nn/gemm.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/optimizer.h"
#include "trainer/nn/parallel.h"
#include "trainer/nn/step_profile.h"

ABSL_FLAG(float, width_mult, 0.5f, "MobileNetV2 width multiplier.");
ABSL_FLAG(int, batch, 64, "Images per step.");
ABSL_FLAG(int, threads, 2, "Threads.");
ABSL_FLAG(int, input_size, 28, "Square input size (1 channel, small-input strides).");
ABSL_FLAG(int, warmup, 3, "Untimed steps.");
ABSL_FLAG(int, steps, 20, "Timed steps.");
ABSL_FLAG(bool, json, false, "Print one JSON line.");
ABSL_FLAG(bool, loader, false, "Feed the steps through the trainer's batch loader.");
ABSL_FLAG(bool, profile, false, "Print the time of a step by pass and kind of layer.");

namespace qforge {
namespace {

// Where the steps' inputs come from: one fixed random batch, or the batch
// loader over a random dataset of 8-bit images.
class Inputs {
 public:
  Inputs(int batch, int size, bool use_loader) : rng_(2) {
    if (!use_loader) {
      fixed_ = FloatTensor({batch, size, size, 1});
      for (float& v : fixed_.data) v = 2.0f * rng_.UniformFloat() - 1.0f;
      labels_.resize(batch);
      for (int32_t& l : labels_) l = static_cast<int32_t>(rng_.Below(10));
      return;
    }
    dataset_.name = "random";
    dataset_.count = 60000;
    dataset_.height = dataset_.width = size;
    dataset_.channels = 1;
    dataset_.pixels.resize(dataset_.count * size * size);
    for (uint8_t& p : dataset_.pixels) p = static_cast<uint8_t>(rng_.Below(256));
    dataset_.labels.resize(dataset_.count);
    for (int32_t& l : dataset_.labels) l = static_cast<int32_t>(rng_.Below(10));
    for (int c = 0; c < 10; ++c) dataset_.class_names.push_back(std::to_string(c));
    LoaderOptions options;
    options.batch_size = batch;
    options.drop_last = true;
    options.pad = 2;
    options.horizontal_flip = true;
    options.normalization = {{0.286f}, {0.353f}};
    loader_ = *BatchLoader::Create(dataset_, options);
    loader_->StartEpoch(0);
  }

  // The next step's images and labels.
  const FloatTensor& Next(const std::vector<int32_t>** labels) {
    *labels = &labels_;
    if (loader_ == nullptr) return fixed_;
    ProfileScope scope("data", "waiting for the loader");
    if (!loader_->Next(&batch_)) {
      loader_->StartEpoch(++epoch_);
      loader_->Next(&batch_);
    }
    fixed_.Resize({batch_.size, batch_.height, batch_.width, batch_.channels});
    std::copy(batch_.images.begin(), batch_.images.end(), fixed_.data.begin());
    labels_ = batch_.labels;
    return fixed_;
  }

 private:
  SplitMix64 rng_;
  FloatTensor fixed_;
  std::vector<int32_t> labels_;
  Dataset dataset_;
  std::unique_ptr<BatchLoader> loader_;
  Batch batch_;
  int64_t epoch_ = 0;
};

// Milliseconds per step by pass and kind, with shares of the step.
void PrintProfile(const StepProfile& profile, int steps, double median_step_ms) {
  double total = 0;
  for (const auto& [key, seconds] : profile.table()) total += seconds;
  std::printf("\n| pass | kind | ms per step | share |\n|---|---|---|---|\n");
  for (const auto& [key, seconds] : profile.table()) {
    std::printf("| %s | %s | %.1f | %.0f%% |\n", key.first.c_str(), key.second.c_str(),
                1000 * seconds / steps, 100 * seconds / total);
  }
  std::printf(
      "| all | (mean of the profiled steps; median step %.1f ms) | "
      "%.1f | 100%% |\n",
      median_step_ms, 1000 * total / steps);
}

int Run() {
  const int threads = absl::GetFlag(FLAGS_threads), batch = absl::GetFlag(FLAGS_batch);
  const int warmup = absl::GetFlag(FLAGS_warmup), steps = absl::GetFlag(FLAGS_steps);
  ConfigurePool(threads);
  MobileNetV2Config config;
  config.input_channels = 1;
  config.input_size = absl::GetFlag(FLAGS_input_size);
  config.num_classes = 10;
  config.width_mult = absl::GetFlag(FLAGS_width_mult);
  config.small_input = true;
  ParameterStore params;
  MobileNetV2Model model(config, /*relu6=*/true, params);
  model.Initialize(1);
  Sgd sgd({0.01f, 0.9f, 4e-5f, true});
  Inputs inputs(batch, config.input_size, absl::GetFlag(FLAGS_loader));
  FloatTensor dlogits;
  StepProfile profile;
  std::vector<double> seconds;
  for (int step = 0; step < warmup + steps; ++step) {
    if (step == warmup && absl::GetFlag(FLAGS_profile)) SetActiveProfile(&profile);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t>* labels;
    const FloatTensor& x = inputs.Next(&labels);
    {
      ProfileScope scope("optimizer", "SGD step and zeroing gradients");
      params.ZeroGrads();
    }
    const FloatTensor& logits = model.Forward(x, PassContext{true, 1, step});
    {
      ProfileScope scope("loss", "cross entropy");
      CrossEntropy(logits, *labels, &dlogits);
    }
    model.Backward(dlogits);
    {
      ProfileScope scope("optimizer", "SGD step and zeroing gradients");
      sgd.Step(params.values(), params.grads(), 0.01f, 0.9f);
    }
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step >= warmup) seconds.push_back(s);
  }
  SetActiveProfile(nullptr);
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  if (absl::GetFlag(FLAGS_json)) {
    std::printf(
        "{\"width_mult\": %.2f, \"batch\": %d, \"threads\": %d, "
        "\"images_per_s\": %.1f, "
        "\"median_step_ms\": %.2f, \"gemm\": \"%s\"}\n",
        config.width_mult, batch, threads, batch / median, 1000 * median, GemmInstructionSet());
  } else {
    std::printf(
        "MobileNetV2 width %.2f, %dx%dx1, %.1f M MAC/image, batch %d, "
        "%d thread(s), "
        "%s GEMMs: %.1f images/s (median step %.1f ms)\n",
        config.width_mult, config.input_size, config.input_size, MobileNetV2Macs(config) / 1e6,
        batch, threads, GemmInstructionSet(), batch / median, 1000 * median);
  }
  if (absl::GetFlag(FLAGS_profile)) PrintProfile(profile, steps, 1000 * median);
  return 0;
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return qforge::Run();
}
