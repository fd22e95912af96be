#include "data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/image/image.h"

namespace qforge {
namespace {

namespace fs = std::filesystem;

enum class FileKind { kOther, kReadable, kUnreadable };

// torchvision's IMG_EXTENSIONS, lower-cased; qforge decodes the first five.
FileKind KindOf(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  for (const char* e : {".jpg", ".jpeg", ".png", ".ppm", ".pgm"}) {
    if (ext == e) return FileKind::kReadable;
  }
  for (const char* e : {".bmp", ".tif", ".tiff", ".webp"}) {
    if (ext == e) return FileKind::kUnreadable;
  }
  return FileKind::kOther;
}

// A class folder's images in ImageFolder's order: by directory, then by name
// (os.walk's directories sorted, each one's file names sorted).
absl::StatusOr<std::vector<std::string>> ClassImages(const fs::path& dir) {
  std::vector<std::pair<std::string, std::string>> found;  // (directory, name)
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(
           dir, fs::directory_options::follow_directory_symlink, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const FileKind kind = KindOf(it->path());
    if (kind == FileKind::kUnreadable) {
      return absl::InvalidArgumentError(absl::StrCat(
          it->path().string(), ": qforge reads JPEG, PNG, PPM and PGM images, not this one"));
    }
    if (kind == FileKind::kReadable) {
      found.emplace_back(it->path().parent_path().string(), it->path().filename().string());
    }
  }
  if (ec) return absl::InvalidArgumentError(absl::StrCat(dir.string(), ": ", ec.message()));
  std::sort(found.begin(), found.end());
  std::vector<std::string> files;
  files.reserve(found.size());
  for (const auto& [directory, name] : found) files.push_back((fs::path(directory) / name).string());
  return files;
}

// The sorted names of the folders in `dir`.
std::vector<std::string> ClassFolders(const fs::path& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory(ec)) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

absl::StatusOr<Dataset> LoadImageFolder(const std::string& root, Split split, int image_size) {
  const fs::path dir = fs::path(root) / (split == Split::kTrain ? "train" : "val");
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(
        dir.string(), " is not a folder: an image folder holds train/ and val/, each with one "
        "folder of images per class (ImageNet's layout)"));
  }
  Dataset d;
  d.name = absl::StrCat(root, split == Split::kTrain ? "/train" : "/val");
  d.class_names = ClassFolders(dir);
  if (d.class_names.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(dir.string(), " has no class folders"));
  }
  // A label is a class's place in the sorted list: val/ must list train/'s.
  if (split == Split::kTest && d.class_names != ClassFolders(fs::path(root) / "train")) {
    return absl::InvalidArgumentError(absl::StrCat(
        dir.string(), " holds other class folders than ", (fs::path(root) / "train").string(),
        ": their labels would not match"));
  }
  for (int label = 0; label < d.num_classes(); ++label) {
    absl::StatusOr<std::vector<std::string>> images = ClassImages(dir / d.class_names[label]);
    if (!images.ok()) return images.status();
    if (images->empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          (dir / d.class_names[label]).string(), " has no JPEG, PNG, PPM or PGM images"));
    }
    d.files.insert(d.files.end(), images->begin(), images->end());
    d.labels.insert(d.labels.end(), images->size(), label);
  }
  d.count = static_cast<int64_t>(d.files.size());
  d.height = d.width = image_size;
  d.channels = 3;
  d.mean.assign(std::begin(kImageNetMean), std::end(kImageNetMean));
  d.std.assign(std::begin(kImageNetStd), std::end(kImageNetStd));
  d.eval_resize = static_cast<int>(std::lround(image_size * 256.0 / 224.0));
  return d;
}

CropBox DrawResizedCrop(SplitMix64& rng, int height, int width) {
  // torchvision's RandomResizedCrop.get_params, scale (0.08, 1), ratio (3/4, 4/3).
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(3.0 / 4.0), log_hi = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (0.08 + 0.92 * rng.UniformFloat());
    const double ratio = std::exp(log_lo + (log_hi - log_lo) * rng.UniformFloat());
    const int w = static_cast<int>(std::nearbyint(std::sqrt(target * ratio)));
    const int h = static_cast<int>(std::nearbyint(std::sqrt(target / ratio)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int top = static_cast<int>(rng.Below(height - h + 1));
      const int left = static_cast<int>(rng.Below(width - w + 1));
      return {top, left, h, w};
    }
  }
  // The fallback: the whole image, or its centre at the nearest allowed ratio.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < 3.0 / 4.0) {
    h = static_cast<int>(std::nearbyint(w / (3.0 / 4.0)));
  } else if (in_ratio > 4.0 / 3.0) {
    w = static_cast<int>(std::nearbyint(h * (4.0 / 3.0)));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

absl::Status LoadFolderImage(const Dataset& dataset, int64_t index, bool train, bool flip,
                             SplitMix64& rng, const PixelScaling& scaling, float* out) {
  absl::StatusOr<image::Image> decoded = image::ReadImageFile(dataset.files[index], 3);
  if (!decoded.ok()) return decoded.status();
  image::Image result;
  bool mirror = false;
  if (train) {
    const CropBox box = DrawResizedCrop(rng, decoded->height, decoded->width);
    result = image::Resize(image::Crop(*decoded, box.top, box.left, box.height, box.width),
                           dataset.width, dataset.height);
    mirror = flip && rng.Below(2) == 1;
  } else {
    absl::StatusOr<image::Image> cropped =
        image::ResizeAndCenterCrop(*decoded, dataset.eval_resize, dataset.height);
    if (!cropped.ok()) return cropped.status();
    result = *std::move(cropped);
  }
  for (int y = 0; y < dataset.height; ++y) {
    for (int x = 0; x < dataset.width; ++x) {
      const uint8_t* pixel = result.at(y, mirror ? dataset.width - 1 - x : x);
      float* dst = out + (int64_t{y} * dataset.width + x) * 3;
      for (int c = 0; c < 3; ++c) dst[c] = pixel[c] * scaling.gain[c] + scaling.offset[c];
    }
  }
  return absl::OkStatus();
}

}  // namespace qforge
