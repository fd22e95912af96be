#include "trainer/quant/convert.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/model_builder.h"
#include "common/quantization.h"
#include "runtime/model_validator.h"
#include "runtime/prepare.h"

namespace qforge {
namespace {

std::unique_ptr<RangeObserver> MakeObserver(const std::string& kind) {
  if (kind == "histogram") return std::make_unique<HistogramObserver>();
  if (kind == "percentile") return std::make_unique<PercentileObserver>();
  if (kind == "mse") return std::make_unique<MseObserver>();
  return std::make_unique<MinMaxObserver>();
}

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

// Builds the flat model by walking the fused network. Each layer runs in int8
// unless the model is float (no calibrator) or the layer is left in float;
// a value crossing between the two is quantized or dequantized once, with the
// parameters observed at the layer that produced it.
class Emitter {
 public:
  Emitter(FusedMobileNetV2& model, const RangeSource* ranges, const LayerQConfigs* qconfigs,
          const ModelDescription& description)
      : model_(model), ranges_(ranges), qconfigs_(qconfigs), description_(description) {}

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
  // A tensor of the flat model holding the output of layer `layer`.
  struct Value {
    int id;
    bool int8;
    QuantParams params;  // int8 only
    std::string layer;
  };
  struct Shape {
    int64_t h, w, c;
  };
  bool Int8(const std::string& layer) const {
    return ranges_ != nullptr && !qconfigs_->IsFloat(layer);
  }

  absl::StatusOr<QuantParams> Observed(const std::string& layer) {
    absl::StatusOr<Range> range = ranges_->ActivationRange(layer);
    if (!range.ok()) return range.status();
    absl::StatusOr<QuantParams> p =
        ChooseActivationParams(range->first, range->second, kActivationMinScale);
    if (!p.ok()) return absl::InvalidArgumentError(absl::StrCat(layer, ": ", p.status().message()));
    return p;
  }

  // The output of `layer`: int8 with its observed parameters, or float.
  absl::StatusOr<Value> Activation(const std::string& layer, const std::vector<int64_t>& shape,
                                   bool int8) {
    if (!int8) return Value{builder_.AddFloatTensor(layer + ".out", shape), false, {}, layer};
    absl::StatusOr<QuantParams> p = Observed(layer);
    if (!p.ok()) return p.status();
    return Value{builder_.AddInt8Tensor(layer + ".out", shape, p->scale, p->zero_point), true, *p,
                 layer};
  }

  // `v` as an int8 (float) tensor: itself, or its QUANTIZE (DEQUANTIZE) op's
  // output, made once per value.
  absl::StatusOr<Value> As(const Value& v, bool int8) {
    if (v.int8 == int8) return v;
    auto cached = converted_.find(v.id);
    if (cached != converted_.end()) return cached->second;
    const std::vector<int64_t> shape(builder_.model().tensors(v.id).shape().begin(),
                                     builder_.model().tensors(v.id).shape().end());
    Value out{0, int8, {}, v.layer};
    if (int8) {
      absl::StatusOr<QuantParams> p = Observed(v.layer);
      if (!p.ok()) return p.status();
      out.params = *p;
      out.id = builder_.AddInt8Tensor(v.layer + ".out.int8", shape, p->scale, p->zero_point);
      builder_.AddOp(QUANTIZE, v.layer + kQuantizeSuffix, {v.id}, out.id);
    } else {
      out.id = builder_.AddFloatTensor(v.layer + ".out.float", shape);
      builder_.AddOp(DEQUANTIZE, v.layer + ".dequantize", {v.id}, out.id);
    }
    converted_.emplace(v.id, out);
    return out;
  }

  absl::StatusOr<Value> Input() {
    const std::vector<int64_t>& s = description_.input_shape;
    shape_ = {s[1], s[2], s[3]};
    const int input = builder_.AddFloatTensor("input", s);
    builder_.AddInput(input);
    if (!Int8("quant")) return Value{input, false, {}, "quant"};
    absl::StatusOr<QuantParams> p = Observed("quant");
    if (!p.ok()) return p.status();
    const int q = builder_.AddInt8Tensor("quant", s, p->scale, p->zero_point);
    builder_.AddOp(QUANTIZE, "quant", {input}, q);
    return Value{q, true, *p, "quant"};
  }

