#include "trainer/train.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data/cifar10.h"
#include "data/idx.h"
#include "data/image_folder.h"
#include "trainer/checkpoint.h"
#include "trainer/nn/loss.h"
#include "trainer/nn/parallel.h"
#include "trainer/progress.h"

namespace qforge {
namespace {

constexpr char kCheckpointFile[] = "checkpoint.pb";
constexpr char kMetricsFile[] = "metrics.jsonl";

// The first `limit` images of a dataset (0: all); of an image folder, whose
// files are sorted by class, `limit` spread evenly over all of them.
void Truncate(Dataset& d, int64_t limit) {
  if (limit <= 0 || limit >= d.count) return;
  if (d.from_files()) {
    for (int64_t i = 0; i < limit; ++i) {
      const int64_t from = i * d.count / limit;
      d.files[i] = d.files[from];
      d.labels[i] = d.labels[from];
    }
    d.files.resize(limit);
  } else {
    d.pixels.resize(limit * d.image_size());
  }
  d.count = limit;
  d.labels.resize(limit);
}

}  // namespace

absl::StatusOr<Dataset> LoadDatasetSplit(const TrainConfig& config, Split split) {
  if (config.dataset() == "imagefolder") {
    return LoadImageFolder(config.data_dir(), split,
                           config.image_size() > 0 ? config.image_size() : 224);
  }
  if (config.dataset() == "fashion-mnist") {
    return LoadFashionMnist(config.data_dir().empty() ? kDefaultFashionMnistDir : config.data_dir(),
                            split);
  }
  return LoadCifar10(config.data_dir(), split);
}

absl::StatusOr<Dataset> LoadTrainingSet(const TrainConfig& config) {
  absl::StatusOr<Dataset> train = LoadDatasetSplit(config, Split::kTrain);
  if (!train.ok()) return train.status();
  const int classes = config.model().num_classes();
  if (classes > 0 && classes != train->num_classes()) {
    return absl::InvalidArgumentError(absl::StrCat("model.num_classes ", classes,
                                                   " differs from the dataset's ",
                                                   train->num_classes(), " classes"));
  }
  Truncate(*train, config.max_train_images());
  return train;
}

void PassTotals::SumOverRanks(Collectives& ranks) {
  double sums[4] = {loss_sum, static_cast<double>(images), static_cast<double>(correct),
                    static_cast<double>(top5)};
  ranks.Sum(sums, 4, "the pass's totals");
  loss_sum = sums[0];
  images = static_cast<int64_t>(sums[1]);
  correct = static_cast<int64_t>(sums[2]);
  top5 = static_cast<int64_t>(sums[3]);
}

void WeighShard(const Batch& batch, FloatTensor& dlogits) {
  const float share = static_cast<float>(batch.size) / batch.global_size;
  for (float& g : dlogits.data) g *= share;
}

void BatchToTensor(const Batch& batch, FloatTensor& x) {
  x.Resize({batch.size, batch.height, batch.width, batch.channels});
  std::copy(batch.images.begin(), batch.images.end(), x.data.begin());
}

Normalization DatasetNormalization(const Dataset& d) {
  if (!d.mean.empty()) return Normalization{d.mean, d.std};  // an image folder's (ImageNet's)
  std::vector<double> sum(d.channels, 0), sq(d.channels, 0);
  for (size_t i = 0; i < d.pixels.size(); ++i) {
    const double v = d.pixels[i] / 255.0;
    sum[i % d.channels] += v;
    sq[i % d.channels] += v * v;
  }
  Normalization norm;
  const double n = static_cast<double>(d.pixels.size() / d.channels);
  for (int c = 0; c < d.channels; ++c) {
    const double mean = sum[c] / n;
    norm.mean.push_back(static_cast<float>(mean));
    norm.std.push_back(static_cast<float>(std::sqrt(sq[c] / n - mean * mean)));
  }
  return norm;
}

TrainConfig DefaultTrainConfig() {
  TrainConfig c;
  c.set_dataset("fashion-mnist");
  c.mutable_model()->set_width_mult(0.5f);
  c.mutable_model()->set_relu6(true);
  c.mutable_model()->set_dropout(0.2f);
  c.set_epochs(4);
  c.set_batch_size(64);
  c.set_lr(0.1f);
  c.set_schedule("onecycle");
  c.set_momentum(0.9f);
  c.set_weight_decay(4e-5f);
  c.set_nesterov(true);
  c.set_step_epochs(30);
  c.set_gamma(0.1f);
  c.set_pad(2);
  c.set_flip(true);
  c.set_seed(0);
  c.set_threads(2);
  c.set_output_dir("qforge_out");
  return c;
}

absl::StatusOr<TrainConfig> LoadTrainConfig(const std::string& path) {
  TrainConfig config = DefaultTrainConfig();
  if (absl::Status s = MergeTextProtoFile(path, &config); !s.ok()) return s;
  return config;
}

absl::Status ValidateTrainConfig(const TrainConfig& c) {
  auto bad = [](const std::string& what) { return absl::InvalidArgumentError(what); };
  if (c.dataset() != "fashion-mnist" && c.dataset() != "cifar10" && c.dataset() != "imagefolder") {
    return bad(absl::StrCat("dataset '", c.dataset(),
                            "' is not fashion-mnist, cifar10 or imagefolder"));
  }
  if (c.dataset() == "cifar10" && c.data_dir().empty()) {
    return bad("dataset cifar10 needs data_dir (the cifar-10-batches-bin directory)");
  }
  if (c.dataset() == "imagefolder" && c.data_dir().empty()) {
    return bad("dataset imagefolder needs data_dir (holding train/ and val/)");
  }
  if (c.image_size() < 0 || c.image_size() > 1024) {
    return bad(absl::StrCat("image_size ", c.image_size(), " is outside [0, 1024]"));
  }
  if (!(c.model().width_mult() > 0) || c.model().width_mult() > 4) {
    return bad(absl::StrCat("model.width_mult ", c.model().width_mult(), " is outside (0, 4]"));
  }
  const std::string& geometry = c.model().geometry();
  if (!geometry.empty() && geometry != "small" && geometry != "imagenet") {
    return bad(absl::StrCat("model.geometry '", geometry, "' is not small or imagenet"));
  }
  if (c.model().num_classes() < 0) {
    return bad(absl::StrCat("model.num_classes ", c.model().num_classes(), " is negative"));
  }
  if (c.model().dropout() < 0 || c.model().dropout() >= 1) {
    return bad(absl::StrCat("model.dropout ", c.model().dropout(), " is outside [0, 1)"));
  }
  if (c.epochs() < 1) return bad(absl::StrCat("epochs ", c.epochs(), " must be at least 1"));
  if (c.batch_size() < 1) return bad(absl::StrCat("batch_size ", c.batch_size(), " must be >= 1"));
  if (!(c.lr() > 0) || !std::isfinite(c.lr())) return bad(absl::StrCat("lr ", c.lr(), " must be > 0"));
  if (c.schedule() != "constant" && c.schedule() != "step" && c.schedule() != "cosine" &&
      c.schedule() != "onecycle") {
    return bad(absl::StrCat("schedule '", c.schedule(),
                            "' is not constant, step, cosine or onecycle"));
  }
  if (c.momentum() < 0 || c.momentum() >= 1) {
    return bad(absl::StrCat("momentum ", c.momentum(), " is outside [0, 1)"));
  }
  if (c.weight_decay() < 0) return bad("weight_decay must be >= 0");
  if (c.threads() < 1 || c.threads() > 256) {
    return bad(absl::StrCat("threads ", c.threads(), " is outside [1, 256]"));
  }
  if (c.decode_threads() < 0 || c.decode_threads() > 256) {
    return bad(absl::StrCat("decode_threads ", c.decode_threads(), " is outside [0, 256]"));
  }
  if (c.pad() < 0) return bad("pad must be >= 0");
  if (c.output_dir().empty()) return bad("output_dir is empty");
  return absl::OkStatus();
}

MobileNetV2Config ModelConfigForImages(const ModelConfig& model, int channels, int size,
                                       int dataset_classes) {
  MobileNetV2Config m;
  m.input_channels = channels;
  m.input_size = size;
  m.num_classes = model.num_classes() > 0 ? model.num_classes() : dataset_classes;
  m.width_mult = model.width_mult();
  m.small_input = model.geometry().empty() ? size <= 32 : model.geometry() == "small";
  return m;
}

MobileNetV2Config ModelConfigFor(const TrainConfig& config, const Dataset& train) {
  return ModelConfigForImages(config.model(), train.channels, train.height, train.num_classes());
}

absl::StatusOr<Checkpoint> ReadCheckpointOnRank0(Collectives& ranks, const std::string& path,
                                                 bool latest) {
  // Rank 0's checkpoint, or its error, on every rank: "C" and the checkpoint's
  // bytes, or "E", the status code as a byte, and the message.
  std::string message;
  if (ranks.rank() == 0) {
    absl::StatusOr<Checkpoint> read = latest ? ReadLatestCheckpoint(path) : ReadCheckpoint(path);
    if (ranks.size() == 1) return read;
    message = read.ok() ? "C" + read->SerializeAsString()
                        : absl::StrCat("E", std::string(1, static_cast<char>(read.status().code())),
                                       read.status().message());
  }
  ranks.Broadcast(message, "the checkpoint to resume from");
  if (message.empty() || message[0] != 'C') {
    const auto code = static_cast<absl::StatusCode>(message.size() > 1 ? message[1] : 2);
    return absl::Status(code, message.size() > 2 ? message.substr(2) : "no checkpoint from rank 0");
  }
  Checkpoint checkpoint;
  if (!checkpoint.ParseFromArray(message.data() + 1, static_cast<int>(message.size() - 1))) {
    return absl::DataLossError(absl::StrCat(path, ": rank 0's checkpoint did not arrive whole"));
  }
  return checkpoint;
}

Trainer::Trainer(const TrainConfig& config, Dataset train, Dataset test, Collectives* ranks)
    : config_(config),
      ranks_(ranks != nullptr ? ranks : &single_process_),
      train_(std::move(train)),
      test_(std::move(test)) {}

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainConfig& config,
                                                         Collectives* ranks) {
  if (absl::Status s = ValidateTrainConfig(config); !s.ok()) return s;
  absl::StatusOr<Dataset> train = LoadTrainingSet(config);
  if (!train.ok()) return train.status();
  absl::StatusOr<Dataset> test = LoadDatasetSplit(config, Split::kTest);
  if (!test.ok()) return test.status();
  Truncate(*test, config.max_test_images());
  std::unique_ptr<Trainer> trainer(new Trainer(config, *std::move(train), *std::move(test), ranks));
  if (absl::Status s = trainer->Init(); !s.ok()) return s;
  return trainer;
}

