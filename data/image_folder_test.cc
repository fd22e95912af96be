// Image folders: ImageFolder's classes and order, the eval transform exactly as
// runtime/image computes it, reproducible training crops whatever the decode
// threads, and errors that name the folder or file.
#include "data/image_folder.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/batch_loader.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/image/image.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

const fs::path kImages = "runtime/image/testdata";

// root/{train,val}/<class>/... from the image library's test images.
fs::path MakeFolder(const std::string& name) {
  const fs::path root = fs::path(std::getenv("TEST_TMPDIR")) / name;
  fs::remove_all(root);
  auto put = [&](const std::string& from, const fs::path& to) {
    fs::create_directories((root / to).parent_path());
    fs::copy_file(kImages / from, root / to);
  };
  put("photo.jpg", "train/cat/b.jpg");
  put("small.png", "train/cat/a.PNG");
  put("gray.jpg", "train/dog/z.jpeg");
  put("palette.png", "train/dog/sub/a.png");  // a subfolder's files come after the folder's
  put("rgba.png", "train/eel/x.png");
  put("manifest.txt", "train/eel/notes.txt");  // not an image: skipped
  put("photo.jpg", "val/cat/p.jpg");
  put("gray.pgm", "val/dog/g.pgm");
  put("rgb.ppm", "val/eel/r.ppm");
  return root;
}

TEST(LoadImageFolder, ReadsClassesAndFilesInImageFoldersOrder) {
  const fs::path root = MakeFolder("order");
  absl::StatusOr<Dataset> train = LoadImageFolder(root.string(), Split::kTrain, 32);
  ASSERT_TRUE(train.ok()) << train.status();
  EXPECT_EQ(train->class_names, (std::vector<std::string>{"cat", "dog", "eel"}));
  std::vector<std::string> names;
  for (const std::string& f : train->files) names.push_back(fs::relative(f, root).string());
  EXPECT_EQ(names, (std::vector<std::string>{"train/cat/a.PNG", "train/cat/b.jpg",
                                             "train/dog/z.jpeg", "train/dog/sub/a.png",
                                             "train/eel/x.png"}));
  EXPECT_EQ(train->labels, (std::vector<int32_t>{0, 0, 1, 1, 2}));
  EXPECT_EQ(train->count, 5);
  EXPECT_EQ(train->height, 32);
  EXPECT_EQ(train->channels, 3);
  EXPECT_EQ(train->eval_resize, 37);  // 32 * 256 / 224, as 256 is to 224
  EXPECT_EQ(train->mean, (std::vector<float>{0.485f, 0.456f, 0.406f}));
}

Normalization ImageNet() { return {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}}; }

TEST(ImageFolderLoader, EvalBatchesAreTheEvalTransformNormalized) {
  const fs::path root = MakeFolder("eval");
  absl::StatusOr<Dataset> val = LoadImageFolder(root.string(), Split::kTest, 32);
  ASSERT_TRUE(val.ok()) << val.status();
  LoaderOptions options;
  options.batch_size = 3;
  options.shuffle = false;
  options.normalization = ImageNet();
  auto loader = BatchLoader::Create(*val, options);
  ASSERT_TRUE(loader.ok()) << loader.status();
  (*loader)->StartEpoch(0);
  Batch batch;
  ASSERT_TRUE((*loader)->Next(&batch));
  ASSERT_EQ(batch.size, 3);
  EXPECT_EQ(batch.labels, (std::vector<int32_t>{0, 1, 2}));
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<image::Image> decoded = image::ReadImageFile(val->files[i], 3);
    ASSERT_TRUE(decoded.ok());
    absl::StatusOr<image::Image> expected = image::ResizeAndCenterCrop(*decoded, 37, 32);
    ASSERT_TRUE(expected.ok());
    for (int k = 0; k < 32 * 32 * 3; ++k) {
      const int c = k % 3;
      const float want = (expected->pixels[k] / 255.0f - options.normalization.mean[c]) /
                         options.normalization.std[c];
      ASSERT_NEAR(batch.images[i * 32 * 32 * 3 + k], want, 1e-5f) << "image " << i << " " << k;
    }
  }
  EXPECT_FALSE((*loader)->Next(&batch));
  EXPECT_TRUE((*loader)->status().ok());
}

