// Fuzzes what an application does with a model file it did not make: load it
// (parse, validate, prepare, plan), create an interpreter on the reference and
// the fast backend, and invoke both. On models of one int8 op (between
// QUANTIZE, DEQUANTIZE and RESHAPE) the two must agree within 1 LSB, the
// runtime's contract; through several ops a 1-LSB difference may grow, and
// float ops may differ without bound where large terms cancel (the backends
// sum in different orders), so those are run but not compared.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "runtime/compiled_model.h"
#include "runtime/interpreter.h"
#include "runtime/model_validator.h"

namespace qforge {
namespace {

// Small enough that each input runs in milliseconds.
LoadLimits FuzzLimits() {
  LoadLimits limits;
  limits.max_arena_bytes = 64 << 20;
  limits.max_constant_bytes = 64 << 20;
  limits.max_multiply_adds = 20000000;
  return limits;
}

// Deterministic inputs on each tensor's grid: int8 values spread over
// [-128, 127], float ones at int8 steps of the QUANTIZE that may read them
// (never a rounding tie, so both backends quantize them alike).
void FillInputs(Interpreter& it) {
  for (int i = 0; i < it.num_inputs(); ++i) {
    const Tensor& t = it.input_tensor(i);
    const int64_t n = NumElements(t);
    for (int64_t k = 0; k < n; ++k) {
      const int q = static_cast<int>((k * 37 + i * 11) % 256) - 128;
      if (t.type() == INT8) {
        static_cast<int8_t*>(it.input_data(i))[k] = static_cast<int8_t>(q);
      } else {
        static_cast<float*>(it.input_data(i))[k] = 0.03125f * static_cast<float>(q);
      }
    }
  }
}

// True for a model of one int8 op between QUANTIZE, DEQUANTIZE and RESHAPE ops.
bool OneInt8Op(const Model& model) {
  int compute = 0;
  for (const Op& op : model.ops()) {
    if (op.kind() == QUANTIZE || op.kind() == DEQUANTIZE || op.kind() == RESHAPE) continue;
    if (model.tensors(op.inputs(0)).type() != INT8) return false;
    ++compute;
  }
  return compute == 1;
}

std::unique_ptr<Interpreter> Run(const std::shared_ptr<const CompiledModel>& model,
                                 Backend backend) {
  absl::StatusOr<std::unique_ptr<Interpreter>> it = Interpreter::Create(model, {backend, 1});
  if (!it.ok()) return nullptr;  // e.g. XNNPACK refuses a shape the reference takes
  FillInputs(**it);
  if (!(*it)->Invoke().ok()) {
    std::fprintf(stderr, "Invoke failed on a model that loaded\n");
    std::abort();
  }
  return *std::move(it);
}

void CompareInt8Outputs(const Interpreter& reference, const Interpreter& fast) {
  for (int i = 0; i < reference.num_outputs(); ++i) {
    const Tensor& t = reference.output_tensor(i);
    if (t.type() != INT8) continue;
    const auto* a = static_cast<const int8_t*>(reference.output_data(i));
    const auto* b = static_cast<const int8_t*>(fast.output_data(i));
    for (int64_t k = 0; k < NumElements(t); ++k) {
      if (std::abs(a[k] - b[k]) > 1) {
        std::fprintf(stderr, "output %d element %lld: reference %d, fast %d\n", i,
                     static_cast<long long>(k), a[k], b[k]);
        std::abort();
      }
    }
  }
}

}  // namespace
}  // namespace qforge

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace qforge;  // NOLINT: the entry point must be outside the namespace
  absl::StatusOr<std::shared_ptr<const CompiledModel>> model =
      CompiledModel::FromBuffer(data, size, FuzzLimits());
  if (!model.ok()) return 0;
  std::unique_ptr<Interpreter> reference = Run(*model, Backend::kReference);
  if (reference == nullptr) {
    std::fprintf(stderr, "the reference backend refused a model that loaded\n");
    std::abort();
  }
  std::unique_ptr<Interpreter> fast = Run(*model, Backend::kFast);
  if (fast != nullptr && OneInt8Op((*model)->model())) CompareInt8Outputs(*reference, *fast);
  return 0;
}
