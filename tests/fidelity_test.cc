// Quantization fidelity on a model trained inside the test (width 0.25, one
// epoch on 12,800 Fashion-MNIST images, about 85% right): how much each
// quantization loses against float, measured by the runtime on all 10,000
// test images, and how closely the trainer's fake-quant simulation predicts
// the runtime.
//
// The bounds come from the spread of these numbers over training seeds
// (tools/fidelity_spread.sh runs this test with QFORGE_FIDELITY_SEED=0..4):
// the worst value seen with a margin of half a point to a point. A histogram
// observer whose range search never stops loses 68 points and fails; one
// whose range is clipped 20% short loses 0.16 points, inside the spread over
// seeds, and passes.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "trainer/ptq.h"
#include "trainer/qat.h"
#include "trainer/train.h"

namespace qforge {
namespace {

std::string Dir(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

// Over seeds 0-4 (tools/fidelity_spread.sh, Intel Xeon): float 75.5-78.5%;
// the per-channel histogram PTQ loses -0.20 to +0.02 points; QAT after it
// gains -0.22 to +0.31 points; the simulation agrees with the runtime on
// 99.94-100% of the images. Per-tensor min/max loses 0.1 to 67 points on this
// one-epoch model (seed 4 leaves it at chance: a depthwise channel's weights
// span -150 to 3 while the others stay within +-2, the report shows), so its
// drop only bounds the per-channel one: per-channel never loses more.
constexpr double kMinFloat = 0.70;
constexpr double kMaxPerChannelDrop = 0.005;
constexpr double kMinQatGain = -0.01;
constexpr double kMinAgreement = 0.998;

uint64_t Seed() {
  const char* seed = std::getenv("QFORGE_FIDELITY_SEED");
  return seed != nullptr ? std::strtoull(seed, nullptr, 10) : 0;
}

TEST(Fidelity, QuantizationLosesLittleAndTheSimulationPredictsTheRuntime) {
  TrainConfig config = DefaultTrainConfig();
  config.mutable_model()->set_width_mult(0.25f);
  config.set_max_train_images(12800);
  config.set_epochs(1);
  config.set_seed(Seed());
  config.set_output_dir(Dir("float"));
  auto trainer = Trainer::Create(config);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Run().ok());

  PtqOptions ptq;
  ptq.checkpoint = Dir("float") + "/checkpoint.pb";
  ptq.output_dir = Dir("ptq");
  ptq.qconfig = "minmax_per_tensor";
  absl::StatusOr<PtqResult> minmax = RunPtq(ptq);
  ASSERT_TRUE(minmax.ok()) << minmax.status();
  ptq.qconfig = "per_channel_histogram";
  absl::StatusOr<PtqResult> per_channel = RunPtq(ptq);
  ASSERT_TRUE(per_channel.ok()) << per_channel.status();

  // The tutorial's recipe, shortened: observers stop after the third epoch,
  // BN freezes after the second.
  QatConfig qat_config = DefaultQatConfig();
  qat_config.set_checkpoint(ptq.checkpoint);
  qat_config.set_output_dir(Dir("qat"));
  qat_config.set_epochs(4);
  qat_config.set_disable_observer_after_epoch(2);
  qat_config.set_freeze_bn_after_epoch(1);
  absl::StatusOr<QatResult> qat = RunQat(qat_config, /*resume=*/false);
  ASSERT_TRUE(qat.ok()) << qat.status();
  ASSERT_EQ(qat->epochs.size(), 4u);
  EXPECT_TRUE(qat->epochs[1].observers_enabled && !qat->epochs[1].bn_frozen);
  EXPECT_TRUE(qat->epochs[2].observers_enabled && qat->epochs[2].bn_frozen);
  EXPECT_TRUE(!qat->epochs[3].observers_enabled && qat->epochs[3].bn_frozen);

  const double float_accuracy = per_channel->float_accuracy;
  const double minmax_drop = float_accuracy - minmax->int8_accuracy;
  const double per_channel_drop = float_accuracy - per_channel->int8_accuracy;
  const double qat_gain = qat->int8_accuracy - per_channel->int8_accuracy;
  std::printf("seed %llu: float %.4f; drop minmax %.4f, per-channel %.4f; QAT - per-channel %.4f; "
              "simulation agreement minmax %.4f, per-channel %.4f, QAT %.4f\n",
              static_cast<unsigned long long>(Seed()), float_accuracy, minmax_drop,
              per_channel_drop, qat_gain, minmax->simulation_agreement,
              per_channel->simulation_agreement, qat->simulation_agreement);
  EXPECT_GT(float_accuracy, kMinFloat);
  EXPECT_LT(per_channel_drop, kMaxPerChannelDrop);
  EXPECT_LE(per_channel_drop, minmax_drop + 0.005);
  EXPECT_GT(qat_gain, kMinQatGain);
  for (double agreement : {minmax->simulation_agreement, per_channel->simulation_agreement,
                           qat->simulation_agreement}) {
    EXPECT_GE(agreement, kMinAgreement);
  }
}

}  // namespace
}  // namespace qforge
