// Per-image transforms from raw uint8 pixels to the float NHWC input a model
// trains on, in torchvision's order: RandomCrop(padding=pad) ->
// RandomHorizontalFlip -> ToTensor (/255) -> Normalize(mean, std).
#ifndef QFORGE_DATA_TRANSFORMS_H_
#define QFORGE_DATA_TRANSFORMS_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "common/random.h"

namespace qforge {

// x[c] = (pixel / 255 - mean[c]) / std[c]. Empty vectors mean mean 0, std 1.
struct Normalization {
  std::vector<float> mean;
  std::vector<float> std;
};

// InvalidArgument unless mean and std are empty or have one finite entry per
// channel, and every std is > 0.
absl::Status ValidateNormalization(const Normalization& norm, int channels);

// Where the crop window sits in the zero-padded image and whether to mirror it.
struct CropFlip {
  int offset_y = 0;  // in [0, 2 * pad]
  int offset_x = 0;  // in [0, 2 * pad]
  bool flip = false;
};

// Draws a uniform crop offset for `pad` pixels of padding and, if `allow_flip`,
// a mirror with probability 1/2.
CropFlip DrawCropFlip(SplitMix64& rng, int pad, bool allow_flip);

// The centre crop: what evaluation uses (no augmentation).
inline CropFlip CenterCrop(int pad) { return CropFlip{pad, pad, false}; }

// A Normalization folded with the /255: x = pixel * gain[c] + offset[c]. Made
// once per loader so the per-image loop does no setup work.
struct PixelScaling {
  std::vector<float> gain;    // 1 / (255 std[c])
  std::vector<float> offset;  // -mean[c] / std[c]
};

// norm must have passed ValidateNormalization for `channels`.
PixelScaling MakePixelScaling(const Normalization& norm, int channels);

// Writes one [height, width, channels] image as normalized floats after padding
// it with `pad` zero pixels on each side, cropping [height, width] at the
// offsets, and mirroring if asked.
void TransformImage(const uint8_t* src, int height, int width, int channels, int pad,
                    const CropFlip& crop, const PixelScaling& scaling, float* dst);

}  // namespace qforge

#endif  // QFORGE_DATA_TRANSFORMS_H_
