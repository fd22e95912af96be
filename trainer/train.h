// Float training of MobileNetV2: the loop behind `bazel run //trainer -- train`.
// Each epoch trains on the shuffled, augmented training set, evaluates on the
// test set, appends a line to <output_dir>/metrics.jsonl and writes
// <output_dir>/checkpoint.pb atomically. A run killed at any point resumes from
// the last checkpoint and ends with the same weights as one never interrupted
// (same seed and thread count): data order, augmentation and dropout masks
// derive from (seed, epoch, step), and every reduction is done in a fixed order.
//
// Data-parallel (started by mpirun): each rank trains on its shard of every
// batch, gradients are summed over the ranks before the step, and rank 0 alone
// prints and writes. With sync_batch_norm, N ranks follow one process's
// trajectory to float-summation tolerance.
#ifndef QFORGE_TRAINER_TRAIN_H_
#define QFORGE_TRAINER_TRAIN_H_

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "trainer/checkpoint.pb.h"
#include "trainer/config.pb.h"
#include "trainer/dist/collectives.h"
#include "trainer/dist/gradient_buckets.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/optimizer.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"

namespace qforge {

// The main job's float training: Fashion-MNIST, MobileNetV2 width 0.5 with the
// small-input strides, ReLU6, SGD with Nesterov momentum and a one-cycle rate.
TrainConfig DefaultTrainConfig();

// A text-format TrainConfig file merged over the defaults.
absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path);

// InvalidArgument naming the field for any value the trainer cannot use.
absl::Status ValidateTrainConfig(const TrainConfig& config);

struct EvalResult {
  double loss = 0;
  double accuracy = 0;  // in [0, 1]
  double top5 = -1;     // the tutorial's top-5, for more than 10 classes; else -1
  int64_t images = 0;
};

// How many rows of logits [rows, classes] rank their label among the first k
// (ties broken by class index, as the top-1 class is).
int64_t TopKCorrect(const float* logits, const std::vector<int32_t>& labels, int rows, int classes,
                    int k);

struct EpochResult {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;
  double test_loss = 0, test_accuracy = 0;
  double test_top5 = -1;  // for more than 10 classes
  double images_per_second = 0, seconds = 0;
  float last_lr = 0;
  // Data-parallel runs: rank 0's time in collectives during the epoch's
  // steps (waiting for other ranks included) and the bytes it sent to them.
  CollectiveTraffic traffic;
  int64_t steps = 0;
};

class Trainer {
 public:
  // `ranks`: the run's ranks (must outlive the trainer); null: this process only.
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainConfig& config,
                                                         Collectives* ranks = nullptr);

  // Continues the run saved in <output_dir>/checkpoint.pb (read by rank 0, and
  // sent to the others: they need not see its filesystem).
  absl::Status Resume();
  // Trains until config.epochs are done, or for at most `max_epochs` more
  // (tests use it to stop a run mid-way), writing checkpoints and metrics.
  absl::StatusOr<std::vector<EpochResult>> Run(int max_epochs = -1);
  // Accuracy and loss on the (possibly limited) test set, in eval mode.
  EvalResult Evaluate();

  ParameterStore& params() { return params_; }
  const TrainConfig& config() const { return config_; }
  int epochs_done() const { return epoch_; }

 private:
  Trainer(const TrainConfig& config, Dataset train, Dataset test, Collectives* ranks);
  Trainer(const Trainer&) = delete;  // ranks_ may point at single_process_
  Trainer& operator=(const Trainer&) = delete;
  absl::Status Init();
  EpochResult TrainEpoch();
  absl::Status SaveEpoch(const EpochResult& result);
  void PrintTraffic(const EpochResult& result) const;
  ScheduleOptions RateSchedule() const;
  bool multi_rank() const { return ranks_->size() > 1; }

  TrainConfig config_;
  SingleProcess single_process_;
  Collectives* ranks_;  // single_process_ unless given
  Dataset train_, test_;
  ParameterStore params_;
  std::unique_ptr<MobileNetV2Model> model_;
  std::unique_ptr<Sgd> sgd_;
  std::unique_ptr<GradientBuckets> buckets_;
  std::unique_ptr<BatchLoader> train_loader_, test_loader_;
  int epoch_ = 0;     // epochs completed
  int64_t step_ = 0;  // optimizer steps taken
};

// A checkpoint on every rank as rank 0 reads it -- ReadLatestCheckpoint (for
// --resume), else ReadCheckpoint -- sent to the others (they need not see its
// filesystem); or its error.
absl::StatusOr<Checkpoint> ReadCheckpointOnRank0(Collectives& ranks, const std::string& path,
                                                 bool latest);

// The model a config describes (shared with the converter and tests).
MobileNetV2Config ModelConfigFor(const TrainConfig& config, const Dataset& train);

// The model `model` describes for images of `channels` x `size` x `size`, with
// `dataset_classes` classes where model.num_classes is 0.
MobileNetV2Config ModelConfigForImages(const ModelConfig& model, int channels, int size,
                                       int dataset_classes);

// The config's dataset split, read from disk (all of it).
absl::StatusOr<Dataset> LoadDatasetSplit(const TrainConfig& config, Split split);

// The images a run trains on: the training split cut to max_train_images.
// Everything derived from the training data (the normalization) uses these.
absl::StatusOr<Dataset> LoadTrainingSet(const TrainConfig& config);

// Per-channel mean and std of a dataset's pixels scaled to [0, 1]: the
// normalization training, calibration and the converted models all apply.
Normalization DatasetNormalization(const Dataset& dataset);

// Data-parallel: the loss is the whole batch's mean, so each image of a
// rank's shard weighs 1/global_size and the ranks' gradients add up to the
// batch's. Scales the shard's dL/dlogits (CrossEntropy's, per shard image).
void WeighShard(const Batch& batch, FloatTensor& dlogits);

// A pass's loss, images and correct predictions: this rank's shards, until
// SumOverRanks makes them the whole pass's.
struct PassTotals {
  double loss_sum = 0;  // of the per-image losses
  int64_t images = 0, correct = 0;
  int64_t top5 = 0;  // evaluation with more than 10 classes

  void Add(const LossResult& loss, int64_t batch_images) {
    loss_sum += loss.loss * batch_images;
    images += batch_images;
    correct += loss.correct;
  }
  void SumOverRanks(Collectives& ranks);
  double mean_loss() const { return loss_sum / std::max<int64_t>(images, 1); }
  double accuracy() const { return static_cast<double>(correct) / std::max<int64_t>(images, 1); }
};

// A loaded batch's images as the [N, H, W, C] input of a model.
void BatchToTensor(const Batch& batch, FloatTensor& x);

}  // namespace qforge

#endif  // QFORGE_TRAINER_TRAIN_H_
