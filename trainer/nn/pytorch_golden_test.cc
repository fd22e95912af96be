// The trainer against PyTorch 1.13: every layer kind's outputs and gradients,
// and two SGD steps of a tiny MobileNetV2, from the golden files that
// tools/make_trainer_goldens.py writes (tests/testdata/golden/README.md).
// Tensors must agree to a relative error of 1e-4 (trainer/nn/golden_file.h).
#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "trainer/nn/batch_norm.h"
#include "trainer/nn/conv2d.h"
#include "trainer/nn/elementwise.h"
#include "trainer/nn/golden_file.h"
#include "trainer/nn/linear.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/optimizer.h"

namespace qforge {
namespace {

struct ConvCase {
  std::string file;
  Conv2dOptions options;
};

class ConvGolden : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvGolden, MatchesPyTorch) {
  Golden g = Load(GetParam().file);
  ParameterStore params;
  Conv2d conv("conv", GetParam().options, params);
  Set(params, conv.weight_id(), g["weight"]);
  if (conv.bias_id() >= 0) Set(params, conv.bias_id(), g["bias"]);
  FloatTensor y, dx;
  conv.Forward(g["x"], y);
  ExpectClose(y, g["y"], "y");
  conv.Backward(g["dy"], &dx);
  ExpectClose(dx, g["dx"], "dx");
  ExpectClose(params.grad(conv.weight_id()), g["dweight"], "dweight");
  if (conv.bias_id() >= 0) ExpectClose(params.grad(conv.bias_id()), g["dbias"], "dbias");
}

INSTANTIATE_TEST_SUITE_P(
    Layers, ConvGolden,
    ::testing::Values(ConvCase{"conv_3x3_s2_bias", {3, 8, 3, 2, 1, 1, true}},
                      ConvCase{"conv_1x1", {8, 16, 1, 1, 0, 1, false}},
                      ConvCase{"conv_depthwise_3x3", {16, 16, 3, 1, 1, 16, false}},
                      ConvCase{"conv_depthwise_3x3_s2_bias", {8, 8, 3, 2, 1, 8, true}},
                      ConvCase{"conv_grouped_2", {4, 6, 3, 1, 1, 2, true}},
                      ConvCase{"conv_depth_multiplier_2", {4, 8, 3, 1, 0, 4, false}}),
    [](const auto& info) { return info.param.file; });

TEST(BatchNormGolden, TrainAndEvalMatchPyTorch) {
  for (const std::string mode : {"train", "eval"}) {
    Golden g = Load("batch_norm_" + mode);
    ParameterStore params;
    BatchNorm2d bn("bn", 6, params);
    Set(params, bn.weight_id(), g["weight"]);
    Set(params, bn.bias_id(), g["bias"]);
    Set(params, bn.running_mean_id(), g["running_mean"]);
    Set(params, bn.running_var_id(), g["running_var"]);
    FloatTensor y, dx;
    bn.Forward(g["x"], y, PassContext{mode == "train"});
    ExpectClose(y, g["y"], mode + " y");
    ExpectClose(params.value(bn.running_mean_id()), g["new_running_mean"], mode + " running mean");
    ExpectClose(params.value(bn.running_var_id()), g["new_running_var"], mode + " running var");
    bn.Backward(g["dy"], dx);
    ExpectClose(dx, g["dx"], mode + " dx");
    ExpectClose(params.grad(bn.weight_id()), g["dweight"], mode + " dweight");
    ExpectClose(params.grad(bn.bias_id()), g["dbias"], mode + " dbias");
  }
}

TEST(ElementwiseGolden, ReLUAndReLU6MatchPyTorch) {
  for (const auto& [file, cap] : std::vector<std::pair<std::string, float>>{
           {"relu", INFINITY}, {"relu6", 6.0f}}) {
    Golden g = Load(file);
    ClampedReLU relu(file, cap);
    FloatTensor y, dx;
    relu.Forward(g["x"], y);
    ExpectClose(y, g["y"], file + " y");
    relu.Backward(g["dy"], dx);
    ExpectClose(dx, g["dx"], file + " dx");
  }
}

TEST(LinearGolden, MatchesPyTorch) {
  Golden g = Load("linear");
  ParameterStore params;
  Linear fc("fc", 12, 5, params);
  Set(params, fc.weight_id(), g["weight"]);
  Set(params, fc.bias_id(), g["bias"]);
  FloatTensor y, dx;
  fc.Forward(g["x"], y);
  ExpectClose(y, g["y"], "y");
  fc.Backward(g["dy"], &dx);
  ExpectClose(dx, g["dx"], "dx");
  ExpectClose(params.grad(fc.weight_id()), g["dweight"], "dweight");
  ExpectClose(params.grad(fc.bias_id()), g["dbias"], "dbias");
}

TEST(MeanAndLossGolden, MatchPyTorch) {
  Golden m = Load("mean_hw");
  MeanHW mean("mean");
  FloatTensor y, dx;
  mean.Forward(m["x"], y);
  ExpectClose(y, m["y"], "mean y");
  mean.Backward(m["dy"], dx);
  ExpectClose(dx, m["dx"], "mean dx");

  Golden c = Load("cross_entropy");
  std::vector<int32_t> labels(c["labels"].data.begin(), c["labels"].data.end());
  FloatTensor dlogits;
  const LossResult result = CrossEntropy(c["logits"], labels, &dlogits);
  EXPECT_NEAR(result.loss, c["loss"].data[0], 1e-4 * std::fabs(c["loss"].data[0]));
  ExpectClose(dlogits, c["dlogits"], "dlogits");
}

TEST(DistillationLossGolden, MatchesPyTorch) {
  Golden c = Load("distillation_cross_entropy");
  std::vector<int32_t> labels(c["labels"].data.begin(), c["labels"].data.end());
  FloatTensor dlogits;
  const LossResult result = DistillationCrossEntropy(c["logits"], labels, c["teacher_logits"],
                                                     c["teacher_weight"].data[0], &dlogits);
  EXPECT_NEAR(result.loss, c["loss"].data[0], 1e-4 * std::fabs(c["loss"].data[0]));
  ExpectClose(dlogits, c["dlogits"], "dlogits");
}

// Two SGD steps (lr 0.05, momentum 0.9, weight decay 4e-5, Nesterov) of the
// tutorial's MobileNetV2 with a short block table, in training mode.
TEST(MobileNetV2Golden, TwoSgdStepsMatchPyTorch) {
  Golden g = Load("mobilenet_v2_sgd");
  MobileNetV2Config config;
  config.input_channels = 1;
  config.input_size = 16;
  config.num_classes = 10;
  config.width_mult = 0.5f;
  config.small_input = true;
  config.settings = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 2, 2}};
  ParameterStore params;
  MobileNetV2Model model(config, /*relu6=*/true, params, /*dropout=*/0.0f);
  for (int id = 0; id < params.count(); ++id) {
    const std::string& name = params.info(id).name;
    ASSERT_TRUE(g.count("init/" + name)) << "PyTorch has no " << name;
    ASSERT_EQ(params.info(id).shape, g["init/" + name].shape) << name;
    Set(params, id, g["init/" + name]);
  }
  const std::vector<int32_t> labels(g["labels"].data.begin(), g["labels"].data.end());
  Sgd sgd({/*lr=*/0.05f, /*momentum=*/0.9f, /*weight_decay=*/4e-5f, /*nesterov=*/true});
  float largest = 0;  // the largest gradient of step 1
  for (int step = 1; step <= 2; ++step) {
    params.ZeroGrads();
    const FloatTensor& logits = model.Forward(g["x"], PassContext{/*training=*/true});
    FloatTensor dlogits;
    const LossResult loss = CrossEntropy(logits, labels, &dlogits);
    model.Backward(dlogits);
    if (step == 1) {
      ExpectClose(logits, g["step1/logits"], "step 1 logits");
      EXPECT_NEAR(loss.loss, g["step1/loss"].data[0], 1e-4);
      for (int id = 0; id < params.count(); ++id) {
        if (params.info(id).trainable) {
          largest = std::max(largest, MaxAbs(g["step1/grad/" + params.info(id).name]));
        }
      }
      for (int id = 0; id < params.count(); ++id) {
        if (!params.info(id).trainable) continue;
        ExpectClose(params.grad(id), g["step1/grad/" + params.info(id).name],
                    "step 1 gradient of " + params.info(id).name, 0.01f * largest);
      }
    }
    sgd.Step(params.values(), params.grads(), sgd.options().lr, sgd.options().momentum);
  }
  // Values that are zero in exact arithmetic (the biases above, and the running
  // means of convs over batch-normalised inputs) are noise of ~1e-9 after two
  // steps; they are measured against 1% of the largest step, lr * gradient.
  for (int id = 0; id < params.count(); ++id) {
    const std::string& name = params.info(id).name;
    ExpectClose(params.value(id), g["step2/" + name], "after step 2: " + name,
                0.01f * sgd.options().lr * largest);
  }
}

