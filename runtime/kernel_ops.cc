#include "runtime/kernel_ops.h"

#include <type_traits>
#include <utility>

#include "runtime/kernels/int8_kernels.h"

namespace qforge {
namespace {

using kernels::Isa;

class GemmConvOp : public KernelOp {
 public:
  GemmConvOp(kernels::PackedGemmConv conv, const int8_t* input, int8_t* output)
      : conv_(std::move(conv)), input_(input), output_(output), scratch_(conv_.scratch_bytes) {}
  int64_t units() const override { return kernels::GemmConvUnits(conv_); }
  void Run(int64_t begin, int64_t end) override {
    kernels::RunGemmConv(conv_, input_, output_, scratch_.data(), begin, end);
  }

 private:
  kernels::PackedGemmConv conv_;
  const int8_t* input_;
  int8_t* output_;
  std::vector<uint8_t> scratch_;  // im2col rows, for convs that need them
};

class DepthwiseOp : public KernelOp {
 public:
  DepthwiseOp(kernels::PackedDepthwise conv, const int8_t* input, int8_t* output)
      : conv_(std::move(conv)), input_(input), output_(output) {}
  int64_t units() const override { return kernels::DepthwiseUnits(conv_); }
  void Run(int64_t begin, int64_t end) override {
    kernels::RunDepthwise(conv_, input_, output_, begin, end);
  }

 private:
  kernels::PackedDepthwise conv_;
  const int8_t* input_;
  int8_t* output_;
};

class AddOp : public KernelOp {
 public:
  // By reference: GCC warns of an ABI change for 64-byte aligned values passed by value.
  AddOp(const kernels::PackedAdd& add, const int8_t* a, const int8_t* b, int8_t* output)
      : add_(add), a_(a), b_(b), output_(output) {}
  int64_t units() const override { return kernels::ElementUnits(add_.params.size); }
  void Run(int64_t begin, int64_t end) override {
    kernels::RunAdd(add_, a_, b_, output_, begin, end);
  }

 private:
  kernels::PackedAdd add_;
  const int8_t *a_, *b_;
  int8_t* output_;
};

// An op without packed state: its units and a function over a range of them.
template <typename F>
class FunctionOp : public KernelOp {
 public:
  FunctionOp(int64_t units, F run) : units_(units), run_(std::move(run)) {}
  int64_t units() const override { return units_; }
  void Run(int64_t begin, int64_t end) override { run_(begin, end); }

 private:
  int64_t units_;
  F run_;
};

template <typename F>
std::unique_ptr<KernelOp> MakeFunctionOp(int64_t units, F run) {
  return std::make_unique<FunctionOp<F>>(units, std::move(run));
}

bool IsDepthwise(const reference::ConvGeometry& g) {
  return g.groups > 1 && g.groups == g.input_channels && g.groups == g.output_channels;
}

}  // namespace

std::unique_ptr<KernelOp> MakeKernelOp(const PreparedOp& op, const std::vector<void*>& tensors,
                                       Isa isa) {
  auto in = [&](int i) { return static_cast<const int8_t*>(tensors[op.inputs[i]]); };
  const int32_t* bias =
      op.inputs.size() > 2 ? static_cast<const int32_t*>(tensors[op.inputs[2]]) : nullptr;
  auto* out8 = static_cast<int8_t*>(tensors[op.output]);
  return std::visit(
      [&](const auto& p) -> std::unique_ptr<KernelOp> {
        using P = std::decay_t<decltype(p)>;
        if constexpr (std::is_same_v<P, reference::Conv2DInt8Params>) {
          if (p.geometry.groups == 1) {
            return std::make_unique<GemmConvOp>(kernels::PackGemmConv(p, in(1), bias, isa), in(0),
                                                out8);
          }
          if (IsDepthwise(p.geometry)) {
            return std::make_unique<DepthwiseOp>(kernels::PackDepthwise(p, in(1), bias, isa),
                                                 in(0), out8);
          }
          return nullptr;
        } else if constexpr (std::is_same_v<P, reference::FullyConnectedInt8Params>) {
          return std::make_unique<GemmConvOp>(kernels::PackFullyConnected(p, in(1), bias, isa),
                                              in(0), out8);
        } else if constexpr (std::is_same_v<P, reference::AddInt8Params>) {
          return std::make_unique<AddOp>(kernels::PackAdd(p, isa), in(0), in(1), out8);
        } else if constexpr (std::is_same_v<P, reference::MeanInt8Params>) {
          const int8_t* x = in(0);
          return MakeFunctionOp(p.batch, [=](int64_t begin, int64_t end) {
            kernels::RunMean(isa, p, x, out8, begin, end);
          });
        } else if constexpr (std::is_same_v<P, QuantizeParams>) {
          if (op.kind == QUANTIZE) {
            const auto* x = static_cast<const float*>(tensors[op.inputs[0]]);
            return MakeFunctionOp(kernels::ElementUnits(p.size), [=](int64_t begin, int64_t end) {
              kernels::RunQuantize(isa, p.size, p.scale, p.zero_point, x, out8, begin, end);
            });
          }
          const int8_t* x = in(0);
          auto* y = static_cast<float*>(tensors[op.output]);
          return MakeFunctionOp(kernels::ElementUnits(p.size), [=](int64_t begin, int64_t end) {
            kernels::RunDequantize(isa, p.size, p.scale, p.zero_point, x, y, begin, end);
          });
        } else {
          return nullptr;  // float ops and RESHAPE
        }
      },
      op.params);
}

}  // namespace qforge
