// Quantization-aware training end to end, the tutorial's section 5: a float
// checkpoint -> the QAT model (trainer/quant/qat_model.h) -> fine-tuning with fake
// quantization, observers disabled and BN statistics frozen on the recipe's
// epochs -> after every epoch, convert to int8 and measure the runtime on the
// full test set. Each epoch appends a line to <output_dir>/qat_metrics.jsonl and
// writes <output_dir>/qat_checkpoint.pb atomically, so a stopped run resumes;
// the last epoch's model is <output_dir>/model_int8_qat.qfm.
#ifndef QFORGE_TRAINER_QAT_H_
#define QFORGE_TRAINER_QAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "trainer/config.pb.h"
#include "trainer/dist/collectives.h"

namespace qforge {

// The tutorial's recipe: 8 epochs of 20 batches of 30 images, SGD lr 1e-4,
// observers off after epoch 3 and BN frozen after epoch 2 (0-based).
QatConfig DefaultQatConfig();

// A text-format QatConfig file merged over the defaults.
absl::StatusOr<QatConfig> LoadQatConfig(const std::string& path);

struct QatEpoch {
  int epoch = 0;  // 1-based
  double train_loss = 0, train_accuracy = 0;  // on the epoch's batches
  bool observers_enabled = true, bn_frozen = false;  // after the epoch
  double int8_accuracy = 0;  // runtime, full test set
  double seconds = 0;
};

struct QatResult {
  std::vector<QatEpoch> epochs;  // the epochs this call ran
  std::string int8_path;
  int64_t int8_bytes = 0;
  double int8_accuracy = 0;  // the final model's, runtime
  double int8_top5 = -1;     // its top-5, for more than 10 classes
  // The trainer's fake-quant simulation of the final model: its accuracy and
  // its top-1 agreement with the runtime.
  double simulation_accuracy = 0, simulation_agreement = 0;
  int64_t test_images = 0;
};

// Runs `config` (resume: continue the run in its output_dir). Data-parallel
// over `ranks` if given, as Trainer: each rank fine-tunes on its shard of every
// batch, fake-quant ranges are observed over all shards, and rank 0 alone
// converts, measures and writes; the others' result is empty.
absl::StatusOr<QatResult> RunQat(const QatConfig& config, bool resume,
                                 Collectives* ranks = nullptr);

}  // namespace qforge

#endif  // QFORGE_TRAINER_QAT_H_
