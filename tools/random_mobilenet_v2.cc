#include "tools/random_mobilenet_v2.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/batch_norm_folding.h"
#include "common/model_builder.h"
#include "common/quantization.h"
#include "common/random.h"
#include "runtime/reference_ops.h"

namespace qforge {
namespace {

// A batch of calibration activations, NHWC, with its observed range.
struct Observed {
  std::vector<float> values;
  int n = 0, h = 0, w = 0, c = 0;
  float min() const { return *std::min_element(values.begin(), values.end()); }
  float max() const { return *std::max_element(values.begin(), values.end()); }
};

// The same tensor in both models.
struct TensorPair {
  int float_id;
  int int8_id;
  QuantParams params;
};

class Builder {
 public:
  explicit Builder(const RandomMobileNetV2Options& options)
      : options_(options), rng_(DeriveSeed({options.seed, 0x4d4e5632})) {}

  absl::StatusOr<RandomMobileNetV2> Build() {
    const MobileNetV2Config& config = options_.config;
    Observed x{{}, options_.calibration_images, config.input_size, config.input_size,
                 config.input_channels};
    x.values.resize(int64_t{x.n} * x.h * x.w * x.c);
    for (float& v : x.values) v = -2.0f + 4.5f * rng_.UniformFloat();  // a normalized image's range
    absl::StatusOr<TensorPair> input = Input(x);
    if (!input.ok()) return input.status();
    TensorPair current = *input;
    const MobileNetV2Layers layers = BuildMobileNetV2Layers(config);
    for (const FeatureBlock& block : layers.features) {
      const Observed block_input = x;
      const TensorPair block_input_pair = current;
      for (const ConvLayer& conv : block.convs) {
        absl::StatusOr<TensorPair> out = ConvBn(conv, x, current);
        if (!out.ok()) return out.status();
        current = *out;
      }
      if (block.residual) {
        absl::StatusOr<TensorPair> sum = Add(block.name + ".skip_add", block_input,
                                             block_input_pair, x, current);
        if (!sum.ok()) return sum.status();
        current = *sum;
      }
    }
    absl::StatusOr<TensorPair> pooled = Mean(x, current);
    if (!pooled.ok()) return pooled.status();
    absl::StatusOr<TensorPair> logits = Classifier(layers, x, *pooled);
    if (!logits.ok()) return logits.status();
    Output(*logits, x);
    for (ModelBuilder* b : {&float_, &int8_}) Describe(b->model());
    return RandomMobileNetV2{std::move(float_.model()), std::move(int8_.model())};
  }

 private:
  absl::StatusOr<QuantParams> ActivationParams(const Observed& a, const std::string& name) {
    absl::StatusOr<QuantParams> p = ChooseActivationParams(a.min(), a.max());
    if (!p.ok()) {
      return absl::InternalError(absl::StrCat(name, ": ", p.status().message()));
    }
    return p;
  }

  absl::StatusOr<TensorPair> Input(const Observed& x) {
    const std::vector<int64_t> shape = {1, x.h, x.w, x.c};
    absl::StatusOr<QuantParams> p = ActivationParams(x, "input");
    if (!p.ok()) return p.status();
    const int f = float_.AddFloatTensor("input", shape);
    const int raw = int8_.AddFloatTensor("input", shape);
    const int q = int8_.AddInt8Tensor("quant", shape, p->scale, p->zero_point);
    int8_.AddOp(QUANTIZE, "quant", {raw}, q);
    float_.AddInput(f);
    int8_.AddInput(raw);
    return TensorPair{f, q, *p};
  }

  // Conv + BN (from the calibration statistics) + optional activation; advances x.
  absl::StatusOr<TensorPair> ConvBn(const ConvLayer& conv, Observed& x, const TensorPair& in) {
    const int group_in = conv.in_channels / conv.groups;
    const int64_t per_out = int64_t{conv.kernel} * conv.kernel * group_in;
    std::vector<float> w(conv.out_channels * per_out);
    const float std_dev = std::sqrt(2.0f / (conv.out_channels * conv.kernel * conv.kernel));
    for (float& v : w) v = std_dev * rng_.Normal();
    reference::Conv2DFloatParams params;
    reference::ConvGeometry& g = params.geometry;
    const int pad = (conv.kernel - 1) / 2;
    g = {x.n, x.h, x.w, x.c, 0, 0, conv.out_channels, conv.kernel, conv.kernel, conv.stride,
         conv.stride, 1, 1, pad, pad, pad, pad, conv.groups};
    g.output_height = static_cast<int>(reference::ConvOutputSize(x.h, conv.kernel, conv.stride, 1, pad, pad));
    g.output_width = static_cast<int>(reference::ConvOutputSize(x.w, conv.kernel, conv.stride, 1, pad, pad));
    Observed y{std::vector<float>(int64_t{x.n} * g.output_height * g.output_width * g.output_channels),
                 x.n, g.output_height, g.output_width, g.output_channels};
    reference::Conv2DFloat(params, x.values.data(), w.data(), nullptr, y.values.data());
    const std::vector<float> bias = FoldBatchNorm(y, w, per_out);
    if (conv.activation) {
      const float cap = options_.relu6 ? 6.0f : INFINITY;
      for (float& v : y.values) v = std::clamp(v, 0.0f, cap);
    }
    x = std::move(y);
    return EmitConv(conv, w, bias, x, in);
  }

