// Reading images and the evaluation transform of torchvision's ImageNet
// recipe, for applications that feed camera or file images to a model: a small
// library beside the runtime (the runtime itself reads no image formats).
//
// Decoding: JPEG (libjpeg-turbo), PNG (libpng), binary PPM/PGM; the format is
// told by the file's first bytes, not its name. Resizing is Pillow's bilinear
// filter as torchvision applies it to PIL images (with antialiasing when
// shrinking, in Pillow's 22-bit fixed point), so a model sees what it saw in
// PyTorch: Resize(256) then CenterCrop(224) gives the same bytes.
#ifndef QFORGE_RUNTIME_IMAGE_IMAGE_H_
#define QFORGE_RUNTIME_IMAGE_IMAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace qforge::image {

// Interleaved uint8 pixels, row-major: [height, width, channels].
struct Image {
  int height = 0;
  int width = 0;
  int channels = 0;  // 1 (gray) or 3 (RGB)
  std::vector<uint8_t> pixels;

  uint8_t* at(int y, int x) { return pixels.data() + (int64_t{y} * width + x) * channels; }
  const uint8_t* at(int y, int x) const {
    return pixels.data() + (int64_t{y} * width + x) * channels;
  }
};

// Images larger than this on a side are refused before decoding.
inline constexpr int kMaxSide = 16384;

// Decodes a JPEG, PNG, PPM (P6) or PGM (P5, maxval 255) file. `channels` 3
// gives RGB (gray replicated, as Pillow's convert("RGB")), 1 gray (Pillow's
// convert("L") weights), 0 the file's own (gray stays gray, the rest RGB).
// As Pillow: alpha is dropped, 16-bit gray is clipped to 255 and other 16-bit
// samples keep their high byte, palettes expand, CMYK JPEGs become RGB.
// NotFound for a missing file; InvalidArgument, naming the file, for anything
// else (a truncated or corrupt file, an unknown format).
absl::StatusOr<Image> ReadImageFile(const std::string& path, int channels = 0);
absl::StatusOr<Image> DecodeImage(const std::vector<uint8_t>& bytes, int channels = 0);

// Pillow's Image.resize((width, height), BILINEAR).
Image Resize(const Image& image, int width, int height);

// The rectangle [top, top + height) x [left, left + width), inside the image.
Image Crop(const Image& image, int top, int left, int height, int width);

// torchvision's Resize(size) for an int size: the shorter side becomes
// `size`, the longer one int(size * longer / shorter).
Image ResizeShorterSide(const Image& image, int size);

// torchvision's CenterCrop(size) for an image at least `size` on each side.
Image CenterCrop(const Image& image, int size);

// The evaluation transform: ResizeShorterSide(resize) (skipped where the
// shorter side is already `resize`), then CenterCrop(size). The tutorial's
// is resize 256, size 224. InvalidArgument if resize < size.
absl::StatusOr<Image> ResizeAndCenterCrop(const Image& image, int resize, int size);

}  // namespace qforge::image

#endif  // QFORGE_RUNTIME_IMAGE_IMAGE_H_
