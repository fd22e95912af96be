// Convert on a small trained MobileNetV2: the flat models pass the runtime's
// validation; the float one reproduces the trainer's fused model; the int8 one
// (every qconfig) tracks it closely.
#include "trainer/convert.h"

#include <cmath>
#include <cstring>

#include "common/random.h"
#include "gtest/gtest.h"
#include "runtime/interpreter.h"
#include "trainer/loss.h"
#include "trainer/optimizer.h"

namespace qforge {
namespace {

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
  auto it = Interpreter::Create(*compiled, {Backend::kXnnpack, 1});
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
    const QConfig qconfig = *NamedQConfig(name);
    Calibrator calibrator(qconfig, *fused_);
    for (int b = 0; b < 4; ++b) calibrator.Run(Batch(200 + b));
    absl::StatusOr<Model> model = ConvertToInt8(*fused_, calibrator, qconfig, description_);
    ASSERT_TRUE(model.ok()) << name << ": " << model.status();
    absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled = CompiledModel::FromModel(*model);
    ASSERT_TRUE(compiled.ok()) << name << ": " << compiled.status();
    auto it = Interpreter::Create(*compiled, {Backend::kXnnpack, 1});
    ASSERT_TRUE(it.ok());
    const FloatTensor x = Batch(300);
    const FloatTensor expected = fused_->Forward(x);
    double error = 0, magnitude = 0;
    for (int i = 0; i < kBatch; ++i) {
      const std::vector<float> got = RunFlat(**it, x, i);
      for (int c = 0; c < 10; ++c) {
        const double e = expected.data[i * 10 + c];
        error += (got[c] - e) * (got[c] - e);
        magnitude += e * e;
      }
    }
    // Relative RMS error of the logits: int8 noise, not a broken conversion.
    EXPECT_LT(std::sqrt(error / magnitude), 0.15) << name;
  }
}

TEST_F(ConvertTest, UnknownQConfigAndUncalibratedModelAreErrors) {
  EXPECT_FALSE(NamedQConfig("fp4").ok());
  const QConfig qconfig = *NamedQConfig("minmax_per_tensor");
  Calibrator calibrator(qconfig, *fused_);  // never run
  absl::StatusOr<Model> model = ConvertToInt8(*fused_, calibrator, qconfig, description_);
  ASSERT_FALSE(model.ok());
  EXPECT_NE(std::string(model.status().message()).find("nothing was observed at quant"),
            std::string::npos);
}

}  // namespace
}  // namespace qforge
