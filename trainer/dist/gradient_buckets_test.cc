#include "trainer/dist/gradient_buckets.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace qforge {
namespace {

// Two ranks that record the sums started on them, as [begin, end) in the
// gradient block, and the calls that finish them.
class RecordingRanks : public Collectives {
 public:
  explicit RecordingRanks(float* block) : block_(block) {}
  int rank() const override { return 0; }
  int size() const override { return 2; }
  void Sum(float*, int64_t, const char*) override {}
  void Sum(double*, int64_t, const char*) override {}
  void Max(float*, int64_t, const char*) override {}
  void Broadcast(float*, int64_t, const char*) override {}
  void Broadcast(std::string&, const char*) override {}
  void StartSum(float* data, int64_t count, const char*) override {
    started.push_back({data - block_, data - block_ + count});
  }
  void Progress() override {}
  void FinishSums() override { finished_after.push_back(started.size()); }
  [[noreturn]] void Abort(const std::string& message) override {
    std::fprintf(stderr, "%s\n", message.c_str());
    std::abort();
  }
  CollectiveTraffic traffic() const override { return {}; }

  std::vector<std::pair<int64_t, int64_t>> started;
  std::vector<size_t> finished_after;  // sums started by each FinishSums

 private:
  float* block_;
};

using Range = std::pair<int64_t, int64_t>;

class GradientBucketsTest : public ::testing::Test {
 protected:
  // Five parameters of 100, 300, 50, 200 and 10 floats, a buffer among them.
  GradientBucketsTest() {
    a_ = params_.Add("a", {100});
    b_ = params_.Add("b", {300});
    params_.Add("b.running_mean", {300}, /*trainable=*/false);
    c_ = params_.Add("c", {50});
    d_ = params_.Add("d", {200});
    e_ = params_.Add("e", {10});
  }
  ParameterStore params_;
  int a_, b_, c_, d_, e_;
};

TEST_F(GradientBucketsTest, CutsFromTheEndAtParametersOnceABucketHoldsBucketBytes) {
  RecordingRanks ranks(params_.grads().data());
  ranks.set_bucket_bytes(350 * sizeof(float));
  GradientBuckets buckets(params_, ranks);
  ASSERT_EQ(buckets.count(), 2);
  buckets.Finish();  // nothing reported: every bucket starts here, in order
  EXPECT_EQ(ranks.started, (std::vector<Range>{{100, 660}, {0, 100}}));
  EXPECT_EQ(ranks.finished_after, std::vector<size_t>{2});
}

TEST_F(GradientBucketsTest, StartsABucketWhenItsLastGradientIsFinal) {
  RecordingRanks ranks(params_.grads().data());
  ranks.set_bucket_bytes(350 * sizeof(float));
  GradientBuckets buckets(params_, ranks);
  // A backward pass reports the last parameters first.
  buckets.Final(e_);
  buckets.Final(d_);
  buckets.Final(c_);
  EXPECT_TRUE(ranks.started.empty());
  buckets.Final(b_);
  EXPECT_EQ(ranks.started, (std::vector<Range>{{100, 660}}));
  buckets.Final(a_);
  EXPECT_EQ(ranks.started, (std::vector<Range>{{100, 660}, {0, 100}}));
  buckets.Finish();
  EXPECT_EQ(ranks.started.size(), 2u);  // nothing started twice
  EXPECT_EQ(ranks.finished_after, std::vector<size_t>{2});

  // The next backward pass starts from scratch.
  buckets.Final(a_);
  EXPECT_EQ(ranks.started.size(), 3u);
  buckets.Final(b_);
  buckets.Finish();
  EXPECT_EQ(ranks.started.back(), Range(100, 660));
  EXPECT_EQ(ranks.finished_after, (std::vector<size_t>{2, 4}));
}

TEST_F(GradientBucketsTest, BucketsLargerThanTheBlockMakeOneSum) {
  RecordingRanks ranks(params_.grads().data());
  ranks.set_bucket_bytes(int64_t{25} << 20);
  GradientBuckets buckets(params_, ranks);
  EXPECT_EQ(buckets.count(), 1);
  for (int id : {e_, d_, c_, b_}) buckets.Final(id);
  EXPECT_TRUE(ranks.started.empty());
  buckets.Final(a_);
  EXPECT_EQ(ranks.started, (std::vector<Range>{{0, 660}}));
}

TEST_F(GradientBucketsTest, AGradientReportedTwiceStopsTheRun) {
  RecordingRanks ranks(params_.grads().data());
  GradientBuckets buckets(params_, ranks);
  buckets.Final(c_);
  EXPECT_DEATH(buckets.Final(c_), "reported c final twice");
  EXPECT_DEATH(buckets.Final(2), "reported a tensor that has no gradient");  // b.running_mean
}

}  // namespace
}  // namespace qforge
