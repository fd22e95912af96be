// An executor runs the prepared ops of a CompiledModel over fixed tensor
// buffers: created once per interpreter (all setup done there), then Run many
// times without allocating.
#ifndef QFORGE_RUNTIME_EXECUTOR_H_
#define QFORGE_RUNTIME_EXECUTOR_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/compiled_model.h"
#include "runtime/kernels/isa.h"

namespace qforge {

class Executor {
 public:
  virtual ~Executor() = default;
  virtual absl::Status Run() = 0;
  // Run, also timing each op: op_ms[i] receives op i's wall time in ms. For
  // profiles and for measuring the interpreter's own overhead.
  virtual absl::Status RunProfiled(std::vector<double>& op_ms) = 0;
  // What runs op i: "reference", "xnnpack", "copy", or "qforge-<isa level>"
  // for qforge's own kernels.
  virtual std::string OpEngine(size_t i) const = 0;
};

// `tensors[id]` is the buffer of tensor id (arena slot or constant). Both must
// outlive the executor.
std::unique_ptr<Executor> MakeReferenceExecutor(const CompiledModel& model,
                                                std::vector<void*> tensors);

// The fast executor: each op runs on qforge's own kernels at `kernel_isa` if
// they cover it, otherwise on an XNNPACK operator created and set up here; with
// no kernel_isa, every op runs on XNNPACK. Unimplemented if the model needs
// something this XNNPACK cannot run; Internal if XNNPACK fails.
absl::StatusOr<std::unique_ptr<Executor>> MakeFastExecutor(const CompiledModel& model,
                                                           std::vector<void*> tensors,
                                                           int num_threads,
                                                           std::optional<kernels::Isa> kernel_isa);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_EXECUTOR_H_
