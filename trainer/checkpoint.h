// Saving and restoring a training run: parameters, batch-norm statistics, SGD
// momentum, the epoch and step counters and the config. Files are written to a
// temporary name, flushed and renamed, so a crash never leaves a torn checkpoint;
// a checksum catches one damaged later, and the previous checkpoint is kept
// beside the latest (`path`.prev) to fall back on.
#ifndef QFORGE_TRAINER_CHECKPOINT_H_
#define QFORGE_TRAINER_CHECKPOINT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"
#include "trainer/checkpoint.pb.h"
#include "trainer/nn/optimizer.h"
#include "trainer/nn/parameters.h"

namespace qforge {

// Appends every tensor of `store` (parameters and buffers) to `checkpoint`.
void CaptureTensors(const ParameterStore& store, Checkpoint& checkpoint);

// Fills every tensor of `store` from `checkpoint`, by name; the checkpoint may
// hold others. InvalidArgument, naming the tensor, if one is missing or has
// another shape.
absl::Status RestoreTensors(const Checkpoint& checkpoint, ParameterStore& store);

// Replaces the checkpoint's tensors with the store's, and its momentum with
// the optimizer's.
void CaptureState(const ParameterStore& params, Sgd& sgd, Checkpoint& checkpoint);

// Restores them. InvalidArgument, naming the tensor, if a tensor is missing or
// has another shape, or the momentum block has the wrong size.
absl::Status RestoreState(const Checkpoint& checkpoint, ParameterStore& params, Sgd& sgd);

// Keeps the first `count` lines of the text file `path` (creating it if
// missing): a metrics file, one line per epoch, cut back to its checkpoint's
// epochs (a crash between the two writes leaves one line too many).
absl::Status KeepFirstLines(const std::string& path, int count);

// Merges the text-format message in `path` over `message`: every field the
// file names is set, zeros and false included (proto3's MergeFrom would skip
// those); the others keep their values (a config file over the defaults).
absl::Status MergeTextProtoFile(const std::string& path, google::protobuf::Message* message);

// Writes any message atomically: `path`.tmp, fsync, rename to `path`.
absl::Status WriteProtoAtomically(const google::protobuf::MessageLite& message,
                                  const std::string& path);

// Writes `checkpoint` atomically with its checksum. A sound checkpoint already
// at `path` becomes `path`.prev first (by a hard link, so `path` exists at
// every instant).
absl::Status WriteCheckpoint(Checkpoint checkpoint, const std::string& path);

// NotFound for a missing file; InvalidArgument for one that is not a
// checkpoint or fails its checksum, naming the file.
absl::StatusOr<Checkpoint> ReadCheckpoint(const std::string& path);

// For --resume: `path`, or if it is missing or damaged, `path`.prev, with a
// warning on stderr naming both. The first error if neither loads.
absl::StatusOr<Checkpoint> ReadLatestCheckpoint(const std::string& path);

// Where WriteCheckpoint keeps the previous checkpoint of `path`.
std::string PreviousCheckpointPath(const std::string& path);

}  // namespace qforge

#endif  // QFORGE_TRAINER_CHECKPOINT_H_
