#include "runtime/compiled_model.h"

#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "runtime/model_loader.h"
#include "runtime/model_validator.h"

namespace qforge {
namespace {

constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

absl::Status OverLimit(const char* what, int64_t value, const char* limit, int64_t max) {
  return absl::OutOfRangeError(absl::StrCat("the model needs ", value, " ", what, ", over the ",
                                            max, " that LoadLimits::", limit, " allows"));
}

}  // namespace

LoadLimits LoadLimits::None() { return {kNone, kNone, kNone}; }

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromFile(
    const std::string& path, const LoadLimits& limits) {
  absl::StatusOr<Model> model = ReadModelFile(path);  // validates
  if (!model.ok()) return model.status();
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled =
      FromValidModel(*std::move(model), limits);
  if (!compiled.ok()) {
    return absl::Status(compiled.status().code(),
                        absl::StrCat(path, ": ", compiled.status().message()));
  }
  return compiled;
}

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromBuffer(
    const void* data, size_t size, const LoadLimits& limits) {
  absl::StatusOr<Model> model = ParseModel(data, size);  // validates
  if (!model.ok()) return model.status();
  return FromValidModel(*std::move(model), limits);
}

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromModel(
    Model model, const LoadLimits& limits) {
  if (absl::Status s = ValidateModel(model); !s.ok()) return s;
  return FromValidModel(std::move(model), limits);
}

absl::StatusOr<std::shared_ptr<const CompiledModel>> CompiledModel::FromValidModel(
    Model model, const LoadLimits& limits) {
  std::shared_ptr<CompiledModel> compiled(new CompiledModel());
  compiled->ops_.reserve(model.ops_size());
  for (int i = 0; i < model.ops_size(); ++i) {
    absl::StatusOr<PreparedOp> op = PrepareOp(model, i);
    if (!op.ok()) return op.status();
    int64_t& sum = compiled->multiply_adds_;  // saturating
    sum = op->multiply_adds > kNone - sum ? kNone : sum + op->multiply_adds;
    compiled->ops_.push_back(*std::move(op));
  }
  if (compiled->multiply_adds_ > limits.max_multiply_adds) {
    return OverLimit("multiply-adds per invoke", compiled->multiply_adds_, "max_multiply_adds",
                     limits.max_multiply_adds);
  }
  for (const Tensor& t : model.tensors()) {
    compiled->constant_bytes_ += static_cast<int64_t>(t.data().size());
  }
  if (compiled->constant_bytes_ > limits.max_constant_bytes) {
    return OverLimit("bytes of constants", compiled->constant_bytes_, "max_constant_bytes",
                     limits.max_constant_bytes);
  }
  compiled->plan_ = PlanMemory(model);
  if (compiled->plan_.arena_bytes > limits.max_arena_bytes) {
    return OverLimit("bytes of arena", compiled->plan_.arena_bytes, "max_arena_bytes",
                     limits.max_arena_bytes);
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
  compiled->model_ = std::move(model);
  return std::shared_ptr<const CompiledModel>(std::move(compiled));
}

const void* CompiledModel::constant(int id) const {
  return constants_[id].ok() ? constants_[id].data() : nullptr;
}

}  // namespace qforge
