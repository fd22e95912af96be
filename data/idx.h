// IDX files, the format of MNIST and Fashion-MNIST (plain or gzip-compressed):
// a big-endian header [0, 0, type, rank] [dim_0] ... [dim_rank-1], then the
// values row-major. qforge reads type 0x08 (unsigned byte), the only one these
// datasets use.
#ifndef QFORGE_DATA_IDX_H_
#define QFORGE_DATA_IDX_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace qforge {

// Where Debian's dataset-fashion-mnist package installs the files.
inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> values;  // product(dims) bytes
};

// Reads and validates one IDX file. Errors name the file and the problem: a
// missing file, a wrong magic number or type, an absurd dimension, or a data
// section shorter or longer than the header promises.
absl::StatusOr<IdxArray> ReadIdxFile(const std::string& path);

// Images [N, H, W] (or [N, H, W, C]) and labels [N] from two IDX files; labels
// must lie in [0, class_names.size()).
absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path,
                                       std::vector<std::string> class_names);

// Fashion-MNIST from `dir` (train-* or t10k-*-idx?-ubyte, with or without .gz).
absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split);

// The ten Fashion-MNIST classes in label order.
std::vector<std::string> FashionMnistClassNames();

}  // namespace qforge

#endif  // QFORGE_DATA_IDX_H_
