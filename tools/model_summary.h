// What a flat model holds, for people (a table) and for tools (JSON): its ops
// in order with their tensors' shapes, types and quantization parameters, the
// constant bytes each op carries and in all, its preprocessing and metadata.
// `bazel run //tools:inspect` prints it for a model file.
#ifndef QFORGE_TOOLS_MODEL_SUMMARY_H_
#define QFORGE_TOOLS_MODEL_SUMMARY_H_

#include <cstdint>
#include <string>

#include "common/model.pb.h"

namespace qforge {

// A tensor as "name [1, 28, 28, 16] int8 s=0.0235 z=-128", or with per-channel
// scales "... per-channel axis 0: 16 scales in [0.0012, 0.0311]".
std::string DescribeTensor(const Tensor& tensor);

// Bytes of constant data an op carries (its inputs that hold data).
int64_t ConstantBytes(const Model& model, const Op& op);

// A Markdown table of the ops and lines on the model; `file_bytes` is the
// file's size (0: unknown).
std::string SummaryText(const Model& model, int64_t file_bytes);

// The same as one JSON object.
std::string SummaryJson(const Model& model, int64_t file_bytes);

}  // namespace qforge

#endif  // QFORGE_TOOLS_MODEL_SUMMARY_H_
