// GradientBuckets sums a bucket as soon as its gradients are reported final:
// each model's backward pass must report every trainable parameter exactly
// once, and only after the last write to its gradient.
#include <map>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/quant/qat_model.h"

namespace qforge {
namespace {

// Keeps each reported parameter's gradient as it was when reported.
class SnapshotListener : public GradientListener {
 public:
  explicit SnapshotListener(ParameterStore& params) : params_(params) {}
  void Final(int id) override {
    const float* g = params_.grad(id);
    auto [it, inserted] = reported_.try_emplace(id, g, g + params_.info(id).size);
    EXPECT_TRUE(inserted) << params_.info(id).name << " reported twice";
  }
  // Every trainable parameter was reported, with the gradient it has now.
  void ExpectAllFinal() const {
    for (int id = 0; id < params_.count(); ++id) {
      if (!params_.info(id).trainable) continue;
      auto it = reported_.find(id);
      ASSERT_NE(it, reported_.end()) << params_.info(id).name << " never reported";
      const float* g = params_.grad(id);
      EXPECT_EQ(it->second, std::vector<float>(g, g + params_.info(id).size))
          << params_.info(id).name << " changed after it was reported final";
    }
  }

 private:
  ParameterStore& params_;
  std::map<int, std::vector<float>> reported_;
};

class GradientsFinalTest : public ::testing::Test {
 protected:
  GradientsFinalTest() {
    config_.input_channels = 1;
    config_.input_size = 28;
    config_.num_classes = 10;
    config_.width_mult = 0.25f;
    config_.small_input = true;
    SplitMix64 rng(5);
    for (float& v : x_.data) v = 2.0f * rng.UniformFloat() - 1.0f;
    for (int32_t& l : labels_) l = static_cast<int32_t>(rng.Below(10));
  }
  MobileNetV2Config config_;
  FloatTensor x_{{8, 28, 28, 1}}, dlogits_;
  std::vector<int32_t> labels_ = std::vector<int32_t>(8);
};

TEST_F(GradientsFinalTest, FloatModel) {
  ParameterStore params;
  MobileNetV2Model model(config_, /*relu6=*/true, params);
  model.Initialize(3);
  CrossEntropy(model.Forward(x_, PassContext{true, 1, 0}), labels_, &dlogits_);
  SnapshotListener listener(params);
  model.Backward(dlogits_, &listener);
  listener.ExpectAllFinal();
}

TEST_F(GradientsFinalTest, QatModel) {
  ParameterStore params;
  MobileNetV2Model model(config_, /*relu6=*/true, params);
  model.Initialize(3);
  QatMobileNetV2 qat(model, params, /*dropout=*/0.2f);
  CrossEntropy(qat.Forward(x_, PassContext{true, 1, 0}), labels_, &dlogits_);
  SnapshotListener listener(params);
  qat.Backward(dlogits_, &listener);
  listener.ExpectAllFinal();
}

}  // namespace
}  // namespace qforge
