#include "trainer/qat.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/random.h"
#include "data/batch_loader.h"
#include "trainer/checkpoint.h"
#include "trainer/dist/gradient_buckets.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/mobilenet_v2_model.h"
#include "trainer/nn/optimizer.h"
#include "trainer/nn/parallel.h"
#include "trainer/progress.h"
#include "trainer/ptq.h"
#include "trainer/quant/fusion.h"
#include "trainer/quant/qat_model.h"
#include "trainer/quant/quant_sim.h"
#include "trainer/train.h"

namespace qforge {
namespace {

constexpr char kQatCheckpointFile[] = "qat_checkpoint.pb";
constexpr char kQatMetricsFile[] = "qat_metrics.jsonl";
constexpr char kQatModelFile[] = "model_int8_qat.qfm";

absl::Status ValidateQatConfig(const QatConfig& c) {
  auto bad = [](const std::string& field, auto value) {
    return absl::InvalidArgumentError(absl::StrCat("qat: ", field, " ", value, " is not valid"));
  };
  if (c.checkpoint().empty()) return absl::InvalidArgumentError("qat needs --checkpoint");
  if (c.epochs() < 1) return bad("epochs", c.epochs());
  if (c.batches_per_epoch() < 0) return bad("batches_per_epoch", c.batches_per_epoch());
  if (c.batch_size() < 1) return bad("batch_size", c.batch_size());
  if (!(c.lr() > 0)) return bad("lr", c.lr());
  if (!(c.momentum() >= 0 && c.momentum() < 1)) return bad("momentum", c.momentum());
  if (!(c.weight_decay() >= 0)) return bad("weight_decay", c.weight_decay());
  if (c.threads() < 0) return bad("threads", c.threads());
  if (c.precise_bn_batches() < 0) return bad("precise_bn_batches", c.precise_bn_batches());
  if (!(c.distill() >= 0 && c.distill() <= 1)) return bad("distill", c.distill());
  if (!(c.range_lr() >= 0)) return bad("range_lr", c.range_lr());
  const std::string& observer = c.calibrate_activations();
  if (!observer.empty() && observer != "histogram" && observer != "mse" &&
      observer != "percentile" && observer != "minmax") {
    return absl::InvalidArgumentError(absl::StrCat(
        "qat: calibrate_activations '", observer,
        "' is not an activation observer (histogram, mse, percentile or minmax; empty: "
        "observe during QAT)"));
  }
  return absl::OkStatus();
}

// The float model QAT starts from, kept as it is, whose predictions the
// targets mix in (QatConfig.distill).
struct Teacher {
  ParameterStore params;
  std::unique_ptr<MobileNetV2Model> model;
};

absl::StatusOr<std::unique_ptr<Teacher>> MakeTeacher(const Checkpoint& checkpoint,
                                                     const RestoredModel& r) {
  auto teacher = std::make_unique<Teacher>();
  teacher->model = std::make_unique<MobileNetV2Model>(ModelConfigFor(r.config, r.train),
                                                      r.config.model().relu6(), teacher->params);
  if (absl::Status s = RestoreTensors(checkpoint, teacher->params); !s.ok()) return s;
  return teacher;
}

// One QAT run: the model, its fake quantizers, the optimizer and the data.
class QatRun {
 public:
  QatRun(const QatConfig& config, std::unique_ptr<RestoredModel> restored,
         std::unique_ptr<Teacher> teacher, Collectives& ranks)
      : config_(config),
        ranks_(ranks),
        r_(std::move(restored)),
        teacher_(std::move(teacher)),
        qat_(*r_->model, r_->params, r_->config.model().dropout()),
        sgd_(SgdOptions{config.lr(), config.momentum(), config.weight_decay(), false}),
        buckets_(r_->params, ranks),
        dir_(config.output_dir()) {}

  absl::Status Init(bool resume) {
    LoaderOptions options;
    options.batch_size = config_.batch_size();
    options.seed = config_.seed();
    options.pad = r_->train.from_files() ? 0 : r_->config.pad();
    options.horizontal_flip = r_->config.flip();
    options.random_resized_crop = r_->train.from_files();
    options.decode_threads = r_->config.decode_threads();
    normalization_ = DatasetNormalization(r_->train);
    options.normalization = normalization_;
    options.shard = ranks_.rank();
    options.shards = ranks_.size();
    absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(r_->train, options);
    if (!loader.ok()) return loader.status();
    loader_ = *std::move(loader);
    if (multi_rank()) qat_.set_ranks(&ranks_);
    std::error_code ec;
    if (rank0()) std::filesystem::create_directories(dir_, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir_.string(), ": ", ec.message()));
    absl::Status s = resume ? Resume() : Start();
    PushSwitches();
    return s;
  }

