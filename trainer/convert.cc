#include "trainer/convert.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model_builder.h"
#include "common/quantization.h"
#include "runtime/model_validator.h"
#include "runtime/prepare.h"

namespace qforge {
namespace {

std::unique_ptr<RangeObserver> MakeObserver(const std::string& kind) {
  if (kind == "moving_average") return std::make_unique<MovingAverageMinMaxObserver>();
  if (kind == "histogram") return std::make_unique<HistogramObserver>();
  if (kind == "percentile") return std::make_unique<PercentileObserver>();
  if (kind == "mse") return std::make_unique<MseObserver>();
  return std::make_unique<MinMaxObserver>();
}

// The floor of activation scales, as PyTorch's XNNPACK-oriented qconfigs set
// it: a tensor that calibration saw all zero (a ReLU that never fired) would
// otherwise get float epsilon as its scale, and the layers reading or writing
// it requantization multipliers far outside what the kernels accept.
constexpr float kActivationMinScale = 1.0f / 4096;

// The runtime's own checks, run by the converter so that an illegal parameter
// is reported here, naming the layer, rather than when the model is loaded.
absl::Status CheckRunnable(const Model& model) {
  absl::Status status = ValidateModel(model);
  for (int i = 0; status.ok() && i < model.ops_size(); ++i) status = PrepareOp(model, i).status();
  if (status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrCat("convert produced a model the runtime rejects: ", status.message()));
}

Activation ActivationOf(float clamp_max) {
  if (std::isnan(clamp_max)) return ACTIVATION_NONE;
  return std::isinf(clamp_max) ? RELU : RELU6;
}

// Builds the flat model by walking the fused network, int8 (with a
// calibrator) or float (without).
class Emitter {
 public:
  Emitter(FusedMobileNetV2& model, const Calibrator* calibrator, const QConfig* qconfig,
          const ModelDescription& description)
      : model_(model), calibrator_(calibrator), qconfig_(qconfig), description_(description) {}

  absl::StatusOr<Model> Build() {
    absl::StatusOr<Value> h = Input();
    for (const FusedMobileNetV2::Block& block : model_.blocks()) {
      if (!h.ok()) break;
      const Value block_in = *h;
      const Shape block_in_shape = shape_;
      for (const auto& conv : block.convs) {
        if (h.ok()) h = Conv(*conv, *h);
      }
      if (h.ok() && block.residual) h = Add(block.name + ".skip_add", block_in, *h, block_in_shape);
    }
    if (h.ok()) h = Mean(*h);
    if (h.ok()) h = Classifier(*h);
    if (!h.ok()) return h.status();
    Output(*h);
    Describe();
    if (absl::Status s = CheckRunnable(builder_.model()); !s.ok()) return s;
    return std::move(builder_.model());
  }

 private:
  struct Value {
    int id;
    QuantParams params;  // unused in a float model
  };
  struct Shape {
    int64_t h, w, c;
  };
  bool quantized() const { return calibrator_ != nullptr; }

  absl::StatusOr<QuantParams> Observed(const std::string& point) {
    absl::StatusOr<Range> range = calibrator_->RangeOf(point);
    if (!range.ok()) return range.status();
    absl::StatusOr<QuantParams> p =
        ChooseActivationParams(range->first, range->second, kActivationMinScale);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(point, ": ", p.status().message()));
    return p;
  }

  // A tensor an op computes: int8 with the observed parameters, or float.
  absl::StatusOr<Value> Activation(const std::string& name, const std::vector<int64_t>& shape) {
    if (!quantized()) return Value{builder_.AddFloatTensor(name + ".out", shape), {}};
    absl::StatusOr<QuantParams> p = Observed(name);
    if (!p.ok()) return p.status();
    return Value{builder_.AddInt8Tensor(name + ".out", shape, p->scale, p->zero_point), *p};
  }

  absl::StatusOr<Value> Input() {
    const std::vector<int64_t>& s = description_.input_shape;
    shape_ = {s[1], s[2], s[3]};
    const int input = builder_.AddFloatTensor("input", s);
    builder_.AddInput(input);
    if (!quantized()) return Value{input, {}};
    absl::StatusOr<QuantParams> p = Observed("quant");
    if (!p.ok()) return p.status();
    const int q = builder_.AddInt8Tensor("quant", s, p->scale, p->zero_point);
    builder_.AddOp(QUANTIZE, "quant", {input}, q);
    return Value{q, *p};
  }

