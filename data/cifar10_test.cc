#include "data/cifar10.h"

#include <filesystem>
#include <string>

#include "data/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::qforge::testing::TempPath;
using ::qforge::testing::WriteFile;
using ::testing::HasSubstr;

constexpr int kPlane = 32 * 32;

// One record whose red, green and blue planes hold (i % 251), +1, +2 and whose
// label is `label`.
std::string Record(int label, int salt) {
  std::string record(1 + 3 * kPlane, '\0');
  record[0] = static_cast<char>(label);
  for (int c = 0; c < 3; ++c) {
    for (int i = 0; i < kPlane; ++i) record[1 + c * kPlane + i] = static_cast<char>((i + salt) % 251 + c);
  }
  return record;
}

std::string MakeDir(const std::string& name) {
  const std::string dir = TempPath(name);
  std::filesystem::create_directories(dir);
  return dir;
}

TEST(LoadCifar10, ConvertsPlanarRecordsToNhwc) {
  const std::string dir = MakeDir("cifar_ok");
  WriteFile(dir + "/test_batch.bin", Record(3, 0) + Record(9, 5));
  absl::StatusOr<Dataset> dataset = LoadCifar10(dir, Split::kTest);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->count, 2);
  EXPECT_EQ(dataset->channels, 3);
  EXPECT_THAT(dataset->labels, ::testing::ElementsAre(3, 9));
  // Pixel 10 of image 1: red (10 + 5) % 251, then green and blue one and two higher.
  const uint8_t* pixel = dataset->image(1) + 10 * 3;
  EXPECT_EQ(pixel[0], 15);
  EXPECT_EQ(pixel[1], 16);
  EXPECT_EQ(pixel[2], 17);
  EXPECT_EQ(dataset->class_names[3], "cat");
}

TEST(LoadCifar10, TrainSplitReadsFiveBatches) {
  const std::string dir = MakeDir("cifar_train");
  for (int i = 1; i <= 5; ++i) {
    WriteFile(dir + "/data_batch_" + std::to_string(i) + ".bin", Record(i, i));
  }
  absl::StatusOr<Dataset> dataset = LoadCifar10(dir, Split::kTrain);
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_THAT(dataset->labels, ::testing::ElementsAre(1, 2, 3, 4, 5));
}

TEST(LoadCifar10, RejectsTruncatedBadLabelAndMissingFiles) {
  const std::string truncated = MakeDir("cifar_truncated");
  WriteFile(truncated + "/test_batch.bin", Record(1, 0) + Record(2, 0).substr(0, 100));
  absl::StatusOr<Dataset> a = LoadCifar10(truncated, Split::kTest);
  ASSERT_FALSE(a.ok());
  EXPECT_THAT(a.status().message(), HasSubstr("not a whole number"));
  EXPECT_THAT(a.status().message(), HasSubstr("test_batch.bin"));

  const std::string bad_label = MakeDir("cifar_label");
  WriteFile(bad_label + "/test_batch.bin", Record(1, 0) + Record(10, 0));
  absl::StatusOr<Dataset> b = LoadCifar10(bad_label, Split::kTest);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(b.status().message(), HasSubstr("label 10 of record 1 is out of range"));

  absl::StatusOr<Dataset> c = LoadCifar10(bad_label, Split::kTrain);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("data_batch_1.bin"));
}

}  // namespace
}  // namespace qforge
