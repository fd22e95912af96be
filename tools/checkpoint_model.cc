#include "tools/checkpoint_model.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "trainer/checkpoint.h"
#include "trainer/train.h"

namespace qforge {
namespace {

// The config's classes, or those of the checkpoint's classifier.
int Classes(const Checkpoint& checkpoint) {
  if (checkpoint.config().model().num_classes() > 0) {
    return checkpoint.config().model().num_classes();
  }
  for (const NamedTensor& t : checkpoint.tensors()) {
    if (t.name() == "classifier.1.weight" && t.shape_size() == 2) {
      return static_cast<int>(t.shape(0));
    }
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<CheckpointModel>> LoadCheckpointModel(const std::string& path,
                                                                     int channels, int size) {
  if (channels < 1 || size < 1) return absl::InvalidArgumentError("size and channels must be >= 1");
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(path);
  if (!checkpoint.ok()) return checkpoint.status();
  const ModelConfig& model_config = checkpoint->config().model();
  auto loaded = std::make_unique<CheckpointModel>();
  loaded->config = ModelConfigForImages(model_config, channels, size, Classes(*checkpoint));
  loaded->model = std::make_unique<MobileNetV2Model>(loaded->config, model_config.relu6(),
                                                     loaded->params, model_config.dropout());
  if (absl::Status s = RestoreTensors(*checkpoint, loaded->params); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  return loaded;
}

absl::StatusOr<FloatTensor> ReadImages(const std::string& path, int64_t count, int size,
                                       int channels) {
  std::error_code ec;
  const uintmax_t bytes = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", ec.message()));
  const int64_t per_image = int64_t{size} * size * channels;
  const uintmax_t image_bytes = per_image * sizeof(float);
  if (count == 0) count = static_cast<int64_t>(bytes / image_bytes);
  if (count < 1 || bytes != count * image_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, " holds ", bytes, " bytes, not ", count > 0 ? absl::StrCat(count) : "a whole number of",
        " float32 images of ", size, "x", size, "x", channels));
  }
  FloatTensor images({count, size, size, channels});
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(images.ptr()), static_cast<std::streamsize>(bytes));
  if (!in) return absl::DataLossError(absl::StrCat("cannot read ", path));
  return images;
}

}  // namespace qforge