  // Weights [O, ...] and bias [O] as constants: float, or symmetric int8 per
  // channel / per tensor with int32 biases at input_scale * weight_scale.
  absl::StatusOr<std::pair<int, int>> Constants(const std::string& name,
                                                const std::vector<int64_t>& shape,
                                                const float* weight, const float* bias,
                                                const QuantParams& input) {
    const int64_t out = shape[0];
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const std::vector<float> w(weight, weight + count), b(bias, bias + out);
    if (!quantized()) {
      return std::make_pair(builder_.AddFloatConstant(name + ".weight", shape, w),
                            builder_.AddFloatConstant(name + ".bias", {out}, b));
    }
    // Weight ranges per output channel (axis 0), as PyTorch's weight observer.
    PerChannelMinMaxObserver observer;
    observer.Observe(w.data(), shape, 0);
    std::vector<float> mins(out), maxs(out);
    const std::vector<Range> ranges = *observer.GetRanges();
    for (int64_t o = 0; o < out; ++o) std::tie(mins[o], maxs[o]) = ranges[o];
    std::vector<float> scales;
    if (qconfig_->per_channel_weights) {
      absl::StatusOr<std::vector<float>> s = ChooseWeightScalesPerChannel(mins, maxs);
      if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", s.status().message()));
      scales = *s;
    } else {
      absl::StatusOr<QuantParams> p = ChooseWeightParams(*std::min_element(mins.begin(), mins.end()),
                                                         *std::max_element(maxs.begin(), maxs.end()));
      if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", p.status().message()));
      scales.assign(1, p->scale);
    }
    std::vector<int8_t> qw(count);
    std::vector<float> spread(out);
    for (int64_t o = 0; o < out; ++o) spread[o] = scales[scales.size() == 1 ? 0 : o];
    if (absl::Status st = QuantizePerChannel(w, shape, 0, spread, absl::MakeSpan(qw)); !st.ok()) {
      return st;
    }
    std::vector<int32_t> qb(out);
    std::vector<float> bias_scales(out);
    for (int64_t o = 0; o < out; ++o) {
      bias_scales[o] = input.scale * spread[o];
      qb[o] = QuantizeBias(b[o], bias_scales[o]);
    }
    return std::make_pair(builder_.AddInt8Constant(name + ".weight", shape, qw, scales),
                          builder_.AddInt32Constant(name + ".bias", {out}, qb, bias_scales));
  }

  absl::StatusOr<Value> Conv(const FusedConv& fused, const Value& in) {
    const Conv2d& conv = fused.conv;
    const Conv2dOptions& o = conv.options();
    const ParameterStore& params = model_.params();
    const std::vector<int64_t>& w_shape = params.info(conv.weight_id()).shape;
    absl::StatusOr<std::pair<int, int>> constants =
        Constants(conv.name(), w_shape, params.value(conv.weight_id()),
                  params.value(conv.bias_id()), in.params);
    if (!constants.ok()) return constants.status();
    shape_ = {ConvOutputExtent(shape_.h, o.kernel, o.stride, o.padding),
              ConvOutputExtent(shape_.w, o.kernel, o.stride, o.padding), o.out_channels};
    absl::StatusOr<Value> out = Activation(conv.name(), {1, shape_.h, shape_.w, shape_.c});
    if (!out.ok()) return out;
    builder_.AddConv2D(conv.name(), in.id, constants->first, constants->second, out->id, o.stride,
                       o.padding, o.groups, ActivationOf(fused.clamp_max));
    return out;
  }

  absl::StatusOr<Value> Add(const std::string& name, const Value& a, const Value& b,
                            const Shape& shape) {
    absl::StatusOr<Value> out = Activation(name, {1, shape.h, shape.w, shape.c});
    if (!out.ok()) return out;
    builder_.AddOp(ADD, name, {a.id, b.id}, out->id);
    return out;
  }

  absl::StatusOr<Value> Mean(const Value& in) {
    absl::StatusOr<Value> out = Activation("pool", {1, shape_.c});
    if (!out.ok()) return out;
    builder_.AddOp(MEAN_HW, "pool", {in.id}, out->id);
    return out;
  }

