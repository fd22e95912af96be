// Convert on a small trained MobileNetV2: the flat models pass the runtime's
// validation; the float one reproduces the trainer's fused model; the int8 one
// (every qconfig) tracks it closely.
#include "trainer/quant/convert.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/interpreter.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/optimizer.h"
#include "trainer/quant/quant_sim.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

constexpr int kBatch = 16;

class ConvertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MobileNetV2Config config;
    config.input_channels = 1;
    config.input_size = 16;
    config.num_classes = 10;
    config.width_mult = 0.25f;
    config.small_input = true;
    config.settings = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 2, 2}};
    model_ = std::make_unique<MobileNetV2Model>(config, /*relu6=*/true, params_);
    model_->Initialize(5);
    Sgd sgd({0.05f, 0.9f, 0.0f, false});
    FloatTensor dlogits;
    for (int step = 0; step < 10; ++step) {
      const FloatTensor x = Batch(step);
      params_.ZeroGrads();
      CrossEntropy(model_->Forward(x, PassContext{true, 1, step}), Labels(step), &dlogits);
      model_->Backward(dlogits);
      sgd.Step(params_.values(), params_.grads(), 0.05f, 0.9f);
    }
    fused_ = std::make_unique<FusedMobileNetV2>(*model_, params_);
    description_.input_shape = {1, 16, 16, 1};
    description_.normalization = {{0.5f}, {0.25f}};
    description_.class_names = std::vector<std::string>(10, "class");
    description_.dataset = "random";
    description_.producer = "convert_test";
  }

  static FloatTensor Batch(int seed) {
    SplitMix64 rng(DeriveSeed({7, static_cast<uint64_t>(seed)}));
    FloatTensor x({kBatch, 16, 16, 1});
    for (float& v : x.data) v = 2.0f * rng.UniformFloat() - 1.0f;
    return x;
  }
  static std::vector<int32_t> Labels(int seed) {
    SplitMix64 rng(DeriveSeed({8, static_cast<uint64_t>(seed)}));
    std::vector<int32_t> labels(kBatch);
    for (int32_t& l : labels) l = static_cast<int32_t>(rng.Below(10));
    return labels;
  }

  // Runs a converted model on image i of a batch (the flat model has batch 1).
  static std::vector<float> RunFlat(Interpreter& it, const FloatTensor& batch, int i) {
    std::memcpy(it.input_data(0), batch.ptr() + i * 256, 256 * sizeof(float));
    EXPECT_TRUE(it.Invoke().ok());
    const float* out = static_cast<const float*>(it.output_data(0));
    return std::vector<float>(out, out + 10);
  }

  // Calibrates on four batches and converts to int8.
  absl::StatusOr<Model> Convert(const LayerQConfigs& qconfigs) {
    Calibrator calibrator(qconfigs, *fused_);
    for (int b = 0; b < 4; ++b) calibrator.Run(Batch(200 + b));
    return ConvertToInt8(*fused_, calibrator, qconfigs, description_);
  }

  // Relative RMS difference between the runtime's logits for `model` and
  // `reference`'s (default: the fused float model's), on batch `seed`.
  using Reference = std::function<const FloatTensor&(const FloatTensor&)>;
  double RelativeError(const Model& model, int seed, const Reference& reference = nullptr) {
    absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled = CompiledModel::FromModel(model);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    if (!compiled.ok()) return INFINITY;
    auto it = Interpreter::Create(*compiled, {Backend::kFast, 1});
    EXPECT_TRUE(it.ok());
    const FloatTensor x = Batch(seed);
    const FloatTensor expected = reference ? reference(x) : fused_->Forward(x);
    double error = 0, magnitude = 0;
    for (int i = 0; i < kBatch; ++i) {
      const std::vector<float> got = RunFlat(**it, x, i);
      for (int c = 0; c < 10; ++c) {
        const double e = expected.data[i * 10 + c];
        error += (got[c] - e) * (got[c] - e);
        magnitude += e * e;
      }
    }
    return std::sqrt(error / magnitude);
  }

  ParameterStore params_;
  std::unique_ptr<MobileNetV2Model> model_;
  std::unique_ptr<FusedMobileNetV2> fused_;
  ModelDescription description_;
};

