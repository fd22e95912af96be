#include "data/transforms.h"

#include <cmath>

#include "absl/strings/str_cat.h"

namespace qforge {

absl::Status ValidateNormalization(const Normalization& norm, int channels) {
  if (norm.mean.empty() && norm.std.empty()) return absl::OkStatus();
  if (static_cast<int>(norm.mean.size()) != channels ||
      static_cast<int>(norm.std.size()) != channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "normalization has ", norm.mean.size(), " means and ", norm.std.size(),
        " stds for ", channels, " channels"));
  }
  for (int c = 0; c < channels; ++c) {
    if (!std::isfinite(norm.mean[c]) || !std::isfinite(norm.std[c]) || !(norm.std[c] > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "normalization of channel ", c, ": mean ", norm.mean[c], ", std ", norm.std[c],
          " (need finite values and std > 0)"));
    }
  }
  return absl::OkStatus();
}

CropFlip DrawCropFlip(SplitMix64& rng, int pad, bool allow_flip) {
  CropFlip crop;
  crop.offset_y = static_cast<int>(rng.Below(2 * pad + 1));
  crop.offset_x = static_cast<int>(rng.Below(2 * pad + 1));
  crop.flip = allow_flip && (rng.Next() >> 63) != 0;
  return crop;
}

PixelScaling MakePixelScaling(const Normalization& norm, int channels) {
  PixelScaling scaling{std::vector<float>(channels, 1.0f / 255.0f),
                       std::vector<float>(channels, 0.0f)};
  if (!norm.mean.empty()) {
    for (int c = 0; c < channels; ++c) {
      scaling.gain[c] = 1.0f / (255.0f * norm.std[c]);
      scaling.offset[c] = -norm.mean[c] / norm.std[c];
    }
  }
  return scaling;
}

void TransformImage(const uint8_t* src, int height, int width, int channels, int pad,
                    const CropFlip& crop, const PixelScaling& scaling, float* dst) {
  const float* gain = scaling.gain.data();
  const float* offset = scaling.offset.data();
  for (int y = 0; y < height; ++y) {
    const int sy = y + crop.offset_y - pad;
    for (int x = 0; x < width; ++x) {
      // Mirroring the cropped window: output column x reads window column W-1-x.
      const int wx = crop.flip ? width - 1 - x : x;
      const int sx = wx + crop.offset_x - pad;
      const bool inside = sy >= 0 && sy < height && sx >= 0 && sx < width;
      const uint8_t* pixel = inside ? src + (int64_t{sy} * width + sx) * channels : nullptr;
      float* out = dst + (int64_t{y} * width + x) * channels;
      for (int c = 0; c < channels; ++c) {
        out[c] = (inside ? pixel[c] : 0) * gain[c] + offset[c];
      }
    }
  }
}

}  // namespace qforge