  int epochs_done() const { return epoch_; }

  absl::StatusOr<QatEpoch> RunEpoch() {
    QatEpoch e = Train();
    if (absl::Status s = loader_->status(); !s.ok()) return s;
    const bool was_frozen = bn_frozen_;
    ApplySwitches(epoch_ - 1);
    if (bn_frozen_ && !was_frozen && config_.precise_bn_batches() > 0) PreciseBatchNorm();
    if (absl::Status s = loader_->status(); !s.ok()) return s;
    e.observers_enabled = observers_enabled_;
    e.bn_frozen = bn_frozen_;
    if (multi_rank()) {
      // Rank 0's batch-norm statistics (per-rank BN keeps its own on each)
      // and ranges are the run's.
      BroadcastBuffers(r_->params, "the batch-norm running statistics");
      BroadcastBuffers(qat_.state(), "the fake-quant ranges");
      MendDrift(ranks_, {&r_->params.values(), &sgd_.momentum_buffer()});
    }
    if (absl::Status s = ConvertAndMeasure(); !s.ok()) return s;
    if (!rank0()) return e;
    e.int8_accuracy = Accuracy(last_predictions_, r_->test);
    if (absl::Status s = Save(e); !s.ok()) return s;
    return e;
  }

  // The int8 model as the runtime runs it, written out; and the fake-quant
  // simulation's accuracy and agreement with it.
  absl::StatusOr<QatResult> Finish() {
    if (!last_model_.has_value()) {  // resumed after the last epoch: measure again
      if (absl::Status s = ConvertAndMeasure(); !s.ok()) return s;
    }
    if (!rank0()) return QatResult();
    Model* model = &*last_model_;
    const Predictions* runtime = &last_predictions_;
    QatResult result;
    result.test_images = r_->test.count;
    result.int8_accuracy = Accuracy(*runtime, r_->test);
    result.int8_top5 = Top5Accuracy(*runtime, r_->test);
    FusedMobileNetV2 fused(*r_->model, r_->params);
    absl::StatusOr<std::unique_ptr<QuantSimulation>> simulation =
        QuantSimulation::Create(fused, *model);
    if (!simulation.ok()) return simulation.status();
    absl::StatusOr<Predictions> simulated =
        SimulationPredictions(**simulation, r_->test, normalization_);
    if (!simulated.ok()) return simulated.status();
    result.simulation_accuracy = Accuracy(*simulated, r_->test);
    result.simulation_agreement = Agreement(*simulated, *runtime);
    model->mutable_metadata()->set_accuracy_top1(static_cast<float>(result.int8_accuracy));
    if (result.int8_top5 >= 0) {
      model->mutable_metadata()->set_accuracy_top5(static_cast<float>(result.int8_top5));
    }
    model->mutable_metadata()->set_accuracy_images(static_cast<int32_t>(r_->test.count));
    result.int8_path = (dir_ / kQatModelFile).string();
    absl::StatusOr<int64_t> bytes = SaveModel(*model, result.int8_path);
    if (!bytes.ok()) return bytes.status();
    result.int8_bytes = *bytes;
    return result;
  }

 private:
  bool rank0() const { return ranks_.rank() == 0; }
  bool multi_rank() const { return ranks_.size() > 1; }

  void BroadcastBuffers(ParameterStore& store, const char* what) {
    ranks_.Broadcast(store.buffers().data(), static_cast<int64_t>(store.buffers().size()), what);
  }

  // The pass of a training batch: its rows' place in the whole batch, and the
  // ranks its batch norm spans when synchronised.
  PassContext TrainingPass(const Batch& batch) const {
    PassContext ctx{/*training=*/true, config_.seed(), step_};
    ctx.row_offset = batch.offset;
    if (config_.sync_batch_norm() && multi_rank()) ctx.sync_batch_norm = &ranks_;
    return ctx;
  }

  int Threads() const {
    return config_.threads() > 0 ? config_.threads() : std::max(1, r_->config.threads());
  }