TEST_F(ConvertTest, FloatModelReproducesTheFusedModel) {
  absl::StatusOr<Model> model = ConvertToFloat(*fused_, description_);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled = CompiledModel::FromModel(*model);
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  auto it = Interpreter::Create(*compiled, {Backend::kFast, 1});
  ASSERT_TRUE(it.ok());
  const FloatTensor x = Batch(100);
  const FloatTensor expected = fused_->Forward(x);
  for (int i = 0; i < kBatch; ++i) {
    const std::vector<float> got = RunFlat(**it, x, i);
    for (int c = 0; c < 10; ++c) {
      ASSERT_NEAR(got[c], expected.data[i * 10 + c], 1e-4f * (1 + std::fabs(expected.data[i * 10 + c])));
    }
  }
  EXPECT_EQ(model->metadata().class_names_size(), 10);
  EXPECT_FLOAT_EQ(model->preprocessing().std(0), 0.25f);
}

TEST_F(ConvertTest, Int8ModelTracksTheFloatModelForEveryQConfig) {
  for (const std::string& name : QConfigNames()) {
    absl::StatusOr<Model> model = Convert({*NamedQConfig(name), {}, {}});
    ASSERT_TRUE(model.ok()) << name << ": " << model.status();
    // Relative RMS error of the logits: int8 noise, not a broken conversion.
    EXPECT_LT(RelativeError(*model, 300), 0.15) << name;
  }
}

TEST_F(ConvertTest, FloatLayersGetQuantizeAndDequantizeAroundThem) {
  const std::string middle = fused_->blocks()[2].convs[1]->conv.name();
  absl::StatusOr<LayerQConfigs> configs = ParseLayerQConfigs(
      "per_channel_histogram", "", absl::StrCat(middle, ",classifier.1"), *fused_);
  ASSERT_TRUE(configs.ok()) << configs.status();
  absl::StatusOr<Model> model = Convert(*configs);
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::string> conversions;
  for (const Op& op : model->ops()) {
    const Tensor& out = model->tensors(op.outputs(0));
    if (op.name() == middle || op.name() == "classifier.1") {
      EXPECT_EQ(out.type(), FLOAT32) << op.name();
      EXPECT_EQ(model->tensors(op.inputs(1)).type(), FLOAT32) << op.name();
    }
    if (op.kind() == QUANTIZE || op.kind() == DEQUANTIZE) conversions.push_back(op.name());
  }
  // The float conv's input is dequantized and its output quantized for the
  // next int8 conv; the float classifier's logits are the output as they are.
  const std::string before = fused_->blocks()[2].convs[0]->conv.name();
  EXPECT_EQ(conversions, (std::vector<std::string>{"quant", before + ".dequantize",
                                                   middle + ".quantize", "pool.dequantize"}));
  EXPECT_LT(RelativeError(*model, 300), 0.15);
}

TEST_F(ConvertTest, ModelWithEveryLayerInFloatIsTheFloatModel) {
  std::vector<std::string> layers = fused_->LayerNames();
  absl::StatusOr<LayerQConfigs> configs =
      ParseLayerQConfigs("minmax_per_tensor", "", absl::StrJoin(layers, ","), *fused_);
  ASSERT_TRUE(configs.ok()) << configs.status();
  absl::StatusOr<Model> model = Convert(*configs);
  ASSERT_TRUE(model.ok()) << model.status();
  for (const Tensor& t : model->tensors()) EXPECT_EQ(t.type(), FLOAT32) << t.name();
  EXPECT_LT(RelativeError(*model, 300), 1e-5);
}

TEST_F(ConvertTest, OverridesPickTheWeightGranularityPerLayer) {
  const std::string first = fused_->blocks()[0].convs[0]->conv.name();
  absl::StatusOr<LayerQConfigs> configs = ParseLayerQConfigs(
      "per_channel_histogram", absl::StrCat(first, "=minmax_per_tensor"), "", *fused_);
  ASSERT_TRUE(configs.ok()) << configs.status();
  absl::StatusOr<Model> model = Convert(*configs);
  ASSERT_TRUE(model.ok()) << model.status();
  for (const Tensor& t : model->tensors()) {
    if (!absl::EndsWith(t.name(), ".weight")) continue;
    const int scales = t.quantization().scale_size();
    EXPECT_EQ(scales == 1, t.name() == first + ".weight") << t.name() << ": " << scales;
  }
}

