#include "trainer/quant_sim.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/model_validator.h"
#include "trainer/convert.h"

namespace qforge {
namespace {

absl::Status Mismatch(const std::string& what) {
  return absl::InvalidArgumentError(
      absl::StrCat("the int8 model does not match the fused model: ", what));
}

template <typename T>
T Element(const Tensor& t, int64_t i) {
  T v;
  std::memcpy(&v, t.data().data() + i * sizeof(T), sizeof(T));
  return v;
}

// The observation point an int8 tensor holds: its producing op's name, less
// the suffix of a QUANTIZE that follows a float layer.
std::string PointOf(const Op& op) {
  const std::string& name = op.name();
  if (op.kind() == QUANTIZE && absl::EndsWith(name, kQuantizeSuffix)) {
    return name.substr(0, name.size() - std::strlen(kQuantizeSuffix));
  }
  return name;
}

// A float layer's output that int8 layers read (through its QUANTIZE) and
// float layers read too: the fused forward hands every reader one tensor, so
// it cannot give them different values.
absl::Status CheckReadersAgree(const Model& model) {
  for (const Op& quantize : model.ops()) {
    if (quantize.kind() != QUANTIZE || !absl::EndsWith(quantize.name(), kQuantizeSuffix)) continue;
    for (const Op& op : model.ops()) {
      if (&op == &quantize) continue;
      for (int input : op.inputs()) {
        if (input == quantize.inputs(0)) {
          return absl::UnimplementedError(absl::StrCat(
              "the simulation cannot model '", PointOf(quantize), "', read in float by '",
              op.name(), "' and in int8 by others"));
        }
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<QuantSimulation>> QuantSimulation::Create(
    FusedMobileNetV2& fused, const Model& int8_model) {
  if (absl::Status s = ValidateModel(int8_model); !s.ok()) return s;
  if (absl::Status s = CheckReadersAgree(int8_model); !s.ok()) return s;
  std::unique_ptr<QuantSimulation> sim(new QuantSimulation(fused));
  const std::vector<std::string> layers = fused.LayerNames();
  for (const Op& op : int8_model.ops()) {
    const Tensor& out = int8_model.tensors(op.outputs(0));
    if (out.type() != INT8) continue;
    const std::string point = PointOf(op);
    if (std::find(layers.begin(), layers.end(), point) == layers.end()) {
      return Mismatch(absl::StrCat("no layer '", point, "'"));
    }
    sim->int8_layers_[point] = {out.quantization().scale(0), ZeroPointAt(out.quantization(), 0)};
    if (op.kind() == CONV2D || op.kind() == FULLY_CONNECTED) {
      if (absl::Status s = sim->LoadConstants(int8_model, op); !s.ok()) return s;
    }
  }
  fused.set_observer([sim = sim.get()](const std::string& point, FloatTensor& value) {
    auto it = sim->int8_layers_.find(point);
    if (it == sim->int8_layers_.end()) return;  // a float layer's output
    FakeQuantizePerTensor(value.ptr(), value.size(), it->second, value.ptr(), nullptr);
  });
  return sim;
}

QuantSimulation::~QuantSimulation() { fused_.set_observer(nullptr); }

// Weights q * scale[o] and bias q * input_scale * scale[o]: the values the
// runtime's integer arithmetic stands for.
absl::Status QuantSimulation::LoadConstants(const Model& model, const Op& op) {
  const Tensor& input = model.tensors(op.inputs(0));
  const Tensor& weight = model.tensors(op.inputs(1));
  ParameterStore& params = fused_.params();
  const int w_id = params.Find(op.name() + ".weight");
  const int b_id = params.Find(op.name() + ".bias");
  if (w_id < 0 || b_id < 0 || op.inputs_size() != 3) {
    return Mismatch(absl::StrCat("layer '", op.name(), "' has no weights and bias here"));
  }
  const int64_t outputs = params.info(b_id).size;
  const int64_t per_output = params.info(w_id).size / outputs;
  const Tensor& bias = model.tensors(op.inputs(2));
  if (static_cast<int64_t>(weight.data().size()) != outputs * per_output ||
      static_cast<int64_t>(bias.data().size()) != outputs * 4) {
    return Mismatch(absl::StrCat("layer '", op.name(), "' has other weight shapes"));
  }
  const Quantization& wq = weight.quantization();
  float* w = params.value(w_id);
  float* b = params.value(b_id);
  for (int64_t o = 0; o < outputs; ++o) {
    const float scale = wq.scale(wq.scale_size() == 1 ? 0 : static_cast<int>(o));
    for (int64_t i = 0; i < per_output; ++i) {
      w[o * per_output + i] = Element<int8_t>(weight, o * per_output + i) * scale;
    }
    b[o] = static_cast<float>(Element<int32_t>(bias, o)) * (input.quantization().scale(0) * scale);
  }
  return absl::OkStatus();
}

}  // namespace qforge