TEST(ScheduleGolden, MatchesPyTorchSchedulers) {
  Golden g = Load("schedules");
  ScheduleOptions one_cycle;
  one_cycle.kind = Schedule::kOneCycle;
  one_cycle.total_iterations = 50;
  ScheduleOptions cosine;
  cosine.kind = Schedule::kCosine;
  cosine.total_iterations = 40;
  ScheduleOptions step;
  step.kind = Schedule::kStep;
  step.iterations_per_epoch = 5;
  step.step_epochs = 2;
  step.gamma = 0.5f;
  for (int64_t i = 0; i < 50; ++i) {
    EXPECT_NEAR(ScheduleAt(one_cycle, i).lr, g["onecycle_lr"].data[i], 1e-6) << i;
    EXPECT_NEAR(ScheduleAt(one_cycle, i).momentum, g["onecycle_momentum"].data[i], 1e-6) << i;
  }
  for (int64_t i = 0; i < 40; ++i) {
    EXPECT_NEAR(ScheduleAt(cosine, i).lr, g["cosine_lr"].data[i], 1e-6) << i;
  }
  for (int64_t i = 0; i < 35; ++i) EXPECT_NEAR(ScheduleAt(step, i).lr, g["step_lr"].data[i], 1e-7) << i;
}

}  // namespace
}  // namespace qforge
