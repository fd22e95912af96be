// The reference executor: each prepared op calls its reference kernel.
#include <chrono>
#include <cstring>
#include <type_traits>
#include <utility>

#include "runtime/executor.h"
#include "runtime/reference_ops.h"

namespace qforge {
namespace {

class ReferenceExecutor : public Executor {
 public:
  ReferenceExecutor(const CompiledModel& model, std::vector<void*> tensors)
      : model_(model), tensors_(std::move(tensors)) {}

  absl::Status Run() override {
    for (const PreparedOp& op : model_.ops()) RunOp(op);
    return absl::OkStatus();
  }

  std::string OpEngine(size_t) const override { return "reference"; }

  absl::Status RunProfiled(std::vector<double>& op_ms) override {
    op_ms.assign(model_.ops().size(), 0.0);
    for (size_t i = 0; i < op_ms.size(); ++i) {
      const auto start = std::chrono::steady_clock::now();
      RunOp(model_.ops()[i]);
      op_ms[i] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    }
    return absl::OkStatus();
  }

 private:
  template <typename T>
  T* At(int id) const {
    return static_cast<T*>(tensors_[id]);
  }
  // An optional bias: the op's third input, if present.
  template <typename T>
  const T* Bias(const PreparedOp& op) const {
    return op.inputs.size() > 2 ? At<const T>(op.inputs[2]) : nullptr;
  }

  void RunOp(const PreparedOp& op) const {
    const int x = op.inputs[0];
    std::visit(
        [&](const auto& p) {
          using P = std::decay_t<decltype(p)>;
          namespace ref = reference;
          if constexpr (std::is_same_v<P, QuantizeParams>) {
            if (op.kind == QUANTIZE) {
              ref::QuantizeToInt8(p.size, p.scale, p.zero_point, At<float>(x), At<int8_t>(op.output));
            } else {
              ref::DequantizeInt8(p.size, p.scale, p.zero_point, At<int8_t>(x), At<float>(op.output));
            }
          } else if constexpr (std::is_same_v<P, ref::Conv2DInt8Params>) {
            ref::Conv2DInt8(p, At<int8_t>(x), At<int8_t>(op.inputs[1]), Bias<int32_t>(op),
                            At<int8_t>(op.output));
          } else if constexpr (std::is_same_v<P, ref::Conv2DFloatParams>) {
            ref::Conv2DFloat(p, At<float>(x), At<float>(op.inputs[1]), Bias<float>(op),
                             At<float>(op.output));
          } else if constexpr (std::is_same_v<P, ref::FullyConnectedInt8Params>) {
            ref::FullyConnectedInt8(p, At<int8_t>(x), At<int8_t>(op.inputs[1]), Bias<int32_t>(op),
                                    At<int8_t>(op.output));
          } else if constexpr (std::is_same_v<P, ref::FullyConnectedFloatParams>) {
            ref::FullyConnectedFloat(p, At<float>(x), At<float>(op.inputs[1]), Bias<float>(op),
                                     At<float>(op.output));
          } else if constexpr (std::is_same_v<P, ref::AddInt8Params>) {
            ref::AddInt8(p, At<int8_t>(x), At<int8_t>(op.inputs[1]), At<int8_t>(op.output));
          } else if constexpr (std::is_same_v<P, ref::AddFloatParams>) {
            ref::AddFloat(p, At<float>(x), At<float>(op.inputs[1]), At<float>(op.output));
          } else if constexpr (std::is_same_v<P, ref::MeanInt8Params>) {
            ref::MeanInt8(p, At<int8_t>(x), At<int8_t>(op.output));
          } else if constexpr (std::is_same_v<P, ref::MeanFloatParams>) {
            ref::MeanFloat(p, At<float>(x), At<float>(op.output));
          } else if constexpr (std::is_same_v<P, ReshapeParams>) {
            std::memcpy(tensors_[op.output], tensors_[x], p.bytes);
          }
        },
        op.params);
  }

  const CompiledModel& model_;
  const std::vector<void*> tensors_;
};

}  // namespace

std::unique_ptr<Executor> MakeReferenceExecutor(const CompiledModel& model,
                                                std::vector<void*> tensors) {
  return std::make_unique<ReferenceExecutor>(model, std::move(tensors));
}

}  // namespace qforge
