// The runtime's C++ entry point. An Interpreter owns one arena (the memory plan
// of its CompiledModel) and one executor; it is used by one thread at a time,
// and any number of interpreters may share a CompiledModel.
//
//   auto model = CompiledModel::FromFile("mobilenet_v2_int8.qfm");
//   auto interpreter = Interpreter::Create(*model, {Backend::kFast, 2});
//   std::memcpy((*interpreter)->input_data(0), pixels, bytes);
//   (*interpreter)->Invoke();
//   const float* scores = static_cast<const float*>((*interpreter)->output_data(0));
#ifndef QFORGE_RUNTIME_INTERPRETER_H_
#define QFORGE_RUNTIME_INTERPRETER_H_

#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/aligned_buffer.h"
#include "runtime/compiled_model.h"
#include "runtime/executor.h"
#include "runtime/kernels/isa.h"

namespace qforge {

enum class Backend {
  // qforge's own int8 kernels (bit-exact with the reference) for every op they
  // cover, where the CPU has an instruction-set level they are built for (see
  // kernel_isa); XNNPACK's operators for the rest (float ops), and for every
  // op on other CPUs.
  kFast,
  kReference,    // portable: the reference kernels that define the semantics
  kXnnpackOnly,  // XNNPACK's qc8 / qs8 / f32 operators for every op (within 1 LSB)
};

struct InterpreterOptions {
  Backend backend = Backend::kFast;
  int num_threads = 1;  // the thread pool's size; the reference path is single-threaded
  // The fast backend's kernels: unset, the best level this CPU has if it is
  // at least kernels::kDefaultMinIsa (AVX2), else XNNPACK alone
  // (QFORGE_ISA in the environment caps the level, runtime/kernels/isa.h);
  // set, qforge's kernels at this level or the CPU's best if lower, even the
  // portable generic level (bit-exact, but far slower than XNNPACK).
  std::optional<kernels::Isa> kernel_isa;
};

class Interpreter {
 public:
  // InvalidArgument for num_threads < 1; ResourceExhausted if the arena cannot
  // be allocated; the fast executor's (XNNPACK's) errors otherwise.
  static absl::StatusOr<std::unique_ptr<Interpreter>> Create(
      std::shared_ptr<const CompiledModel> model, const InterpreterOptions& options);

  int num_inputs() const { return model_->model().inputs_size(); }
  int num_outputs() const { return model_->model().outputs_size(); }
  // Name, shape, type and quantization of input / output i.
  const Tensor& input_tensor(int i) const;
  const Tensor& output_tensor(int i) const;
  // The buffers to fill before Invoke and to read after it. Inputs must be
  // written before every Invoke: the arena reuses an input's bytes once the
  // ops have consumed it. Outputs stay valid until the next Invoke.
  void* input_data(int i);
  const void* output_data(int i) const;

  absl::Status Invoke() { return executor_->Run(); }
  // What runs op i (Executor::OpEngine): e.g. "qforge-avx512vnni", "xnnpack".
  std::string op_engine(int i) const { return executor_->OpEngine(static_cast<size_t>(i)); }

  // Invoke, timing each op (op_ms[i] for op i, in ms).
  absl::Status InvokeProfiled(std::vector<double>& op_ms) {
    return executor_->RunProfiled(op_ms);
  }

 private:
  Interpreter() = default;
  std::shared_ptr<const CompiledModel> model_;
  AlignedBuffer arena_;
  std::vector<void*> tensors_;  // per tensor id
  std::unique_ptr<Executor> executor_;
};

}  // namespace qforge

#endif  // QFORGE_RUNTIME_INTERPRETER_H_
