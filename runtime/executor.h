// An executor runs the prepared ops of a CompiledModel over fixed tensor
// buffers: created once per interpreter (all setup done there), then Run many
// times without allocating.
#ifndef QFORGE_RUNTIME_EXECUTOR_H_
#define QFORGE_RUNTIME_EXECUTOR_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/compiled_model.h"

namespace qforge {

class Executor {
 public:
  virtual ~Executor() = default;
  virtual absl::Status Run() = 0;
  // Run, also timing each op: op_ms[i] receives op i's wall time in ms. For
  // profiles and for measuring the interpreter's own overhead.
  virtual absl::Status RunProfiled(std::vector<double>& op_ms) = 0;
};

// `tensors[id]` is the buffer of tensor id (arena slot or constant). Both must
// outlive the executor.
std::unique_ptr<Executor> MakeReferenceExecutor(const CompiledModel& model,
                                                std::vector<void*> tensors);

// Creates and sets up one XNNPACK operator per op. Unimplemented if the model
// needs something this XNNPACK cannot run; Internal if XNNPACK fails.
absl::StatusOr<std::unique_ptr<Executor>> MakeXnnpackExecutor(const CompiledModel& model,
                                                              std::vector<void*> tensors,
                                                              int num_threads);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_EXECUTOR_H_
