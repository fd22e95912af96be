#include "data/idx.h"

#include <string>
#include <vector>

#include "data/test_files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::qforge::testing::IdxBytes;
using ::qforge::testing::TempPath;
using ::qforge::testing::WriteFile;
using ::qforge::testing::WriteGzipFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Two 2x3 images with labels 1 and 2.
std::string TwoImages() { return IdxBytes({2, 2, 3}, {0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15}); }
std::string TwoLabels() { return IdxBytes({2}, {1, 2}); }

std::vector<std::string> ThreeClasses() { return {"a", "b", "c"}; }

TEST(ReadIdxFile, ReadsPlainAndGzip) {
  WriteFile(TempPath("plain.idx"), TwoImages());
  WriteGzipFile(TempPath("packed.idx.gz"), TwoImages());
  for (const char* name : {"plain.idx", "packed.idx.gz"}) {
    absl::StatusOr<IdxArray> array = ReadIdxFile(TempPath(name));
    ASSERT_TRUE(array.ok()) << array.status();
    EXPECT_THAT(array->dims, ElementsAre(2, 2, 3));
    EXPECT_EQ(array->values.size(), 12u);
    EXPECT_EQ(array->values[7], 11);
  }
}

// Each broken file gives an error naming the file and the problem.
struct BrokenCase {
  std::string name;
  std::string bytes;
  std::string expected;
};

TEST(ReadIdxFile, RejectsBrokenFiles) {
  std::string wrong_magic = TwoImages();
  wrong_magic[0] = 0x1f;
  std::string wrong_type = TwoImages();
  wrong_type[2] = 0x0d;  // float
  std::string wrong_rank = TwoImages();
  wrong_rank[3] = 0;
  const std::string images = TwoImages();
  const std::vector<BrokenCase> cases = {
      {"empty", "", "too short"},
      {"magic", wrong_magic, "not an IDX file"},
      {"type", wrong_type, "element type 0xd is unsupported"},
      {"rank", wrong_rank, "rank 0"},
      {"header", images.substr(0, 9), "truncated IDX header"},
      {"truncated", images.substr(0, images.size() - 1), "promises 12 values but the file holds 11 (truncated)"},
      {"trailing", images + "x", "(trailing bytes)"},
      {"zero_dim", IdxBytes({2, 0, 3}, {}), "dimension 1 = 0"},
      {"absurd", IdxBytes({0xffffffff, 0xffffffff, 0xffffffff}, {}), "is zero or absurd"},
  };
  for (const BrokenCase& c : cases) {
    const std::string path = TempPath("broken_" + c.name + ".idx");
    WriteFile(path, c.bytes);
    absl::StatusOr<IdxArray> array = ReadIdxFile(path);
    ASSERT_FALSE(array.ok()) << c.name;
    EXPECT_EQ(array.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(array.status().message(), HasSubstr(path)) << c.name;
    EXPECT_THAT(array.status().message(), HasSubstr(c.expected)) << c.name;
  }
}

TEST(ReadIdxFile, MissingFileIsNotFound) {
  absl::StatusOr<IdxArray> array = ReadIdxFile(TempPath("no_such_file.idx"));
  ASSERT_FALSE(array.ok());
  EXPECT_EQ(array.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(array.status().message(), HasSubstr("no_such_file.idx"));
}

TEST(ReadIdxFile, TruncatedAndCorruptGzipAreDataLoss) {
  WriteGzipFile(TempPath("whole.gz"), TwoImages() + std::string(4000, '\x07'));
  const std::string packed = ::qforge::testing::ReadFile(TempPath("whole.gz"));
  WriteFile(TempPath("cut.gz"), packed.substr(0, packed.size() / 2));
  std::string flipped = packed;
  flipped[flipped.size() / 2] ^= 0x55;
  WriteFile(TempPath("flipped.gz"), flipped);
  for (const char* name : {"cut.gz", "flipped.gz"}) {
    absl::StatusOr<IdxArray> array = ReadIdxFile(TempPath(name));
    ASSERT_FALSE(array.ok()) << name;
    EXPECT_EQ(array.status().code(), absl::StatusCode::kDataLoss) << name << array.status();
    EXPECT_THAT(array.status().message(), HasSubstr(name));
  }
}

TEST(LoadIdxDataset, LoadsImagesAndLabels) {
  WriteFile(TempPath("ok-images"), TwoImages());
  WriteGzipFile(TempPath("ok-labels.gz"), TwoLabels());
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(TempPath("ok-images"), TempPath("ok-labels.gz"), ThreeClasses());
  ASSERT_TRUE(dataset.ok()) << dataset.status();
  EXPECT_EQ(dataset->count, 2);
  EXPECT_EQ(dataset->height, 2);
  EXPECT_EQ(dataset->width, 3);
  EXPECT_EQ(dataset->channels, 1);
  EXPECT_THAT(dataset->labels, ElementsAre(1, 2));
  EXPECT_EQ(dataset->image(1)[0], 10);
}

TEST(LoadIdxDataset, RejectsMismatchedCounts) {
  WriteFile(TempPath("m-images"), TwoImages());
  WriteFile(TempPath("m-labels"), IdxBytes({3}, {0, 1, 2}));
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(TempPath("m-images"), TempPath("m-labels"), ThreeClasses());
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(), HasSubstr("holds 2 images but"));
  EXPECT_THAT(dataset.status().message(), HasSubstr("holds 3 labels"));
}

TEST(LoadIdxDataset, RejectsLabelOutOfRange) {
  WriteFile(TempPath("r-images"), TwoImages());
  WriteFile(TempPath("r-labels"), IdxBytes({2}, {1, 3}));
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(TempPath("r-images"), TempPath("r-labels"), ThreeClasses());
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(),
              HasSubstr("r-labels: label 3 of item 1 is out of range [0, 3)"));
}

TEST(LoadIdxDataset, RejectsAbsurdImageSides) {
  WriteFile(TempPath("wide-images"), IdxBytes({1, 1, 70000}, std::vector<uint8_t>(70000, 0)));
  WriteFile(TempPath("wide-labels"), IdxBytes({1}, {0}));
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(TempPath("wide-images"), TempPath("wide-labels"), ThreeClasses());
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(), HasSubstr("image dimension 2 = 70000 exceeds"));
}

TEST(LoadIdxDataset, RejectsSwappedFiles) {
  WriteFile(TempPath("s-images"), TwoImages());
  WriteFile(TempPath("s-labels"), TwoLabels());
  absl::StatusOr<Dataset> dataset =
      LoadIdxDataset(TempPath("s-labels"), TempPath("s-images"), ThreeClasses());
  ASSERT_FALSE(dataset.ok());
  EXPECT_THAT(dataset.status().message(), HasSubstr("images must have rank 3 or 4"));
}

TEST(LoadFashionMnist, MissingDirectoryNamesTheFile) {
  absl::StatusOr<Dataset> dataset = LoadFashionMnist(TempPath("nowhere"), Split::kTest);
  ASSERT_FALSE(dataset.ok());
  EXPECT_EQ(dataset.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(dataset.status().message(), HasSubstr("t10k-images-idx3-ubyte.gz"));
}

}  // namespace
}  // namespace qforge
