// FakeQuantize and the QAT modules against PyTorch 1.13, from the golden files
// tools/make_qat_goldens.py writes: outputs, input and parameter gradients and
// the observed quantization parameters, to 1e-4 relative.
#include <cmath>
#include <ostream>
#include <string>

#include "gtest/gtest.h"
#include "trainer/nn/golden_file.h"
#include "trainer/quant/qat_modules.h"

namespace qforge {
namespace {

void ExpectParams(const FakeQuantize& fq, const Golden& g, const std::string& suffix) {
  absl::StatusOr<QuantParams> p = fq.Params();
  ASSERT_TRUE(p.ok()) << p.status();
  ExpectClose(&p->scale, g.at("scale" + suffix), "scale" + suffix);
  EXPECT_EQ(p->zero_point, static_cast<int32_t>(g.at("zero_point" + suffix).data[0])) << suffix;
}

TEST(FakeQuantizeGolden, ObservesFakeQuantizesAndSwitchesOff) {
  Golden g = Load("fake_quantize");
  ParameterStore state;
  FakeQuantize fq("act", state);
  FloatTensor y, dx;
  for (int k = 0; k < 4; ++k) {
    const std::string s = std::to_string(k);
    if (k == 2) fq.set_observer_enabled(false);
    if (k == 3) fq.set_fake_quant_enabled(false);
    fq.Forward(g["x" + s], y);
    ExpectClose(y, g["y" + s], "y" + s);
    fq.Backward(g["dy" + s], dx);
    ExpectClose(dx, g["dx" + s], "dx" + s);
    ExpectParams(fq, g, s);
  }
}

TEST(WeightFakeQuantizeGolden, PerChannelMovingAverage) {
  Golden g = Load("weight_fake_quantize");
  ParameterStore state;
  WeightFakeQuantize fq("w", 4, state);
  for (int k = 0; k < 2; ++k) {
    const std::string s = std::to_string(k);
    const FloatTensor& w = g["w" + s];
    FloatTensor y(w.shape), dw(w.shape);
    fq.Forward(w.ptr(), w.size(), y.ptr());
    ExpectClose(y, g["y" + s], "y" + s);
    fq.Backward(g["dy" + s].ptr(), w.size(), dw.ptr());
    ExpectClose(dw, g["dw" + s], "dw" + s);
    absl::StatusOr<std::vector<float>> scales = fq.Scales();
    ASSERT_TRUE(scales.ok());
    ExpectClose(scales->data(), g["scales" + s], "scales" + s);
  }
}

struct ConvBnCase {
  std::string file;
  Conv2dOptions options;
  float clamp_max;
};

void PrintTo(const ConvBnCase& c, std::ostream* os) { *os << c.file; }

class QatConvBnGolden : public ::testing::TestWithParam<ConvBnCase> {};

TEST_P(QatConvBnGolden, TrainsThenFreezesBatchNorm) {
  const ConvBnCase& c = GetParam();
  Golden g = Load(c.file);
  ParameterStore params, state;
  Conv2d conv("conv", c.options, params);
  BatchNorm2d bn("bn", c.options.out_channels, params, c.clamp_max);
  Set(params, conv.weight_id(), g["weight"]);
  Set(params, bn.weight_id(), g["gamma"]);
  Set(params, bn.bias_id(), g["beta"]);
  Set(params, bn.running_mean_id(), g["running_mean0"]);
  Set(params, bn.running_var_id(), g["running_var0"]);
  QatConvBn qat(conv, bn, params, state);
  FloatTensor dx;
  for (int k = 0; k < 2; ++k) {
    const std::string s = std::to_string(k);
    if (k == 1) qat.set_freeze_bn(true);
    params.ZeroGrads();
    const FloatTensor& y = qat.Forward(g["x" + s], PassContext{/*training=*/true});
    ExpectClose(y, g["y" + s], "y" + s);
    qat.Backward(g["dy" + s], &dx);
    ExpectClose(dx, g["dx" + s], "dx" + s);
    ExpectClose(params.grad(conv.weight_id()), g["dweight" + s], "dweight" + s);
    ExpectClose(params.grad(bn.weight_id()), g["dgamma" + s], "dgamma" + s);
    ExpectClose(params.grad(bn.bias_id()), g["dbeta" + s], "dbeta" + s);
    const std::string next = std::to_string(k + 1);
    ExpectClose(params.value(bn.running_mean_id()), g["running_mean" + next], "mean" + next);
    ExpectClose(params.value(bn.running_var_id()), g["running_var" + next], "var" + next);
    ExpectClose(qat.weight_fake_quant().Scales()->data(), g["weight_scales" + s],
                "weight scales " + s);
    ExpectParams(qat.output_fake_quant(), Golden{{"scale" + s, g["output_scale" + s]},
                                                 {"zero_point" + s, g["output_zero_point" + s]}},
                 s);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, QatConvBnGolden,
    ::testing::Values(ConvBnCase{"qat_conv_bn_relu6", {4, 6, 3, 1, 1, 1, false}, 6.0f},
                      ConvBnCase{"qat_conv_bn_relu", {6, 8, 1, 1, 0, 1, false}, INFINITY},
                      ConvBnCase{"qat_conv_bn_depthwise", {6, 6, 3, 2, 1, 6, false}, NAN}),
    [](const ::testing::TestParamInfo<ConvBnCase>& info) { return info.param.file; });

TEST(QatConvActGolden, ConvReluMatchesPyTorch) {
  Golden g = Load("qat_conv_relu");
  ParameterStore params, state;
  Conv2d conv("conv", {3, 5, 3, 2, 1, 1, /*bias=*/true}, params);
  Set(params, conv.weight_id(), g["weight"]);
  Set(params, conv.bias_id(), g["bias"]);
  QatConvAct qat(conv, INFINITY, params, state);
  FloatTensor dx;
  ExpectClose(qat.Forward(g["x"]), g["y"], "y");
  qat.Backward(g["dy"], &dx);
  ExpectClose(dx, g["dx"], "dx");
  ExpectClose(params.grad(conv.weight_id()), g["dweight"], "dweight");
  ExpectClose(params.grad(conv.bias_id()), g["dbias"], "dbias");
}

TEST(QatLinearGolden, MatchesPyTorch) {
  Golden g = Load("qat_linear");
  ParameterStore params, state;
  Linear linear("fc", 6, 4, params);
  Set(params, linear.weight_id(), g["weight"]);
  Set(params, linear.bias_id(), g["bias"]);
  QatLinear qat(linear, params, state);
  FloatTensor dx;
  ExpectClose(qat.Forward(g["x"]), g["y"], "y");
  qat.Backward(g["dy"], &dx);
  ExpectClose(dx, g["dx"], "dx");
  ExpectClose(params.grad(linear.weight_id()), g["dweight"], "dweight");
  ExpectClose(params.grad(linear.bias_id()), g["dbias"], "dbias");
}

}  // namespace
}  // namespace qforge
