// A model ready to run: loaded, validated, prepared, its constants copied into
// aligned memory and its arena planned. Immutable after creation, so one
// CompiledModel may be shared by any number of interpreters (one per thread).
#ifndef QFORGE_RUNTIME_COMPILED_MODEL_H_
#define QFORGE_RUNTIME_COMPILED_MODEL_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "runtime/aligned_buffer.h"
#include "runtime/memory_plan.h"
#include "runtime/prepare.h"

namespace qforge {

// The largest arena an interpreter may ask for: single tensors are capped at
// 1 GiB by validation, but many of them could still add up to more than any
// edge device has.
inline constexpr int64_t kMaxArenaBytes = int64_t{2} << 30;

class CompiledModel {
 public:
  // Each runs the whole chain: limits, parsing, ValidateModel, PrepareOp for
  // every op, constant copies and the memory plan.
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromFile(const std::string& path);
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromBuffer(const void* data,
                                                                         size_t size);
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromModel(Model model);

  const Model& model() const { return model_; }
  const std::vector<PreparedOp>& ops() const { return ops_; }
  const MemoryPlan& plan() const { return plan_; }
  // Aligned constant data of tensor `id`, or nullptr if it is not a constant.
  const void* constant(int id) const;

 private:
  CompiledModel() = default;
  // Everything after validation: Prepare, constants, memory plan.
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromValidModel(Model model);
  Model model_;
  std::vector<PreparedOp> ops_;
  std::vector<AlignedBuffer> constants_;  // per tensor id; empty for non-constants
  MemoryPlan plan_;
};

}  // namespace qforge

#endif  // QFORGE_RUNTIME_COMPILED_MODEL_H_
