#include "runtime/model_loader.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "runtime/model_validator.h"

namespace qforge {

absl::StatusOr<Model> ParseModel(const void* data, size_t size) {
  if (size == 0) return absl::InvalidArgumentError("model buffer is empty");
  if (static_cast<uint64_t>(size) > static_cast<uint64_t>(kMaxModelBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("model of ", size, " bytes exceeds the ", kMaxModelBytes, "-byte limit"));
  }
  Model model;
  if (!model.ParseFromArray(data, static_cast<int>(size))) {
    return absl::InvalidArgumentError(
        absl::StrCat("not a qforge model: ", size, " bytes of malformed or truncated protobuf"));
  }
  if (absl::Status s = ValidateModel(model); !s.ok()) return s;
  return model;
}

absl::StatusOr<Model> ReadModelFile(const std::string& path) {
  std::error_code ec;
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  if (size > static_cast<uintmax_t>(kMaxModelBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", size, " bytes exceeds the model size limit"));
  }
  std::string bytes(size, '\0');
  std::ifstream in(path, std::ios::binary);
  if (!in.read(bytes.data(), static_cast<std::streamsize>(size))) {
    return absl::NotFoundError(absl::StrCat(path, ": cannot read"));
  }
  absl::StatusOr<Model> model = ParseModel(bytes.data(), bytes.size());
  if (!model.ok()) {
    return absl::Status(model.status().code(), absl::StrCat(path, ": ", model.status().message()));
  }
  return model;
}

absl::StatusOr<Model> WithBatch(Model model, int64_t batch) {
  if (batch < 1) return absl::InvalidArgumentError(absl::StrCat("batch ", batch, " must be >= 1"));
  int64_t model_batch = -1;
  for (Tensor& t : *model.mutable_tensors()) {
    if (!t.data().empty()) continue;
    if (model_batch < 0) model_batch = t.shape(0);
    if (t.shape(0) != model_batch) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot change the batch: tensor '", t.name(), "' has dimension 0 = ", t.shape(0),
          " but the model's batch is ", model_batch));
    }
    t.set_shape(0, batch);
  }
  return model;
}

}  // namespace qforge