// The fake-quant simulation computes what the runtime's int8 kernels compute,
// up to float rounding in its sums: an order of magnitude closer to the
// runtime's logits than the float model is, with float layers or without.
TEST_F(ConvertTest, QuantSimulationTracksTheRuntime) {
  const std::string middle = fused_->blocks()[2].convs[1]->conv.name();
  for (const std::string& float_layers : {std::string(""), middle + ",pool"}) {
    absl::StatusOr<LayerQConfigs> configs =
        ParseLayerQConfigs("per_channel_histogram", "", float_layers, *fused_);
    ASSERT_TRUE(configs.ok()) << configs.status();
    absl::StatusOr<Model> model = Convert(*configs);
    ASSERT_TRUE(model.ok()) << model.status();
    const double float_error = RelativeError(*model, 400);
    absl::StatusOr<std::unique_ptr<QuantSimulation>> sim = QuantSimulation::Create(*fused_, *model);
    ASSERT_TRUE(sim.ok()) << sim.status();
    const double sim_error = RelativeError(*model, 400, [&](const FloatTensor& x) -> const FloatTensor& {
      return (*sim)->Forward(x);
    });
    std::printf("float layers '%s': runtime vs float %.7f, vs simulation %.7f\n",
                float_layers.c_str(), float_error, sim_error);
    EXPECT_LT(sim_error, 0.1 * float_error) << "float layers: " << float_layers;
    EXPECT_LT(sim_error, 0.01) << "float layers: " << float_layers;
    sim->reset();
    fused_ = std::make_unique<FusedMobileNetV2>(*model_, params_);  // the weights sim rewrote
  }
}

// A float layer's output read by a float layer and (quantized) by an int8 one
// is beyond the simulation, which says so rather than disagree.
TEST_F(ConvertTest, QuantSimulationRefusesAValueReadAsFloatAndInt8) {
  absl::StatusOr<LayerQConfigs> configs = ParseLayerQConfigs(
      "per_channel_histogram", "", "features.2.skip_add,features.3.skip_add", *fused_);
  ASSERT_TRUE(configs.ok()) << configs.status();
  absl::StatusOr<Model> model = Convert(*configs);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_LT(RelativeError(*model, 400), 0.15);  // the runtime runs it all the same
  absl::StatusOr<std::unique_ptr<QuantSimulation>> sim = QuantSimulation::Create(*fused_, *model);
  EXPECT_EQ(sim.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(sim.status().message(), HasSubstr("'features.2.skip_add', read in float by "
                                                "'features.3.skip_add'"));
}

TEST_F(ConvertTest, BadLayerQConfigsAreErrors) {
  EXPECT_THAT(ParseLayerQConfigs("per_channel_histogram", "", "features.99", *fused_)
                  .status().message(),
              HasSubstr("'features.99' is not a layer of this model"));
  EXPECT_THAT(ParseLayerQConfigs("per_channel_histogram", "pool", "", *fused_).status().message(),
              HasSubstr("layer=qconfig"));
  EXPECT_THAT(ParseLayerQConfigs("per_channel_histogram", "pool=int4", "", *fused_)
                  .status().message(),
              HasSubstr("unknown qconfig 'int4'"));
  EXPECT_FALSE(ParseLayerQConfigs("int4", "", "", *fused_).ok());
}

TEST_F(ConvertTest, UnknownQConfigAndUncalibratedModelAreErrors) {
  EXPECT_FALSE(NamedQConfig("fp4").ok());
  const LayerQConfigs qconfigs{*NamedQConfig("minmax_per_tensor"), {}, {}};
  Calibrator calibrator(qconfigs, *fused_);  // never run
  absl::StatusOr<Model> model = ConvertToInt8(*fused_, calibrator, qconfigs, description_);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(std::string(model.status().message()).find("nothing was observed at quant"),
            std::string::npos);
}

}  // namespace
}  // namespace qforge
