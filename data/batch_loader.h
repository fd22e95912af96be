// A seeded, shuffling batch loader that prepares the next batches on a
// background thread while the caller trains on the current one.
//
// Reproducibility: the image order of an epoch depends only on (seed, epoch),
// and each image's crop and flip only on (seed, epoch, image index). The
// batches are therefore identical whatever the thread timing, and a run resumed
// at an epoch boundary sees exactly the data an uninterrupted run would.
#ifndef QFORGE_DATA_BATCH_LOADER_H_
#define QFORGE_DATA_BATCH_LOADER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "data/dataset.h"
#include "data/transforms.h"

namespace qforge {

struct LoaderOptions {
  int batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;  // drop a final partial batch
  uint64_t seed = 0;
  int pad = 0;                   // random crop with this much zero padding
  bool horizontal_flip = false;  // random mirror
  Normalization normalization;
  // Image folders (Dataset::from_files): torchvision's RandomResizedCrop
  // (training) in place of the padded crop, else the eval transform; and the
  // threads that decode a batch's files while the caller trains (0: as
  // many as the machine has cores).
  bool random_resized_crop = false;
  int decode_threads = 0;
  // Data-parallel training: each batch of batch_size images is cut into
  // `shards` contiguous parts (sizes differing by at most one) and this loader
  // yields part `shard` of each. Every part keeps the crop and flip its images
  // get in the whole batch, so the ranks together see exactly one process's data.
  int shard = 0;
  int shards = 1;
  // Whether a part may be empty (a short last batch, or fewer images than
  // shards): fine for evaluation, which sums counts; training refuses it, as
  // batch norm cannot normalise no images.
  bool allow_empty_shards = false;
};

struct Batch {
  int size = 0;  // images in this batch (the last one may be short)
  int global_size = 0;  // images in the whole batch, of which this is a shard
  int offset = 0;       // this shard's first image within the whole batch
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<float> images;    // [size, height, width, channels]
  std::vector<int32_t> labels;  // [size]
  std::vector<int64_t> indices;  // dataset index of each image
  absl::Status error;  // an image folder file of this batch that could not be read
};

class BatchLoader {
 public:
  // `dataset` must outlive the loader. InvalidArgument for a batch size < 1, a
  // negative pad, an empty dataset or a normalization that does not fit it.
  static absl::StatusOr<std::unique_ptr<BatchLoader>> Create(const Dataset& dataset,
                                                             LoaderOptions options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts (or restarts) epoch `epoch`, discarding what was prepared before.
  void StartEpoch(int64_t epoch);
  // Moves the next batch of the epoch into *batch; false once the epoch is
  // done, or once an image could not be read (see status()).
  bool Next(Batch* batch);
  // The image folder file that could not be read, naming it, once Next has
  // come to its batch (a batch only prefetched does not count).
  absl::Status status() const;

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  const Dataset& dataset() const { return dataset_; }

 private:
  BatchLoader(const Dataset& dataset, LoaderOptions options);
  void WorkerLoop();
  absl::Status Fill(const std::vector<int64_t>& order, int64_t epoch, int64_t batch_index,
                    Batch& batch) const;
  absl::Status FillFromFiles(const std::vector<int64_t>& order, int64_t epoch, int64_t begin,
                             Batch& batch) const;

  static constexpr size_t kPrefetchDepth = 2;

  const Dataset& dataset_;
  const LoaderOptions options_;
  const PixelScaling scaling_;
  const int64_t batches_per_epoch_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  // Guarded by mutex_:
  bool stopping_ = false;
  uint64_t generation_ = 0;  // bumped by StartEpoch to discard stale work
  int64_t epoch_ = -1;
  std::shared_ptr<const std::vector<int64_t>> order_;
  int64_t next_to_prepare_ = 0;
  int64_t next_to_return_ = 0;
  std::deque<Batch> ready_;
  std::vector<Batch> spare_;  // buffers handed back by Next, reused by the worker
  absl::Status error_;

  std::thread worker_;
};

}  // namespace qforge

#endif  // QFORGE_DATA_BATCH_LOADER_H_
