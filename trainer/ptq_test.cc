// Post-training quantization end to end on a small trained model: the flat
// float model scores in the runtime what the trainer scored, and the int8
// model stays close to it at about a quarter of the size, and the trainer's
// fake-quant simulation of it agrees with the runtime.
#include "trainer/ptq.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "gtest/gtest.h"
#include "trainer/train.h"

namespace qforge {
namespace {

TEST(Ptq, FloatMatchesTheTrainerAndInt8StaysClose) {
  TrainConfig config = DefaultTrainConfig();
  config.mutable_model()->set_width_mult(0.25f);
  config.set_max_train_images(2560);
  config.set_epochs(2);
  config.set_output_dir(std::string(std::getenv("TEST_TMPDIR")) + "/ptq");
  auto trainer = Trainer::Create(config);
  ASSERT_TRUE(trainer.ok()) << trainer.status();
  ASSERT_TRUE((*trainer)->Run().ok());
  const EvalResult trainer_eval = (*trainer)->Evaluate();  // all 10,000 test images
  ASSERT_EQ(trainer_eval.images, 10000);

  PtqOptions options;
  options.checkpoint = config.output_dir() + "/checkpoint.pb";
  options.calib_batches = 8;
  options.output_dir = config.output_dir();
  absl::StatusOr<PtqResult> result = RunPtq(options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->test_images, 10000);
  // The runtime's float model is the trainer's fused model: the same images
  // right, but for a handful decided by float rounding.
  EXPECT_NEAR(result->float_accuracy, trainer_eval.accuracy, 0.0005);
  EXPECT_NEAR(result->int8_accuracy, result->float_accuracy, 0.02);
  // Numerics parity: the trainer's fake-quant simulation of the int8 model and
  // the runtime's integer kernels pick the same class for nearly every image.
  EXPECT_GE(result->simulation_agreement, 0.995);
  EXPECT_NEAR(result->simulation_accuracy, result->int8_accuracy, 0.001);
  EXPECT_LT(result->int8_bytes, 0.35 * result->float_bytes);
  EXPECT_TRUE(std::filesystem::exists(result->int8_path));

  options.qconfig = "int4";
  EXPECT_FALSE(RunPtq(options).ok());
  options.qconfig = "minmax_per_tensor";
  options.checkpoint = config.output_dir() + "/missing.pb";
  EXPECT_EQ(RunPtq(options).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qforge
