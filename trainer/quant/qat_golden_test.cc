// FakeQuantize, the QAT modules and the whole QAT MobileNetV2 against PyTorch
// 1.13, from the golden files tools/make_qat_goldens.py writes: outputs, input
// and parameter gradients and the observed quantization parameters, to 1e-4
// relative.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "trainer/nn/golden_file.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/optimizer.h"
#include "trainer/quant/qat_model.h"
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

// Scale and zero point as PyTorch's parameters hold them: the learned
// zero point unrounded.
void ExpectLearnedRange(const FakeQuantize& fq, const Golden& g, const std::string& suffix) {
  absl::StatusOr<Range> range = fq.ObservedRange();
  ASSERT_TRUE(range.ok()) << range.status();
  absl::StatusOr<AffineRange> affine = ToAffineRange(*range);
  ASSERT_TRUE(affine.ok()) << affine.status();
  ExpectClose(&affine->scale, g.at("scale" + suffix), "scale" + suffix);
  ExpectClose(&affine->zero_point, g.at("zero_point" + suffix), "zero_point" + suffix);
}

TEST(FakeQuantizeGolden, LearnsItsRangeAsLearnableFakeQuantize) {
  Golden g = Load("learnable_fake_quantize");
  ParameterStore state;
  FakeQuantize fq("act", state);
  FloatTensor y, dx;
  for (int k = 0; k < 5; ++k) {
    const std::string s = std::to_string(k);
    if (k == 2) {
      // PyTorch starts learning from the observer's rounded zero point,
      // qforge from the range's unrounded one (the same grid): start both
      // from PyTorch's.
      absl::StatusOr<QuantParams> p = fq.Params();
      ASSERT_TRUE(p.ok()) << p.status();
      fq.SetRange(FromAffineRange({p->scale, static_cast<float>(p->zero_point)}));
      fq.set_observer_enabled(false);
      fq.set_range_learning(true);
    }
    fq.Forward(g["x" + s], y);
    ExpectClose(y, g["y" + s], "y" + s);
    fq.Backward(g["dy" + s], dx);
    ExpectClose(dx, g["dx" + s], "dx" + s);
    if (k >= 2) {
      const float gradient[2] = {static_cast<float>(fq.range_gradient()[0]),
                                 static_cast<float>(fq.range_gradient()[1])};
      ExpectClose(&gradient[0], g["dscale" + s], "dscale" + s);
      ExpectClose(&gradient[1], g["dzero_point" + s], "dzero_point" + s);
      fq.StepRange(g["lr"].data[0]);
      ExpectLearnedRange(fq, g, s);
    } else {
      ExpectParams(fq, g, s);
    }
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

// The tutorial's QAT on a MobileNetV2 with a short block table (PyTorch's
// fuse_model and prepare_qat, with qforge's fake quantizers and its pooled
// features' one): three SGD steps at lr 0.05 on batch statistics, with BN
// frozen, and with the observers off too. Each step's logits and loss, then
// every weight, BN statistic and observed range.
TEST(QatMobileNetV2Golden, ThreeStepsMatchPyTorch) {
  Golden g = Load("qat_mobilenet_v2");
  MobileNetV2Config config;
  config.input_channels = 1;
  config.input_size = 16;
  config.num_classes = 10;
  config.width_mult = 0.5f;
  config.small_input = true;
  config.settings = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 2, 2}};
  ParameterStore params;
  MobileNetV2Model model(config, /*relu6=*/false, params, /*dropout=*/0.0f);
  for (int id = 0; id < params.count(); ++id) {
    const std::string& name = params.info(id).name;
    ASSERT_TRUE(g.count("init/" + name)) << "PyTorch has no " << name;
    ASSERT_EQ(params.info(id).shape, g["init/" + name].shape) << name;
    Set(params, id, g["init/" + name]);
  }
  QatMobileNetV2 qat(model, params, /*dropout=*/0.0f);
  Sgd sgd({/*lr=*/0.05f, /*momentum=*/0.0f, /*weight_decay=*/0.0f, /*nesterov=*/false});
  for (int k = 0; k < 3; ++k) {
    const std::string s = std::to_string(k);
    if (k == 1) qat.set_freeze_bn(true);
    if (k == 2) {
      qat.set_activation_observers_enabled(false);
      qat.set_weight_observers_enabled(false);
    }
    params.ZeroGrads();
    const FloatTensor& logits = qat.Forward(g["x" + s], PassContext{/*training=*/true});
    ExpectClose(logits, g["logits" + s], "logits of step " + s);
    const std::vector<int32_t> labels(g["labels" + s].data.begin(), g["labels" + s].data.end());
    FloatTensor dlogits;
    const LossResult loss = CrossEntropy(logits, labels, &dlogits);
    EXPECT_NEAR(loss.loss, g["loss" + s].data[0], 1e-4) << "step " << s;
    qat.Backward(dlogits);
    sgd.Step(params.values(), params.grads(), sgd.options().lr, sgd.options().momentum);
  }
  for (int id = 0; id < params.count(); ++id) {
    const std::string& name = params.info(id).name;
    ExpectClose(params.value(id), g["final/" + name], "after step 3: " + name);
  }
  int ranges = 0;
  for (const auto& [key, want] : g) {
    if (key.rfind("range/", 0) == 0) {
      absl::StatusOr<Range> range = qat.ActivationRange(key.substr(6));
      ASSERT_TRUE(range.ok()) << range.status();
      const float got[] = {range->first, range->second};
      ExpectClose(got, want, key);
      ++ranges;
    } else if (key.rfind("weight_range/", 0) == 0) {
      std::optional<absl::StatusOr<std::vector<Range>>> got = qat.WeightRanges(key.substr(13));
      ASSERT_TRUE(got.has_value() && got->ok()) << key;
      const int64_t channels = want.shape[1];
      ASSERT_EQ(static_cast<int64_t>((*got)->size()), channels) << key;
      std::vector<float> flat(2 * channels);
      for (int64_t c = 0; c < channels; ++c) {
        flat[c] = (**got)[c].first;
        flat[channels + c] = (**got)[c].second;
      }
      ExpectClose(flat.data(), want, key);
      ++ranges;
    }
  }
  EXPECT_EQ(ranges, 2 + 2 * 16 + 2 + 2);  // input, pool; 16 convs; 2 adds; the classifier
}

}  // namespace
}  // namespace qforge