  // Sets BN from y's per-channel statistics (gamma in [0.5, 1.5], small beta),
  // folds it into w (common/batch_norm_folding.h) and applies it to y; returns
  // the folded bias.
  std::vector<float> FoldBatchNorm(Observed& y, std::vector<float>& w, int64_t per_out) {
    const int64_t pixels = int64_t{y.n} * y.h * y.w;
    std::vector<float> gamma(y.c), beta(y.c), mean(y.c), var(y.c), bias(y.c, 0.0f);
    for (int c = 0; c < y.c; ++c) {
      double sum = 0, sum_sq = 0;
      for (int64_t p = 0; p < pixels; ++p) {
        const double v = y.values[p * y.c + c];
        sum += v;
        sum_sq += v * v;
      }
      mean[c] = static_cast<float>(sum / pixels);
      var[c] = static_cast<float>(std::max(0.0, sum_sq / pixels - (sum / pixels) * (sum / pixels)));
      gamma[c] = 0.5f + rng_.UniformFloat();
      beta[c] = 0.2f * (rng_.UniformFloat() - 0.5f);
    }
    const BatchNormStatistics bn{gamma.data(), beta.data(), mean.data(), var.data(), kBatchNormEps};
    qforge::FoldBatchNorm(bn, y.c, per_out, w.data(), bias.data());
    for (int64_t p = 0; p < pixels; ++p) {
      for (int c = 0; c < y.c; ++c) {
        float& v = y.values[p * y.c + c];
        v = v * BatchNormScale(gamma[c], var[c], kBatchNormEps) + bias[c];
      }
    }
    return bias;
  }

  absl::StatusOr<TensorPair> EmitConv(const ConvLayer& conv, const std::vector<float>& w,
                                      const std::vector<float>& bias, const Observed& y,
                                      const TensorPair& in) {
    const int64_t per_out = static_cast<int64_t>(w.size()) / conv.out_channels;
    const std::vector<int64_t> w_shape = {conv.out_channels, conv.kernel, conv.kernel,
                                          conv.in_channels / conv.groups};
    const std::vector<int64_t> y_shape = {1, y.h, y.w, y.c};
    const Activation act = conv.activation ? (options_.relu6 ? RELU6 : RELU) : ACTIVATION_NONE;
    const int pad = (conv.kernel - 1) / 2;
    // Float model.
    const int fw = float_.AddFloatConstant(conv.name + ".weight", w_shape, w);
    const int fb = float_.AddFloatConstant(conv.name + ".bias", {conv.out_channels}, bias);
    const int fy = float_.AddFloatTensor(conv.name + ".out", y_shape);
    float_.AddConv2D(conv.name, in.float_id, fw, fb, fy, conv.stride, pad, conv.groups, act);
    // Int8 model: per-channel symmetric weights, int32 bias at input * weight scale.
    std::vector<float> mins(conv.out_channels), maxs(conv.out_channels);
    for (int o = 0; o < conv.out_channels; ++o) {
      const auto [lo, hi] = std::minmax_element(w.begin() + o * per_out, w.begin() + (o + 1) * per_out);
      mins[o] = *lo;
      maxs[o] = *hi;
    }
    absl::StatusOr<std::vector<float>> scales = ChooseWeightScalesPerChannel(mins, maxs);
    absl::StatusOr<QuantParams> out = ActivationParams(y, conv.name);
    if (!scales.ok() || !out.ok()) return !scales.ok() ? scales.status() : out.status();
    std::vector<int8_t> qw(w.size());
    if (absl::Status s = QuantizePerChannel(w, w_shape, 0, *scales, absl::MakeSpan(qw)); !s.ok()) {
      return s;
    }
    std::vector<int32_t> qb(conv.out_channels);
    std::vector<float> bias_scales(conv.out_channels);
    for (int o = 0; o < conv.out_channels; ++o) {
      bias_scales[o] = in.params.scale * (*scales)[o];
      qb[o] = QuantizeBias(bias[o], bias_scales[o]);
    }
    const int qw_id = int8_.AddInt8Constant(conv.name + ".weight", w_shape, qw, *scales);
    const int qb_id = int8_.AddInt32Constant(conv.name + ".bias", {conv.out_channels}, qb, bias_scales);
    const int qy = int8_.AddInt8Tensor(conv.name + ".out", y_shape, out->scale, out->zero_point);
    int8_.AddConv2D(conv.name, in.int8_id, qw_id, qb_id, qy, conv.stride, pad, conv.groups, act);
    return TensorPair{fy, qy, *out};
  }

