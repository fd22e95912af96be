// The training loop on a Fashion-MNIST subset: it learns, it is deterministic,
// and a run stopped mid-way and resumed ends bit-identical to one that was not.
#include "trainer/train.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "trainer/checkpoint.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

TrainConfig SmallConfig(const std::string& name) {
  TrainConfig config = DefaultTrainConfig();
  config.mutable_model()->set_width_mult(0.25f);
  config.set_max_train_images(1280);
  config.set_max_test_images(500);
  config.set_batch_size(64);
  config.set_lr(0.05f);
  config.set_epochs(3);
  config.set_threads(2);
  config.set_output_dir(std::string(std::getenv("TEST_TMPDIR")) + "/" + name);
  return config;
}

TEST(Trainer, LossFallsAndAccuracyRisesWellAboveChance) {
  absl::StatusOr<std::unique_ptr<Trainer>> trainer = Trainer::Create(SmallConfig("learn"));
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  const double chance_loss = std::log(10.0);
  absl::StatusOr<std::vector<EpochResult>> results = (*trainer)->Run();
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  EXPECT_LT(results->back().train_loss, results->front().train_loss);
  EXPECT_LT(results->back().train_loss, 0.8 * chance_loss);
  EXPECT_GT(results->back().test_accuracy, 0.5);  // chance is 0.1
  // Every epoch left a metrics line and a loadable checkpoint.
  std::ifstream metrics(SmallConfig("learn").output_dir() + "/metrics.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(metrics, line)) ++lines;
  EXPECT_EQ(lines, 3);
  absl::StatusOr<Checkpoint> checkpoint =
      ReadCheckpoint(SmallConfig("learn").output_dir() + "/checkpoint.pb");
  ASSERT_TRUE(checkpoint.ok());
  EXPECT_EQ(checkpoint->epoch(), 3);
  EXPECT_NEAR(checkpoint->test_accuracy(), results->back().test_accuracy, 1e-6);
}

TEST(Trainer, ResumedRunEndsBitIdenticalToUninterruptedRun) {
  TrainConfig straight = SmallConfig("straight");
  straight.set_epochs(2);
  straight.set_max_train_images(640);
  auto a = Trainer::Create(straight);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE((*a)->Run().ok());

  TrainConfig stopped = straight;
  stopped.set_output_dir(std::string(std::getenv("TEST_TMPDIR")) + "/stopped");
  {
    auto first = Trainer::Create(stopped);
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE((*first)->Run(/*max_epochs=*/1).ok());  // "killed" after epoch 1
  }
  auto resumed = Trainer::Create(stopped);
  ASSERT_TRUE(resumed.ok());
  ASSERT_TRUE((*resumed)->Resume().ok());
  EXPECT_EQ((*resumed)->epochs_done(), 1);
  ASSERT_TRUE((*resumed)->Run().ok());
  EXPECT_EQ((*a)->params().values(), (*resumed)->params().values());
  EXPECT_EQ((*a)->params().buffers(), (*resumed)->params().buffers());
}

TEST(Trainer, BadConfigsAreRejectedByName) {
  TrainConfig config = SmallConfig("bad");
  config.set_schedule("sometimes");
  EXPECT_THAT(Trainer::Create(config).status().message(), HasSubstr("schedule 'sometimes'"));
  config = SmallConfig("bad");
  config.set_batch_size(0);
  EXPECT_THAT(Trainer::Create(config).status().message(), HasSubstr("batch_size 0"));
  config = SmallConfig("bad");
  config.set_data_dir("/nonexistent");
  EXPECT_EQ(Trainer::Create(config).status().code(), absl::StatusCode::kNotFound);
  config = SmallConfig("bad");
  config.set_dataset("imagenet");
  EXPECT_THAT(Trainer::Create(config).status().message(), HasSubstr("dataset 'imagenet'"));
  config = SmallConfig("bad");
  config.mutable_model()->set_geometry("large");
  EXPECT_THAT(Trainer::Create(config).status().message(), HasSubstr("model.geometry 'large'"));
  config = SmallConfig("bad");
  config.mutable_model()->set_num_classes(5);
  EXPECT_THAT(Trainer::Create(config).status().message(),
              HasSubstr("model.num_classes 5 differs from the dataset's 10 classes"));
}

TEST(TopKCorrect, CountsLabelsAmongTheKBestTiesByIndex) {
  // Four rows of 6 classes.
  const std::vector<float> logits = {
      0, 5, 4, 3, 2, 1,      // label 1: first
      0, 5, 4, 3, 2, 1,      // label 0: sixth
      1, 1, 1, 1, 1, 1,      // label 0: tied with all, first by index (top-1's rule)
      1, 1, 1, 1, 1, 1};     // label 5: tied with all, sixth by index
  const std::vector<int32_t> labels = {1, 0, 0, 5};
  EXPECT_EQ(TopKCorrect(logits.data(), labels, 4, 6, 1), 2);
  EXPECT_EQ(TopKCorrect(logits.data(), labels, 4, 6, 5), 2);
  EXPECT_EQ(TopKCorrect(logits.data(), labels, 4, 6, 6), 4);
  const std::vector<float> nan_label = {NAN, 0, 0, 0, 0, 0};
  EXPECT_EQ(TopKCorrect(nan_label.data(), {0}, 1, 6, 6), 0);
}

// The geometry is the dataset's image size unless the config names one; the
// classes are the dataset's unless the config gives more (an imported model).
TEST(ModelConfigForImages, GeometryAndClassesFollowTheConfigOrTheImages) {
  ModelConfig model;
  model.set_width_mult(1.0f);
  EXPECT_TRUE(ModelConfigForImages(model, 1, 28, 10).small_input);
  EXPECT_FALSE(ModelConfigForImages(model, 3, 224, 10).small_input);
  model.set_geometry("imagenet");
  const MobileNetV2Config imagenet = ModelConfigForImages(model, 3, 32, 10);
  EXPECT_FALSE(imagenet.small_input);
  EXPECT_EQ(imagenet.num_classes, 10);
  model.set_geometry("small");
  model.set_num_classes(1000);
  const MobileNetV2Config small = ModelConfigForImages(model, 3, 224, 10);
  EXPECT_TRUE(small.small_input);
  EXPECT_EQ(small.num_classes, 1000);
  EXPECT_EQ(small.input_channels, 3);
  EXPECT_EQ(small.input_size, 224);
}

TEST(Trainer, ResumeWithoutCheckpointSaysSo) {
  auto trainer = Trainer::Create(SmallConfig("fresh"));
  ASSERT_TRUE(trainer.ok());
  const absl::Status status = (*trainer)->Resume();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("checkpoint.pb"));
}

