#include "trainer/ptq.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"
#include "data/batch_loader.h"
#include "runtime/interpreter.h"
#include "runtime/model_loader.h"
#include "trainer/checkpoint.h"
#include "trainer/convert.h"
#include "trainer/fusion.h"
#include "trainer/parallel.h"
#include "trainer/train.h"

namespace qforge {
namespace {

constexpr int kEvalBatch = 100;

// The checkpoint's float model, restored.
struct Restored {
  TrainConfig config;
  Dataset train, test;
  ParameterStore params;
  std::unique_ptr<MobileNetV2Model> model;
};

absl::StatusOr<std::unique_ptr<Restored>> Restore(const std::string& path) {
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(path);
  if (!checkpoint.ok()) return checkpoint.status();
  auto r = std::make_unique<Restored>();
  r->config = checkpoint->config();
  // The training images of the run (its normalization), but the whole test set.
  absl::StatusOr<Dataset> train = LoadTrainingSet(r->config);
  if (!train.ok()) return train.status();
  absl::StatusOr<Dataset> test = LoadDatasetSplit(r->config, Split::kTest);
  if (!test.ok()) return test.status();
  r->train = *std::move(train);
  r->test = *std::move(test);
  r->model = std::make_unique<MobileNetV2Model>(ModelConfigFor(r->config, r->train),
                                                r->config.model().relu6(), r->params,
                                                r->config.model().dropout());
  Sgd unused({});
  if (absl::Status s = RestoreState(*checkpoint, r->params, unused); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  return r;
}

// The tutorial's calibration: `batches` batches of `batch_size` training
// images (shuffled with the run's seed, no augmentation), in eval mode.
absl::Status Calibrate(const Restored& r, const PtqOptions& options, Calibrator& calibrator) {
  LoaderOptions loader_options;
  loader_options.batch_size = options.calib_batch_size;
  loader_options.seed = r.config.seed();
  loader_options.normalization = DatasetNormalization(r.train);
  absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(r.train, loader_options);
  if (!loader.ok()) return loader.status();
  (*loader)->StartEpoch(0);
  Batch batch;
  FloatTensor x;
  for (int i = 0; i < options.calib_batches && (*loader)->Next(&batch); ++i) {
    x.Resize({batch.size, batch.height, batch.width, batch.channels});
    std::copy(batch.images.begin(), batch.images.end(), x.data.begin());
    calibrator.Run(x);
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Save(Model& model, const std::string& path) {
  if (absl::Status s = WriteProtoAtomically(model, path); !s.ok()) return s;
  return static_cast<int64_t>(std::filesystem::file_size(path));
}

}  // namespace

absl::StatusOr<double> RuntimeAccuracy(const Model& model, const Dataset& test,
                                       const Normalization& normalization, int threads) {
  absl::StatusOr<Model> batched = WithBatch(model, kEvalBatch);
  if (!batched.ok()) return batched.status();
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled =
      CompiledModel::FromModel(*std::move(batched));
  if (!compiled.ok()) return compiled.status();
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter =
      Interpreter::Create(*compiled, {Backend::kXnnpack, threads});
  if (!interpreter.ok()) return interpreter.status();
  LoaderOptions options;
  options.batch_size = kEvalBatch;
  options.shuffle = false;
  options.normalization = normalization;
  absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(test, options);
  if (!loader.ok()) return loader.status();
  (*loader)->StartEpoch(0);
  Batch batch;
  int64_t correct = 0, seen = 0;
  const int classes = test.num_classes();
  while ((*loader)->Next(&batch)) {
    // A short last batch runs padded with zeros; only its real images count.
    float* input = static_cast<float*>((*interpreter)->input_data(0));
    std::fill(input, input + kEvalBatch * test.image_size(), 0.0f);
    std::copy(batch.images.begin(), batch.images.end(), input);
    if (absl::Status s = (*interpreter)->Invoke(); !s.ok()) return s;
    const float* logits = static_cast<const float*>((*interpreter)->output_data(0));
    for (int i = 0; i < batch.size; ++i) {
      const float* row = logits + i * classes;
      correct += (std::max_element(row, row + classes) - row) == batch.labels[i];
    }
    seen += batch.size;
  }
  return static_cast<double>(correct) / seen;
}

absl::StatusOr<PtqResult> RunPtq(const PtqOptions& options) {
  absl::StatusOr<QConfig> qconfig = NamedQConfig(options.qconfig);
  if (!qconfig.ok()) return qconfig.status();
  if (options.calib_batches < 1 || options.calib_batch_size < 1) {
    return absl::InvalidArgumentError("calib_batches and calib_batch_size must be at least 1");
  }
  absl::StatusOr<std::unique_ptr<Restored>> restored = Restore(options.checkpoint);
  if (!restored.ok()) return restored.status();
  Restored& r = **restored;
  const int threads = options.threads > 0 ? options.threads : std::max(1, r.config.threads());
  ConfigurePool(threads);
  openblas_set_num_threads(1);  // trainer/gemm.h splits GEMMs across the pool itself
  FusedMobileNetV2 fused(*r.model, r.params);
  Calibrator calibrator(*qconfig, fused);
  if (absl::Status s = Calibrate(r, options, calibrator); !s.ok()) return s;

  ModelDescription description;
  description.input_shape = {1, r.train.height, r.train.width, r.train.channels};
  description.normalization = DatasetNormalization(r.train);
  description.class_names = r.train.class_names;
  description.dataset = r.config.dataset();
  description.producer = absl::StrCat("qforge trainer ptq --qconfig=", options.qconfig);
  absl::StatusOr<Model> int8_model = ConvertToInt8(fused, calibrator, *qconfig, description);
  if (!int8_model.ok()) return int8_model.status();
  description.producer = "qforge trainer ptq (float reference)";
  absl::StatusOr<Model> float_model = ConvertToFloat(fused, description);
  if (!float_model.ok()) return float_model.status();

  PtqResult result;
  result.test_images = r.test.count;
  for (auto [model, accuracy] : {std::pair{&*int8_model, &result.int8_accuracy},
                                 std::pair{&*float_model, &result.float_accuracy}}) {
    absl::StatusOr<double> measured =
        RuntimeAccuracy(*model, r.test, description.normalization, threads);
    if (!measured.ok()) return measured.status();
    *accuracy = *measured;
    model->mutable_metadata()->set_accuracy_top1(static_cast<float>(*measured));
    model->mutable_metadata()->set_accuracy_images(static_cast<int32_t>(r.test.count));
  }
  std::error_code ec;
  std::filesystem::create_directories(options.output_dir, ec);
  const std::filesystem::path dir(options.output_dir);
  result.int8_path = (dir / absl::StrCat("model_int8_", options.qconfig, ".qfm")).string();
  result.float_path = (dir / "model_float.qfm").string();
  absl::StatusOr<int64_t> int8_bytes = Save(*int8_model, result.int8_path);
  if (!int8_bytes.ok()) return int8_bytes.status();
  absl::StatusOr<int64_t> float_bytes = Save(*float_model, result.float_path);
  if (!float_bytes.ok()) return float_bytes.status();
  result.int8_bytes = *int8_bytes;
  result.float_bytes = *float_bytes;
  return result;
}

}  // namespace qforge
