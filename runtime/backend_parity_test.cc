// The fast backends against the reference backend, op by op, on random
// shapes, strides, paddings, groups, activations and quantization parameters
// (fixed seeds). qforge's own kernels, at every instruction-set level this CPU
// allows, must give the reference's int8 outputs bit for bit; XNNPACK
// requantizes in fp32 with round-half-even where the reference uses a
// fixed-point multiplier, so ops on XNNPACK (all of them with kXnnpackOnly; grouped convs
// that are not depthwise with kFast) stay within 1 LSB (shared/DESIGN.md).
// Float outputs (always XNNPACK) within 1e-4 relative.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common/model_builder.h"
#include "common/random.h"
#include "gtest/gtest.h"
#include "runtime/int8_test_layers.h"
#include "runtime/interpreter.h"
#include "runtime/prepare.h"
#include "runtime/reference_ops.h"

namespace qforge {
namespace {

using testing::FitOutput;
using testing::ProductLayer;
using testing::Random;
using testing::RandomProductLayer;

Activation AnyActivation(Random& rng) { return static_cast<Activation>(rng.Int(0, 2)); }

int64_t Elements(const Tensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape()) n *= d;
  return n;
}

// A backend under test: XNNPACK alone, or the fast backend at one level.
struct Config {
  const char* name;
  Backend backend;
  kernels::Isa isa;
};

void PrintTo(const Config& config, std::ostream* os) { *os << config.name; }

std::unique_ptr<Interpreter> MakeInterpreter(std::shared_ptr<const CompiledModel> model,
                                             Backend backend,
                                             kernels::Isa isa = kernels::kBestIsa) {
  InterpreterOptions options;
  options.backend = backend;
  if (backend == Backend::kFast) options.kernel_isa = isa;
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter =
      Interpreter::Create(std::move(model), options);
  EXPECT_TRUE(interpreter.ok()) << interpreter.status();
  return interpreter.ok() ? *std::move(interpreter) : nullptr;
}

// 0 if every op runs on qforge's kernels (bit-exact), else 1.
int Int8Tolerance(const Interpreter& fast, size_t ops) {
  for (size_t i = 0; i < ops; ++i) {
    if (fast.op_engine(static_cast<int>(i)).rfind("qforge-", 0) != 0) return 1;
  }
  return 0;
}

// Runs `model` on `config` and on the reference with the same random inputs
// and compares.
void ExpectParity(const Config& config, const Model& model, Random& rng, const std::string& what,
                  testing::OutputStats& clamped) {
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled = CompiledModel::FromModel(model);
  ASSERT_TRUE(compiled.ok()) << what << ": " << compiled.status();
  auto fast = MakeInterpreter(*compiled, config.backend, config.isa);
  auto ref = MakeInterpreter(*compiled, Backend::kReference);
  ASSERT_TRUE(fast && ref) << what;
  const int tolerance = Int8Tolerance(*fast, (*compiled)->ops().size());
  for (int i = 0; i < fast->num_inputs(); ++i) {
    const Tensor& t = fast->input_tensor(i);
    const int64_t n = Elements(t);
    if (t.type() == INT8) {
      const std::vector<int8_t> values = rng.Int8s(n);
      std::memcpy(fast->input_data(i), values.data(), n);
      std::memcpy(ref->input_data(i), values.data(), n);
    } else {
      const std::vector<float> values = rng.Floats(n, -3.0f, 3.0f);
      std::memcpy(fast->input_data(i), values.data(), n * sizeof(float));
      std::memcpy(ref->input_data(i), values.data(), n * sizeof(float));
    }
  }
  ASSERT_TRUE(fast->Invoke().ok()) << what;
  ASSERT_TRUE(ref->Invoke().ok()) << what;
  const Tensor& out = fast->output_tensor(0);
  const int64_t n = Elements(out);
  const reference::Int8Output range =
      out.type() == INT8 ? Int8ActivationRange(model.ops(0).activation(),
                                               out.quantization().scale(0),
                                               out.quantization().zero_point(0))
                         : reference::Int8Output{};
  for (int64_t j = 0; j < n; ++j) {
    if (out.type() == INT8) {
      const int a = static_cast<const int8_t*>(fast->output_data(0))[j];
      const int b = static_cast<const int8_t*>(ref->output_data(0))[j];
      ASSERT_LE(std::abs(a - b), tolerance) << what << " element " << j;
      clamped.Add(b, range.qmin, range.qmax);
    } else {
      const float a = static_cast<const float*>(fast->output_data(0))[j];
      const float b = static_cast<const float*>(ref->output_data(0))[j];
      ASSERT_NEAR(a, b, 1e-4f * std::max(1.0f, std::fabs(b))) << what << " element " << j;
    }
  }
}

struct ConvShape {
  int n, h, w, c, o, kh, kw, stride, dilation, pad_t, pad_b, pad_l, pad_r, groups;
  int64_t oh, ow;
};

ConvShape RandomConvShape(Random& rng) {
  ConvShape s;
  if (rng.Int(0, 1) == 0) {  // depthwise, as in MobileNetV2, with depth multiplier 1 or 2
    s.groups = s.c = rng.Int(1, 24);
    s.o = s.c * rng.Int(1, 2);
  } else {
    s.groups = rng.Int(1, 3);
    s.c = s.groups * rng.Int(1, 5);
    s.o = s.groups * rng.Int(1, 5);
  }
  s.n = rng.Int(1, 2);
  s.kh = rng.Int(1, 3);
  s.kw = rng.Int(1, 3);
  s.stride = rng.Int(1, 2);
  s.dilation = rng.Int(1, 2);
  // Padding below the kernel span, as Prepare requires.
  const int max_pad_h = std::min(2, s.dilation * (s.kh - 1)), max_pad_w = std::min(2, s.dilation * (s.kw - 1));
  s.pad_t = rng.Int(0, max_pad_h), s.pad_b = rng.Int(0, max_pad_h);
  s.pad_l = rng.Int(0, max_pad_w), s.pad_r = rng.Int(0, max_pad_w);
  s.h = rng.Int(s.dilation * (s.kh - 1) + 1, 9);
  s.w = rng.Int(s.dilation * (s.kw - 1) + 1, 9);
  s.oh = reference::ConvOutputSize(s.h, s.kh, s.stride, s.dilation, s.pad_t, s.pad_b);
  s.ow = reference::ConvOutputSize(s.w, s.kw, s.stride, s.dilation, s.pad_l, s.pad_r);
  return s;
}

Op& AddConv(ModelBuilder& b, const ConvShape& s, int x, int w, int bias, int y, Activation act) {
  Op& op = b.AddConv2D("conv", x, w, bias, y, s.stride, 0, s.groups, act);
  Conv2DAttributes* a = op.mutable_conv2d();
  a->set_dilation_h(s.dilation);
  a->set_dilation_w(s.dilation);
  a->set_pad_top(s.pad_t);
  a->set_pad_bottom(s.pad_b);
  a->set_pad_left(s.pad_l);
  a->set_pad_right(s.pad_r);
  return op;
}

// Output quantization for values of about this mean and standard deviation
// before the fused activation: mean +- 3.5 sd, clipped by the activation.
testing::OutputQuantization FitActivation(Random& rng, double mean, double sd,
                                          Activation activation) {
  const double lo = activation == ACTIVATION_NONE ? mean - 3.5 * sd : 0;
  double hi = mean + 3.5 * sd;
  if (activation == RELU6) hi = std::min(hi, 6.0);
  return FitOutput(rng, lo, hi);
}

Model Int8ConvModel(Random& rng) {
  const ConvShape s = RandomConvShape(rng);
  ModelBuilder b;
  const float in_scale = rng.Float(0.01f, 0.1f);
  const int32_t in_zero_point = rng.Int(-128, 127);
  const int x = b.AddInt8Tensor("x", {s.n, s.h, s.w, s.c}, in_scale, in_zero_point);
  const int64_t per_out = int64_t{s.kh} * s.kw * (s.c / s.groups);
  const Activation activation = AnyActivation(rng);
  const ProductLayer l = RandomProductLayer(rng, per_out, s.o, in_scale, in_zero_point,
                                            rng.Int(0, 1) == 0, activation != ACTIVATION_NONE);
  const auto out = FitActivation(rng, l.real_mean, l.real_sd, activation);
  const int w = b.AddInt8Constant("w", {s.o, s.kh, s.kw, s.c / s.groups},
                                  rng.Int8s(s.o * per_out, -127, 127), l.weight_scales);
  const int bias_id =
      rng.Int(0, 3) == 0 ? -1 : b.AddInt32Constant("b", {s.o}, l.bias, l.bias_scales);
  const int y = b.AddInt8Tensor("y", {s.n, s.oh, s.ow, s.o}, out.scale, out.zero_point);
  AddConv(b, s, x, w, bias_id, y, activation);
  b.AddInput(x);
  b.AddOutput(y);
  return b.model();
}

Model FloatConvModel(Random& rng) {
  const ConvShape s = RandomConvShape(rng);
  ModelBuilder b;
  const int x = b.AddFloatTensor("x", {s.n, s.h, s.w, s.c});
  const int w = b.AddFloatConstant("w", {s.o, s.kh, s.kw, s.c / s.groups},
                                   rng.Floats(int64_t{s.o} * s.kh * s.kw * (s.c / s.groups), -1, 1));
  const int bias = b.AddFloatConstant("b", {s.o}, rng.Floats(s.o, -1, 1));
  const int y = b.AddFloatTensor("y", {s.n, s.oh, s.ow, s.o});
  AddConv(b, s, x, w, bias, y, AnyActivation(rng));
  b.AddInput(x);
  b.AddOutput(y);
  return b.model();
}

// Inputs spread over int8 with their zero points near the middle, or under a
// ReLU low (mostly positive values); the output fitted to their sum.
Model AddModel(Random& rng, bool quantized) {
  ModelBuilder b;
  const std::vector<int64_t> shape = {rng.Int(1, 2), rng.Int(1, 7), rng.Int(1, 7), rng.Int(1, 40)};
  const Activation activation = AnyActivation(rng);
  int a, c, y;
  if (quantized) {
    const int lowest = activation == ACTIVATION_NONE ? -30 : -128;
    const int spread = activation == RELU6 ? 10 : 60;
    // Under ReLU6, inputs in about [0, 3] (two ReLU6 outputs would often sum past 6).
    const float top = activation == RELU6 ? 3.0f / 255 : 0.2f;
    const float a_scale = rng.Float(0.005f, top), b_scale = rng.Float(0.005f, top);
    const int32_t a_zero = rng.Int(lowest, lowest + spread);
    const int32_t b_zero = rng.Int(lowest, lowest + spread);
    const double mean = a_scale * (-0.5 - a_zero) + b_scale * (-0.5 - b_zero);
    const double sd = std::sqrt((a_scale * a_scale + b_scale * b_scale) * 65535.0 / 12);
    const auto out = FitActivation(rng, mean, sd, activation);
    a = b.AddInt8Tensor("a", shape, a_scale, a_zero);
    c = b.AddInt8Tensor("b", shape, b_scale, b_zero);
    y = b.AddInt8Tensor("y", shape, out.scale, out.zero_point);
  } else {
    a = b.AddFloatTensor("a", shape);
    c = b.AddFloatTensor("b", shape);
    y = b.AddFloatTensor("y", shape);
  }
  b.AddOp(ADD, "add", {a, c}, y, activation);
  b.AddInput(a);
  b.AddInput(c);
  b.AddOutput(y);
  return b.model();
}

Model MeanModel(Random& rng, bool quantized) {
  ModelBuilder b;
  const int64_t n = rng.Int(1, 2), c = rng.Int(1, 64);
  const std::vector<int64_t> shape = {n, rng.Int(1, 9), rng.Int(1, 9), c};
  int x, y;
  if (quantized) {
    // The mean of h * w uniform values: about the input's middle, its spread
    // shrinking with the pixel count; the output fitted to it.
    const float in_scale = rng.Float(0.01f, 0.2f);
    const int32_t in_zero = rng.Int(-128, 127);
    const double pixels = static_cast<double>(shape[1] * shape[2]);
    const auto out = FitActivation(rng, in_scale * (-0.5 - in_zero),
                                   in_scale * 74 / std::sqrt(pixels), ACTIVATION_NONE);
    x = b.AddInt8Tensor("x", shape, in_scale, in_zero);
    y = b.AddInt8Tensor("y", {n, c}, out.scale, out.zero_point);
  } else {
    x = b.AddFloatTensor("x", shape);
    y = b.AddFloatTensor("y", {n, c});
  }
  b.AddOp(MEAN_HW, "mean", {x}, y);
  b.AddInput(x);
  b.AddOutput(y);
  return b.model();
}

Model FullyConnectedModel(Random& rng, bool quantized) {
  ModelBuilder b;
  const int64_t n = rng.Int(1, 3), k = rng.Int(1, 100), o = rng.Int(1, 20);
  int x, w, bias, y;
  const Activation activation = AnyActivation(rng);
  if (quantized) {
    const float in_scale = rng.Float(0.01f, 0.1f);
    const int32_t in_zero_point = rng.Int(-128, 127);
    const ProductLayer l =
        RandomProductLayer(rng, k, static_cast<int>(o), in_scale, in_zero_point,
                           rng.Int(0, 1) == 0, activation != ACTIVATION_NONE);
    const auto out = FitActivation(rng, l.real_mean, l.real_sd, activation);
    x = b.AddInt8Tensor("x", {n, k}, in_scale, in_zero_point);
    w = b.AddInt8Constant("w", {o, k}, rng.Int8s(o * k, -127, 127), l.weight_scales);
    bias = b.AddInt32Constant("b", {o}, l.bias, l.bias_scales);
    y = b.AddInt8Tensor("y", {n, o}, out.scale, out.zero_point);
  } else {
    x = b.AddFloatTensor("x", {n, k});
    w = b.AddFloatConstant("w", {o, k}, rng.Floats(o * k, -1, 1));
    bias = b.AddFloatConstant("b", {o}, rng.Floats(o, -1, 1));
    y = b.AddFloatTensor("y", {n, o});
  }
  b.AddOp(FULLY_CONNECTED, "fc", {x, w, bias}, y, activation);
  b.AddInput(x);
  b.AddOutput(y);
  return b.model();
}

// Quantize a float input, reshape, and dequantize: the converts and a copy.
Model ConvertModel(Random& rng) {
  ModelBuilder b;
  const int64_t n = rng.Int(1, 2), h = rng.Int(1, 5), c = rng.Int(1, 30);
  const float scale = rng.Float(0.01f, 0.05f);
  const int32_t zp = rng.Int(-20, 20);
  const int x = b.AddFloatTensor("x", {n, h, 1, c});
  const int q = b.AddInt8Tensor("q", {n, h, 1, c}, scale, zp);
  const int r = b.AddInt8Tensor("r", {n, h * c}, scale, zp);
  const int y = b.AddFloatTensor("y", {n, h * c});
  b.AddOp(QUANTIZE, "quantize", {x}, q);
  b.AddOp(RESHAPE, "reshape", {q}, r);
  b.AddOp(DEQUANTIZE, "dequantize", {r}, y);
  b.AddInput(x);
  b.AddOutput(y);
  return b.model();
}

class BackendParity : public ::testing::TestWithParam<Config> {
 protected:
  void SetUp() override {
    const Config& c = GetParam();
    if (c.backend == Backend::kFast && kernels::ResolveIsa(c.isa) != c.isa) {
      GTEST_SKIP() << "this CPU (or QFORGE_ISA) does not allow " << kernels::IsaName(c.isa);
    }
  }

