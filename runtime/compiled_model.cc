#include "runtime/compiled_model.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/model_loader.h"
#include "runtime/model_validator.h"

namespace qforge {

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromFile(
    const std::string& path) {
  absl::StatusOr<Model> model = ReadModelFile(path);  // validates
  if (!model.ok()) return model.status();
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled =
      FromValidModel(*std::move(model));
  if (!compiled.ok()) {
    return absl::Status(compiled.status().code(),
                        absl::StrCat(path, ": ", compiled.status().message()));
  }
  return compiled;
}

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromBuffer(const void* data,
                                                                               size_t size) {
  absl::StatusOr<Model> model = ParseModel(data, size);  // validates
  if (!model.ok()) return model.status();
  return FromValidModel(*std::move(model));
}

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromModel(Model model) {
  if (absl::Status s = ValidateModel(model); !s.ok()) return s;
  return FromValidModel(std::move(model));
}

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromValidModel(Model model) {
  std::shared_ptr<CompiledModel> compiled(new CompiledModel());
  compiled->ops_.reserve(model.ops_size());
  for (int i = 0; i < model.ops_size(); ++i) {
    absl::StatusOr<PreparedOp> op = PrepareOp(model, i);
    if (!op.ok()) return op.status();
    compiled->ops_.push_back(*std::move(op));
  }
  compiled->constants_.resize(model.tensors_size());
  for (int id = 0; id < model.tensors_size(); ++id) {
    const std::string& data = model.tensors(id).data();
    if (data.empty()) continue;
    AlignedBuffer buffer(static_cast<int64_t>(data.size()));
    if (!buffer.ok()) {
      return absl::ResourceExhaustedError(
          absl::StrCat("cannot allocate ", data.size(), " bytes for tensor ", id));
    }
    std::memcpy(buffer.data(), data.data(), data.size());
    compiled->constants_[id] = std::move(buffer);
  }
  compiled->plan_ = PlanMemory(model);
  if (compiled->plan_.arena_bytes > kMaxArenaBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the model's tensors need a ", compiled->plan_.arena_bytes, "-byte arena, more than the ",
        kMaxArenaBytes, "-byte limit"));
  }
  compiled->model_ = std::move(model);
  return std::shared_ptr<const CompiledModel>(std::move(compiled));
}

const void* CompiledModel::constant(int id) const {
  return constants_[id].ok() ? constants_[id].data() : nullptr;
}

}  // namespace qforge
