// Observers on hand-checked data, and against PyTorch 1.13's observers on the
// same batches (tests/testdata/golden/observers.bin, written by
// tools/make_observer_goldens.py).
#include "trainer/quant/observers.h"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "common/quantization.h"
#include "common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/nn/golden_file.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

TEST(MinMaxObserver, TracksTheExtremesAndSkipsNaN) {
  MinMaxObserver observer;
  EXPECT_THAT(observer.GetRange().status().message(), HasSubstr("no values"));
  const std::vector<float> a = {1.0f, -2.0f, NAN}, b = {0.5f, 3.0f};
  observer.Observe(a.data(), 3);
  observer.Observe(b.data(), 2);
  EXPECT_EQ(*observer.GetRange(), Range(-2.0f, 3.0f));
}

TEST(MovingAverageMinMaxObserver, FirstBatchThenAverages) {
  MovingAverageMinMaxObserver observer(0.5f);
  const std::vector<float> a = {-1.0f, 1.0f}, b = {-3.0f, 5.0f};
  observer.Observe(a.data(), 2);
  observer.Observe(b.data(), 2);
  EXPECT_EQ(*observer.GetRange(), Range(-2.0f, 3.0f));  // halfway to the new extremes
}

TEST(PerChannelMinMaxObserver, OneRangePerSliceAlongTheAxis) {
  PerChannelMinMaxObserver observer;
  const std::vector<float> w = {1, -2, 3, -4, 5, 6};  // [2, 3]: channels are rows
  observer.Observe(w.data(), {2, 3}, 0);
  EXPECT_THAT(*observer.GetRanges(), ::testing::ElementsAre(Range(-2, 3), Range(-4, 6)));
  PerChannelMinMaxObserver columns;
  columns.Observe(w.data(), {2, 3}, 1);
  EXPECT_THAT(*columns.GetRanges(),
              ::testing::ElementsAre(Range(-4, 1), Range(-2, 5), Range(3, 6)));
}

TEST(HistogramObserver, KeepsAnOutlierWhoseClippingCostsMoreThanItSaves) {
  // 10,000 values over [0, 1) and one at 100. Clipping at 1 would cost the
  // outlier 99^2 of squared error; quantizing [0, 100] in 256 steps costs the
  // bulk about 10,000 * (100/256)^2 / 12 = 127. The L2 search keeps the range.
  std::vector<float> values(10000);
  for (int i = 0; i < 10000; ++i) values[i] = i / 10000.0f;
  values.push_back(100.0f);
  HistogramObserver observer;
  observer.Observe(values.data(), static_cast<int64_t>(values.size()));
  const Range range = *observer.GetRange();
  EXPECT_EQ(range.first, 0.0f);
  EXPECT_GT(range.second, 99.0f);
}

TEST(HistogramObserver, UniformDataKeepsItsRangeAcrossGrowingBatches) {
  // Two batches, the second twice as wide: the first histogram is re-binned
  // onto the wider grid, and the search keeps the whole range.
  std::vector<float> narrow(5000), wide(5000);
  for (int i = 0; i < 5000; ++i) narrow[i] = i / 5000.0f, wide[i] = 2.0f * i / 5000.0f;
  HistogramObserver observer;
  observer.Observe(narrow.data(), 5000);
  observer.Observe(wide.data(), 5000);
  double total = 0;
  for (float count : observer.histogram()) total += count;
  EXPECT_NEAR(total, 10000.0, 1e-2);
  const Range range = *observer.GetRange();
  EXPECT_EQ(range.first, 0.0f);
  EXPECT_NEAR(range.second, 2.0f, 2.0f / 2048 * 2);
}

TEST(PercentileObserver, ClipsTheExtremeTails) {
  // 0 .. 9999 once each: the 99% range is [99.99, 9899.01] by linear interpolation.
  std::vector<float> values(10000);
  for (int i = 0; i < 10000; ++i) values[i] = static_cast<float>(i);
  PercentileObserver observer(0.99);
  observer.Observe(values.data(), 10000);
  const Range range = *observer.GetRange();
  EXPECT_NEAR(range.first, 100.0f, 5.0f);
  EXPECT_NEAR(range.second, 9900.0f, 5.0f);
  EXPECT_FALSE(PercentileObserver().GetRange().ok());
}

TEST(MseObserver, ClipsLaplaceTailsWhereTheoryPutsTheOptimum) {
  // Laplace(0, 1) samples: the MSE-optimal 8-bit clip is about 9.89 (Banner et
  // al., ACIQ, arXiv 1810.05723), inside the largest of 200,000 samples (~12).
  SplitMix64 rng(17);
  std::vector<float> values(200000);
  for (float& v : values) {
    const double u = rng.UniformDouble() - 0.5;  // inverse CDF of the Laplace distribution
    v = static_cast<float>((u < 0 ? 1.0 : -1.0) * std::log(1.0 - 2.0 * std::fabs(u)));
  }
  MseObserver observer;
  observer.Observe(values.data(), static_cast<int64_t>(values.size()));
  const Range range = *observer.GetRange();
  EXPECT_LT(range.second, observer.max());
  EXPECT_NEAR(range.second, 9.9f, 1.5f);
  EXPECT_LT(observer.SquaredError(range.first, range.second),
            observer.SquaredError(observer.min(), observer.max()));
}

