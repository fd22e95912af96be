#include "runtime/interpreter.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace qforge {

absl::StatusOr<std::unique_ptr<Interpreter>> Interpreter::Create(
    std::shared_ptr<const CompiledModel> model, const InterpreterOptions& options) {
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_threads ", options.num_threads, " must be at least 1"));
  }
  std::unique_ptr<Interpreter> interpreter(new Interpreter());
  const MemoryPlan& plan = model->plan();
  interpreter->arena_ = AlignedBuffer(plan.arena_bytes);
  if (!interpreter->arena_.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate a ", plan.arena_bytes, "-byte arena"));
  }
  const int num_tensors = model->model().tensors_size();
  interpreter->tensors_.resize(num_tensors);
  for (int id = 0; id < num_tensors; ++id) {
    interpreter->tensors_[id] = plan.offsets[id] >= 0
                                    ? interpreter->arena_.data() + plan.offsets[id]
                                    : const_cast<void*>(model->constant(id));
  }
  if (options.backend == Backend::kReference) {
    interpreter->executor_ = MakeReferenceExecutor(*model, interpreter->tensors_);
  } else {
    std::optional<kernels::Isa> kernel_isa;
    if (options.backend == Backend::kFast) {
      if (options.kernel_isa.has_value()) {
        kernel_isa = kernels::ResolveIsa(*options.kernel_isa);
      } else if (kernels::DetectIsa() >= kernels::kDefaultMinIsa) {
        kernel_isa = kernels::DetectIsa();
      }
    }
    absl::StatusOr<std::unique_ptr<Executor>> executor =
        MakeFastExecutor(*model, interpreter->tensors_, options.num_threads, kernel_isa);
    if (!executor.ok()) return executor.status();
    interpreter->executor_ = *std::move(executor);
  }
  interpreter->model_ = std::move(model);
  return interpreter;
}

const Tensor& Interpreter::input_tensor(int i) const {
  return model_->model().tensors(model_->model().inputs(i));
}

const Tensor& Interpreter::output_tensor(int i) const {
  return model_->model().tensors(model_->model().outputs(i));
}

void* Interpreter::input_data(int i) { return tensors_[model_->model().inputs(i)]; }

const void* Interpreter::output_data(int i) const {
  return tensors_[model_->model().outputs(i)];
}

}  // namespace qforge
