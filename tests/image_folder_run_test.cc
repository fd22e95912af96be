// The ImageNet path end to end on a folder of images the test writes: 12
// classes of JPEG, PNG and PPM files of assorted sizes under train/ and val/,
// trained with the tutorial's transforms, evaluated with top-1 and top-5,
// quantized, and the int8 model carrying the evaluation resize.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model_loader.h"
#include "trainer/ptq.h"
#include "trainer/report.h"
#include "trainer/train.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int kClasses = 12;

// A binary PPM of class `label`: its own colour, with a stripe, plus noise.
void WritePpm(const fs::path& path, int label, int height, int width, int seed) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << "P6\n" << width << " " << height << "\n255\n";
  uint32_t state = seed * 2654435761u + 1;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      state = state * 1664525u + 1013904223u;
      const int noise = static_cast<int>(state >> 28) - 8;
      const bool stripe = ((x + y * (label % 3)) / 4) % 2 == 0;
      for (int c = 0; c < 3; ++c) {
        const int base = ((label >> c) & 1) * 160 + (c == label % 3 ? 60 : 20);
        out.put(static_cast<char>(std::clamp(base + (stripe ? 30 : -30) + noise, 0, 255)));
      }
    }
  }
}

fs::path MakeFolder() {
  const fs::path root = fs::path(std::getenv("TEST_TMPDIR")) / "folder";
  fs::remove_all(root);
  for (int label = 0; label < kClasses; ++label) {
    const std::string name = absl::StrCat("class_", label < 10 ? "0" : "", label);
    for (int i = 0; i < 6; ++i) {
      WritePpm(root / "train" / name / absl::StrCat(i, ".ppm"), label, 36 + 7 * i, 48 - 3 * i,
               label * 100 + i);
    }
    for (int i = 0; i < 2; ++i) {
      WritePpm(root / "val" / name / absl::StrCat(i, ".ppm"), label, 40 + 10 * i, 37, label + 7 * i);
    }
  }
  // JPEG and PNG files among them, from the image library's test images.
  fs::copy_file("runtime/image/testdata/photo.jpg", root / "train" / "class_00" / "photo.jpg");
  fs::copy_file("runtime/image/testdata/rgba.png", root / "val" / "class_01" / "rgba.png");
  return root;
}

TEST(ImageFolderRun, TrainsEvaluatesTopFiveAndQuantizes) {
  const fs::path root = MakeFolder();
  TrainConfig config = DefaultTrainConfig();
  config.set_dataset("imagefolder");
  config.set_data_dir(root.string());
  config.set_image_size(32);
  config.mutable_model()->set_width_mult(0.25f);
  config.set_epochs(3);
  config.set_batch_size(8);
  config.set_lr(0.05f);
  config.set_threads(1);
  config.set_output_dir((fs::path(std::getenv("TEST_TMPDIR")) / "run").string());
  auto trainer = Trainer::Create(config);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<std::vector<EpochResult>> results = (*trainer)->Run();
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  const EpochResult& last = results->back();
  std::printf("after 3 epochs: top-1 %.2f%%, top-5 %.2f%% of %d validation images\n",
              100 * last.test_accuracy, 100 * last.test_top5, 2 * kClasses + 1);
  EXPECT_GE(last.test_top5, last.test_accuracy);
  EXPECT_GT(last.test_top5, 0.0);
  std::ifstream metrics(fs::path(config.output_dir()) / "metrics.jsonl");
  std::string line;
  std::getline(metrics, line);
  EXPECT_THAT(line, HasSubstr("\"test_top5\": "));

  PtqOptions options;
  options.checkpoint = (fs::path(config.output_dir()) / "checkpoint.pb").string();
  options.calib_batches = 2;
  options.calib_batch_size = 8;
  options.output_dir = config.output_dir();
  absl::StatusOr<PtqResult> ptq = RunPtq(options);
  ASSERT_TRUE(ptq.ok()) << ptq.status();
  EXPECT_EQ(ptq->test_images, 2 * kClasses + 1);
  EXPECT_GE(ptq->int8_top5, ptq->int8_accuracy);
  EXPECT_GE(ptq->float_top5, ptq->float_accuracy);
  absl::StatusOr<Model> model = ReadModelFile(ptq->int8_path);
  ASSERT_TRUE(model.ok()) << model.status();
  const Preprocessing& p = model->preprocessing();
  EXPECT_EQ(p.resize(), 37);  // 32 * 256 / 224
  EXPECT_EQ(p.channel_order(), "RGB");
  EXPECT_FLOAT_EQ(p.mean(0), 0.485f);
  EXPECT_FLOAT_EQ(p.std(2), 0.225f);
  EXPECT_EQ(model->metadata().class_names_size(), kClasses);
  EXPECT_FLOAT_EQ(model->metadata().accuracy_top5(), static_cast<float>(ptq->int8_top5));
  EXPECT_EQ(model->metadata().class_names(11), "class_11");

  // The run report shows top-5 too: in the results table and the float curve.
  ASSERT_TRUE(WriteRunReport(config.output_dir()).ok());
  std::ifstream report(fs::path(config.output_dir()) / "report.html");
  const std::string html((std::istreambuf_iterator<char>(report)), std::istreambuf_iterator<char>());
  EXPECT_THAT(html, HasSubstr("<th>top-5 (runtime)</th>"));
  EXPECT_THAT(html, HasSubstr(absl::StrFormat("<td>%.2f%%</td>",
                                              100 * static_cast<double>(model->metadata().accuracy_top5()))));
  EXPECT_THAT(html, HasSubstr("test top-5 (float)"));
}

TEST(ImageFolderRun, AFileThatCannotBeReadStopsTheRunNamingIt) {
  const fs::path root = MakeFolder();
  std::ofstream(root / "train" / "class_05" / "broken.png") << "\x89PNG\r\n\x1a\n broken";
  TrainConfig config = DefaultTrainConfig();
  config.set_dataset("imagefolder");
  config.set_data_dir(root.string());
  config.set_image_size(32);
  config.mutable_model()->set_width_mult(0.25f);
  config.set_epochs(1);
  config.set_batch_size(8);
  config.set_threads(1);
  config.set_output_dir((fs::path(std::getenv("TEST_TMPDIR")) / "broken_run").string());
  auto trainer = Trainer::Create(config);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  absl::StatusOr<std::vector<EpochResult>> results = (*trainer)->Run();
  EXPECT_FALSE(results.ok());
  EXPECT_THAT(results.status().message(), HasSubstr("broken.png: corrupt PNG"));
}

}  // namespace
}  // namespace qforge
