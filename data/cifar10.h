// CIFAR-10 in its binary distribution (cifar-10-batches-bin): data_batch_1.bin
// ... data_batch_5.bin for training and test_batch.bin for testing, each a list
// of records [label byte][1024 red][1024 green][1024 blue] of a 32x32 image.
#ifndef QFORGE_DATA_CIFAR10_H_
#define QFORGE_DATA_CIFAR10_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"

namespace qforge {

// Reads the split's batch files from `dir` into NHWC RGB images. Errors name the
// file: missing, a size that is not a whole number of records, a label >= 10.
absl::StatusOr<Dataset> LoadCifar10(const std::string& dir, Split split);

std::vector<std::string> Cifar10ClassNames();

}  // namespace qforge

#endif  // QFORGE_DATA_CIFAR10_H_