  absl::StatusOr<Value> Classifier(const Value& in) {
    const Linear& fc = model_.classifier();
    const ParameterStore& params = model_.params();
    const std::vector<int64_t>& w_shape = params.info(fc.weight_id()).shape;
    absl::StatusOr<std::pair<int, int>> constants = Constants(
        "classifier.1", w_shape, params.value(fc.weight_id()), params.value(fc.bias_id()), in.params);
    if (!constants.ok()) return constants.status();
    absl::StatusOr<Value> out = Activation("classifier.1", {1, w_shape[0]});
    if (!out.ok()) return out;
    builder_.AddOp(FULLY_CONNECTED, "classifier.1", {in.id, constants->first, constants->second},
                   out->id);
    classes_ = w_shape[0];
    return out;
  }

  void Output(const Value& logits) {
    if (!quantized()) {
      builder_.AddOutput(logits.id);
      return;
    }
    const int out = builder_.AddFloatTensor("logits", {1, classes_});
    builder_.AddOp(DEQUANTIZE, "dequant", {logits.id}, out);
    builder_.AddOutput(out);
  }

  void Describe() {
    Model& m = builder_.model();
    Preprocessing* p = m.mutable_preprocessing();
    p->set_pixel_scale(1.0f / 255.0f);
    for (size_t c = 0; c < description_.normalization.mean.size(); ++c) {
      p->add_mean(description_.normalization.mean[c]);
      p->add_std(description_.normalization.std[c]);
    }
    p->set_channel_order(description_.input_shape[3] == 3 ? "RGB" : "gray");
    for (const std::string& name : description_.class_names) m.mutable_metadata()->add_class_names(name);
    m.mutable_metadata()->set_dataset(description_.dataset);
    m.mutable_metadata()->set_producer(description_.producer);
  }

  FusedMobileNetV2& model_;
  const Calibrator* calibrator_;
  const QConfig* qconfig_;
  const ModelDescription& description_;
  ModelBuilder builder_;
  Shape shape_{0, 0, 0};
  int64_t classes_ = 0;
};

}  // namespace

std::vector<std::string> QConfigNames() {
  return {"minmax_per_tensor", "per_channel_histogram", "per_channel_mse",
          "per_channel_percentile"};
}

absl::StatusOr<QConfig> NamedQConfig(const std::string& name) {
  if (name == "minmax_per_tensor") return QConfig{name, "minmax", false};
  if (name == "per_channel_histogram") return QConfig{name, "histogram", true};
  if (name == "per_channel_mse") return QConfig{name, "mse", true};
  if (name == "per_channel_percentile") return QConfig{name, "percentile", true};
  return absl::InvalidArgumentError(absl::StrCat("unknown qconfig '", name, "' (known: ",
                                                 absl::StrJoin(QConfigNames(), ", "), ")"));
}

Calibrator::Calibrator(const QConfig& qconfig, FusedMobileNetV2& model)
    : qconfig_(qconfig), model_(model) {
  model_.set_observer([this](const std::string& point, const FloatTensor& value) {
    std::unique_ptr<RangeObserver>& observer = observers_[point];
    if (observer == nullptr) observer = MakeObserver(qconfig_.activation_observer);
    observer->Observe(value.ptr(), value.size());
  });
}

Calibrator::~Calibrator() { model_.set_observer(nullptr); }

void Calibrator::Run(const FloatTensor& batch) { model_.Forward(batch); }

absl::StatusOr<Range> Calibrator::RangeOf(const std::string& point) const {
  auto it = observers_.find(point);
  if (it == observers_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("nothing was observed at ", point));
  }
  return it->second->GetRange();
}

absl::StatusOr<Model> ConvertToInt8(FusedMobileNetV2& model, const Calibrator& calibrator,
                                    const QConfig& qconfig, const ModelDescription& description) {
  return Emitter(model, &calibrator, &qconfig, description).Build();
}

absl::StatusOr<Model> ConvertToFloat(FusedMobileNetV2& model, const ModelDescription& description) {
  return Emitter(model, nullptr, nullptr, description).Build();
}

}  // namespace qforge