  // The tutorial's train_one_epoch: the first batches_per_epoch batches of a
  // fresh shuffle, in training mode.
  QatEpoch Train() {
    loader_->StartEpoch(epoch_);
    const int64_t batches = config_.batches_per_epoch() > 0
                                ? std::min<int64_t>(config_.batches_per_epoch(),
                                                    loader_->batches_per_epoch())
                                : loader_->batches_per_epoch();
    Progress progress(absl::StrFormat("qat epoch %d/%d", epoch_ + 1, config_.epochs()), batches,
                      rank0() ? stdout : nullptr);
    Batch batch;
    FloatTensor x, dlogits;
    PassTotals totals;
    for (int64_t b = 0; b < batches && loader_->Next(&batch); ++b) {
      BatchToTensor(batch, x);
      r_->params.ZeroGrads();
      const LossResult loss = Loss(x, batch, &dlogits);
      if (multi_rank()) WeighShard(batch, dlogits);
      qat_.Backward(dlogits, &buckets_);
      buckets_.Finish();
      sgd_.Step(r_->params.values(), r_->params.grads(), config_.lr(), config_.momentum());
      if (learning_ranges()) qat_.StepRanges(config_.range_lr(), multi_rank() ? &ranks_ : nullptr);
      // QatConvBn folds the running variance into the weights it quantizes:
      // with per-rank BN the ranks would quantize different weights by the
      // next step. They take rank 0's statistics, as DDP's broadcast_buffers.
      if (multi_rank() && !config_.sync_batch_norm()) {
        BroadcastBuffers(r_->params, "the batch-norm running statistics");
      }
      ++step_;
      totals.Add(loss, batch.size);
      progress.Update(b + 1, totals.images, totals.loss_sum, totals.correct);
    }
    progress.Finish();
    StopAllIfFailed(ranks_, loader_->status());
    totals.SumOverRanks(ranks_);
    QatEpoch e;
    e.epoch = ++epoch_;
    e.train_loss = totals.mean_loss();
    e.train_accuracy = totals.accuracy();
    e.seconds = progress.elapsed_seconds();
    return e;
  }

  // The training loss of a batch and its gradient: cross-entropy against the
  // labels, mixed with the teacher's predictions if the recipe distills.
  LossResult Loss(const FloatTensor& x, const Batch& batch, FloatTensor* dlogits) {
    const FloatTensor& logits = qat_.Forward(x, TrainingPass(batch));
    if (teacher_ == nullptr) return CrossEntropy(logits, batch.labels, dlogits);
    return DistillationCrossEntropy(logits, batch.labels,
                                    teacher_->model->Forward(x, PassContext{}), config_.distill(),
                                    dlogits);
  }

  // BN's running statistics as the average over precise_bn_batches batches of
  // a fresh shuffle (the next epoch's), measured through the fake quantizers
  // they will be frozen with, rather than a moving average dominated by the
  // last few hundred images.
  void PreciseBatchNorm() {
    loader_->StartEpoch(epoch_);
    Progress progress("precise BN statistics", config_.precise_bn_batches(),
                      rank0() ? stdout : nullptr);
    qat_.set_activation_observers_enabled(false);
    qat_.set_weight_observers_enabled(false);
    qat_.set_freeze_bn(false);
    Batch batch;
    FloatTensor x, dlogits;
    PassTotals totals;
    for (int b = 0; b < config_.precise_bn_batches() && loader_->Next(&batch); ++b) {
      BatchToTensor(batch, x);
      PassContext ctx = TrainingPass(batch);
      ctx.bn_momentum = 1.0f / (b + 1);
      totals.Add(CrossEntropy(qat_.Forward(x, ctx), batch.labels, &dlogits), batch.size);
      progress.Update(b + 1, totals.images, totals.loss_sum, totals.correct);
    }
    progress.Finish();
    StopAllIfFailed(ranks_, loader_->status());
    if (multi_rank() && !config_.sync_batch_norm()) {
      BroadcastBuffers(r_->params, "the batch-norm running statistics");
    }
    PushSwitches();
  }

  // The tutorial's `if nepoch > 3: disable_observer`, `if nepoch > 2:
  // freeze_bn_stats`, after epoch `index` (0-based).
  void ApplySwitches(int index) {
    if (index > config_.disable_observer_after_epoch()) observers_enabled_ = false;
    if (index > config_.freeze_bn_after_epoch()) bn_frozen_ = true;
    PushSwitches();
  }

  // Calibrated activation ranges stay as calibrated.
  void PushSwitches() {
    qat_.set_activation_observers_enabled(observers_enabled_ &&
                                          config_.calibrate_activations().empty());
    qat_.set_weight_observers_enabled(observers_enabled_);
    qat_.set_freeze_bn(bn_frozen_);
    qat_.set_range_learning(learning_ranges());
  }

