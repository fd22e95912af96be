// An in-memory image classification dataset as the readers produce it: raw
// uint8 pixels in NHWC order and one label per image.
#ifndef QFORGE_DATA_DATASET_H_
#define QFORGE_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

namespace qforge {

enum class Split { kTrain, kTest };

struct Dataset {
  std::string name;  // e.g. "fashion-mnist/train", for messages and metadata
  int64_t count = 0;
  int height = 0;
  int width = 0;
  int channels = 0;
  std::vector<uint8_t> pixels;  // [count, height, width, channels]
  std::vector<int32_t> labels;  // [count], each in [0, class_names.size())
  std::vector<std::string> class_names;
  // An image folder's images are decoded from these files as batches are made
  // (`pixels` stays empty), and height x width is the size its transforms
  // produce (data/image_folder.h).
  std::vector<std::string> files;
  // The normalization a dataset prescribes rather than one computed from its
  // pixels (an image folder: ImageNet's), and its evaluation transform's
  // resize (the shorter side, before the centre crop to height x width).
  std::vector<float> mean, std;
  int eval_resize = 0;

  bool from_files() const { return !files.empty(); }
  int num_classes() const { return static_cast<int>(class_names.size()); }
  int64_t image_size() const { return int64_t{height} * width * channels; }
  const uint8_t* image(int64_t i) const { return pixels.data() + i * image_size(); }
};

}  // namespace qforge

#endif  // QFORGE_DATA_DATASET_H_
