// A model ready to run: loaded, validated, prepared, its constants copied into
// aligned memory and its arena planned. Immutable after creation, so one
// CompiledModel may be shared by any number of interpreters (one per thread).
#ifndef QFORGE_RUNTIME_COMPILED_MODEL_H_
#define QFORGE_RUNTIME_COMPILED_MODEL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "runtime/aligned_buffer.h"
#include "runtime/memory_plan.h"
#include "runtime/prepare.h"

namespace qforge {

// What an application accepts from a model file it did not make: a small file
// can still describe a huge arena or hours of arithmetic. A model over any
// limit is refused at load, before its constants are copied into aligned
// memory or any arena is allocated (the parsed file itself, at most
// kMaxModelBytes, is already in memory).
// The defaults are far above MobileNetV2 at 224x224 (a 3 MB arena, 3.5 MB of
// weights, 0.3 G multiply-adds) and far below what would hang an edge device.
struct LoadLimits {
  int64_t max_arena_bytes = int64_t{1} << 30;      // one interpreter's activations
  int64_t max_constant_bytes = int64_t{1} << 30;   // weights and biases together
  int64_t max_multiply_adds = int64_t{100} << 30;  // per invoke, as estimated at prepare

  // No limits: for the trainer and tools, which load models they made.
  static LoadLimits None();
};

class CompiledModel {
 public:
  // Each runs the whole chain: size limits, parsing, ValidateModel, PrepareOp
  // for every op, constant copies and the memory plan. OutOfRange (naming the
  // limit) for a model over one of `limits`.
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromFile(
      const std::string& path, const LoadLimits& limits = {});
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromBuffer(
      const void* data, size_t size, const LoadLimits& limits = {});
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromModel(
      Model model, const LoadLimits& limits = {});

  const Model& model() const { return model_; }
  const std::vector<PreparedOp>& ops() const { return ops_; }
  const MemoryPlan& plan() const { return plan_; }
  // What LoadLimits measures.
  int64_t constant_bytes() const { return constant_bytes_; }
  int64_t multiply_adds() const { return multiply_adds_; }
  // Aligned constant data of tensor `id`, or nullptr if it is not a constant.
  const void* constant(int id) const;

 private:
  CompiledModel() = default;
  // Everything after validation: Prepare, constants, memory plan.
  static absl::StatusOr<std::shared_ptr<const CompiledModel>> FromValidModel(
      Model model, const LoadLimits& limits);
  Model model_;
  std::vector<PreparedOp> ops_;
  std::vector<AlignedBuffer> constants_;  // per tensor id; empty for non-constants
  MemoryPlan plan_;
  int64_t constant_bytes_ = 0;
  int64_t multiply_adds_ = 0;
};

}  // namespace qforge

#endif  // QFORGE_RUNTIME_COMPILED_MODEL_H_
