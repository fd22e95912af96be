// `bazel run //trainer`: the qforge main job.
//
// The trainer (float training, fusion, calibration, QAT, convert) is being built
// issue by issue; until it lands this command does the part that exists: it
// loads the dataset the main job will train on, checks it, and times one pass
// of the batch loader over it. It trains nothing and says so.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "data/batch_loader.h"
#include "data/idx.h"

ABSL_FLAG(std::string, data_dir, qforge::kDefaultFashionMnistDir,
          "Directory with the Fashion-MNIST IDX files (plain or .gz).");
ABSL_FLAG(int, batch_size, 64, "Images per batch.");

namespace qforge {
namespace {

int Run() {
  const std::string dir = absl::GetFlag(FLAGS_data_dir);
  absl::StatusOr<Dataset> train = LoadFashionMnist(dir, Split::kTrain);
  absl::StatusOr<Dataset> test = LoadFashionMnist(dir, Split::kTest);
  for (const absl::StatusOr<Dataset>* d : {&train, &test}) {
    if (!d->ok()) {
      std::fprintf(stderr, "qforge: %s\n", std::string(d->status().message()).c_str());
      return 1;
    }
  }
  for (const Dataset* d : {&*train, &*test}) {
    std::vector<int64_t> per_class(d->num_classes(), 0);
    for (int32_t label : d->labels) ++per_class[label];
    std::printf("%s: %lld images of %dx%dx%d, %d classes (%lld to %lld per class)\n",
                d->name.c_str(), static_cast<long long>(d->count), d->height, d->width,
                d->channels, d->num_classes(),
                static_cast<long long>(*std::min_element(per_class.begin(), per_class.end())),
                static_cast<long long>(*std::max_element(per_class.begin(), per_class.end())));
  }

  LoaderOptions options;
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.pad = 2;
  options.horizontal_flip = true;
  absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(*train, options);
  if (!loader.ok()) {
    std::fprintf(stderr, "qforge: %s\n", std::string(loader.status().message()).c_str());
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  (*loader)->StartEpoch(0);
  Batch batch;
  int64_t images = 0;
  while ((*loader)->Next(&batch)) images += batch.size;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("one augmented epoch through the batch loader: %lld images in %.2f s "
              "(%.0f images/s)\n",
              static_cast<long long>(images), seconds, images / seconds);
  std::printf("Training is not implemented yet: this run trained nothing. Float training, "
              "post-training quantization and QAT arrive with the trainer issues.\n");
  return 0;
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage("qforge trainer (placeholder: checks the dataset only)");
  absl::ParseCommandLine(argc, argv);
  return qforge::Run();
}