  bool learning_ranges() const { return !observers_enabled_ && config_.range_lr() > 0; }

  // A fresh run: the activation ranges calibrated if the recipe says so, and
  // the metrics file started anew.
  absl::Status Start() {
    if (!config_.calibrate_activations().empty()) {
      FusedMobileNetV2 fused(*r_->model, r_->params);
      const QConfig qconfig{"qat calibration", config_.calibrate_activations(), true};
      Calibrator calibrator(LayerQConfigs{qconfig, {}, {}}, fused);
      const PtqOptions ptq;
      if (absl::Status s = Calibrate(*r_, ptq.calib_batches, ptq.calib_batch_size,
                                     r_->config.seed(), calibrator);
          !s.ok()) {
        return s;
      }
      if (absl::Status s = qat_.SetActivationRanges(calibrator); !s.ok()) return s;
    }
    return KeepMetricLines(0);
  }

  // The model as it stands, converted to int8 and run by the runtime on the
  // test set: last_model_ and last_predictions_. Every rank converts the same
  // model and runs its shard of the test set.
  absl::Status ConvertAndMeasure() {
    absl::StatusOr<Model> model = Convert();
    StopAllIfFailed(ranks_, model.status());
    if (!model.ok()) return model.status();
    absl::StatusOr<Predictions> predictions =
        RuntimePredictions(*model, r_->test, normalization_, Threads(), &ranks_);
    StopAllIfFailed(ranks_, predictions.status());
    if (!predictions.ok()) return predictions.status();
    last_model_ = *std::move(model);
    last_predictions_ = *std::move(predictions);
    return absl::OkStatus();
  }

  absl::StatusOr<Model> Convert() {
    FusedMobileNetV2 fused(*r_->model, r_->params);
    const LayerQConfigs qconfigs{QConfig{"qat", "", /*per_channel_weights=*/true}, {}, {}};
    ModelDescription description = DescribeModel(*r_);
    description.producer = absl::StrFormat("qforge trainer qat (%d epochs)", epoch_);
    return ConvertToInt8(fused, qat_, qconfigs, description);
  }

  absl::Status Save(const QatEpoch& e) {
    if (!rank0()) return absl::OkStatus();
    std::ofstream metrics(dir_ / kQatMetricsFile, std::ios::app);
    metrics << absl::StrFormat(
        R"({"epoch": %d, "step": %d, "train_loss": %.6f, "train_accuracy": %.6f, )"
        R"("observers_enabled": %s, "bn_frozen": %s, "int8_accuracy": %.6f, "seconds": %.2f})",
        e.epoch, step_, e.train_loss, e.train_accuracy, e.observers_enabled ? "true" : "false",
        e.bn_frozen ? "true" : "false", e.int8_accuracy, e.seconds)
            << "\n";
    if (!metrics.flush()) return absl::InternalError("cannot append to the QAT metrics file");
    Checkpoint checkpoint;
    *checkpoint.mutable_config() = r_->config;
    *checkpoint.mutable_qat() = config_;
    checkpoint.set_epoch(epoch_);
    checkpoint.set_step(step_);
    checkpoint.set_test_accuracy(static_cast<float>(e.int8_accuracy));
    CaptureState(r_->params, sgd_, checkpoint);
    CaptureTensors(qat_.state(), checkpoint);
    return WriteCheckpoint(std::move(checkpoint), (dir_ / kQatCheckpointFile).string());
  }

  absl::Status Resume() {
    const std::string path = (dir_ / kQatCheckpointFile).string();
    absl::StatusOr<Checkpoint> checkpoint = ReadCheckpointOnRank0(ranks_, path, /*latest=*/true);
    if (!checkpoint.ok()) return checkpoint.status();
    absl::Status s = RestoreState(*checkpoint, r_->params, sgd_);
    if (s.ok()) s = RestoreTensors(*checkpoint, qat_.state());
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
    if (absl::Status s = SameRecipe(checkpoint->qat(), path); !s.ok()) return s;
    epoch_ = checkpoint->epoch();
    step_ = checkpoint->step();
    for (int e = 0; e < epoch_; ++e) ApplySwitches(e);
    return KeepMetricLines(epoch_);
  }

