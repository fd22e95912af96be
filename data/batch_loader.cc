#include "data/batch_loader.h"

#include <algorithm>
#include <numeric>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/random.h"
#include "data/image_folder.h"

namespace qforge {
namespace {

// Keys that separate the random streams drawn from one seed.
constexpr uint64_t kShuffleStream = 1;
constexpr uint64_t kAugmentStream = 2;

std::vector<int64_t> EpochOrder(int64_t count, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order(count);
  std::iota(order.begin(), order.end(), 0);
  if (!shuffle) return order;
  SplitMix64 rng(DeriveSeed({seed, kShuffleStream, static_cast<uint64_t>(epoch)}));
  for (int64_t i = count - 1; i > 0; --i) {  // Fisher-Yates
    std::swap(order[i], order[rng.Below(static_cast<uint64_t>(i) + 1)]);
  }
  return order;
}

}  // namespace

absl::StatusOr<std::unique_ptr<BatchLoader>> BatchLoader::Create(const Dataset& dataset,
                                                                 LoaderOptions options) {
  if (options.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size ", options.batch_size, " must be at least 1"));
  }
  if (options.pad < 0 || options.pad > dataset.height || options.pad > dataset.width) {
    return absl::InvalidArgumentError(absl::StrCat(
        "crop padding ", options.pad, " must lie in [0, image side] for ", dataset.height, "x",
        dataset.width, " images"));
  }
  if (dataset.count < 1 || (options.drop_last && dataset.count < options.batch_size)) {
    return absl::InvalidArgumentError(absl::StrCat(
        dataset.name, ": ", dataset.count, " images make no batch of ", options.batch_size));
  }
  if (options.shards < 1 || options.shard < 0 || options.shard >= options.shards) {
    return absl::InvalidArgumentError(
        absl::StrCat("shard ", options.shard, " of ", options.shards, " does not exist"));
  }
  // Every rank needs at least one image of every batch, the last one too.
  const int64_t last =
      options.drop_last ? options.batch_size : (dataset.count - 1) % options.batch_size + 1;
  if (!options.allow_empty_shards && std::min<int64_t>(options.batch_size, last) < options.shards) {
    return absl::InvalidArgumentError(
        absl::StrCat(dataset.name, ": batches of ", options.batch_size, " images (the last of ",
                     last, ") cannot give each of ", options.shards, " ranks an image"));
  }
  if (options.decode_threads < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("decode_threads ", options.decode_threads, " must be at least 0"));
  }
  if (absl::Status s = ValidateNormalization(options.normalization, dataset.channels);
      !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(dataset.name, ": ", s.message()));
  }
  return std::unique_ptr<BatchLoader>(new BatchLoader(dataset, std::move(options)));
}

BatchLoader::BatchLoader(const Dataset& dataset, LoaderOptions options)
    : dataset_(dataset),
      options_(std::move(options)),
      scaling_(MakePixelScaling(options_.normalization, dataset.channels)),
      batches_per_epoch_(options_.drop_last
                             ? dataset.count / options_.batch_size
                             : (dataset.count + options_.batch_size - 1) / options_.batch_size),
      worker_([this] { WorkerLoop(); }) {}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void BatchLoader::StartEpoch(int64_t epoch) {
  auto order = std::make_shared<const std::vector<int64_t>>(
      EpochOrder(dataset_.count, options_.shuffle, options_.seed, epoch));
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    epoch_ = epoch;
    error_ = absl::OkStatus();
    order_ = std::move(order);
    next_to_prepare_ = 0;
    next_to_return_ = 0;
    for (Batch& stale : ready_) spare_.push_back(std::move(stale));
    ready_.clear();
  }
  changed_.notify_all();
}

bool BatchLoader::Next(Batch* batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (epoch_ < 0 || next_to_return_ >= batches_per_epoch_) return false;
  if (!error_.ok()) return false;
  changed_.wait(lock, [this] { return !ready_.empty(); });
  if (!ready_.front().error.ok()) {
    error_ = ready_.front().error;
    return false;
  }
  // The caller's previous batch goes back to the worker as a buffer to refill,
  // so a steady epoch allocates nothing.
  std::swap(*batch, ready_.front());
  spare_.push_back(std::move(ready_.front()));
  ready_.pop_front();
  ++next_to_return_;
  lock.unlock();
  changed_.notify_all();
  return true;
}

