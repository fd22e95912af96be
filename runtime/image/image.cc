#include "runtime/image/image.h"

#include <cctype>
#include <csetjmp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>

// libjpeg's header needs stdio's FILE and size_t first.
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "absl/strings/str_cat.h"

namespace qforge::image {
namespace {

absl::Status Corrupt(const std::string& what) { return absl::InvalidArgumentError(what); }

// Pillow's convert("L"): L = (19595 R + 38470 G + 7471 B + 0x8000) >> 16.
uint8_t Luma(const uint8_t* rgb) {
  return static_cast<uint8_t>((rgb[0] * 19595 + rgb[1] * 38470 + rgb[2] * 7471 + 0x8000) >> 16);
}

// Gray or RGB `image` as `channels` (0: as it is).
Image WithChannels(Image image, int channels) {
  if (channels == 0 || channels == image.channels) return image;
  Image out{image.height, image.width, channels, {}};
  const int64_t pixels = int64_t{image.height} * image.width;
  out.pixels.resize(pixels * channels);
  for (int64_t i = 0; i < pixels; ++i) {
    if (channels == 3) {
      std::memset(&out.pixels[i * 3], image.pixels[i], 3);
    } else {
      out.pixels[i] = Luma(&image.pixels[i * 3]);
    }
  }
  return out;
}

absl::Status CheckSize(int width, int height) {
  if (width < 1 || height < 1 || width > kMaxSide || height > kMaxSide) {
    return Corrupt(absl::StrCat("the image is ", width, "x", height, ", outside 1..", kMaxSide));
  }
  return absl::OkStatus();
}

// libjpeg reports errors through error_exit, which must not return: it jumps
// back to DecodeJpeg with the message. Only C objects live between the two.
struct JpegError {
  jpeg_error_mgr manager;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void OnJpegError(j_common_ptr info) {
  JpegError* error = reinterpret_cast<JpegError*>(info->err);
  (*info->err->format_message)(info, error->message);
  std::longjmp(error->jump, 1);
}

// A truncated file is an error, as Pillow has it, where libjpeg would warn and
// fill the missing rows with gray; other warnings (extraneous bytes, say) and
// trace messages are dropped, as Pillow drops them.
void OnJpegMessage(j_common_ptr info, int level) {
  if (level < 0 && info->err->msg_code == JWRN_JPEG_EOF) OnJpegError(info);
}

// Pillow's CMYK -> RGB: each channel (255 - k) - c (255 - k) / 255, rounded
// as its MULDIV255. Adobe's JPEGs store CMYK inverted (Pillow's "CMYK;I").
void CmykToRgb(const uint8_t* cmyk, int64_t pixels, bool inverted, uint8_t* rgb) {
  for (int64_t i = 0; i < pixels; ++i) {
    uint8_t v[4];
    for (int c = 0; c < 4; ++c) v[c] = inverted ? 255 - cmyk[i * 4 + c] : cmyk[i * 4 + c];
    const int nk = 255 - v[3];
    for (int c = 0; c < 3; ++c) {
      const int tmp = v[c] * nk + 128;
      rgb[i * 3 + c] = static_cast<uint8_t>(std::clamp(nk - (((tmp >> 8) + tmp) >> 8), 0, 255));
    }
  }
}

absl::StatusOr<Image> DecodeJpeg(const std::vector<uint8_t>& bytes) {
  // Allocated before setjmp, so nothing a jump skips needs destroying.
  auto image = std::make_unique<Image>();
  jpeg_decompress_struct info;
  JpegError error;
  info.err = jpeg_std_error(&error.manager);
  error.manager.error_exit = OnJpegError;
  error.manager.emit_message = OnJpegMessage;
  if (setjmp(error.jump)) {
    jpeg_destroy_decompress(&info);
    return Corrupt(absl::StrCat("corrupt JPEG: ", error.message));
  }
  jpeg_create_decompress(&info);
  jpeg_mem_src(&info, bytes.data(), bytes.size());
  jpeg_read_header(&info, TRUE);
  const bool cmyk = info.jpeg_color_space == JCS_CMYK || info.jpeg_color_space == JCS_YCCK;
  info.out_color_space = cmyk ? JCS_CMYK : info.num_components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  if (absl::Status s = CheckSize(static_cast<int>(info.image_width),
                                 static_cast<int>(info.image_height));
      !s.ok()) {
    jpeg_destroy_decompress(&info);
    return s;
  }
  jpeg_start_decompress(&info);
  image->width = static_cast<int>(info.output_width);
  image->height = static_cast<int>(info.output_height);
  image->channels = info.output_components;  // 4 for CMYK, until converted below
  image->pixels.resize(int64_t{image->width} * image->height * image->channels);
  while (info.output_scanline < info.output_height) {
    JSAMPROW row = image->at(static_cast<int>(info.output_scanline), 0);
    jpeg_read_scanlines(&info, &row, 1);
  }
  const bool inverted = info.saw_Adobe_marker;
  jpeg_finish_decompress(&info);
  jpeg_destroy_decompress(&info);
  if (cmyk) {
    std::vector<uint8_t> rgb(int64_t{image->width} * image->height * 3);
    CmykToRgb(image->pixels.data(), int64_t{image->width} * image->height, inverted, rgb.data());
    image->pixels = std::move(rgb);
    image->channels = 3;
  }
  return std::move(*image);
}

struct PngSource {
  const std::vector<uint8_t>* bytes;
  size_t offset;
};

void ReadPngBytes(png_structp png, png_bytep out, png_size_t count) {
  PngSource* source = static_cast<PngSource*>(png_get_io_ptr(png));
  if (source->offset + count > source->bytes->size()) png_error(png, "the file is truncated");
  std::memcpy(out, source->bytes->data() + source->offset, count);
  source->offset += count;
}

void OnPngError(png_structp png, png_const_charp message) {
  char* buffer = static_cast<char*>(png_get_error_ptr(png));
  std::snprintf(buffer, 200, "%s", message);
  png_longjmp(png, 1);
}

void OnPngWarning(png_structp, png_const_charp) {}

absl::StatusOr<Image> DecodePng(const std::vector<uint8_t>& bytes) {
  auto image = std::make_unique<Image>();
  auto rows = std::make_unique<std::vector<png_bytep>>();
  char message[200] = "";
  PngSource source{&bytes, 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, message, OnPngError,
                                           OnPngWarning);
  png_infop info = png != nullptr ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return absl::ResourceExhaustedError("cannot allocate a PNG decoder");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return Corrupt(absl::StrCat("corrupt PNG: ", message));
  }
  png_set_read_fn(png, &source, ReadPngBytes);
  png_read_info(png, info);
  const int width = static_cast<int>(png_get_image_width(png, info));
  const int height = static_cast<int>(png_get_image_height(png, info));
  if (absl::Status s = CheckSize(width, height); !s.ok()) {
    png_destroy_read_struct(&png, &info, nullptr);
    return s;
  }
  const int color = png_get_color_type(png, info);
  // 16-bit gray opens in Pillow as 32-bit integers that convert clips to 255;
  // every other 16-bit image keeps its high byte, as Pillow's raw modes do.
  const bool gray16 = png_get_bit_depth(png, info) == 16 && color == PNG_COLOR_TYPE_GRAY;
  // To 8-bit gray or RGB without alpha, as Pillow's convert does.
  if (!gray16) png_set_strip_16(png);
  png_set_packing(png);
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY) png_set_expand_gray_1_2_4_to_8(png);
  png_set_strip_alpha(png);
  png_read_update_info(png, info);
  image->width = width;
  image->height = height;
  image->channels = png_get_channels(png, info);
  image->pixels.resize(int64_t{width} * height * image->channels * (gray16 ? 2 : 1));
  rows->resize(height);
  for (int y = 0; y < height; ++y) {
    (*rows)[y] = image->pixels.data() + int64_t{y} * width * image->channels * (gray16 ? 2 : 1);
  }
  png_read_image(png, rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  if (gray16) {  // big-endian samples, clipped
    const int64_t pixels = int64_t{width} * height;
    for (int64_t i = 0; i < pixels; ++i) {
      const int v = image->pixels[2 * i] << 8 | image->pixels[2 * i + 1];
      image->pixels[i] = static_cast<uint8_t>(std::min(v, 255));
    }
    image->pixels.resize(pixels);
  }
  return std::move(*image);
}

// Binary PGM (P5) or PPM (P6) with maxval 255.
absl::StatusOr<Image> DecodePnm(const std::vector<uint8_t>& bytes) {
  size_t at = 2;
  auto number = [&](int& value) {
    while (at < bytes.size()) {
      if (bytes[at] == '#') {
        while (at < bytes.size() && bytes[at] != '\n') ++at;
      } else if (std::isspace(bytes[at])) {
        ++at;
      } else {
        break;
      }
    }
    int64_t v = -1;
    while (at < bytes.size() && std::isdigit(bytes[at]) && v < 1000000) {
      v = (v < 0 ? 0 : v * 10) + (bytes[at++] - '0');
    }
    value = static_cast<int>(v);
    return v >= 0;
  };
  Image image;
  image.channels = bytes[1] == '6' ? 3 : 1;
  int maxval = 0;
  if (!number(image.width) || !number(image.height) || !number(maxval) || at >= bytes.size()) {
    return Corrupt("corrupt PNM header");
  }
  if (maxval != 255) return Corrupt(absl::StrCat("PNM maxval ", maxval, " is not 255"));
  if (absl::Status s = CheckSize(image.width, image.height); !s.ok()) return s;
  ++at;  // the single whitespace after maxval
  const size_t size = size_t{static_cast<size_t>(image.width)} * image.height * image.channels;
  if (bytes.size() - at < size) return Corrupt("the PNM file is truncated");
  image.pixels.assign(bytes.begin() + at, bytes.begin() + at + size);
  return image;
}

// Pillow's bilinear resampling along one axis (Resample.c): per output pixel,
// the input range and its weights, normalized, in 22-bit fixed point.
constexpr int kPrecisionBits = 32 - 8 - 2;

struct Taps {
  int size = 0;                // weights per output pixel
  std::vector<int> first;      // first input pixel of each output pixel
  std::vector<int> count;      // inputs used by each output pixel
  std::vector<int32_t> weights;  // [output, size]
};

Taps BilinearTaps(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 1.0 * filter_scale;
  Taps taps;
  taps.size = static_cast<int>(std::ceil(support)) * 2 + 1;
  taps.first.resize(out_size);
  taps.count.resize(out_size);
  taps.weights.assign(static_cast<size_t>(out_size) * taps.size, 0);
  std::vector<double> w(taps.size);
  for (int out = 0; out < out_size; ++out) {
    const double center = (out + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    const double ss = 1.0 / filter_scale;
    double total = 0;
    for (int x = 0; x < hi - lo; ++x) {
      const double d = std::fabs((x + lo - center + 0.5) * ss);
      w[x] = d < 1.0 ? 1.0 - d : 0.0;
      total += w[x];
    }
    for (int x = 0; x < hi - lo; ++x) {
      const double normalized = total != 0.0 ? w[x] / total : w[x];
      const double fixed = normalized * (1 << kPrecisionBits);
      taps.weights[static_cast<size_t>(out) * taps.size + x] =
          static_cast<int32_t>(fixed < 0 ? std::trunc(fixed - 0.5) : std::trunc(fixed + 0.5));
    }
    taps.first[out] = lo;
    taps.count[out] = hi - lo;
  }
  return taps;
}

uint8_t Clip8(int32_t sum) {
  const int32_t v = sum >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Rows [row_begin, row_end) of `in`, resized horizontally to `width`.
Image ResizeRows(const Image& in, int width, int row_begin, int row_end) {
  const Taps taps = BilinearTaps(in.width, width);
  Image out{row_end - row_begin, width, in.channels, {}};
  out.pixels.resize(int64_t{out.height} * width * in.channels);
  for (int y = row_begin; y < row_end; ++y) {
    for (int x = 0; x < width; ++x) {
      const int32_t* w = &taps.weights[static_cast<size_t>(x) * taps.size];
      for (int c = 0; c < in.channels; ++c) {
        int32_t sum = 1 << (kPrecisionBits - 1);
        for (int k = 0; k < taps.count[x]; ++k) sum += in.at(y, taps.first[x] + k)[c] * w[k];
        out.at(y - row_begin, x)[c] = Clip8(sum);
      }
    }
  }
  return out;
}

}  // namespace

absl::StatusOr<Image> DecodeImage(const std::vector<uint8_t>& bytes, int channels) {
  if (channels != 0 && channels != 1 && channels != 3) {
    return absl::InvalidArgumentError(absl::StrCat("channels ", channels, " is not 0, 1 or 3"));
  }
  absl::StatusOr<Image> image = Corrupt("not a JPEG, PNG, PPM or PGM file");
  if (bytes.size() >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF) {
    image = DecodeJpeg(bytes);
  } else if (bytes.size() >= 8 && png_sig_cmp(bytes.data(), 0, 8) == 0) {
    image = DecodePng(bytes);
  } else if (bytes.size() >= 3 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6')) {
    image = DecodePnm(bytes);
  }
  if (!image.ok()) return image.status();
  return WithChannels(*std::move(image), channels);
}

absl::StatusOr<Image> ReadImageFile(const std::string& path, int channels) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  const std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                                   std::istreambuf_iterator<char>());
  absl::StatusOr<Image> image = DecodeImage(bytes, channels);
  if (!image.ok()) {
    return absl::Status(image.status().code(),
                        absl::StrCat(path, ": ", image.status().message()));
  }
  return image;
}

Image Resize(const Image& image, int width, int height) {
  // Pillow resizes horizontally first, only the rows the vertical pass reads,
  // and skips a pass whose size does not change.
  if (width == image.width && height == image.height) return image;
  if (height == image.height) return ResizeRows(image, width, 0, image.height);
  const Taps taps = BilinearTaps(image.height, height);
  const int row_begin = taps.first[0];
  const int row_end = taps.first[height - 1] + taps.count[height - 1];
  const Image rows = width == image.width ? Crop(image, row_begin, 0, row_end - row_begin, width)
                                          : ResizeRows(image, width, row_begin, row_end);
  Image out{height, width, image.channels, {}};
  out.pixels.resize(int64_t{height} * width * image.channels);
  for (int y = 0; y < height; ++y) {
    const int32_t* w = &taps.weights[static_cast<size_t>(y) * taps.size];
    for (int x = 0; x < width; ++x) {
      for (int c = 0; c < image.channels; ++c) {
        int32_t sum = 1 << (kPrecisionBits - 1);
        for (int k = 0; k < taps.count[y]; ++k) {
          sum += rows.at(taps.first[y] - row_begin + k, x)[c] * w[k];
        }
        out.at(y, x)[c] = Clip8(sum);
      }
    }
  }
  return out;
}

Image Crop(const Image& image, int top, int left, int height, int width) {
  Image out{height, width, image.channels, {}};
  out.pixels.resize(int64_t{height} * width * image.channels);
  for (int y = 0; y < height; ++y) {
    std::memcpy(out.at(y, 0), image.at(top + y, left),
                static_cast<size_t>(width) * image.channels);
  }
  return out;
}

Image ResizeShorterSide(const Image& image, int size) {
  if (image.width <= image.height) {
    return Resize(image, size, static_cast<int>(int64_t{size} * image.height / image.width));
  }
  return Resize(image, static_cast<int>(int64_t{size} * image.width / image.height), size);
}

Image CenterCrop(const Image& image, int size) {
  // Python's round(), half to even, as torchvision's center_crop uses.
  const int top = static_cast<int>(std::nearbyint((image.height - size) / 2.0));
  const int left = static_cast<int>(std::nearbyint((image.width - size) / 2.0));
  return Crop(image, top, left, size, size);
}

absl::StatusOr<Image> ResizeAndCenterCrop(const Image& image, int resize, int size) {
  if (size < 1 || resize < size) {
    return absl::InvalidArgumentError(
        absl::StrCat("resize ", resize, " must be at least the crop size ", size, " (>= 1)"));
  }
  if (std::min(image.width, image.height) == resize) return CenterCrop(image, size);
  const int64_t longer = int64_t{resize} * std::max(image.width, image.height) /
                         std::min(image.width, image.height);
  if (longer > 65536) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", image.width, "x", image.height, " image resized to ", resize,
        " would be ", longer, " pixels long"));
  }
  return CenterCrop(ResizeShorterSide(image, resize), size);
}

}  // namespace qforge::image
