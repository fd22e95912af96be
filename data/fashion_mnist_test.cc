// Reads the real Fashion-MNIST of Debian's dataset-fashion-mnist package, as
// the main job does, and checks what the dataset is documented to hold.
#include <vector>

#include "data/idx.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

void ExpectBalanced(const Dataset& dataset, int64_t count, int64_t per_class) {
  EXPECT_EQ(dataset.count, count);
  EXPECT_EQ(dataset.height, 28);
  EXPECT_EQ(dataset.width, 28);
  EXPECT_EQ(dataset.channels, 1);
  EXPECT_EQ(static_cast<int64_t>(dataset.pixels.size()), count * 28 * 28);
  ASSERT_EQ(dataset.num_classes(), 10);
  std::vector<int64_t> per_label(10, 0);
  for (int32_t label : dataset.labels) ++per_label[label];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_label[c], per_class) << "class " << c;
}

TEST(FashionMnist, TrainSplitHas60000BalancedImages) {
  absl::StatusOr<Dataset> train = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  ExpectBalanced(*train, 60000, 6000);
  EXPECT_EQ(train->name, "fashion-mnist/train");
}

TEST(FashionMnist, TestSplitHas10000BalancedImages) {
  absl::StatusOr<Dataset> test = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTest);
  ASSERT_TRUE(test.ok()) << test.status();
  ExpectBalanced(*test, 10000, 1000);
  // The first test image is an ankle boot (label 9), as in the published files.
  EXPECT_EQ(test->labels[0], 9);
  EXPECT_EQ(test->class_names[9], "Ankle boot");
}

}  // namespace
}  // namespace qforge
