// Post-training static quantization end to end, the tutorial's section 4:
// a float checkpoint -> fuse -> calibrate on training images in eval mode ->
// convert -> int8 and float flat models, each measured by the runtime on the
// full test set. The accuracy a user reads is always the runtime's.
#ifndef QFORGE_TRAINER_PTQ_H_
#define QFORGE_TRAINER_PTQ_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model.pb.h"
#include "data/dataset.h"
#include "data/transforms.h"
#include "trainer/checkpoint.pb.h"
#include "trainer/config.pb.h"
#include "trainer/dist/collectives.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/parameters.h"
#include "trainer/quant/convert.h"
#include "trainer/quant/quant_sim.h"

namespace qforge {

struct PtqOptions {
  std::string checkpoint;  // a trainer checkpoint.pb
  std::string qconfig = "per_channel_histogram";
  std::string overrides;     // "layer=qconfig,..." (see ParseLayerQConfigs)
  std::string float_layers;  // "layer,...": left in float
  int calib_batches = 32;     // the tutorial: 32 batches
  int calib_batch_size = 30;  // of 30 training images
  std::string output_dir;     // model files go here
  int threads = 0;  // 0: the checkpoint's config
  // Which training images calibrate (their shuffle); default: the float run's seed.
  std::optional<uint64_t> calibration_seed;
};

struct PtqResult {
  std::string int8_path, float_path;
  int64_t int8_bytes = 0, float_bytes = 0;
  double int8_accuracy = 0, float_accuracy = 0;  // runtime, full test set
  double int8_top5 = -1, float_top5 = -1;        // for more than 10 classes
  // The trainer's fake-quant simulation of the int8 model: its accuracy, and
  // the share of test images where its top-1 class is the runtime's.
  double simulation_accuracy = 0, simulation_agreement = 0;
  std::string simulation_note;  // why there is no simulation, if there is none
  int64_t test_images = 0;
};

absl::StatusOr<PtqResult> RunPtq(const PtqOptions& options);

// A checkpoint's model (float, or QAT-trained) and its run's datasets.
struct RestoredModel {
  TrainConfig config;  // of the float run
  Dataset train, test;  // the run's training images, the whole test set
  ParameterStore params;
  std::unique_ptr<MobileNetV2Model> model;
};

// Rebuilds the model `checkpoint` (read from `path`, named in errors) holds.
absl::StatusOr<std::unique_ptr<RestoredModel>> RestoreModel(const Checkpoint& checkpoint,
                                                            const std::string& path);

// The tutorial's calibration: `batches` batches of `batch_size` training
// images of `r` (shuffled with `seed`, no augmentation), in eval mode.
absl::Status Calibrate(const RestoredModel& r, int batches, int batch_size, uint64_t seed,
                       Calibrator& calibrator);

// What a converted model of `r` records about itself (no producer yet).
ModelDescription DescribeModel(const RestoredModel& r);

// Writes a flat model atomically; returns its size in bytes.
absl::StatusOr<int64_t> SaveModel(Model& model, const std::string& path);

// What a model makes of each test image, in order.
struct Predictions {
  std::vector<int> top1;         // its top-1 class
  std::vector<uint8_t> in_top5;  // whether the label is among its 5 best
};

// Predictions for every `test` image under a flat model run by the runtime,
// fed the normalized images in batches. With `ranks`, each rank runs its
// shard of every batch and all receive every image's predictions.
absl::StatusOr<Predictions> RuntimePredictions(const Model& model, const Dataset& test,
                                               const Normalization& normalization, int threads,
                                               Collectives* ranks = nullptr);

// Predictions for every `test` image under the trainer's fake-quant
// simulation of an int8 model.
absl::StatusOr<Predictions> SimulationPredictions(QuantSimulation& simulation,
                                                  const Dataset& test,
                                                  const Normalization& normalization);

// The share of `test` whose label is the top-1 class.
double Accuracy(const Predictions& predictions, const Dataset& test);
// The tutorial's top-5 accuracy for more than 10 classes; -1 for 10 or fewer.
double Top5Accuracy(const Predictions& predictions, const Dataset& test);
// The share of images where two models' top-1 classes agree.
double Agreement(const Predictions& a, const Predictions& b);

}  // namespace qforge

#endif  // QFORGE_TRAINER_PTQ_H_
