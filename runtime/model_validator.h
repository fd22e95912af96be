// Structural validation of a flat model (common/model.proto) before the runtime
// allocates or runs anything: format version, every tensor's shape, type,
// quantization and constant data (its size, and finite values for floats),
// per-tensor quantization of everything but constants, every tensor id, the
// inputs and outputs (float or int8, each listed once), and the order of the
// ops (nothing is read before it exists, nothing is written twice). The
// per-op checks of shapes, types and requantization ranges follow in each
// op's Prepare.
//
// Every error is InvalidArgument and names the tensor or op and the bad value.
#ifndef QFORGE_RUNTIME_MODEL_VALIDATOR_H_
#define QFORGE_RUNTIME_MODEL_VALIDATOR_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model.pb.h"

namespace qforge {

// Zero point i of `q`: a quantization may leave all of them out, meaning 0.
inline int32_t ZeroPointAt(const Quantization& q, int i) {
  return q.zero_point_size() == 0 ? 0 : q.zero_point(i);
}

inline constexpr uint32_t kModelFormatVersion = 1;
// Far above MobileNetV2's largest tensor (~4.8 MB of activations at batch 1),
// far below what would exhaust an edge device by accident.
inline constexpr int64_t kMaxTensorBytes = int64_t{1} << 30;
inline constexpr int kMaxRank = 6;

// Bytes per element of a (valid) element type; 0 for ELEMENT_TYPE_UNSPECIFIED.
size_t ElementSize(ElementType type);

// Element count of a shape: InvalidArgument for a dimension < 1, a rank above
// kMaxRank, or a product whose byte size exceeds kMaxTensorBytes (checked
// without overflow).
absl::StatusOr<int64_t> ElementCount(const Tensor& tensor);

// Element count of a tensor that passed validation.
int64_t NumElements(const Tensor& tensor);

// "op 3 'features.1.conv.0.0' (CONV2D)": how errors name an op.
std::string OpLabel(const Op& op, int index);

absl::Status ValidateModel(const Model& model);

}  // namespace qforge

#endif  // QFORGE_RUNTIME_MODEL_VALIDATOR_H_
