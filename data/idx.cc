#include "data/idx.h"

#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data/file_reader.h"

namespace qforge {
namespace {

constexpr uint8_t kUnsignedByteType = 0x08;
// Far beyond any real dataset; keeps a corrupt header from overflowing the product.
constexpr int64_t kMaxElements = int64_t{1} << 34;
// Height, width and channels of one image; keeps them well inside int.
constexpr int64_t kMaxImageSide = 1 << 16;

uint32_t ReadBigEndian32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// `stem` with or without ".gz", whichever exists (plain first).
std::string FindFile(const std::string& dir, const std::string& stem) {
  const std::string plain = (std::filesystem::path(dir) / stem).string();
  std::error_code ec;
  if (std::filesystem::exists(plain, ec)) return plain;
  return plain + ".gz";
}

}  // namespace

absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadMaybeGzipFile(path);
  if (!bytes.ok()) return bytes.status();
  if (bytes->size() < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", bytes->size(), " bytes is too short for an IDX header"));
  }
  const auto* header = reinterpret_cast<const unsigned char*>(bytes->data());
  if (header[0] != 0 || header[1] != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not an IDX file (magic number 0x", absl::Hex(ReadBigEndian32(*bytes, 0)),
        ")"));
  }
  if (header[2] != kUnsignedByteType) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": IDX element type 0x", absl::Hex(header[2]), " is unsupported (only 0x08)"));
  }
  const int rank = header[3];
  if (rank < 1 || rank > 4) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": IDX rank ", rank, " is not 1-4"));
  }
  const size_t data_offset = 4 + 4 * static_cast<size_t>(rank);
  if (bytes->size() < data_offset) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated IDX header"));
  }
  IdxArray array;
  int64_t elements = 1;
  for (int d = 0; d < rank; ++d) {
    const int64_t dim = ReadBigEndian32(*bytes, 4 + 4 * d);
    if (dim == 0 || dim > kMaxElements / elements) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": IDX dimension ", d, " = ", dim, " is zero or absurd"));
    }
    elements *= dim;
    array.dims.push_back(dim);
  }
  const int64_t data_bytes = static_cast<int64_t>(bytes->size() - data_offset);
  if (data_bytes != elements) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header promises ", elements, " values but the file holds ", data_bytes,
        data_bytes < elements ? " (truncated)" : " (trailing bytes)"));
  }
  array.values.assign(bytes->begin() + data_offset, bytes->end());
  return array;
}

absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path,
                                       std::vector<std::string> class_names) {
  absl::StatusOr<IdxArray> images = ReadIdxFile(images_path);
  if (!images.ok()) return images.status();
  absl::StatusOr<IdxArray> labels = ReadIdxFile(labels_path);
  if (!labels.ok()) return labels.status();
  if (images->dims.size() != 3 && images->dims.size() != 4) {
    return absl::InvalidArgumentError(absl::StrCat(
        images_path, ": images must have rank 3 or 4, not ", images->dims.size()));
  }
  if (labels->dims.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        labels_path, ": labels must have rank 1, not ", labels->dims.size()));
  }
  if (images->dims[0] != labels->dims[0]) {
    return absl::InvalidArgumentError(absl::StrCat(
        images_path, " holds ", images->dims[0], " images but ", labels_path, " holds ",
        labels->dims[0], " labels"));
  }
  for (size_t d = 1; d < images->dims.size(); ++d) {
    if (images->dims[d] > kMaxImageSide) {
      return absl::InvalidArgumentError(absl::StrCat(
          images_path, ": image dimension ", d, " = ", images->dims[d], " exceeds ", kMaxImageSide));
    }
  }
  Dataset dataset;
  dataset.count = images->dims[0];
  dataset.height = static_cast<int>(images->dims[1]);
  dataset.width = static_cast<int>(images->dims[2]);
  dataset.channels = images->dims.size() == 4 ? static_cast<int>(images->dims[3]) : 1;
  dataset.labels.resize(dataset.count);
  for (int64_t i = 0; i < dataset.count; ++i) {
    const int label = labels->values[i];
    if (label >= static_cast<int>(class_names.size())) {
      return absl::InvalidArgumentError(absl::StrCat(
          labels_path, ": label ", label, " of item ", i, " is out of range [0, ",
          class_names.size(), ")"));
    }
    dataset.labels[i] = label;
  }
  dataset.pixels = std::move(images->values);
  dataset.class_names = std::move(class_names);
  return dataset;
}

absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(FindFile(dir, prefix + "-images-idx3-ubyte"),
                     FindFile(dir, prefix + "-labels-idx1-ubyte"), FashionMnistClassNames());
  if (dataset.ok()) {
    dataset->name = absl::StrCat("fashion-mnist/", split == Split::kTrain ? "train" : "test");
  }
  return dataset;
}

std::vector<std::string> FashionMnistClassNames() {
  return {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
}

}  // namespace qforge
