// Quantization-aware training on a small trained model: a run stopped after
// some epochs and resumed ends exactly where an uninterrupted run does, and
// the options beyond the tutorial's recipe (calibrated activation ranges,
// precise BN statistics, distillation, learned ranges) do what they say. How QAT's int8
// model compares with post-training quantization, and how well its simulation
// predicts the runtime, is tests/fidelity_test's, with bounds from a spread
// over seeds.
#include "trainer/qat.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "trainer/checkpoint.h"
#include "trainer/ptq.h"
#include "trainer/quant/convert.h"
#include "trainer/quant/fusion.h"
#include "trainer/train.h"

namespace qforge {
namespace {

class QatTest : public ::testing::Test {
 protected:
  // One small float model for every test: width 0.25, two epochs on 2,560 images.
  static void SetUpTestSuite() {
    TrainConfig config = DefaultTrainConfig();
    config.mutable_model()->set_width_mult(0.25f);
    config.set_max_train_images(2560);
    config.set_epochs(2);
    config.set_output_dir(Dir("float"));
    auto trainer = Trainer::Create(config);
    ASSERT_TRUE(trainer.ok()) << trainer.status();
    ASSERT_TRUE((*trainer)->Run().ok());
  }

  static std::string Dir(const std::string& name) {
    return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
  }

  static QatConfig Config(const std::string& dir) {
    QatConfig config = DefaultQatConfig();
    config.set_checkpoint(Dir("float") + "/checkpoint.pb");
    config.set_output_dir(Dir(dir));
    return config;
  }
};

TEST_F(QatTest, ResumedRunEndsWhereAnUninterruptedOneDoes) {
  // Short epochs; observers off and BN frozen, with precise statistics, after
  // the second, which the resumed run must restore; targets half the float
  // model's, which must again be the float checkpoint's, not the QAT state it
  // resumes from; and activation ranges learned once the observers stop.
  QatConfig config = Config("straight");
  config.set_distill(0.5f);
  config.set_range_lr(10);
  config.set_epochs(3);
  config.set_batches_per_epoch(5);
  config.set_disable_observer_after_epoch(0);
  config.set_freeze_bn_after_epoch(0);
  config.set_precise_bn_batches(3);
  absl::StatusOr<QatResult> straight = RunQat(config, /*resume=*/false);
  ASSERT_TRUE(straight.ok()) << straight.status();

  QatConfig stopped = config;
  stopped.set_output_dir(Dir("stopped"));
  stopped.set_epochs(2);
  ASSERT_TRUE(RunQat(stopped, /*resume=*/false).ok());
  stopped.set_epochs(3);
  absl::StatusOr<QatResult> resumed = RunQat(stopped, /*resume=*/true);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->epochs.size(), 1u);
  EXPECT_EQ(resumed->int8_accuracy, straight->int8_accuracy);

