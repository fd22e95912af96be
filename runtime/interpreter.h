// The runtime's C++ entry point. An Interpreter owns one arena (the memory plan
// of its CompiledModel) and one executor; it is used by one thread at a time,
// and any number of interpreters may share a CompiledModel.
//
//   auto model = CompiledModel::FromFile("mobilenet_v2_int8.qfm");
//   auto interpreter = Interpreter::Create(*model, {Backend::kXnnpack, 2});
//   std::memcpy((*interpreter)->input_data(0), pixels, bytes);
//   (*interpreter)->Invoke();
//   const float* scores = static_cast<const float*>((*interpreter)->output_data(0));
#ifndef QFORGE_RUNTIME_INTERPRETER_H_
#define QFORGE_RUNTIME_INTERPRETER_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/aligned_buffer.h"
#include "runtime/compiled_model.h"
#include "runtime/executor.h"

namespace qforge {

enum class Backend {
  kXnnpack,    // fast: XNNPACK's qc8 / qs8 / f32 operators
  kReference,  // portable: the reference kernels that define the semantics
};

struct InterpreterOptions {
  Backend backend = Backend::kXnnpack;
  int num_threads = 1;  // XNNPACK's thread pool size; the reference path is single-threaded
};

class Interpreter {
 public:
  // InvalidArgument for num_threads < 1; ResourceExhausted if the arena cannot
  // be allocated; the XNNPACK executor's errors otherwise.
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
