// Finite-difference checks of every layer's Backward, for inputs and
// parameters: L = sum(y * r) for a fixed random r, so dL/dy = r, and each
// analytic gradient element is compared with (L(v + e) - L(v - e)) / 2e.
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "trainer/nn/batch_norm.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/elementwise.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/parallel.h"

namespace qforge {
namespace {

void FillRandom(float* v, int64_t n, uint64_t seed, float scale = 1.0f) {
  SplitMix64 rng(seed);
  for (int64_t i = 0; i < n; ++i) v[i] = scale * (2.0f * rng.UniformFloat() - 1.0f);
}

FloatTensor RandomTensor(std::vector<int64_t> shape, uint64_t seed) {
  FloatTensor t(std::move(shape));
  FillRandom(t.ptr(), t.size(), seed);
  return t;
}

double Dot(const FloatTensor& y, const FloatTensor& r) {
  double s = 0;
  for (int64_t i = 0; i < y.size(); ++i) s += double{y.data[i]} * r.data[i];
  return s;
}

// Compares analytic[i] with the central difference of loss() in values[i], for
// every element (small tensors) or every `stride`-th.
void ExpectGradient(const std::string& what, float* values, const float* analytic, int64_t n,
                    const std::function<double()>& loss, float eps = 1e-2f,
                    double tolerance = 2e-2) {
  const int64_t stride = std::max<int64_t>(1, n / 60);
  for (int64_t i = 0; i < n; i += stride) {
    const float saved = values[i];
    values[i] = saved + eps;
    const double plus = loss();
    values[i] = saved - eps;
    const double minus = loss();
    values[i] = saved;
    const double numeric = (plus - minus) / (2.0 * eps);
    ASSERT_NEAR(analytic[i], numeric, tolerance * std::max(1.0, std::fabs(numeric)))
        << what << " element " << i;
  }
}

struct ConvCase {
  std::string name;
  Conv2dOptions options;
  std::vector<int64_t> input;  // NHWC
};

class Conv2dGradient : public ::testing::TestWithParam<ConvCase> {};

TEST_P(Conv2dGradient, MatchesFiniteDifferences) {
  const ConvCase& c = GetParam();
  ParameterStore params;
  Conv2d conv("conv", c.options, params);
  FillRandom(params.values().data(), params.values().size(), 1, 0.5f);
  FloatTensor x = RandomTensor(c.input, 2), y, dx;
  conv.Forward(x, y);
  const FloatTensor r = RandomTensor(y.shape, 3);
  params.ZeroGrads();
  conv.Backward(r, &dx);
  auto loss = [&] {
    FloatTensor out;
    conv.Forward(x, out);
    return Dot(out, r);
  };
  ExpectGradient(c.name + " dx", x.ptr(), dx.ptr(), x.size(), loss);
  ExpectGradient(c.name + " dW", params.value(conv.weight_id()), params.grad(conv.weight_id()),
                 params.info(conv.weight_id()).size, loss);
  if (conv.bias_id() >= 0) {
    ExpectGradient(c.name + " db", params.value(conv.bias_id()), params.grad(conv.bias_id()),
                   params.info(conv.bias_id()).size, loss);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, Conv2dGradient,
    ::testing::Values(
        ConvCase{"3x3 stride 2 pad 1 bias", {3, 4, 3, 2, 1, 1, true}, {2, 5, 6, 3}},
        ConvCase{"1x1 pointwise", {4, 6, 1, 1, 0, 1, false}, {2, 3, 3, 4}},
        ConvCase{"depthwise 3x3", {5, 5, 3, 1, 1, 5, false}, {2, 4, 4, 5}},
        ConvCase{"depthwise 3x3 stride 2 bias", {4, 4, 3, 2, 1, 4, true}, {1, 5, 5, 4}},
        // Channels past whole vectors at every width (16, 8 and 4 lanes).
        ConvCase{"depthwise 3x3 37 channels", {37, 37, 3, 1, 1, 37, false}, {2, 4, 5, 37}},
        // A kernel size without its own compiled kernel.
        ConvCase{"depthwise 5x5 stride 2 bias", {21, 21, 5, 2, 2, 21, true}, {2, 6, 5, 21}},
        ConvCase{"grouped 2", {4, 6, 3, 1, 1, 2, true}, {1, 4, 3, 4}},
        ConvCase{"depth multiplier 2", {3, 6, 3, 1, 0, 3, false}, {1, 4, 4, 3}}),
    [](const auto& info) {
      std::string n = info.param.name;
      for (char& ch : n) ch = std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
      return n;
    });

TEST(BatchNorm2dGradient, TrainingAndEval) {
  for (bool training : {true, false}) {
    ParameterStore params;
    BatchNorm2d bn("bn", 3, params);
    FillRandom(params.value(bn.weight_id()), 3, 4, 1.0f);
    FillRandom(params.value(bn.bias_id()), 3, 5, 1.0f);
    FillRandom(params.value(bn.running_mean_id()), 3, 6, 0.5f);
    for (int c = 0; c < 3; ++c) params.value(bn.running_var_id())[c] = 0.5f + c;
    const PassContext ctx{training};
    FloatTensor x = RandomTensor({2, 3, 2, 3}, 7), y, dx;
    bn.Forward(x, y, ctx);
    const FloatTensor r = RandomTensor(y.shape, 8);
    params.ZeroGrads();
    bn.Backward(r, dx);
    auto loss = [&] {
      FloatTensor out;
      bn.Forward(x, out, ctx);
      return Dot(out, r);
    };
    const std::string mode = training ? "train" : "eval";
    ExpectGradient(mode + " dx", x.ptr(), dx.ptr(), x.size(), loss, 1e-2f, 3e-2);
    ExpectGradient(mode + " dgamma", params.value(bn.weight_id()), params.grad(bn.weight_id()), 3,
                   loss);
    ExpectGradient(mode + " dbeta", params.value(bn.bias_id()), params.grad(bn.bias_id()), 3, loss);
  }
}

// A fused clamp is checked against the separate layers it replaces (finite
// differences are unreliable at the clamp's kinks, which BN's batch statistics
// move whenever any input moves).
TEST(BatchNorm2dGradient, FusedClampEqualsSeparateReLU) {
  for (const auto& [training, cap] : std::vector<std::pair<bool, float>>{
           {true, 6.0f}, {true, INFINITY}, {false, 6.0f}}) {
    ParameterStore fused_params, plain_params;
    BatchNorm2d fused("bn", 4, fused_params, cap);
    BatchNorm2d plain("bn", 4, plain_params);
    for (ParameterStore* p : {&fused_params, &plain_params}) {
      FillRandom(p->value(0), 4, 21, 3.0f);  // gamma: wide, so ReLU6 clips
      FillRandom(p->value(1), 4, 22, 1.0f);
    }
    ClampedReLU relu("relu", cap);
    const PassContext ctx{training};
    FloatTensor x = RandomTensor({2, 3, 3, 4}, 23), y_fused, y_bn, y_relu;
    fused.Forward(x, y_fused, ctx);
    plain.Forward(x, y_bn, ctx);
    relu.Forward(y_bn, y_relu);
    ASSERT_EQ(y_fused.data, y_relu.data);
    const FloatTensor r = RandomTensor(x.shape, 24);
    FloatTensor dx_fused, d_bn, dx_plain;
    fused.Backward(r, dx_fused);
    relu.Backward(r, d_bn);
    plain.Backward(d_bn, dx_plain);
    for (int64_t i = 0; i < x.size(); ++i) {
      ASSERT_NEAR(dx_fused.data[i], dx_plain.data[i], 1e-5f) << i;
    }
    for (int i = 0; i < 8; ++i) {
      ASSERT_NEAR(fused_params.grads()[i], plain_params.grads()[i], 1e-5f) << i;
    }
  }
}

TEST(LinearGradient, InputsWeightsBias) {
  ParameterStore params;
  Linear fc("fc", 5, 3, params);
  FillRandom(params.values().data(), params.values().size(), 9);
  FloatTensor x = RandomTensor({4, 5}, 10), y, dx;
  fc.Forward(x, y);
  const FloatTensor r = RandomTensor(y.shape, 11);
  params.ZeroGrads();
  fc.Backward(r, &dx);
  auto loss = [&] {
    FloatTensor out;
    fc.Forward(x, out);
    return Dot(out, r);
  };
  ExpectGradient("dx", x.ptr(), dx.ptr(), x.size(), loss);
  ExpectGradient("dW", params.value(fc.weight_id()), params.grad(fc.weight_id()), 15, loss);
  ExpectGradient("db", params.value(fc.bias_id()), params.grad(fc.bias_id()), 3, loss);
}

TEST(ElementwiseGradient, ReLUReLU6MeanAddDropout) {
  // Inputs kept away from the kinks at 0 and 6, where the derivative jumps.
  FloatTensor x = RandomTensor({2, 3, 3, 4}, 12);
  for (float& v : x.data) v = (v >= 0 ? 0.1f + v : -0.1f + v) * 4.0f;
  for (float cap : {INFINITY, 6.0f}) {
    ClampedReLU relu("relu", cap);
    FloatTensor y, dx;
    relu.Forward(x, y);
    const FloatTensor r = RandomTensor(y.shape, 13);
    relu.Backward(r, dx);
    ExpectGradient("relu", x.ptr(), dx.ptr(), x.size(), [&] {
      FloatTensor out;
      relu.Forward(x, out);
      return Dot(out, r);
    }, 1e-3f);
  }
  MeanHW mean("mean");
  FloatTensor m, dm;
  mean.Forward(x, m);
  const FloatTensor rm = RandomTensor(m.shape, 14);
  mean.Backward(rm, dm);
  ExpectGradient("mean", x.ptr(), dm.ptr(), x.size(), [&] {
    FloatTensor out;
    mean.Forward(x, out);
    return Dot(out, rm);
  });
  Add add("add");
  FloatTensor b = RandomTensor(x.shape, 15), sum, da(x.shape), db(x.shape);
  add.Forward(x, b, sum);
  const FloatTensor rs = RandomTensor(sum.shape, 16);
  add.Backward(rs, da, db);  // += into zeroed gradients
  ExpectGradient("add a", x.ptr(), da.ptr(), x.size(), [&] {
    FloatTensor out;
    add.Forward(x, b, out);
    return Dot(out, rs);
  });
  Dropout dropout("dropout", 0.5f);
  const PassContext ctx{/*training=*/true, /*seed=*/1, /*step=*/7};
  FloatTensor dy, ddx;
  dropout.Forward(x, dy, ctx);
  const FloatTensor rd = RandomTensor(dy.shape, 17);
  dropout.Backward(rd, ddx);
  ExpectGradient("dropout", x.ptr(), ddx.ptr(), x.size(), [&] {
    FloatTensor out;
    dropout.Forward(x, out, ctx);  // same step: same mask
    return Dot(out, rd);
  });
}

TEST(CrossEntropyGradient, MatchesFiniteDifferences) {
  FloatTensor z = RandomTensor({3, 5}, 18), dz;
  const std::vector<int32_t> labels = {0, 4, 2};
  CrossEntropy(z, labels, &dz);
  ExpectGradient("logits", z.ptr(), dz.ptr(), z.size(),
                 [&] { return CrossEntropy(z, labels, nullptr).loss; }, 1e-3f);
}

TEST(DistillationCrossEntropyGradient, MatchesFiniteDifferences) {
  FloatTensor z = RandomTensor({3, 5}, 19), teacher = RandomTensor({3, 5}, 20), dz;
  const std::vector<int32_t> labels = {1, 0, 3};
  DistillationCrossEntropy(z, labels, teacher, 0.7f, &dz);
  ExpectGradient(
      "logits", z.ptr(), dz.ptr(), z.size(),
      [&] { return DistillationCrossEntropy(z, labels, teacher, 0.7f, nullptr).loss; }, 1e-3f);
}

TEST(Conv2dGradient, SameResultWithTwoThreads) {
  // Per-chunk partial sums reduced in a fixed order: the thread count may
  // change results (it changes the chunks) but a given count must repeat.
  for (int threads : {1, 2}) {
    ConfigurePool(threads);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      ParameterStore params;
      Conv2d conv("dw", {8, 8, 3, 1, 1, 8, true}, params);
      FillRandom(params.values().data(), params.values().size(), 19);
      FloatTensor x = RandomTensor({4, 6, 6, 8}, 20), y, dx;
      conv.Forward(x, y);
      conv.Backward(y, &dx);
      if (run == 0) {
        first = params.grads();
      } else {
        EXPECT_EQ(first, params.grads()) << threads << " threads";
      }
    }
  }
  ConfigurePool(1);
}

}  // namespace
}  // namespace qforge
