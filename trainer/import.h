// `trainer import`: a float checkpoint from weights trained elsewhere, e.g. a
// torchvision MobileNetV2 state_dict that tools/torchvision_checkpoint.py has
// put into qforge's layouts. The trainer builds the model the config
// describes and takes the file's tensors by name, so the checkpoint it writes
// is one that train --resume, ptq and qat read like their own.
#ifndef QFORGE_TRAINER_IMPORT_H_
#define QFORGE_TRAINER_IMPORT_H_

#include <string>

#include "absl/status/statusor.h"
#include "trainer/checkpoint.pb.h"
#include "trainer/config.pb.h"

namespace qforge {

// A checkpoint at epoch 0 with `config` and every tensor of the MobileNetV2
// it describes taken from `tensors` (the model's input channels and, unless
// config.model.num_classes is set, its classes follow the file's first conv
// and classifier). InvalidArgument naming the first tensor of the model that
// the file lacks or holds in another shape, or else the first tensor of the
// file that the model has none of.
absl::StatusOr<Checkpoint> ImportTensors(const TrainConfig& config, const Checkpoint& tensors);

}  // namespace qforge

#endif  // QFORGE_TRAINER_IMPORT_H_
