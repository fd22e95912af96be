#include "data/cifar10.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "data/file_reader.h"

namespace qforge {
namespace {

constexpr int kSide = 32;
constexpr int kPlane = kSide * kSide;
constexpr int kRecordBytes = 1 + 3 * kPlane;

// Appends the records of one batch file, converting planar CHW to NHWC.
absl::Status AppendBatchFile(const std::string& path, Dataset& dataset) {
  absl::StatusOr<std::string> bytes = ReadMaybeGzipFile(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->empty() || bytes->size() % kRecordBytes != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", bytes->size(), " bytes is not a whole number of ", kRecordBytes,
        "-byte CIFAR-10 records (truncated?)"));
  }
  const int64_t records = static_cast<int64_t>(bytes->size() / kRecordBytes);
  const int64_t first_pixel = static_cast<int64_t>(dataset.pixels.size());
  dataset.pixels.resize(first_pixel + records * 3 * kPlane);
  for (int64_t r = 0; r < records; ++r) {
    const auto* record = reinterpret_cast<const uint8_t*>(bytes->data()) + r * kRecordBytes;
    if (record[0] >= 10) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": label ", int{record[0]}, " of record ", r, " is out of range [0, 10)"));
    }
    dataset.labels.push_back(record[0]);
    uint8_t* image = dataset.pixels.data() + first_pixel + r * 3 * kPlane;
    for (int i = 0; i < kPlane; ++i) {
      for (int c = 0; c < 3; ++c) image[3 * i + c] = record[1 + c * kPlane + i];
    }
  }
  dataset.count += records;
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Dataset> LoadCifar10(const std::string& dir, Split split) {
  std::vector<std::string> files;
  if (split == Split::kTrain) {
    for (int i = 1; i <= 5; ++i) files.push_back(absl::StrCat("data_batch_", i, ".bin"));
  } else {
    files.push_back("test_batch.bin");
  }
  Dataset dataset;
  dataset.name = absl::StrCat("cifar10/", split == Split::kTrain ? "train" : "test");
  dataset.height = kSide;
  dataset.width = kSide;
  dataset.channels = 3;
  dataset.class_names = Cifar10ClassNames();
  for (const std::string& file : files) {
    absl::Status status =
        AppendBatchFile((std::filesystem::path(dir) / file).string(), dataset);
    if (!status.ok()) return status;
  }
  return dataset;
}

std::vector<std::string> Cifar10ClassNames() {
  return {"airplane", "automobile", "bird",  "cat",  "deer",
          "dog",      "frog",       "horse", "ship", "truck"};
}

}  // namespace qforge