std::vector<float> TrainEpoch(const Dataset& d, int decode_threads, int64_t epoch) {
  LoaderOptions options;
  options.batch_size = 5;
  options.shuffle = false;  // the same images in every epoch: only the crops differ
  options.seed = 7;
  options.horizontal_flip = true;
  options.random_resized_crop = true;
  options.decode_threads = decode_threads;
  options.normalization = ImageNet();
  auto loader = BatchLoader::Create(d, options);
  EXPECT_TRUE(loader.ok());
  (*loader)->StartEpoch(epoch);
  Batch batch;
  EXPECT_TRUE((*loader)->Next(&batch));
  return batch.images;
}

TEST(ImageFolderLoader, TrainingCropsDependOnSeedAndEpochNotOnThreads) {
  const fs::path root = MakeFolder("train");
  absl::StatusOr<Dataset> train = LoadImageFolder(root.string(), Split::kTrain, 24);
  ASSERT_TRUE(train.ok()) << train.status();
  const std::vector<float> one = TrainEpoch(*train, 1, 0);
  EXPECT_EQ(one, TrainEpoch(*train, 3, 0));
  EXPECT_NE(one, TrainEpoch(*train, 1, 1));
  for (float v : one) ASSERT_TRUE(v > -2.2f && v < 2.7f) << v;  // (0 - mean) / std .. (1 - mean) / std
}

TEST(DrawResizedCrop, StaysInsideWithTorchvisionsScaleAndRatio) {
  SplitMix64 rng(1);
  int fallbacks = 0;
  for (int i = 0; i < 2000; ++i) {
    const int h = 20 + static_cast<int>(rng.Below(300)), w = 20 + static_cast<int>(rng.Below(300));
    const CropBox b = DrawResizedCrop(rng, h, w);
    ASSERT_GE(b.top, 0);
    ASSERT_GE(b.left, 0);
    ASSERT_LE(b.top + b.height, h);
    ASSERT_LE(b.left + b.width, w);
    const double area = static_cast<double>(b.height) * b.width / (static_cast<double>(h) * w);
    const double ratio = static_cast<double>(b.width) / b.height;
    if (area > 0.999) {
      ++fallbacks;
      continue;
    }
    EXPECT_GT(area, 0.06) << h << "x" << w;
    EXPECT_GT(ratio, 0.7) << h << "x" << w;
    EXPECT_LT(ratio, 1.42) << h << "x" << w;
  }
  EXPECT_LT(fallbacks, 200);
}

TEST(LoadImageFolder, ErrorsNameTheFolderOrFile) {
  const fs::path root = MakeFolder("errors");
  fs::remove_all(root / "val");
  EXPECT_THAT(LoadImageFolder(root.string(), Split::kTest, 32).status().message(),
              HasSubstr("holds train/ and val/"));
  fs::create_directories(root / "val" / "cat");
  fs::create_directories(root / "val" / "dog");
  EXPECT_THAT(LoadImageFolder(root.string(), Split::kTest, 32).status().message(),
              HasSubstr("holds other class folders than"));
  fs::create_directories(root / "train" / "fox");
  EXPECT_THAT(LoadImageFolder(root.string(), Split::kTrain, 32).status().message(),
              HasSubstr("train/fox has no JPEG, PNG, PPM or PGM images"));
  std::ofstream(root / "train" / "fox" / "f.webp") << "RIFF";
  EXPECT_THAT(LoadImageFolder(root.string(), Split::kTrain, 32).status().message(),
              HasSubstr("f.webp: qforge reads JPEG, PNG, PPM and PGM images"));
  fs::remove(root / "train" / "fox" / "f.webp");
  std::ofstream(root / "train" / "fox" / "broken.jpg") << "\xFF\xD8\xFF\xE0 not really";
  absl::StatusOr<Dataset> train = LoadImageFolder(root.string(), Split::kTrain, 32);
  ASSERT_TRUE(train.ok()) << train.status();
  LoaderOptions options;
  options.batch_size = 8;
  auto loader = BatchLoader::Create(*train, options);
  ASSERT_TRUE(loader.ok());
  (*loader)->StartEpoch(0);
  Batch batch;
  EXPECT_FALSE((*loader)->Next(&batch));
  EXPECT_THAT((*loader)->status().message(), HasSubstr("broken.jpg: corrupt JPEG"));
}

}  // namespace
}  // namespace qforge
