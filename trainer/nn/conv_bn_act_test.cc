// ConvBnAct fuses its layers' passes: in forward the conv gathers the batch
// statistics its batch norm needs; in backward the batch norm hands its dx to
// the conv a block of rows at a time (never written whole). Both must give
// what the two layers' separate passes give.
#include <cmath>
#include <string>
#include <vector>

#include "common/random.h"
#include "gtest/gtest.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/parallel.h"

namespace qforge {
namespace {

struct Case {
  std::string name;
  ConvLayer layer;
  int size;  // input height and width
};

class ConvBnActTest : public ::testing::TestWithParam<std::tuple<Case, int>> {
 protected:
  void TearDown() override { ConfigurePool(1); }
};

void Fill(float* v, int64_t n, uint64_t seed) {
  SplitMix64 rng(seed);
  for (int64_t i = 0; i < n; ++i) v[i] = 2.0f * rng.UniformFloat() - 1.0f;
}

// A ConvBnAct with random weights, and a random batch of three inputs.
struct RandomLayer {
  explicit RandomLayer(const Case& c)
      : layer(c.layer, /*relu6=*/true, params), x({3, c.size, c.size, c.layer.in_channels}) {
    for (int id = 0; id < params.count(); ++id) {
      if (params.info(id).trainable) Fill(params.value(id), params.info(id).size, 10 + id);
    }
    Fill(x.ptr(), x.size(), 1);
    params.ZeroGrads();
  }
  ParameterStore params;
  ConvBnAct layer;
  FloatTensor x;
};

// Runs forward then backward with the fused passes or the separate ones, and
// returns y, dx and every parameter gradient.
std::vector<float> Gradients(const Case& c, bool fused) {
  RandomLayer random(c);
  ConvBnAct& layer = random.layer;
  const FloatTensor& x = random.x;
  const PassContext training{true, 0, 0};
  FloatTensor separate_y;
  if (!fused) {
    layer.conv.Forward(x, layer.conv_out);
    layer.bn.Forward(layer.conv_out, separate_y, training);
  }
  const FloatTensor& y = fused ? layer.Forward(x, training) : separate_y;
  FloatTensor dy(y.shape), dx;
  Fill(dy.ptr(), dy.size(), 2);
  if (fused) {
    layer.Backward(dy, &dx);
  } else {
    FloatTensor d_conv;
    layer.bn.Backward(dy, d_conv);
    layer.conv.Backward(d_conv, &dx);
  }
  std::vector<float> out(y.data.begin(), y.data.end());
  out.insert(out.end(), dx.data.begin(), dx.data.end());
  out.insert(out.end(), random.params.grads().begin(), random.params.grads().end());
  return out;
}

TEST_P(ConvBnActTest, FusedPassesMatchSeparateLayers) {
  const auto& [c, threads] = GetParam();
  ConfigurePool(threads);
  const std::vector<float> fused = Gradients(c, true), separate = Gradients(c, false);
  ASSERT_EQ(fused.size(), separate.size());
  for (size_t i = 0; i < fused.size(); ++i) {
    // The batch statistics and the weight gradient's sums are grouped by
    // other blocks of rows.
    ASSERT_NEAR(fused[i], separate[i], 1e-4f * (1.0f + std::fabs(separate[i]))) << "at " << i;
  }
}

// Collects the rows an observer is handed.
class RowRecorder : public RowsObserver {
 public:
  RowRecorder(int64_t rows, int64_t channels) : rows_(rows * channels, NAN), channels_(channels) {}
  void Observe(int, int64_t begin, int64_t end, const float* rows) override {
    std::copy(rows, rows + (end - begin) * channels_, rows_.begin() + begin * channels_);
  }
  const std::vector<float>& rows() const { return rows_; }

 private:
  std::vector<float> rows_;
  int64_t channels_;
};

// With accumulate_dx, dx += the layer's input gradient; the observer sees
// every row of the final dx.
TEST_P(ConvBnActTest, AccumulatedDxIsObservedWhole) {
  const auto& [c, threads] = GetParam();
  ConfigurePool(threads);
  RandomLayer random(c);
  ConvBnAct& layer = random.layer;
  const FloatTensor& x = random.x;
  const FloatTensor& y = layer.Forward(x, PassContext{true, 0, 0});
  FloatTensor dy(y.shape), plain, summed(x.shape);
  Fill(dy.ptr(), dy.size(), 2);
  layer.Backward(dy, &plain);
  Fill(summed.ptr(), summed.size(), 3);
  const FloatTensor before = summed;
  RowRecorder recorder(x.size() / c.layer.in_channels, c.layer.in_channels);
  layer.Backward(dy, &summed, false, &recorder, /*accumulate_dx=*/true);
  for (int64_t i = 0; i < x.size(); ++i) {
    const float want = before.data[i] + plain.data[i];
    ASSERT_NEAR(summed.data[i], want, 1e-5f * (1.0f + std::fabs(want))) << "at " << i;
    ASSERT_EQ(recorder.rows()[i], summed.data[i]) << "at " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Layers, ConvBnActTest,
    ::testing::Combine(
        ::testing::Values(
            // Wide enough that a block of rows is smaller than a thread's share.
            Case{"pointwise", {"f.0", 24, 1100, 1, 1, 1, true}, 9},
            Case{"pointwise_linear", {"f.0", 37, 21, 1, 1, 1, false}, 7},
            Case{"depthwise", {"f.0", 19, 19, 3, 1, 19, true}, 6},
            Case{"depthwise_stride_2", {"f.0", 21, 21, 3, 2, 21, true}, 7},
            Case{"first_conv", {"f.0", 3, 8, 3, 2, 1, true}, 9}),
        ::testing::Values(1, 3)),
    [](const auto& info) {
      return std::get<0>(info.param).name + "_" + std::to_string(std::get<1>(info.param));
    });

}  // namespace
}  // namespace qforge
