#include "trainer/quant/quant_sim.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "runtime/model_validator.h"
#include "runtime/prepare.h"
#include "trainer/nn/parallel.h"
#include "trainer/quant/convert.h"

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

// The prepared op gives exactly the multipliers and clamp the runtime uses.
absl::StatusOr<QuantSimulation::IntegerOutput> QuantSimulation::IntegerOutputOf(
    const Model& model, const Op& op, int index) {
  absl::StatusOr<PreparedOp> prepared = PrepareOp(model, index);
  if (!prepared.ok()) return prepared.status();
  IntegerOutput stage;
  if (const auto* conv = std::get_if<reference::Conv2DInt8Params>(&prepared->params)) {
    stage.multipliers = conv->multipliers;
    stage.output = conv->output;
  } else if (const auto* fc = std::get_if<reference::FullyConnectedInt8Params>(&prepared->params)) {
    stage.multipliers = fc->multipliers;
    stage.output = fc->output;
  } else if (const auto* mean = std::get_if<reference::MeanInt8Params>(&prepared->params)) {
    // The accumulator is sum (q - zero_point) over H * W pixels.
    const double pixels = static_cast<double>(mean->height) * mean->width;
    const float input_scale = model.tensors(op.inputs(0)).quantization().scale(0);
    stage.multipliers.assign(mean->channels, mean->multiplier);
    stage.accumulator_scale.assign(mean->channels, input_scale / pixels);
    stage.output = mean->output;
    return stage;
  } else {
    return Mismatch(absl::StrCat("layer '", op.name(), "' has no integer output stage here"));
  }
  const float input_scale = model.tensors(op.inputs(0)).quantization().scale(0);
  const Quantization& wq = model.tensors(op.inputs(1)).quantization();
  for (size_t c = 0; c < stage.multipliers.size(); ++c) {
    const float weight_scale = wq.scale(wq.scale_size() == 1 ? 0 : static_cast<int>(c));
    // The float product, as LoadConstants scales the bias.
    stage.accumulator_scale.push_back(input_scale * weight_scale);
  }
  return stage;
}

absl::StatusOr<std::unique_ptr<QuantSimulation>> QuantSimulation::Create(
    FusedMobileNetV2& fused, const Model& int8_model) {
  if (absl::Status s = ValidateModel(int8_model); !s.ok()) return s;
  if (absl::Status s = CheckReadersAgree(int8_model); !s.ok()) return s;
  std::unique_ptr<QuantSimulation> sim(new QuantSimulation(fused));
  const std::vector<std::string> layers = fused.LayerNames();
  for (int index = 0; index < int8_model.ops_size(); ++index) {
    const Op& op = int8_model.ops(index);
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
    if (op.kind() == CONV2D || op.kind() == FULLY_CONNECTED || op.kind() == MEAN_HW) {
      absl::StatusOr<IntegerOutput> stage = IntegerOutputOf(int8_model, op, index);
      if (!stage.ok()) return stage.status();
      sim->integer_outputs_[point] = *std::move(stage);
    }
  }
  fused.set_observer([sim = sim.get()](const std::string& point, FloatTensor& value) {
    auto it = sim->int8_layers_.find(point);
    if (it == sim->int8_layers_.end()) return;  // a float layer's output
    if (auto stage = sim->integer_outputs_.find(point); stage != sim->integer_outputs_.end()) {
      sim->Requantize(stage->second, it->second, value);
      return;
    }
    FakeQuantizePerTensor(value.ptr(), value.size(), it->second, value.ptr(), nullptr);
  });
  return sim;
}

void QuantSimulation::Requantize(const IntegerOutput& stage, const FakeQuantParams& params,
                                 FloatTensor& value) const {
  const int64_t channels = static_cast<int64_t>(stage.multipliers.size());
  float* v = value.ptr();
  // `value` is [rows, channels] (NHWC or [N, features]). Row by row over the
  // pool: over half of a PTQ run's CPU time was this loop on one thread.
  Pool().ParallelFor(value.size() / channels, [&](int, int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      float* x = v + row * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const double accumulator = std::nearbyint(x[c] / stage.accumulator_scale[c]);
        const int32_t acc =
            static_cast<int32_t>(std::clamp(accumulator, -2147483648.0, 2147483647.0));
        const int8_t q = RequantizeToInt8(acc, stage.multipliers[c], stage.output.zero_point,
                                          stage.output.qmin, stage.output.qmax);
        x[c] = params.scale * static_cast<float>(q - params.zero_point);
      }
    }
  });
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