  absl::StatusOr<TensorPair> Add(const std::string& name, const Observed& a, const TensorPair& pa,
                                 Observed& b, const TensorPair& pb) {
    for (size_t i = 0; i < b.values.size(); ++i) b.values[i] += a.values[i];
    absl::StatusOr<QuantParams> p = ActivationParams(b, name);
    if (!p.ok()) return p.status();
    const std::vector<int64_t> shape = {1, b.h, b.w, b.c};
    const int f = float_.AddFloatTensor(name + ".out", shape);
    float_.AddOp(ADD, name, {pa.float_id, pb.float_id}, f);
    const int q = int8_.AddInt8Tensor(name + ".out", shape, p->scale, p->zero_point);
    int8_.AddOp(ADD, name, {pa.int8_id, pb.int8_id}, q);
    return TensorPair{f, q, *p};
  }

  absl::StatusOr<TensorPair> Mean(Observed& x, const TensorPair& in) {
    Observed y{std::vector<float>(int64_t{x.n} * x.c), x.n, 1, 1, x.c};
    reference::MeanFloat({x.n, x.h, x.w, x.c}, x.values.data(), y.values.data());
    absl::StatusOr<QuantParams> p = ActivationParams(y, "mean");
    if (!p.ok()) return p.status();
    const int f = float_.AddFloatTensor("mean", {1, x.c});
    float_.AddOp(MEAN_HW, "mean", {in.float_id}, f);
    const int q = int8_.AddInt8Tensor("mean", {1, x.c}, p->scale, p->zero_point);
    int8_.AddOp(MEAN_HW, "mean", {in.int8_id}, q);
    x = std::move(y);
    return TensorPair{f, q, *p};
  }

  // Dropout (identity at inference) + Linear with N(0, 0.01) weights, zero bias.
  absl::StatusOr<TensorPair> Classifier(const MobileNetV2Layers& layers, Observed& x,
                                        const TensorPair& in) {
    const int k = layers.last_channel, o = layers.num_classes;
    std::vector<float> w(int64_t{o} * k);
    for (float& v : w) v = 0.01f * rng_.Normal();
    Observed y{std::vector<float>(int64_t{x.n} * o), x.n, 1, 1, o};
    reference::FullyConnectedFloat({x.n, k, o}, x.values.data(), w.data(), nullptr, y.values.data());
    absl::StatusOr<QuantParams> p = ActivationParams(y, "classifier.1");
    absl::StatusOr<QuantParams> wp = ChooseWeightParams(*std::min_element(w.begin(), w.end()),
                                                        *std::max_element(w.begin(), w.end()));
    if (!p.ok() || !wp.ok()) return !p.ok() ? p.status() : wp.status();
    const int fw = float_.AddFloatConstant("classifier.1.weight", {o, k}, w);
    const int f = float_.AddFloatTensor("classifier.1.out", {1, o});
    float_.AddOp(FULLY_CONNECTED, "classifier.1", {in.float_id, fw}, f);
    std::vector<int8_t> qw(w.size());
    QuantizeTensor(w, *wp, kWeightQMin, kWeightQMax, absl::MakeSpan(qw));
    const int qw_id = int8_.AddInt8Constant("classifier.1.weight", {o, k}, qw, {wp->scale});
    const int q = int8_.AddInt8Tensor("classifier.1.out", {1, o}, p->scale, p->zero_point);
    int8_.AddOp(FULLY_CONNECTED, "classifier.1", {in.int8_id, qw_id}, q);
    x = std::move(y);
    return TensorPair{f, q, *p};
  }

  void Output(const TensorPair& logits, const Observed& x) {
    float_.AddOutput(logits.float_id);
    const int out = int8_.AddFloatTensor("logits", {1, x.c});
    int8_.AddOp(DEQUANTIZE, "dequant", {logits.int8_id}, out);
    int8_.AddOutput(out);
  }

  // ImageNet's preprocessing for RGB inputs, (x - 0.5) / 0.5 otherwise, and
  // placeholder class names.
  void Describe(Model& model) const {
    const MobileNetV2Config& config = options_.config;
    Preprocessing* p = model.mutable_preprocessing();
    p->set_pixel_scale(1.0f / 255.0f);
    p->set_channel_order(config.input_channels == 3 ? "RGB" : "gray");
    for (int c = 0; c < config.input_channels; ++c) {
      p->add_mean(config.input_channels == 3 ? std::vector<float>{0.485f, 0.456f, 0.406f}[c] : 0.5f);
      p->add_std(config.input_channels == 3 ? std::vector<float>{0.229f, 0.224f, 0.225f}[c] : 0.5f);
    }
    for (int k = 0; k < config.num_classes; ++k) {
      model.mutable_metadata()->add_class_names(absl::StrCat("class ", k));
    }
    model.mutable_metadata()->set_producer("qforge make_mobilenet_v2 (random weights)");
  }

  const RandomMobileNetV2Options& options_;
  SplitMix64 rng_;
  ModelBuilder float_;
  ModelBuilder int8_;
};

}  // namespace

absl::StatusOr<RandomMobileNetV2> BuildRandomMobileNetV2(const RandomMobileNetV2Options& options) {
  if (options.calibration_images < 1) {
    return absl::InvalidArgumentError("calibration_images must be at least 1");
  }
  return Builder(options).Build();
}

}  // namespace qforge