void BatchLoader::WorkerLoop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_.wait(lock, [this] {
      return stopping_ || (epoch_ >= 0 && next_to_prepare_ < batches_per_epoch_ &&
                           ready_.size() < kPrefetchDepth);
    });
    if (stopping_) return;
    const uint64_t generation = generation_;
    const int64_t epoch = epoch_;
    const int64_t index = next_to_prepare_++;
    std::shared_ptr<const std::vector<int64_t>> order = order_;
    Batch batch;
    if (!spare_.empty()) {
      batch = std::move(spare_.back());
      spare_.pop_back();
    }
    lock.unlock();
    batch.error = Fill(*order, epoch, index, batch);
    lock.lock();
    if (generation == generation_) {
      ready_.push_back(std::move(batch));
      changed_.notify_all();
    }
  }
}

absl::Status BatchLoader::status() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return error_;
}

absl::Status BatchLoader::Fill(const std::vector<int64_t>& order, int64_t epoch,
                               int64_t batch_index, Batch& batch) const {
  const int global_size = static_cast<int>(
      std::min<int64_t>(options_.batch_size, dataset_.count - batch_index * options_.batch_size));
  const int offset = global_size * options_.shard / options_.shards;
  const int size = global_size * (options_.shard + 1) / options_.shards - offset;
  const int64_t begin = batch_index * options_.batch_size + offset;
  batch.size = size;
  batch.global_size = global_size;
  batch.offset = offset;
  batch.height = dataset_.height;
  batch.width = dataset_.width;
  batch.channels = dataset_.channels;
  const int64_t image_floats = dataset_.image_size();
  batch.images.resize(size * image_floats);
  batch.labels.resize(size);
  batch.indices.resize(size);
  if (dataset_.from_files()) return FillFromFiles(order, epoch, begin, batch);
  for (int i = 0; i < size; ++i) {
    const int64_t index = order[begin + i];
    CropFlip crop = CenterCrop(options_.pad);
    if (options_.pad > 0 || options_.horizontal_flip) {
      SplitMix64 rng(DeriveSeed({options_.seed, kAugmentStream, static_cast<uint64_t>(epoch),
                                 static_cast<uint64_t>(index)}));
      crop = DrawCropFlip(rng, options_.pad, options_.horizontal_flip);
    }
    TransformImage(dataset_.image(index), dataset_.height, dataset_.width, dataset_.channels,
                   options_.pad, crop, scaling_,
                   batch.images.data() + i * image_floats);
    batch.labels[i] = dataset_.labels[index];
    batch.indices[i] = index;
  }
  return absl::OkStatus();
}

// Decodes the batch's files on decode_threads threads, image i on thread
// i % threads; each image's random transform depends only on (seed, epoch,
// index), so the threads change nothing in the result.
absl::Status BatchLoader::FillFromFiles(const std::vector<int64_t>& order, int64_t epoch,
                                        int64_t begin, Batch& batch) const {
  const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int threads = std::min(options_.decode_threads > 0 ? options_.decode_threads : cores,
                               batch.size);
  std::vector<absl::Status> status(threads);
  auto work = [&](int t) {
    for (int i = t; i < batch.size; i += threads) {
      const int64_t index = order[begin + i];
      SplitMix64 rng(DeriveSeed({options_.seed, kAugmentStream, static_cast<uint64_t>(epoch),
                                 static_cast<uint64_t>(index)}));
      absl::Status s = LoadFolderImage(dataset_, index, options_.random_resized_crop,
                                       options_.horizontal_flip, rng, scaling_,
                                       batch.images.data() + i * dataset_.image_size());
      if (!s.ok() && status[t].ok()) status[t] = s;
      batch.labels[i] = dataset_.labels[index];
      batch.indices[i] = index;
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
  work(0);
  for (std::thread& thread : pool) thread.join();
  for (const absl::Status& s : status) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace qforge