  // A resumed run must follow the recipe it started with; only the epoch
  // count (to train longer), threads, batch-norm synchronisation and paths
  // may change.
  absl::Status SameRecipe(const QatConfig& saved, const std::string& path) const {
    QatConfig a = saved, b = config_;
    for (QatConfig* c : {&a, &b}) {
      c->clear_epochs();
      c->clear_threads();
      c->clear_sync_batch_norm();
      c->clear_checkpoint();
      c->clear_output_dir();
    }
    if (a.SerializeAsString() == b.SerializeAsString()) return absl::OkStatus();
    return absl::InvalidArgumentError(absl::StrCat(
        path, " was made with another recipe (", a.ShortDebugString(), "); resume with it (only ",
        "--epochs may change), or start anew without --resume"));
  }

  // A fresh run starts the metrics anew; a resumed one drops lines written
  // after its checkpoint.
  absl::Status KeepMetricLines(int epochs) {
    if (!rank0()) return absl::OkStatus();
    return KeepFirstLines((dir_ / kQatMetricsFile).string(), epochs);
  }

  QatConfig config_;
  Collectives& ranks_;
  std::unique_ptr<RestoredModel> r_;
  std::unique_ptr<Teacher> teacher_;  // null: the labels alone
  QatMobileNetV2 qat_;
  Sgd sgd_;
  GradientBuckets buckets_;
  std::filesystem::path dir_;
  std::unique_ptr<BatchLoader> loader_;
  Normalization normalization_;  // of the training images, for every model input
  int epoch_ = 0;
  int64_t step_ = 0;
  bool observers_enabled_ = true, bn_frozen_ = false;
  std::optional<Model> last_model_;  // the last epoch's conversion
  Predictions last_predictions_;  // and its runtime predictions
};

}  // namespace

QatConfig DefaultQatConfig() {
  QatConfig c;
  c.set_epochs(8);
  c.set_batches_per_epoch(20);
  c.set_batch_size(30);
  c.set_lr(1e-4f);
  c.set_momentum(0);
  c.set_weight_decay(0);
  c.set_disable_observer_after_epoch(3);
  c.set_freeze_bn_after_epoch(2);
  c.set_seed(1);
  return c;
}

absl::StatusOr<QatConfig> LoadQatConfig(const std::string& path) {
  QatConfig config = DefaultQatConfig();
  if (absl::Status s = MergeTextProtoFile(path, &config); !s.ok()) return s;
  return config;
}

absl::StatusOr<QatResult> RunQat(const QatConfig& given, bool resume, Collectives* ranks) {
  SingleProcess single_process;
  Collectives& all = ranks != nullptr ? *ranks : single_process;
  QatConfig config = given;
  if (absl::Status s = ValidateQatConfig(config); !s.ok()) return s;
  if (config.output_dir().empty()) {
    config.set_output_dir(std::filesystem::path(config.checkpoint()).parent_path().string());
  }
  absl::StatusOr<Checkpoint> source =
      ReadCheckpointOnRank0(all, config.checkpoint(), /*latest=*/false);
  if (!source.ok()) return source.status();
  absl::StatusOr<std::unique_ptr<RestoredModel>> restored =
      RestoreModel(*source, config.checkpoint());
  if (!restored.ok()) return restored.status();
  const int threads = config.threads() > 0 ? config.threads() : std::max(1, (*restored)->config.threads());
  ConfigurePool(threads);
  std::unique_ptr<Teacher> teacher;
  if (config.distill() > 0) {
    absl::StatusOr<std::unique_ptr<Teacher>> made = MakeTeacher(*source, **restored);
    if (!made.ok()) return made.status();
    teacher = *std::move(made);
  }
  QatRun run(config, *std::move(restored), std::move(teacher), all);
  if (absl::Status s = run.Init(resume); !s.ok()) return s;
  std::vector<QatEpoch> epochs;
  while (run.epochs_done() < config.epochs()) {
    absl::StatusOr<QatEpoch> e = run.RunEpoch();
    if (!e.ok()) return e.status();
    epochs.push_back(*e);
    if (all.rank() != 0) continue;
    std::printf("qat epoch %d/%d: train loss %.4f acc %.2f%% | int8 (runtime) %.2f%% | observers "
                "%s, BN %s | %.1f s\n",
                e->epoch, config.epochs(), e->train_loss, 100 * e->train_accuracy,
                100 * e->int8_accuracy, e->observers_enabled ? "on" : "off",
                e->bn_frozen ? "frozen" : "training", e->seconds);
    std::fflush(stdout);
  }
  absl::StatusOr<QatResult> result = run.Finish();
  if (!result.ok()) return result.status();
  result->epochs = std::move(epochs);
  return result;
}

}  // namespace qforge
