// Training throughput of the trainer: MobileNetV2 on random 28x28x1 images
// (Fashion-MNIST's shape), timed steps of forward, loss, backward and SGD.
//
//   bazel run //tools:train_benchmark -- --width_mult=0.5 --batch=64 --threads=2
//
// Prints images/s (median over the timed steps); --json for scripts
// (tools/compare_training_speed.py runs it next to PyTorch).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <cblas.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "common/random.h"
#include "trainer/loss.h"
#include "trainer/mobilenet_v2_model.h"
#include "trainer/optimizer.h"
#include "trainer/parallel.h"

ABSL_FLAG(float, width_mult, 0.5f, "MobileNetV2 width multiplier.");
ABSL_FLAG(int, batch, 64, "Images per step.");
ABSL_FLAG(int, threads, 2, "Threads.");
ABSL_FLAG(int, input_size, 28, "Square input size (1 channel, small-input strides).");
ABSL_FLAG(int, warmup, 3, "Untimed steps.");
ABSL_FLAG(int, steps, 20, "Timed steps.");
ABSL_FLAG(bool, json, false, "Print one JSON line.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  using namespace qforge;
  const int threads = absl::GetFlag(FLAGS_threads), batch = absl::GetFlag(FLAGS_batch);
  ConfigurePool(threads);
  openblas_set_num_threads(1);
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
  FloatTensor x({batch, config.input_size, config.input_size, 1}), dlogits;
  SplitMix64 rng(2);
  for (float& v : x.data) v = 2.0f * rng.UniformFloat() - 1.0f;
  std::vector<int32_t> labels(batch);
  for (int32_t& l : labels) l = static_cast<int32_t>(rng.Below(10));
  std::vector<double> seconds;
  for (int step = 0; step < absl::GetFlag(FLAGS_warmup) + absl::GetFlag(FLAGS_steps); ++step) {
    const auto start = std::chrono::steady_clock::now();
    params.ZeroGrads();
    const FloatTensor& logits = model.Forward(x, PassContext{true, 1, step});
    CrossEntropy(logits, labels, &dlogits);
    model.Backward(dlogits);
    sgd.Step(params.values(), params.grads(), 0.01f, 0.9f);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (step >= absl::GetFlag(FLAGS_warmup)) seconds.push_back(s);
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds[seconds.size() / 2];
  const int64_t macs = MobileNetV2Macs(config);
  if (absl::GetFlag(FLAGS_json)) {
    std::printf("{\"width_mult\": %.2f, \"batch\": %d, \"threads\": %d, \"images_per_s\": %.1f, "
                "\"median_step_ms\": %.2f}\n",
                config.width_mult, batch, threads, batch / median, 1000 * median);
  } else {
    std::printf("MobileNetV2 width %.2f, %dx%dx1, %.1f M MAC/image, batch %d, %d thread(s): "
                "%.1f images/s (median step %.1f ms)\n",
                config.width_mult, config.input_size, config.input_size, macs / 1e6, batch,
                threads, batch / median, 1000 * median);
  }
  return 0;
}
