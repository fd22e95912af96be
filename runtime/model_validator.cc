#include "runtime/model_validator.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/quantization.h"

namespace qforge {
namespace {

std::string TensorLabel(const Model& model, int id) {
  return absl::StrCat("tensor ", id, " '", model.tensors(id).name(), "'");
}

absl::Status Invalid(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::Status ValidateQuantization(const Tensor& t) {
  const Quantization& q = t.quantization();
  if (t.type() == FLOAT32) {
    if (q.scale_size() != 0 || q.zero_point_size() != 0) {
      return absl::InvalidArgumentError("a FLOAT32 tensor must not be quantized");
    }
    return absl::OkStatus();
  }
  if (q.scale_size() == 0) {
    if (t.type() == INT32 && q.zero_point_size() == 0) return absl::OkStatus();  // implied
    return absl::InvalidArgumentError(
        absl::StrCat(ElementType_Name(t.type()), " tensor has no quantization scale"));
  }
  if (q.zero_point_size() != 0 && q.zero_point_size() != q.scale_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        q.scale_size(), " scales but ", q.zero_point_size(), " zero points"));
  }
  if (q.scale_size() > 1) {
    if (q.axis() < 0 || q.axis() >= t.shape_size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("quantization axis ", q.axis(), " is outside rank ", t.shape_size()));
    }
    if (q.scale_size() != t.shape(q.axis())) {
      return absl::InvalidArgumentError(absl::StrCat(
          q.scale_size(), " scales for ", t.shape(q.axis()), " channels along axis ", q.axis()));
    }
  }
  const int32_t qmin = t.type() == INT8 ? kActivationQMin : 0;
  const int32_t qmax = t.type() == INT8 ? kActivationQMax : 0;
  for (int i = 0; i < q.scale_size(); ++i) {
    if (absl::Status s = ValidateQuantParams({q.scale(i), ZeroPointAt(q, i)}, qmin, qmax);
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("quantization ", i, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

// A float constant's values must all be finite: the backends treat NaN and
// infinity differently (XNNPACK's clamps and padding are not the reference's),
// so a model holding them has no one defined result.
absl::Status ValidateFiniteFloats(const std::string& data) {
  const int64_t count = static_cast<int64_t>(data.size() / sizeof(float));
  for (int64_t i = 0; i < count; ++i) {
    float value;
    std::memcpy(&value, data.data() + i * sizeof(float), sizeof(float));
    if (!std::isfinite(value)) {
      return absl::InvalidArgumentError(
          absl::StrCat("constant value ", i, " is ", value, "; float constants must be finite"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateTensor(const Tensor& t) {
  if (t.type() != FLOAT32 && t.type() != INT8 && t.type() != INT32) {
    return absl::InvalidArgumentError(absl::StrCat("element type ", t.type(), " is not valid"));
  }
  absl::StatusOr<int64_t> count = ElementCount(t);
  if (!count.ok()) return count.status();
  if (absl::Status s = ValidateQuantization(t); !s.ok()) return s;
  if (t.data().empty()) {
    // Activations (and inputs): per tensor, as the kernels and the C API read them.
    if (t.quantization().scale_size() > 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("has ", t.quantization().scale_size(),
                       " scales; only constants may be quantized per channel"));
    }
    return absl::OkStatus();
  }
  const int64_t bytes = *count * static_cast<int64_t>(ElementSize(t.type()));
  if (static_cast<int64_t>(t.data().size()) != bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "constant data is ", t.data().size(), " bytes but the shape needs ", bytes));
  }
  return t.type() == FLOAT32 ? ValidateFiniteFloats(t.data()) : absl::OkStatus();
}

// What the C API can set and read: float or int8 inputs and outputs, each
// listed once.
absl::Status ValidateInterface(const Model& model, bool inputs) {
  const auto& ids = inputs ? model.inputs() : model.outputs();
  const char* what = inputs ? "model input" : "model output";
  std::vector<bool> listed(model.tensors_size(), false);
  for (int id : ids) {
    const Tensor& t = model.tensors(id);
    if (t.type() != FLOAT32 && t.type() != INT8) {
      return Invalid(
          TensorLabel(model, id),
          absl::StrCat("a ", what, " must be FLOAT32 or INT8, not ", ElementType_Name(t.type())));
    }
    if (listed[id]) {
      return Invalid(TensorLabel(model, id), absl::StrCat("is listed twice as a ", what));
    }
    listed[id] = true;
  }
  return absl::OkStatus();
}

// Optional; when present, one finite mean and positive std per channel of the
// first input (its last dimension) and a positive pixel scale.
absl::Status ValidatePreprocessing(const Model& model) {
  const Preprocessing& p = model.preprocessing();
  if (p.mean_size() == 0 && p.std_size() == 0 && p.pixel_scale() == 0.0f) {
    return absl::OkStatus();
  }
  const Tensor& input = model.tensors(model.inputs(0));
  const int64_t channels = input.shape(input.shape_size() - 1);
  if (p.resize() != 0 && (input.shape_size() != 4 || p.resize() < input.shape(1) ||
                          p.resize() < input.shape(2) || p.resize() > 65536)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "preprocessing resize ", p.resize(), " is below the input's size or above 65536"));
  }
  if (p.mean_size() != channels || p.std_size() != channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "preprocessing has ", p.mean_size(), " means and ", p.std_size(), " stds for ",
        channels, " input channels"));
  }
  if (!std::isfinite(p.pixel_scale()) || !(p.pixel_scale() > 0.0f)) {
    return absl::InvalidArgumentError(
        absl::StrCat("preprocessing pixel_scale ", p.pixel_scale(), " must be finite and > 0"));
  }
  for (int c = 0; c < channels; ++c) {
    if (!std::isfinite(p.mean(c)) || !std::isfinite(p.std(c)) || !(p.std(c) > 0.0f)) {
      return absl::InvalidArgumentError(absl::StrCat("preprocessing channel ", c, ": mean ",
                                                     p.mean(c), ", std ", p.std(c)));
    }
  }
  return absl::OkStatus();
}

// Where a tensor's value comes from, for the op-order check.
enum class Source { kNone, kConstant, kInput, kOp };

}  // namespace

std::string OpLabel(const Op& op, int index) {
  const std::string kind =
      OpKind_IsValid(op.kind()) ? OpKind_Name(op.kind()) : absl::StrCat("kind ", op.kind());
  return absl::StrCat("op ", index, " '", op.name(), "' (", kind, ")");
}

int64_t NumElements(const Tensor& tensor) {
  int64_t n = 1;
  for (int64_t d : tensor.shape()) n *= d;
  return n;
}

size_t ElementSize(ElementType type) {
  switch (type) {
    case FLOAT32:
    case INT32:
      return 4;
    case INT8:
      return 1;
    default:
      return 0;
  }
}

absl::StatusOr<int64_t> ElementCount(const Tensor& tensor) {
  if (tensor.shape_size() < 1 || tensor.shape_size() > kMaxRank) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", tensor.shape_size(), " is outside [1, ", kMaxRank, "]"));
  }
  const int64_t element_size = std::max<int64_t>(1, ElementSize(tensor.type()));
  int64_t count = 1;
  for (int d = 0; d < tensor.shape_size(); ++d) {
    const int64_t dim = tensor.shape(d);
    if (dim < 1) {
      return absl::InvalidArgumentError(absl::StrCat("dimension ", d, " is ", dim));
    }
    if (dim > kMaxTensorBytes / element_size / count) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape exceeds the ", kMaxTensorBytes, "-byte tensor limit"));
    }
    count *= dim;
  }
  return count;
}