absl::Status Trainer::Init() {
  ConfigurePool(config_.threads());
  model_ = std::make_unique<MobileNetV2Model>(ModelConfigFor(config_, train_),
                                              config_.model().relu6(), params_,
                                              config_.model().dropout());
  model_->Initialize(config_.seed());
  buckets_ = std::make_unique<GradientBuckets>(params_, *ranks_);
  sgd_ = std::make_unique<Sgd>(SgdOptions{config_.lr(), config_.momentum(),
                                          config_.weight_decay(), config_.nesterov()});
  LoaderOptions train_options;
  train_options.batch_size = config_.batch_size();
  train_options.seed = config_.seed();
  train_options.pad = train_.from_files() ? 0 : config_.pad();
  train_options.horizontal_flip = config_.flip();
  train_options.random_resized_crop = train_.from_files();
  train_options.decode_threads = config_.decode_threads();
  train_options.normalization = DatasetNormalization(train_);
  train_options.shard = ranks_->rank();
  train_options.shards = ranks_->size();
  LoaderOptions test_options = train_options;
  test_options.shuffle = false;
  test_options.pad = 0;
  test_options.horizontal_flip = false;
  test_options.random_resized_crop = false;
  test_options.batch_size = 256;
  test_options.allow_empty_shards = true;
  absl::StatusOr<std::unique_ptr<BatchLoader>> train_loader =
      BatchLoader::Create(train_, train_options);
  if (!train_loader.ok()) return train_loader.status();
  absl::StatusOr<std::unique_ptr<BatchLoader>> test_loader =
      BatchLoader::Create(test_, test_options);
  if (!test_loader.ok()) return test_loader.status();
  train_loader_ = *std::move(train_loader);
  test_loader_ = *std::move(test_loader);
  if (ranks_->rank() != 0) return absl::OkStatus();  // rank 0 writes
  std::error_code ec;
  std::filesystem::create_directories(config_.output_dir(), ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create output_dir ", config_.output_dir(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

absl::Status Trainer::Resume() {
  const std::string path = (std::filesystem::path(config_.output_dir()) / kCheckpointFile).string();
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpointOnRank0(*ranks_, path, /*latest=*/true);
  if (!checkpoint.ok()) return checkpoint.status();
  if (absl::Status s = RestoreState(*checkpoint, params_, *sgd_); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  epoch_ = checkpoint->epoch();
  step_ = checkpoint->step();
  if (ranks_->rank() != 0) return absl::OkStatus();
  return KeepFirstLines((std::filesystem::path(config_.output_dir()) / kMetricsFile).string(),
                        epoch_);
}

ScheduleOptions Trainer::RateSchedule() const {
  ScheduleOptions s;
  const std::string& kind = config_.schedule();
  s.kind = kind == "onecycle" ? Schedule::kOneCycle
           : kind == "cosine" ? Schedule::kCosine
           : kind == "step"   ? Schedule::kStep
                              : Schedule::kConstant;
  s.base_lr = config_.lr();
  s.iterations_per_epoch = train_loader_->batches_per_epoch();
  s.total_iterations = s.iterations_per_epoch * config_.epochs();
  s.step_epochs = std::max(1, config_.step_epochs());
  s.gamma = config_.gamma();
  return s;
}

EpochResult Trainer::TrainEpoch() {
  const ScheduleOptions schedule = RateSchedule();
  train_loader_->StartEpoch(epoch_);
  // Rank 0 shows its own shard's progress; the epoch's line has all ranks'.
  Progress progress(absl::StrFormat("epoch %d/%d", epoch_ + 1, config_.epochs()),
                    train_loader_->batches_per_epoch(), ranks_->rank() == 0 ? stdout : nullptr);
  Batch batch;
  FloatTensor x, dlogits;
  EpochResult result;
  PassTotals totals;
  int64_t batches = 0;
  const CollectiveTraffic traffic_before = ranks_->traffic();
  while (train_loader_->Next(&batch)) {
    BatchToTensor(batch, x);
    PassContext ctx{/*training=*/true, config_.seed(), step_};
    ctx.row_offset = batch.offset;
    if (config_.sync_batch_norm() && multi_rank()) ctx.sync_batch_norm = ranks_;
    params_.ZeroGrads();
    const FloatTensor& logits = model_->Forward(x, ctx);
    const LossResult loss = CrossEntropy(logits, batch.labels, &dlogits);
    if (multi_rank()) WeighShard(batch, dlogits);
    model_->Backward(dlogits, buckets_.get());
    buckets_->Finish();
    const ScheduleValue rate = ScheduleAt(schedule, step_);
    sgd_->Step(params_.values(), params_.grads(), rate.lr,
               rate.momentum >= 0 ? rate.momentum : config_.momentum());
    ++step_;
    totals.Add(loss, batch.size);
    result.last_lr = rate.lr;
    progress.Update(++batches, totals.images, totals.loss_sum, totals.correct);
  }
  progress.Finish();
  StopAllIfFailed(*ranks_, train_loader_->status());
  result.steps = batches;
  result.traffic = {ranks_->traffic().seconds - traffic_before.seconds,
                    ranks_->traffic().bytes - traffic_before.bytes};
  totals.SumOverRanks(*ranks_);
  MendDrift(*ranks_, {&params_.values(), &sgd_->momentum_buffer()});
  ++epoch_;
  result.epoch = epoch_;
  result.seconds = progress.elapsed_seconds();
  result.images_per_second = totals.images / result.seconds;
  result.train_loss = totals.mean_loss();
  result.train_accuracy = totals.accuracy();
  return result;
}

int64_t TopKCorrect(const float* logits, const std::vector<int32_t>& labels, int rows, int classes,
                    int k) {
  int64_t correct = 0;
  for (int r = 0; r < rows; ++r) {
    const float* row = logits + int64_t{r} * classes;
    const int label = labels[r];
    // Classes ranked before the label: higher, or equal and earlier (the
    // order std::max_element picks the top-1 class by). A NaN label misses.
    int before = 0;
    for (int c = 0; c < classes; ++c) {
      before += row[c] > row[label] || (row[c] == row[label] && c < label);
    }
    correct += before < k && !std::isnan(row[label]);
  }
  return correct;
}

// What data parallelism cost rank 0 per step: the scaling figures of the README.
void Trainer::PrintTraffic(const EpochResult& r) const {
  const double steps = std::max<int64_t>(r.steps, 1);
  std::printf(
      "  collectives: %.2f ms per step inside MPI calls (%.1f%% of the epoch's steps), %.2f MB "
      "per step, %d gradient bucket(s)\n",
      1e3 * r.traffic.seconds / steps, 100 * r.traffic.seconds / r.seconds,
      r.traffic.bytes / steps / 1e6, buckets_->count());
}

EvalResult Trainer::Evaluate() {
  if (multi_rank()) {
    // With per-rank batch norm each rank has running statistics of its own:
    // all evaluate, and rank 0 saves, rank 0's (as DDP's broadcast_buffers).
    ranks_->Broadcast(params_.buffers().data(), static_cast<int64_t>(params_.buffers().size()),
                      "the batch-norm running statistics");
  }
  test_loader_->StartEpoch(0);
  Batch batch;
  FloatTensor x;
  EvalResult result;
  PassTotals totals;
  const int classes = test_.num_classes();
  while (test_loader_->Next(&batch)) {
    if (batch.size == 0) continue;  // this rank's part of a short last batch
    BatchToTensor(batch, x);
    const FloatTensor& logits = model_->Forward(x, PassContext{});
    totals.Add(CrossEntropy(logits, batch.labels, nullptr), batch.size);
    if (classes > 10)
      totals.top5 += TopKCorrect(logits.ptr(), batch.labels, batch.size, classes, 5);
  }
  StopAllIfFailed(*ranks_, test_loader_->status());
  totals.SumOverRanks(*ranks_);
  result.images = totals.images;
  result.loss = totals.mean_loss();
  result.accuracy = totals.accuracy();
  if (classes > 10)
    result.top5 = static_cast<double>(totals.top5) / std::max<int64_t>(totals.images, 1);
  return result;
}

absl::Status Trainer::SaveEpoch(const EpochResult& r) {
  if (ranks_->rank() != 0) return absl::OkStatus();
  const std::filesystem::path dir(config_.output_dir());
  std::ofstream metrics(dir / kMetricsFile, std::ios::app);
  metrics << absl::StrFormat(
      R"({"epoch": %d, "step": %d, "train_loss": %.6f, "train_accuracy": %.6f, )"
      R"("test_loss": %.6f, "test_accuracy": %.6f, "lr": %.6g, "images_per_second": %.1f, )"
      R"("seconds": %.2f)",
      r.epoch, step_, r.train_loss, r.train_accuracy, r.test_loss, r.test_accuracy, r.last_lr,
      r.images_per_second, r.seconds);
  // The tutorial's top-5, for datasets of more than 10 classes.
  if (r.test_top5 >= 0) metrics << absl::StrFormat(R"(, "test_top5": %.6f)", r.test_top5);
  if (multi_rank()) {
    metrics << absl::StrFormat(
        R"(, "ranks": %d, "collective_seconds": %.3f, "collective_bytes": %d)", ranks_->size(),
        r.traffic.seconds, r.traffic.bytes);
  }
  metrics << "}\n";
  if (!metrics.flush()) return absl::InternalError("cannot append to the metrics file");
  Checkpoint checkpoint;
  *checkpoint.mutable_config() = config_;
  checkpoint.set_epoch(epoch_);
  checkpoint.set_step(step_);
  checkpoint.set_test_accuracy(static_cast<float>(r.test_accuracy));
  CaptureState(params_, *sgd_, checkpoint);
  return WriteCheckpoint(std::move(checkpoint), (dir / kCheckpointFile).string());
}

absl::StatusOr<std::vector<EpochResult>> Trainer::Run(int max_epochs) {
  std::vector<EpochResult> results;
  if (epoch_ == 0 && ranks_->rank() == 0) {  // a fresh run: no metrics from an earlier one
    absl::Status s = KeepFirstLines(
        (std::filesystem::path(config_.output_dir()) / kMetricsFile).string(), 0);
    if (!s.ok()) return s;
  }
  while (epoch_ < config_.epochs() && (max_epochs < 0 || static_cast<int>(results.size()) < max_epochs)) {
    EpochResult r = TrainEpoch();
    if (absl::Status s = train_loader_->status(); !s.ok()) return s;
    const EvalResult eval = Evaluate();
    if (absl::Status s = test_loader_->status(); !s.ok()) return s;
    r.test_loss = eval.loss;
    r.test_accuracy = eval.accuracy;
    r.test_top5 = eval.top5;
    const std::string top5 =
        eval.top5 >= 0 ? absl::StrFormat(" top-5 %.2f%%", 100 * eval.top5) : std::string();
    if (ranks_->rank() == 0) {
      std::printf(
          "epoch %d/%d: train loss %.4f acc %.2f%% | test loss %.4f acc %.2f%%%s (%lld images)"
          " | %.0f img/s, %.1f s\n",
          r.epoch, config_.epochs(), r.train_loss, 100 * r.train_accuracy, r.test_loss,
          100 * r.test_accuracy, top5.c_str(), static_cast<long long>(eval.images),
          r.images_per_second, r.seconds);
      if (multi_rank()) PrintTraffic(r);
      std::fflush(stdout);
    }
    if (absl::Status s = SaveEpoch(r); !s.ok()) return s;
    results.push_back(r);
  }
  return results;
}

}  // namespace qforge