TEST(MseObserver, KeepsUniformDataAndIsolatedOutliers) {
  // Clipping a lone far value costs its whole distance squared: MSE keeps it.
  std::vector<float> values(20000);
  for (int i = 0; i < 20000; ++i) values[i] = -1.0f + 2.0f * i / 20000.0f;
  MseObserver uniform;
  uniform.Observe(values.data(), 20000);
  EXPECT_NEAR(uniform.GetRange()->second, 1.0f, 0.01f);
  values.push_back(40.0f);
  MseObserver outlier;
  outlier.Observe(values.data(), static_cast<int64_t>(values.size()));
  EXPECT_GT(outlier.GetRange()->second, 36.0f);  // trims a few percent at most
}

using Golden = std::map<std::string, FloatTensor>;

class ObserverGolden : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<Golden> g = ReadGoldenFile("tests/testdata/golden/observers.bin");
    ASSERT_TRUE(g.ok()) << g.status();
    golden_ = *std::move(g);
  }
  float Value(const std::string& name) { return golden_[name].data[0]; }
  void ObserveAll(RangeObserver& observer) {
    for (int i = 0; i < 4; ++i) {
      const FloatTensor& batch = golden_["batch" + std::to_string(i)];
      observer.Observe(batch.ptr(), batch.size());
    }
  }
  // Our int8 parameters for a range, against PyTorch's for the same observer.
  void ExpectParams(const Range& range, const std::string& name) {
    absl::StatusOr<QuantParams> p = ChooseActivationParams(range.first, range.second);
    ASSERT_TRUE(p.ok());
    EXPECT_FLOAT_EQ(p->scale, Value(name + "/scale")) << name;
    EXPECT_EQ(p->zero_point, static_cast<int32_t>(Value(name + "/zero_point"))) << name;
  }
  Golden golden_;
};

TEST_F(ObserverGolden, MinMaxAndMovingAverageMatchPyTorch) {
  for (const std::string name : {"minmax", "moving_average"}) {
    std::unique_ptr<RangeObserver> observer;
    if (name == "minmax") {
      observer = std::make_unique<MinMaxObserver>();
    } else {
      observer = std::make_unique<MovingAverageMinMaxObserver>(0.01f);
    }
    ObserveAll(*observer);
    const Range range = *observer->GetRange();
    EXPECT_FLOAT_EQ(range.first, Value(name + "/min")) << name;
    EXPECT_FLOAT_EQ(range.second, Value(name + "/max")) << name;
    ExpectParams(range, name);
  }
}

TEST_F(ObserverGolden, PerChannelMatchesPyTorch) {
  const FloatTensor& w = golden_["per_channel/weights"];
  PerChannelMinMaxObserver observer;
  observer.Observe(w.ptr(), w.shape, 0);
  const std::vector<Range> ranges = *observer.GetRanges();
  std::vector<float> mins, maxs;
  for (const Range& r : ranges) mins.push_back(r.first), maxs.push_back(r.second);
  const std::vector<float> scales = *ChooseWeightScalesPerChannel(mins, maxs);
  ASSERT_EQ(scales.size(), 6u);
  for (int c = 0; c < 6; ++c) {
    EXPECT_FLOAT_EQ(mins[c], golden_["per_channel/min"].data[c]);
    // The same float32 division as PyTorch's: equal to the bit.
    EXPECT_EQ(scales[c], golden_["per_channel/scales"].data[c]) << "channel " << c;
  }
}

TEST_F(ObserverGolden, HistogramMatchesPyTorch) {
  HistogramObserver observer;
  ObserveAll(observer);
  EXPECT_FLOAT_EQ(observer.min(), Value("histogram/min"));
  EXPECT_FLOAT_EQ(observer.max(), Value("histogram/max"));
  // The histograms agree but for float rounding at bin edges.
  const FloatTensor& theirs = golden_["histogram/histogram"];
  double total = 0, difference = 0;
  for (int b = 0; b < 2048; ++b) {
    total += theirs.data[b];
    difference += std::fabs(observer.histogram()[b] - theirs.data[b]);
  }
  EXPECT_NEAR(total, 16000.0, 1.0);
  EXPECT_LT(difference, 0.001 * total) << "sum of |bin differences| " << difference;
  // The L2 search lands on the same range, within one source bin.
  const Range range = *observer.GetRange();
  const float bin = (observer.max() - observer.min()) / 2048;
  EXPECT_NEAR(range.first, Value("histogram/search_min"), bin);
  EXPECT_NEAR(range.second, Value("histogram/search_max"), bin);
  absl::StatusOr<QuantParams> p = ChooseActivationParams(range.first, range.second);
  EXPECT_NEAR(p->scale, Value("histogram/scale"), 0.01 * Value("histogram/scale"));
  EXPECT_NEAR(p->zero_point, Value("histogram/zero_point"), 1);
}

}  // namespace
}  // namespace qforge