  absl::StatusOr<Checkpoint> a = ReadCheckpoint(Dir("straight") + "/qat_checkpoint.pb");
  absl::StatusOr<Checkpoint> b = ReadCheckpoint(Dir("stopped") + "/qat_checkpoint.pb");
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_EQ(a->tensors_size(), b->tensors_size());
  for (int i = 0; i < a->tensors_size(); ++i) {
    EXPECT_EQ(a->tensors(i).data(), b->tensors(i).data()) << a->tensors(i).name();
  }
  std::ifstream model_a(straight->int8_path, std::ios::binary), model_b(resumed->int8_path,
                                                                         std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(model_a), {}),
            std::string(std::istreambuf_iterator<char>(model_b), {}));
  // One metrics line per epoch, none repeated by the resume.
  std::ifstream metrics(Dir("stopped") + "/qat_metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line);) ++lines;
  EXPECT_EQ(lines, 3);

  // Resuming with another recipe would mix two runs' state.
  stopped.set_lr(2 * stopped.lr());
  EXPECT_NE(std::string(RunQat(stopped, /*resume=*/true).status().message())
                .find("was made with another recipe"),
            std::string::npos);
}

// With calibrate_activations, every activation fake quantizer starts from the
// calibration ptq would make and keeps it through training, while the weights'
// observers still follow the weights.
TEST_F(QatTest, CalibratedActivationRangesStayAsCalibrated) {
  absl::StatusOr<Checkpoint> source = ReadCheckpoint(Dir("float") + "/checkpoint.pb");
  ASSERT_TRUE(source.ok());
  absl::StatusOr<std::unique_ptr<RestoredModel>> r = RestoreModel(*source, "float");
  ASSERT_TRUE(r.ok()) << r.status();
  FusedMobileNetV2 fused(*(*r)->model, (*r)->params);
  const PtqOptions ptq;
  Calibrator calibrator(LayerQConfigs{QConfig{"", "histogram", true}, {}, {}}, fused);
  ASSERT_TRUE(Calibrate(**r, ptq.calib_batches, ptq.calib_batch_size, (*r)->config.seed(),
                        calibrator).ok());

  QatConfig config = Config("calibrated");
  config.set_epochs(2);
  config.set_batches_per_epoch(5);
  config.set_calibrate_activations("histogram");
  ASSERT_TRUE(RunQat(config, /*resume=*/false).ok());
  absl::StatusOr<Checkpoint> qat = ReadCheckpoint(Dir("calibrated") + "/qat_checkpoint.pb");
  ASSERT_TRUE(qat.ok());
  int activations = 0, weights_moved = 0;
  for (const NamedTensor& t : qat->tensors()) {
    const std::string& name = t.name();
    float first;  // the tensor's first value
    ASSERT_GE(t.data().size(), sizeof first);
    std::memcpy(&first, t.data().data(), sizeof first);
    const size_t at = name.find(".activation_post_process.");
    if (at != std::string::npos) {
      absl::StatusOr<Range> expected = calibrator.ActivationRange(name.substr(0, at));
      ASSERT_TRUE(expected.ok()) << name;
      const bool is_min = absl::EndsWith(name, ".min_val");
      EXPECT_EQ(first, is_min ? expected->first : expected->second) << name;
      ++activations;
    } else if (absl::StrContains(name, ".weight_fake_quant.")) {
      // Moving averages of the weights' ranges, from nothing: never +-inf.
      weights_moved += std::isfinite(first);
    }
  }
  EXPECT_EQ(activations, 2 * static_cast<int>(fused.LayerNames().size()));
  EXPECT_GT(weights_moved, 0);
}

// When BN freezes, precise_bn_batches replaces the moving average of its
// statistics (here two batches' worth) by a fresh average.
TEST_F(QatTest, PreciseBnReplacesTheMovingAverageWhenBnFreezes) {
  std::map<std::string, std::string> moving, precise;
  for (auto [batches, stats] : {std::pair{0, &moving}, std::pair{4, &precise}}) {
    QatConfig config = Config("precise_bn_" + std::to_string(batches));
    config.set_epochs(1);
    config.set_batches_per_epoch(2);
    config.set_freeze_bn_after_epoch(-1);  // freezes after the first epoch
    config.set_precise_bn_batches(batches);
    absl::StatusOr<QatResult> result = RunQat(config, /*resume=*/false);
    ASSERT_TRUE(result.ok()) << result.status();
    ASSERT_TRUE(result->epochs[0].bn_frozen);
    absl::StatusOr<Checkpoint> c = ReadCheckpoint(config.output_dir() + "/qat_checkpoint.pb");
    ASSERT_TRUE(c.ok());
    for (const NamedTensor& t : c->tensors()) {
      if (absl::EndsWith(t.name(), ".running_mean") || absl::EndsWith(t.name(), ".running_var")) {
        (*stats)[t.name()] = t.data();
      }
    }
  }
  ASSERT_FALSE(moving.empty());
  ASSERT_EQ(moving.size(), precise.size());
  for (const auto& [name, data] : moving) EXPECT_NE(data, precise[name]) << name;
}

// distill mixes the float model's predictions into the targets: the same run
// with and without it trains different weights.
TEST_F(QatTest, DistillationChangesWhatQatLearns) {
  std::map<std::string, std::string> weights[2];
  for (int distill : {0, 1}) {
    QatConfig config = Config("distill_" + std::to_string(distill));
    config.set_epochs(1);
    config.set_batches_per_epoch(2);
    config.set_distill(static_cast<float>(distill));
    absl::StatusOr<QatResult> result = RunQat(config, /*resume=*/false);
    ASSERT_TRUE(result.ok()) << result.status();
    absl::StatusOr<Checkpoint> c = ReadCheckpoint(config.output_dir() + "/qat_checkpoint.pb");
    ASSERT_TRUE(c.ok());
    for (const NamedTensor& t : c->tensors()) {
      if (absl::EndsWith(t.name(), ".weight")) weights[distill][t.name()] = t.data();
    }
  }
  ASSERT_FALSE(weights[0].empty());
  ASSERT_EQ(weights[0].size(), weights[1].size());
  for (const auto& [name, data] : weights[0]) EXPECT_NE(data, weights[1][name]) << name;
}

// range_lr: the activation ranges stay as observed until the observers stop,
// then move with the training loss.
TEST_F(QatTest, LearnedRangesMoveOnceTheObserversStop) {
  std::map<std::string, std::string> ranges[2];
  for (int learned : {0, 1}) {
    QatConfig config = Config("ranges_" + std::to_string(learned));
    config.set_epochs(2);
    config.set_batches_per_epoch(3);
    config.set_disable_observer_after_epoch(-1);  // observers stop after the first epoch
    config.set_range_lr(learned ? 10.0f : 0.0f);
    absl::StatusOr<QatResult> result = RunQat(config, /*resume=*/false);
    ASSERT_TRUE(result.ok()) << result.status();
    absl::StatusOr<Checkpoint> c = ReadCheckpoint(config.output_dir() + "/qat_checkpoint.pb");
    ASSERT_TRUE(c.ok());
    for (const NamedTensor& t : c->tensors()) {
      if (absl::StrContains(t.name(), "activation_post_process")) {
        ranges[learned][t.name()] = t.data();
      }
    }
  }
  ASSERT_FALSE(ranges[0].empty());
  ASSERT_EQ(ranges[0].size(), ranges[1].size());
  int moved = 0;
  for (const auto& [name, data] : ranges[0]) moved += data != ranges[1][name];
  // Most move; a range whose every value lies inside it and whose gradient
  // rounds away may not.
  EXPECT_GT(moved, static_cast<int>(ranges[0].size()) / 2);
}

TEST_F(QatTest, BadConfigsAreErrors) {
  QatConfig config = Config("bad");
  config.set_lr(0);
  EXPECT_NE(std::string(RunQat(config, false).status().message()).find("lr 0"), std::string::npos);
  config = Config("bad");
  config.set_checkpoint(Dir("float") + "/missing.pb");
  EXPECT_EQ(RunQat(config, false).status().code(), absl::StatusCode::kNotFound);
  config = Config("bad");
  config.set_calibrate_activations("kl");
  EXPECT_NE(std::string(RunQat(config, false).status().message()).find("'kl'"),
            std::string::npos);
  config = Config("bad");
  config.set_precise_bn_batches(-1);
  EXPECT_NE(std::string(RunQat(config, false).status().message()).find("precise_bn_batches -1"),
            std::string::npos);
  config = Config("bad");
  config.set_distill(1.5f);
  EXPECT_NE(std::string(RunQat(config, false).status().message()).find("distill 1.5"),
            std::string::npos);
  config = Config("bad");
  config.set_range_lr(-1);
  EXPECT_NE(std::string(RunQat(config, false).status().message()).find("range_lr -1"),
            std::string::npos);
  config = Config("never_run");
  EXPECT_EQ(RunQat(config, /*resume=*/true).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qforge