  void RunTrials(uint64_t seed, int trials, const std::function<Model(Random&)>& make,
                 const std::string& what) {
    Random rng(seed);
    testing::OutputStats clamped;
    for (int t = 0; t < trials; ++t) {
      ExpectParity(GetParam(), make(rng), rng, what + " trial " + std::to_string(t), clamped);
    }
    if (clamped.total == 0) return;  // float outputs
    // An output on a clamp bound says little about the arithmetic before it.
    std::printf("%s: %.1f%% of %lld int8 outputs on a clamp bound, codes spread %.1f\n",
                what.c_str(), 100 * clamped.OnBoundShare(), static_cast<long long>(clamped.total),
                clamped.CodeSd());
    EXPECT_LT(clamped.OnBoundShare(), 0.15) << what;
    EXPECT_GT(clamped.CodeSd(), 15) << what;
  }
};

TEST_P(BackendParity, Conv2DInt8) { RunTrials(1, 300, Int8ConvModel, "int8 conv"); }
TEST_P(BackendParity, Conv2DFloat) { RunTrials(2, 200, FloatConvModel, "float conv"); }
TEST_P(BackendParity, AddInt8) {
  RunTrials(3, 200, [](Random& r) { return AddModel(r, true); }, "int8 add");
}
TEST_P(BackendParity, AddFloat) {
  RunTrials(4, 50, [](Random& r) { return AddModel(r, false); }, "float add");
}
TEST_P(BackendParity, MeanInt8) {
  RunTrials(5, 200, [](Random& r) { return MeanModel(r, true); }, "int8 mean");
}
TEST_P(BackendParity, MeanFloat) {
  RunTrials(6, 50, [](Random& r) { return MeanModel(r, false); }, "float mean");
}
TEST_P(BackendParity, FullyConnectedInt8) {
  RunTrials(7, 200, [](Random& r) { return FullyConnectedModel(r, true); }, "int8 fc");
}
TEST_P(BackendParity, FullyConnectedFloat) {
  RunTrials(8, 50, [](Random& r) { return FullyConnectedModel(r, false); }, "float fc");
}
TEST_P(BackendParity, QuantizeReshapeDequantize) { RunTrials(9, 100, ConvertModel, "convert"); }

INSTANTIATE_TEST_SUITE_P(
    Backends, BackendParity,
    ::testing::Values(Config{"xnnpack_only", Backend::kXnnpackOnly, kernels::kBestIsa},
                      Config{"fast_generic", Backend::kFast, kernels::Isa::kGeneric},
                      Config{"fast_avx2", Backend::kFast, kernels::Isa::kAvx2},
                      Config{"fast_avxvnni", Backend::kFast, kernels::Isa::kAvxVnni},
                      Config{"fast_avx512vnni", Backend::kFast, kernels::Isa::kAvx512Vnni},
                      Config{"fast_avx512amx", Backend::kFast, kernels::Isa::kAvx512Amx}),
    [](const ::testing::TestParamInfo<Config>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace qforge
