// Reading a flat model from a file or a memory buffer: size limits first, then
// protobuf parsing, then ValidateModel. Nothing is allocated for an absurd file.
#ifndef QFORGE_RUNTIME_MODEL_LOADER_H_
#define QFORGE_RUNTIME_MODEL_LOADER_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/model.pb.h"

namespace qforge {

// Protobuf cannot parse messages of 2 GiB or more.
inline constexpr int64_t kMaxModelBytes = (int64_t{1} << 31) - 1;

// InvalidArgument for an empty or oversized buffer, malformed protobuf, or any
// ValidateModel failure.
absl::StatusOr<Model> ParseModel(const void* data, size_t size);

// NotFound for a missing file; otherwise as ParseModel, with the path in the
// message. The file size is checked before anything is read.
absl::StatusOr<Model> ReadModelFile(const std::string& path);

// The same model (one that passed ValidateModel) for another batch size:
// dimension 0 of every tensor that is
// not a constant becomes `batch`. InvalidArgument for batch < 1, or if those
// tensors do not all share one batch dimension (the model cannot be rebatched).
absl::StatusOr<Model> WithBatch(Model model, int64_t batch);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_MODEL_LOADER_H_
