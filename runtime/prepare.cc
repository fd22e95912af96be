#include "runtime/prepare.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/quantization.h"
#include "common/requantize.h"
#include "runtime/model_validator.h"

namespace qforge {
namespace {

using reference::ConvGeometry;
using reference::Int8Output;

// XNNPACK's input-to-output scale ranges for qs8 add and global average pooling
// (shared/DESIGN.md; checked against the library in xnnpack_limits_test.cc).
// Enforcing them here keeps every model either backend accepts runnable on both.
constexpr double kAddMinScaleRatio = 0x1.0p-10;
constexpr double kMeanMinScaleRatio = 0x1.0p-8;
constexpr double kMaxScaleRatio = 256.0;
// A bias scale may differ from input_scale * weight_scale by float rounding only.
constexpr double kBiasScaleTolerance = 1e-3;
constexpr int kMaxConvStep = 1 << 16;

// What every Prepare function needs: the model, the op and a label for errors.
struct Context {
  const Model& model;
  const Op& op;
  std::string label;

  const Tensor& input(int i) const { return model.tensors(op.inputs(i)); }
  const Tensor& output() const { return model.tensors(op.outputs(0)); }
  absl::Status Fail(const std::string& what) const {
    return absl::InvalidArgumentError(absl::StrCat(label, ": ", what));
  }
};

std::vector<int64_t> Shape(const Tensor& t) { return {t.shape().begin(), t.shape().end()}; }

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

bool IsPerTensorInt8(const Tensor& t) {
  return t.type() == INT8 && t.quantization().scale_size() == 1;
}

float Scale(const Tensor& t) { return t.quantization().scale(0); }
int32_t ZeroPoint(const Tensor& t) { return ZeroPointAt(t.quantization(), 0); }

absl::Status CheckArity(const Context& c, int min_inputs, int max_inputs) {
  if (c.op.inputs_size() < min_inputs || c.op.inputs_size() > max_inputs) {
    return c.Fail(absl::StrCat("takes ", min_inputs, " to ", max_inputs, " inputs, not ",
                               c.op.inputs_size()));
  }
  return absl::OkStatus();
}

absl::Status CheckShape(const Context& c, const Tensor& t, const std::vector<int64_t>& expected) {
  if (Shape(t) != expected) {
    return c.Fail(absl::StrCat("tensor '", t.name(), "' has shape ", ShapeString(Shape(t)),
                               " but the op needs ", ShapeString(expected)));
  }
  return absl::OkStatus();
}

absl::Status CheckConstant(const Context& c, const Tensor& t) {
  if (t.data().empty()) {
    return c.Fail(absl::StrCat("tensor '", t.name(), "' must be a constant"));
  }
  return absl::OkStatus();
}

// Symmetric int8 weights with one scale, or one per output channel (axis 0);
// returns one scale per output channel.
absl::StatusOr<std::vector<float>> WeightScales(const Context& c, const Tensor& w,
                                                int64_t output_channels) {
  const Quantization& q = w.quantization();
  for (int32_t zp : q.zero_point()) {
    if (zp != 0) return c.Fail(absl::StrCat("weights must be symmetric, not zero point ", zp));
  }
  if (q.scale_size() > 1 && q.axis() != 0) {
    return c.Fail(absl::StrCat("per-channel weights must run along axis 0, not ", q.axis()));
  }
  if (std::find(w.data().begin(), w.data().end(), static_cast<char>(-128)) != w.data().end()) {
    return c.Fail("weights hold -128; symmetric weights lie in [-127, 127]");
  }
  if (q.scale_size() == 1) return std::vector<float>(output_channels, q.scale(0));
  return std::vector<float>(q.scale().begin(), q.scale().end());
}

// Bias scale must be input_scale * weight_scale[c] (its zero point is 0 by
// validation), written or, when the bias has no quantization, implied.
absl::Status CheckBiasScales(const Context& c, const Tensor& bias, float input_scale,
                             const std::vector<float>& weight_scales) {
  const Quantization& q = bias.quantization();
  if (q.scale_size() == 0) return absl::OkStatus();
  for (size_t o = 0; o < weight_scales.size(); ++o) {
    const double expected = double{input_scale} * weight_scales[o];
    const double actual = q.scale(q.scale_size() == 1 ? 0 : static_cast<int>(o));
    if (std::fabs(actual - expected) > kBiasScaleTolerance * expected) {
      return c.Fail(absl::StrCat("bias scale ", actual, " of channel ", o,
                                 " is not input scale * weight scale = ", expected));
    }
  }
  return absl::OkStatus();
}

// The int32 accumulator must hold the products and the bias: each product is at
// most 255 * 127 in magnitude, so a bias may use only the headroom they leave.
absl::Status CheckBiasHeadroom(const Context& c, const Tensor& bias, int64_t accumulation) {
  const int64_t headroom = int64_t{2147483647} - accumulation * 255 * 127;
  for (int64_t o = 0; o < NumElements(bias); ++o) {
    int32_t b;  // memcpy: the proto's bytes may be unaligned
    std::memcpy(&b, bias.data().data() + o * sizeof(b), sizeof(b));
    if (std::llabs(int64_t{b}) > headroom) {
      return c.Fail(absl::StrCat("bias ", b, " of channel ", o, " could overflow the int32 ",
                                 "accumulator of ", accumulation, " products"));
    }
  }
  return absl::OkStatus();
}

// The clamp of an int8 output, which must leave more than one value (XNNPACK
// rejects an empty or single-value range, and such a layer is a constant).
absl::StatusOr<Int8Output> OutputStage(const Context& c, const Tensor& y) {
  const Int8Output out = Int8ActivationRange(c.op.activation(), Scale(y), ZeroPoint(y));
  if (out.qmin >= out.qmax) {
    return c.Fail(absl::StrCat("activation ", Activation_Name(c.op.activation()),
                               " leaves only [", out.qmin, ", ", out.qmax, "] of '", y.name(),
                               "' (scale ", Scale(y), ", zero point ", ZeroPoint(y), ")"));
  }
  return out;
}

absl::Status CheckActivationAllowed(const Context& c) {
  const OpKind kind = c.op.kind();
  if (c.op.activation() != ACTIVATION_NONE && kind != CONV2D && kind != ADD &&
      kind != FULLY_CONNECTED) {
    return c.Fail("only CONV2D, ADD and FULLY_CONNECTED can fuse an activation");
  }
  if (!Activation_IsValid(c.op.activation())) {
    return c.Fail(absl::StrCat("activation ", c.op.activation(), " is not valid"));
  }
  return absl::OkStatus();
}

// Int8 output stage of a conv or fully connected layer: multipliers and clamp.
// `weight` and `bias` are the op's inputs 1 and 2 (bias optional).
template <typename Params>
absl::Status PrepareInt8Gemm(const Context& c, int64_t output_channels, int64_t accumulation,
                             Params& params) {
  const Tensor& x = c.input(0);
  const Tensor& w = c.input(1);
  const Tensor& y = c.output();
  if (!IsPerTensorInt8(x) || w.type() != INT8 || !IsPerTensorInt8(y) ||
      (c.op.inputs_size() == 3 && c.input(2).type() != INT32)) {
    return c.Fail("int8 layers take per-tensor int8 input and output, int8 weights, int32 bias");
  }
  if (accumulation > reference::kMaxInt8Accumulation) {
    return c.Fail(absl::StrCat(accumulation, " products per output could overflow int32 (max ",
                               reference::kMaxInt8Accumulation, ")"));
  }
  absl::StatusOr<std::vector<float>> weight_scales = WeightScales(c, w, output_channels);
  if (!weight_scales.ok()) return weight_scales.status();
  if (c.op.inputs_size() == 3) {
    if (absl::Status s = CheckBiasScales(c, c.input(2), Scale(x), *weight_scales); !s.ok()) {
      return s;
    }
    if (absl::Status s = CheckBiasHeadroom(c, c.input(2), accumulation); !s.ok()) return s;
  }
  absl::StatusOr<std::vector<QuantizedMultiplier>> multipliers =
      QuantizeConvMultipliers(Scale(x), *weight_scales, Scale(y));
  if (!multipliers.ok()) return c.Fail(std::string(multipliers.status().message()));
  params.input_zero_point = ZeroPoint(x);
  params.multipliers = *std::move(multipliers);
  absl::StatusOr<Int8Output> output = OutputStage(c, y);
  if (!output.ok()) return output.status();
  params.output = *output;
  return absl::OkStatus();
}

bool AllFloat(const Context& c) {
  for (int i = 0; i < c.op.inputs_size(); ++i) {
    if (c.input(i).type() != FLOAT32) return false;
  }
  return c.output().type() == FLOAT32;
}

absl::StatusOr<ConvGeometry> ConvGeometryOf(const Context& c) {
  const Tensor& x = c.input(0);
  const Tensor& w = c.input(1);
  if (x.shape_size() != 4 || w.shape_size() != 4) {
    return c.Fail("CONV2D input and weights must have rank 4 (NHWC, OHWI)");
  }
  const Conv2DAttributes& a = c.op.conv2d();
  // Strides and dilations beyond kMaxConvStep make no sense for an image and
  // keep all index arithmetic far from overflow; padding is bounded below.
  if (a.stride_h() < 1 || a.stride_w() < 1 || a.dilation_h() < 1 || a.dilation_w() < 1 ||
      a.stride_h() > kMaxConvStep || a.stride_w() > kMaxConvStep ||
      a.dilation_h() > kMaxConvStep || a.dilation_w() > kMaxConvStep || a.groups() < 1 ||
      a.pad_top() < 0 || a.pad_bottom() < 0 || a.pad_left() < 0 || a.pad_right() < 0) {
    return c.Fail(absl::StrCat("bad attributes: stride ", a.stride_h(), "x", a.stride_w(),
                               ", dilation ", a.dilation_h(), "x", a.dilation_w(), ", groups ",
                               a.groups(), ", padding ", a.pad_top(), "/", a.pad_bottom(), "/",
                               a.pad_left(), "/", a.pad_right()));
  }
  ConvGeometry g;
  g.batch = static_cast<int>(x.shape(0));
  g.input_height = static_cast<int>(x.shape(1));
  g.input_width = static_cast<int>(x.shape(2));
  g.input_channels = static_cast<int>(x.shape(3));
  g.output_channels = static_cast<int>(w.shape(0));
  g.kernel_height = static_cast<int>(w.shape(1));
  g.kernel_width = static_cast<int>(w.shape(2));
  g.groups = a.groups();
  if (g.input_channels % g.groups != 0 || g.output_channels % g.groups != 0 ||
      w.shape(3) != g.input_channels / g.groups) {
    return c.Fail(absl::StrCat("weights ", ShapeString(Shape(w)), " do not fit ",
                               g.input_channels, " input channels in ", g.groups, " groups"));
  }
  // Padding of a whole kernel span or more would only add outputs made of padding.
  const int64_t span_h = int64_t{a.dilation_h()} * (g.kernel_height - 1) + 1;
  const int64_t span_w = int64_t{a.dilation_w()} * (g.kernel_width - 1) + 1;
  if (std::max(a.pad_top(), a.pad_bottom()) >= span_h ||
      std::max(a.pad_left(), a.pad_right()) >= span_w) {
    return c.Fail(absl::StrCat("padding ", a.pad_top(), "/", a.pad_bottom(), "/", a.pad_left(),
                               "/", a.pad_right(), " is not smaller than the kernel span ",
                               span_h, "x", span_w));
  }
  g.stride_h = a.stride_h();
  g.stride_w = a.stride_w();
  g.dilation_h = a.dilation_h();
  g.dilation_w = a.dilation_w();
  g.pad_top = a.pad_top();
  g.pad_left = a.pad_left();
  g.pad_bottom = a.pad_bottom();
  g.pad_right = a.pad_right();
  const int64_t oh = reference::ConvOutputSize(g.input_height, g.kernel_height, g.stride_h,
                                               g.dilation_h, a.pad_top(), a.pad_bottom());
  const int64_t ow = reference::ConvOutputSize(g.input_width, g.kernel_width, g.stride_w,
                                               g.dilation_w, a.pad_left(), a.pad_right());
  if (oh < 1 || ow < 1) return c.Fail("the kernel is larger than the padded input");
  g.output_height = static_cast<int>(oh);
  g.output_width = static_cast<int>(ow);
  if (absl::Status s = CheckShape(c, c.output(), {g.batch, oh, ow, g.output_channels}); !s.ok()) {
    return s;
  }
  return g;
}

absl::Status PrepareConv2D(const Context& c, PreparedOp& p) {
  if (absl::Status s = CheckArity(c, 2, 3); !s.ok()) return s;
  absl::StatusOr<ConvGeometry> g = ConvGeometryOf(c);
  if (!g.ok()) return g.status();
  if (absl::Status s = CheckConstant(c, c.input(1)); !s.ok()) return s;
  if (c.op.inputs_size() == 3) {
    if (absl::Status s = CheckConstant(c, c.input(2)); !s.ok()) return s;
    if (absl::Status s = CheckShape(c, c.input(2), {g->output_channels}); !s.ok()) return s;
  }
  if (AllFloat(c)) {
    const ActivationRange range = FloatActivationRange(c.op.activation());
    p.params = reference::Conv2DFloatParams{*g, range.min, range.max};
    return absl::OkStatus();
  }
  reference::Conv2DInt8Params params;
  params.geometry = *g;
  const int64_t accumulation =
      int64_t{g->kernel_height} * g->kernel_width * (g->input_channels / g->groups);
  if (absl::Status s = PrepareInt8Gemm(c, g->output_channels, accumulation, params); !s.ok()) {
    return s;
  }
  p.params = std::move(params);
  return absl::OkStatus();
}

absl::Status PrepareFullyConnected(const Context& c, PreparedOp& p) {
  if (absl::Status s = CheckArity(c, 2, 3); !s.ok()) return s;
  const Tensor& x = c.input(0);
  const Tensor& w = c.input(1);
  if (x.shape_size() < 2 || w.shape_size() != 2) {
    return c.Fail("FULLY_CONNECTED takes input [N, ...] and weights [O, K]");
  }
  const int64_t batch = x.shape(0);
  const int64_t features = NumElements(x) / batch;
  const int64_t outputs = w.shape(0);
  if (absl::Status s = CheckShape(c, w, {outputs, features}); !s.ok()) return s;
  if (absl::Status s = CheckConstant(c, w); !s.ok()) return s;
  if (c.op.inputs_size() == 3) {
    if (absl::Status s = CheckConstant(c, c.input(2)); !s.ok()) return s;
    if (absl::Status s = CheckShape(c, c.input(2), {outputs}); !s.ok()) return s;
  }
  if (absl::Status s = CheckShape(c, c.output(), {batch, outputs}); !s.ok()) return s;
  if (AllFloat(c)) {
    const ActivationRange range = FloatActivationRange(c.op.activation());
    p.params = reference::FullyConnectedFloatParams{static_cast<int>(batch),
                                                    static_cast<int>(features),
                                                    static_cast<int>(outputs), range.min,
                                                    range.max};
    return absl::OkStatus();
  }
  reference::FullyConnectedInt8Params params;
  params.batch = static_cast<int>(batch);
  params.input_features = static_cast<int>(features);
  params.output_features = static_cast<int>(outputs);
  if (absl::Status s = PrepareInt8Gemm(c, outputs, features, params); !s.ok()) return s;
  p.params = std::move(params);
  return absl::OkStatus();
}

// input_scale / output_scale within [min_ratio, 256), as XNNPACK requires.
absl::Status CheckScaleRatio(const Context& c, const Tensor& in, const Tensor& out,
                             double min_ratio, const char* min_ratio_text) {
  const double ratio = double{Scale(in)} / Scale(out);
  if (ratio < min_ratio || ratio >= kMaxScaleRatio) {
    return c.Fail(absl::StrCat("scale ratio ", ratio, " of '", in.name(), "' to '", out.name(),
                               "' is outside [", min_ratio_text, ", 256)"));
  }
  return absl::OkStatus();
}

absl::Status PrepareAdd(const Context& c, PreparedOp& p) {
  if (absl::Status s = CheckArity(c, 2, 2); !s.ok()) return s;
  const Tensor& a = c.input(0);
  const Tensor& b = c.input(1);
  const Tensor& y = c.output();
  if (absl::Status s = CheckShape(c, a, Shape(y)); !s.ok()) return s;
  if (absl::Status s = CheckShape(c, b, Shape(y)); !s.ok()) return s;
  if (AllFloat(c)) {
    const ActivationRange range = FloatActivationRange(c.op.activation());
    p.params = reference::AddFloatParams{NumElements(y), range.min, range.max};
    return absl::OkStatus();
  }
  if (!IsPerTensorInt8(a) || !IsPerTensorInt8(b) || !IsPerTensorInt8(y)) {
    return c.Fail("ADD takes all-float or all per-tensor int8 tensors");
  }
  for (const Tensor* in : {&a, &b}) {
    if (absl::Status s = CheckScaleRatio(c, *in, y, kAddMinScaleRatio, "2^-10"); !s.ok()) return s;
  }
  // Rescale both inputs to twice the larger scale, with 2^20 of headroom (TFLite).
  const double twice_max = 2.0 * std::max(Scale(a), Scale(b));
  reference::AddInt8Params params;
  params.size = NumElements(y);
  params.a_zero_point = ZeroPoint(a);
  params.b_zero_point = ZeroPoint(b);
  absl::StatusOr<QuantizedMultiplier> a_multiplier = QuantizeMultiplier(Scale(a) / twice_max);
  absl::StatusOr<QuantizedMultiplier> b_multiplier = QuantizeMultiplier(Scale(b) / twice_max);
  absl::StatusOr<QuantizedMultiplier> out =
      QuantizeMultiplier(twice_max / ((1 << reference::kAddLeftShift) * double{Scale(y)}));
  for (const auto* m : {&a_multiplier, &b_multiplier, &out}) {
    if (!m->ok()) return c.Fail(std::string(m->status().message()));
  }
  params.a_multiplier = *a_multiplier;
  params.b_multiplier = *b_multiplier;
  params.output_multiplier = *out;
  absl::StatusOr<Int8Output> output = OutputStage(c, y);
  if (!output.ok()) return output.status();
  params.output = *output;
  p.params = params;
  return absl::OkStatus();
}

absl::Status PrepareMean(const Context& c, PreparedOp& p) {
  if (absl::Status s = CheckArity(c, 1, 1); !s.ok()) return s;
  const Tensor& x = c.input(0);
  const Tensor& y = c.output();
  if (x.shape_size() != 4) return c.Fail("MEAN_HW takes an NHWC input");
  const int64_t n = x.shape(0), h = x.shape(1), w = x.shape(2), ch = x.shape(3);
  if (Shape(y) != std::vector<int64_t>{n, ch} && Shape(y) != std::vector<int64_t>{n, 1, 1, ch}) {
    return c.Fail(absl::StrCat("output shape ", ShapeString(Shape(y)), " is neither [", n, ", ",
                               ch, "] nor [", n, ", 1, 1, ", ch, "]"));
  }
  if (AllFloat(c)) {
    p.params = reference::MeanFloatParams{static_cast<int>(n), static_cast<int>(h),
                                          static_cast<int>(w), static_cast<int>(ch)};
    return absl::OkStatus();
  }
  if (!IsPerTensorInt8(x) || !IsPerTensorInt8(y)) {
    return c.Fail("MEAN_HW takes float or per-tensor int8 tensors");
  }
  // The int32 sum of (q - zero_point), each at most 255 in magnitude.
  constexpr int64_t kMaxMeanPixels = int64_t{2147483647} / 255;
  if (h * w > kMaxMeanPixels) {
    return c.Fail(absl::StrCat(h * w, " pixels could overflow the int32 sum"));
  }
  if (absl::Status s = CheckScaleRatio(c, x, y, kMeanMinScaleRatio, "2^-8"); !s.ok()) return s;
  absl::StatusOr<QuantizedMultiplier> m =
      QuantizeMultiplier(double{Scale(x)} / (double{Scale(y)} * h * w));
  if (!m.ok()) return c.Fail(std::string(m.status().message()));
  reference::MeanInt8Params params;
  params.batch = static_cast<int>(n);
  params.height = static_cast<int>(h);
  params.width = static_cast<int>(w);
  params.channels = static_cast<int>(ch);
  params.input_zero_point = ZeroPoint(x);
  params.multiplier = *m;
  params.output = Int8ActivationRange(ACTIVATION_NONE, Scale(y), ZeroPoint(y));
  p.params = params;
  return absl::OkStatus();
}

absl::Status PrepareConvert(const Context& c, PreparedOp& p) {
  if (absl::Status s = CheckArity(c, 1, 1); !s.ok()) return s;
  const Tensor& x = c.input(0);
  const Tensor& y = c.output();
  if (absl::Status s = CheckShape(c, y, Shape(x)); !s.ok()) return s;
  const bool quantize = c.op.kind() == QUANTIZE;
  const Tensor& float_side = quantize ? x : y;
  const Tensor& int8_side = quantize ? y : x;
  if (float_side.type() != FLOAT32 || !IsPerTensorInt8(int8_side)) {
    return c.Fail(quantize ? "QUANTIZE takes float input and per-tensor int8 output"
                           : "DEQUANTIZE takes per-tensor int8 input and float output");
  }
  p.params = QuantizeParams{NumElements(x), Scale(int8_side), ZeroPoint(int8_side)};
  return absl::OkStatus();
}

// The same scales, axis and zero points (a zero point left out counts as 0).
bool SameQuantization(const Tensor& a, const Tensor& b) {
  const Quantization& qa = a.quantization();
  const Quantization& qb = b.quantization();
  if (qa.scale_size() != qb.scale_size() || (qa.scale_size() > 1 && qa.axis() != qb.axis())) {
    return false;
  }
  for (int i = 0; i < qa.scale_size(); ++i) {
    if (qa.scale(i) != qb.scale(i) || ZeroPointAt(qa, i) != ZeroPointAt(qb, i)) return false;
  }
  return true;
}

absl::Status PrepareReshape(const Context& c, PreparedOp& p) {
  if (absl::Status s = CheckArity(c, 1, 1); !s.ok()) return s;
  const Tensor& x = c.input(0);
  const Tensor& y = c.output();
  if (NumElements(x) != NumElements(y) || x.type() != y.type() || !SameQuantization(x, y)) {
    return c.Fail(absl::StrCat("RESHAPE from ", ShapeString(Shape(x)), " to ",
                               ShapeString(Shape(y)),
                               " must keep the element count, type and quantization"));
  }
  p.params = ReshapeParams{NumElements(x) * static_cast<int64_t>(ElementSize(x.type()))};
  return absl::OkStatus();
}

}  // namespace

ActivationRange FloatActivationRange(Activation activation) {
  switch (activation) {
    case RELU:
      return {0.0f, INFINITY};
    case RELU6:
      return {0.0f, 6.0f};
    default:
      return {};
  }
}

Int8Output Int8ActivationRange(Activation activation, float scale, int32_t zero_point) {
  Int8Output out{zero_point, kActivationQMin, kActivationQMax};
  if (activation == RELU || activation == RELU6) out.qmin = std::max(zero_point, kActivationQMin);
  if (activation == RELU6) {
    const float six = RoundToGrid(6.0f, InverseScale(scale), static_cast<float>(zero_point));
    out.qmax = static_cast<int32_t>(std::min(six, static_cast<float>(kActivationQMax)));
  }
  return out;
}

// Below 2^60: tensors hold at most 2^30 elements, and a conv's products per
// output are its weights' elements per output channel.
int64_t MultiplyAdds(const Model& model, const Op& op) {
  const int64_t outputs = NumElements(model.tensors(op.outputs(0)));
  switch (op.kind()) {
    case CONV2D:
    case FULLY_CONNECTED: {
      const Tensor& w = model.tensors(op.inputs(1));
      return outputs * (NumElements(w) / w.shape(0));
    }
    case MEAN_HW:
      return NumElements(model.tensors(op.inputs(0)));
    default:
      return outputs;
  }
}

absl::StatusOr<PreparedOp> PrepareOp(const Model& model, int index) {
  const Op& op = model.ops(index);
  const Context c{model, op, OpLabel(op, index)};
  PreparedOp p;
  p.kind = op.kind();
  p.name = op.name();
  p.inputs.assign(op.inputs().begin(), op.inputs().end());
  p.output = op.outputs(0);
  if (absl::Status s = CheckActivationAllowed(c); !s.ok()) return s;
  absl::Status status;
  switch (op.kind()) {
    case QUANTIZE:
    case DEQUANTIZE:
      status = PrepareConvert(c, p);
      break;
    case CONV2D:
      status = PrepareConv2D(c, p);
      break;
    case ADD:
      status = PrepareAdd(c, p);
      break;
    case MEAN_HW:
      status = PrepareMean(c, p);
      break;
    case FULLY_CONNECTED:
      status = PrepareFullyConnected(c, p);
      break;
    case RESHAPE:
      status = PrepareReshape(c, p);
      break;
    default:
      status = c.Fail("unknown op kind");
  }
  if (!status.ok()) return status;
  p.multiply_adds = MultiplyAdds(model, op);
  return p;
}

}  // namespace qforge