absl::Status ValidateModel(const Model& model) {
  if (model.format_version() != kModelFormatVersion) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model format version ", model.format_version(), " is not supported (this runtime reads ",
        kModelFormatVersion, ")"));
  }
  const int num_tensors = model.tensors_size();
  if (num_tensors == 0 || model.ops_size() == 0) {
    return absl::InvalidArgumentError("model has no tensors or no ops");
  }
  std::vector<Source> source(num_tensors, Source::kNone);
  for (int id = 0; id < num_tensors; ++id) {
    const Tensor& t = model.tensors(id);
    if (absl::Status s = ValidateTensor(t); !s.ok()) {
      return Invalid(TensorLabel(model, id), std::string(s.message()));
    }
    if (!t.data().empty()) source[id] = Source::kConstant;
  }
  auto check_id = [&](int id, const std::string& where) -> absl::Status {
    if (id < 0 || id >= num_tensors) {
      return Invalid(where, absl::StrCat("tensor id ", id, " is outside [0, ", num_tensors, ")"));
    }
    return absl::OkStatus();
  };
  if (model.inputs_size() == 0 || model.outputs_size() == 0) {
    return absl::InvalidArgumentError("model declares no inputs or no outputs");
  }
  for (int id : model.inputs()) {
    if (absl::Status s = check_id(id, "model input"); !s.ok()) return s;
    if (source[id] != Source::kNone) {
      return Invalid(TensorLabel(model, id), "a model input must not be a constant or repeated");
    }
    source[id] = Source::kInput;
  }
  for (int i = 0; i < model.ops_size(); ++i) {
    const Op& op = model.ops(i);
    const std::string label = OpLabel(op, i);
    if (!OpKind_IsValid(op.kind()) || op.kind() == OP_KIND_UNSPECIFIED) {
      return Invalid(label, absl::StrCat("op kind ", op.kind(), " is not valid"));
    }
    if (op.inputs_size() == 0 || op.outputs_size() != 1) {
      return Invalid(label, absl::StrCat("has ", op.inputs_size(), " inputs and ",
                                         op.outputs_size(), " outputs (need >= 1 and 1)"));
    }
    for (int id : op.inputs()) {
      if (absl::Status s = check_id(id, label); !s.ok()) return s;
      if (source[id] == Source::kNone) {
        return Invalid(label, absl::StrCat("reads ", TensorLabel(model, id),
                                           " before any op produces it"));
      }
    }
    const int out = op.outputs(0);
    if (absl::Status s = check_id(out, label); !s.ok()) return s;
    if (source[out] != Source::kNone) {
      return Invalid(label, absl::StrCat("writes ", TensorLabel(model, out),
                                         ", which is a constant, an input or written before"));
    }
    source[out] = Source::kOp;
  }
  for (int id : model.outputs()) {
    if (absl::Status s = check_id(id, "model output"); !s.ok()) return s;
    if (source[id] != Source::kOp) {
      return Invalid(TensorLabel(model, id), "a model output must be produced by an op");
    }
  }
  for (bool inputs : {true, false}) {
    if (absl::Status s = ValidateInterface(model, inputs); !s.ok()) return s;
  }
  return ValidatePreprocessing(model);
}

}  // namespace qforge
