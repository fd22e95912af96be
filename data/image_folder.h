// Image folders, as torchvision's ImageFolder reads them and ImageNet is laid
// out: root/train/<class>/<image> and root/val/<class>/<image>, classes in
// sorted order of their folder names, images in sorted order within each.
// JPEG, PNG, PPM and PGM files (by extension, as ImageFolder picks them) are
// decoded with runtime/image as batches are made, not held in memory, and go
// through the tutorial's transforms:
//   train: RandomResizedCrop(size) (scale 0.08..1, ratio 3/4..4/3) +
//          RandomHorizontalFlip
//   eval:  Resize(size * 256 / 224) + CenterCrop(size)
// then ToTensor and Normalize with ImageNet's mean and std.
#ifndef QFORGE_DATA_IMAGE_FOLDER_H_
#define QFORGE_DATA_IMAGE_FOLDER_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/random.h"
#include "data/dataset.h"
#include "data/transforms.h"

namespace qforge {

// ImageNet's per-channel mean and std (the tutorial's Normalize).
inline constexpr float kImageNetMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageNetStd[3] = {0.229f, 0.224f, 0.225f};

// The split's images under `root` (train/ or val/), for models taking
// `image_size` x `image_size` RGB inputs. NotFound without the split's
// folder; InvalidArgument for a folder without classes or a class without
// images, naming it.
absl::StatusOr<Dataset> LoadImageFolder(const std::string& root, Split split, int image_size);

// Where torchvision's RandomResizedCrop cuts an image of height x width.
struct CropBox {
  int top, left, height, width;
};
CropBox DrawResizedCrop(SplitMix64& rng, int height, int width);

// Image `index` of a folder dataset, decoded and transformed (train: the
// random crop drawn from `rng`, and a mirror if `flip` and a coin from `rng`
// say so; else the eval transform), into height x width x 3 floats.
absl::Status LoadFolderImage(const Dataset& dataset, int64_t index, bool train, bool flip,
                             SplitMix64& rng, const PixelScaling& scaling, float* out);

}  // namespace qforge

#endif  // QFORGE_DATA_IMAGE_FOLDER_H_