TEST(LoadTrainConfig, MergesTextProtoOverDefaultsAndRejectsGarbage) {
  const std::string path = std::string(std::getenv("TEST_TMPDIR")) + "/config.textproto";
  std::ofstream(path) << "epochs: 9\nmodel { width_mult: 1.0 }\n";
  absl::StatusOr<TrainConfig> config = LoadTrainConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->epochs(), 9);
  EXPECT_FLOAT_EQ(config->model().width_mult(), 1.0f);
  EXPECT_EQ(config->batch_size(), DefaultTrainConfig().batch_size());
  // Zero and false are values too: they must override the defaults.
  std::ofstream(path) << "pad: 0\nflip: false\nmodel { relu6: false dropout: 0 }\n";
  absl::StatusOr<TrainConfig> zeros = LoadTrainConfig(path);
  ASSERT_TRUE(zeros.ok());
  EXPECT_EQ(zeros->pad(), 0);
  EXPECT_FALSE(zeros->flip());
  EXPECT_FALSE(zeros->model().relu6());
  EXPECT_EQ(zeros->model().dropout(), 0.0f);
  EXPECT_EQ(zeros->epochs(), DefaultTrainConfig().epochs());
  std::ofstream(path) << "epochs: nine\n";
  EXPECT_THAT(LoadTrainConfig(path).status().message(), HasSubstr("not a text-format"));
}

}  // namespace
}  // namespace qforge