  // Per-output-channel ranges of a layer's weights: the source's (QAT's
  // observers), or the weights' own minimum and maximum, as PyTorch's weight
  // observer takes them at convert.
  absl::StatusOr<std::vector<Range>> WeightRanges(const std::string& name,
                                                  const std::vector<float>& w,
                                                  const std::vector<int64_t>& shape) {
    std::optional<absl::StatusOr<std::vector<Range>>> given = ranges_->WeightRanges(name);
    if (given.has_value()) {
      if (given->ok() && static_cast<int64_t>((*given)->size()) != shape[0]) {
        return absl::InvalidArgumentError(absl::StrCat(name, ": ", (*given)->size(),
                                                       " weight ranges for ", shape[0],
                                                       " output channels"));
      }
      return *std::move(given);
    }
    PerChannelMinMaxObserver observer;
    observer.Observe(w.data(), shape, 0);
    return observer.GetRanges();
  }

  // Weights [O, ...] and bias [O] as constants: float, or symmetric int8 per
  // channel / per tensor with int32 biases at input_scale * weight_scale.
  absl::StatusOr<std::pair<int, int>> Constants(const std::string& name,
                                                const std::vector<int64_t>& shape,
                                                const float* weight, const float* bias,
                                                const Value& input) {
    const int64_t out = shape[0];
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const std::vector<float> w(weight, weight + count), b(bias, bias + out);
    if (!input.int8) {
      return std::make_pair(builder_.AddFloatConstant(name + ".weight", shape, w),
                            builder_.AddFloatConstant(name + ".bias", {out}, b));
    }
    absl::StatusOr<std::vector<Range>> ranges = WeightRanges(name, w, shape);
    if (!ranges.ok()) return ranges.status();
    std::vector<float> mins(out), maxs(out);
    for (int64_t o = 0; o < out; ++o) std::tie(mins[o], maxs[o]) = (*ranges)[o];
    std::vector<float> scales;
    if (qconfigs_->For(name).per_channel_weights) {
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
    // The bias scale input_scale * weight_scale[c] is implied, not written.
    std::vector<int32_t> qb(out);
    for (int64_t o = 0; o < out; ++o) qb[o] = QuantizeBias(b[o], input.params.scale * spread[o]);
    return std::make_pair(builder_.AddInt8Constant(name + ".weight", shape, qw, scales),
                          builder_.AddInt32Constant(name + ".bias", {out}, qb, /*scales=*/{}));
  }

  absl::StatusOr<Value> Conv(const FusedConv& fused, const Value& value_in) {
    const Conv2d& conv = fused.conv;
    const Conv2dOptions& o = conv.options();
    const ParameterStore& params = model_.params();
    absl::StatusOr<Value> in = As(value_in, Int8(conv.name()));
    if (!in.ok()) return in;
    const std::vector<int64_t>& w_shape = params.info(conv.weight_id()).shape;
    absl::StatusOr<std::pair<int, int>> constants =
        Constants(conv.name(), w_shape, params.value(conv.weight_id()),
                  params.value(conv.bias_id()), *in);
    if (!constants.ok()) return constants.status();
    shape_ = {ConvOutputExtent(shape_.h, o.kernel, o.stride, o.padding),
              ConvOutputExtent(shape_.w, o.kernel, o.stride, o.padding), o.out_channels};
    absl::StatusOr<Value> out = Activation(conv.name(), {1, shape_.h, shape_.w, shape_.c}, in->int8);
    if (!out.ok()) return out;
    builder_.AddConv2D(conv.name(), in->id, constants->first, constants->second, out->id, o.stride,
                       o.padding, o.groups, ActivationOf(fused.clamp_max));
    return out;
  }

  absl::StatusOr<Value> Add(const std::string& name, const Value& a_in, const Value& b_in,
                            const Shape& shape) {
    absl::StatusOr<Value> a = As(a_in, Int8(name));
    if (!a.ok()) return a;
    absl::StatusOr<Value> b = As(b_in, Int8(name));
    if (!b.ok()) return b;
    absl::StatusOr<Value> out = Activation(name, {1, shape.h, shape.w, shape.c}, a->int8);
    if (!out.ok()) return out;
    builder_.AddOp(ADD, name, {a->id, b->id}, out->id);
    return out;
  }

  absl::StatusOr<Value> Mean(const Value& value_in) {
    absl::StatusOr<Value> in = As(value_in, Int8("pool"));
    if (!in.ok()) return in;
    absl::StatusOr<Value> out = Activation("pool", {1, shape_.c}, in->int8);
    if (!out.ok()) return out;
    builder_.AddOp(MEAN_HW, "pool", {in->id}, out->id);
    return out;
  }

  absl::StatusOr<Value> Classifier(const Value& value_in) {
    const Linear& fc = model_.classifier();
    const ParameterStore& params = model_.params();
    absl::StatusOr<Value> in = As(value_in, Int8(fc.name()));
    if (!in.ok()) return in;
    const std::vector<int64_t>& w_shape = params.info(fc.weight_id()).shape;
    absl::StatusOr<std::pair<int, int>> constants = Constants(
        fc.name(), w_shape, params.value(fc.weight_id()), params.value(fc.bias_id()), *in);
    if (!constants.ok()) return constants.status();
    absl::StatusOr<Value> out = Activation(fc.name(), {1, w_shape[0]}, in->int8);
    if (!out.ok()) return out;
    builder_.AddOp(FULLY_CONNECTED, fc.name(), {in->id, constants->first, constants->second},
                   out->id);
    classes_ = w_shape[0];
    return out;
  }

  void Output(const Value& logits) {
    if (!logits.int8) {
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
    p->set_resize(description_.eval_resize);
    for (const std::string& name : description_.class_names) m.mutable_metadata()->add_class_names(name);
    m.mutable_metadata()->set_dataset(description_.dataset);
    m.mutable_metadata()->set_producer(description_.producer);
  }

  FusedMobileNetV2& model_;
  const RangeSource* ranges_;
  const LayerQConfigs* qconfigs_;
  const ModelDescription& description_;
  ModelBuilder builder_;
  std::map<int, Value> converted_;  // by the id of the value converted
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

const QConfig& LayerQConfigs::For(const std::string& layer) const {
  auto it = overrides.find(layer);
  return it == overrides.end() ? global : it->second;
}

absl::StatusOr<LayerQConfigs> ParseLayerQConfigs(const std::string& global,
                                                 const std::string& overrides,
                                                 const std::string& float_layers,
                                                 const FusedMobileNetV2& model) {
  absl::StatusOr<QConfig> q = NamedQConfig(global);
  if (!q.ok()) return q.status();
  LayerQConfigs configs{*q, {}, {}};
  const std::vector<std::string> layers = model.LayerNames();
  auto check_layer = [&](const std::string& layer) -> absl::Status {
    if (std::find(layers.begin(), layers.end(), layer) != layers.end()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat("'", layer,
                                                   "' is not a layer of this model (layers: ",
                                                   absl::StrJoin(layers, ", "), ")"));
  };
  for (absl::string_view item : absl::StrSplit(overrides, ',', absl::SkipWhitespace())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.second.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("override '", item, "' is not of the form layer=qconfig"));
    }
    if (absl::Status s = check_layer(kv.first); !s.ok()) return s;
    absl::StatusOr<QConfig> named = NamedQConfig(kv.second);
    if (!named.ok()) return named.status();
    configs.overrides[kv.first] = *named;
  }
  for (absl::string_view layer : absl::StrSplit(float_layers, ',', absl::SkipWhitespace())) {
    if (absl::Status s = check_layer(std::string(layer)); !s.ok()) return s;
    configs.float_layers.insert(std::string(layer));
  }
  return configs;
}

Calibrator::Calibrator(const LayerQConfigs& qconfigs, FusedMobileNetV2& model)
    : qconfigs_(qconfigs), model_(model) {
  model_.set_observer([this](const std::string& point, FloatTensor& value) {
    std::unique_ptr<RangeObserver>& observer = observers_[point];
    if (observer == nullptr) observer = MakeObserver(qconfigs_.For(point).activation_observer);
    observer->Observe(value.ptr(), value.size());
  });
}

Calibrator::~Calibrator() { model_.set_observer(nullptr); }

void Calibrator::Run(const FloatTensor& batch) { model_.Forward(batch); }

absl::StatusOr<Range> Calibrator::ActivationRange(const std::string& point) const {
  auto it = observers_.find(point);
  if (it == observers_.end()) {
    return absl::FailedPreconditionError(absl::StrCat("nothing was observed at ", point));
  }
  return it->second->GetRange();
}

absl::StatusOr<Model> ConvertToInt8(FusedMobileNetV2& model, const RangeSource& ranges,
                                    const LayerQConfigs& qconfigs,
                                    const ModelDescription& description) {
  return Emitter(model, &ranges, &qconfigs, description).Build();
}

absl::StatusOr<Model> ConvertToFloat(FusedMobileNetV2& model, const ModelDescription& description) {
  return Emitter(model, nullptr, nullptr, description).Build();
}

}  // namespace qforge
