// Prepare: the per-op half of model validation, and the one place where float
// work happens. For each op it checks what the structural validator cannot
// (arity, shapes through the op, element types, quantization legal for the
// kernels, requantization multipliers in range, accumulator headroom) and turns
// the model's scales into the integer parameters the kernels run on.
//
// Every error is InvalidArgument and names the op and the offending value.
#ifndef QFORGE_RUNTIME_PREPARE_H_
#define QFORGE_RUNTIME_PREPARE_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "runtime/reference_ops.h"

namespace qforge {

struct QuantizeParams {
  int64_t size = 0;
  float scale = 1.0f;
  int32_t zero_point = 0;
};

struct ReshapeParams {
  int64_t bytes = 0;
};

// Float clamp of a fused activation.
struct ActivationRange {
  float min = -INFINITY;
  float max = INFINITY;
};

struct PreparedOp {
  OpKind kind = OP_KIND_UNSPECIFIED;
  std::string name;
  std::vector<int> inputs;  // tensor ids, as in the model
  int output = -1;
  // One run's multiply-adds (a conv's or fully connected layer's; one per
  // element for the other ops), for LoadLimits.
  int64_t multiply_adds = 0;
  std::variant<QuantizeParams,  // QUANTIZE and DEQUANTIZE
               reference::Conv2DInt8Params, reference::Conv2DFloatParams,
               reference::FullyConnectedInt8Params, reference::FullyConnectedFloatParams,
               reference::AddInt8Params, reference::AddFloatParams,
               reference::MeanInt8Params, reference::MeanFloatParams, ReshapeParams>
      params;
};

// Prepares op `index` of a model that passed ValidateModel.
absl::StatusOr<PreparedOp> PrepareOp(const Model& model, int index);

// The float range of a fused activation.
ActivationRange FloatActivationRange(Activation activation);

// The int8 clamp [qmin, qmax] of a fused activation for an output quantized
// with (scale, zero_point): ReLU's 0 is exactly zero_point.
reference::Int8Output Int8ActivationRange(Activation activation, float scale,
                                          int32_t zero_point);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_PREPARE_H_
