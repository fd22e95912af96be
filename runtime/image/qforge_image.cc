#include "runtime/image/qforge_image.h"

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "runtime/image/image.h"

namespace {

thread_local std::string last_error;

qforge_status Fail(const absl::Status& status) {
  last_error = std::string(status.message());
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return QFORGE_NOT_FOUND;
    case absl::StatusCode::kResourceExhausted:
      return QFORGE_OUT_OF_MEMORY;
    default:
      return QFORGE_INVALID_ARGUMENT;
  }
}

// Copies `image` into a C struct whose pixels the caller frees.
qforge_status Export(const qforge::image::Image& image, qforge_image* out) {
  unsigned char* pixels = static_cast<unsigned char*>(std::malloc(image.pixels.size()));
  if (pixels == nullptr) return Fail(absl::ResourceExhaustedError("out of memory"));
  std::memcpy(pixels, image.pixels.data(), image.pixels.size());
  *out = qforge_image{image.width, image.height, image.channels, pixels};
  return QFORGE_OK;
}

}  // namespace

extern "C" {

const char* qforge_image_last_error(void) { return last_error.c_str(); }

qforge_status qforge_image_read(const char* path, int channels, qforge_image* image) {
  if (path == nullptr || image == nullptr) {
    return Fail(absl::InvalidArgumentError("path and image must not be NULL"));
  }
  try {
    absl::StatusOr<qforge::image::Image> read = qforge::image::ReadImageFile(path, channels);
    if (!read.ok()) return Fail(read.status());
    return Export(*read, image);
  } catch (const std::bad_alloc&) {
    return Fail(absl::ResourceExhaustedError("out of memory decoding the image"));
  }
}

qforge_status qforge_image_resize_center_crop(const qforge_image* image, int resize, int size,
                                              qforge_image* out) {
  if (image == nullptr || image->pixels == nullptr || out == nullptr ||
      (image->channels != 1 && image->channels != 3) || image->width < 1 || image->height < 1) {
    return Fail(absl::InvalidArgumentError("not an image (NULL, empty, or channels not 1 or 3)"));
  }
  try {
    qforge::image::Image in{image->height, image->width, image->channels, {}};
    in.pixels.assign(image->pixels,
                     image->pixels + static_cast<size_t>(image->width) * image->height *
                                         image->channels);
    absl::StatusOr<qforge::image::Image> transformed =
        qforge::image::ResizeAndCenterCrop(in, resize, size);
    if (!transformed.ok()) return Fail(transformed.status());
    return Export(*transformed, out);
  } catch (const std::bad_alloc&) {
    return Fail(absl::ResourceExhaustedError("out of memory transforming the image"));
  }
}

void qforge_image_free(qforge_image* image) {
  if (image == nullptr) return;
  std::free(image->pixels);
  *image = qforge_image{0, 0, 0, nullptr};
}

}  // extern "C"
