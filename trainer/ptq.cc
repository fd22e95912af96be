#include "trainer/ptq.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <tuple>
#include <memory>

#include "absl/strings/str_cat.h"
#include "data/batch_loader.h"
#include "runtime/interpreter.h"
#include "runtime/model_loader.h"
#include "trainer/checkpoint.h"
#include "trainer/nn/parallel.h"
#include "trainer/quant/convert.h"
#include "trainer/quant/fusion.h"
#include "trainer/quant/quant_sim.h"
#include "trainer/train.h"

namespace qforge {
namespace {

constexpr int kEvalBatch = 100;

// Every rank's predictions for its shards in one, on every rank: the others'
// entries are zero until summed, and class numbers are exact as floats.
void GatherPredictions(Collectives& ranks, Predictions& predictions) {
  const size_t n = predictions.top1.size();
  std::vector<float> mine(2 * n);
  for (size_t i = 0; i < n; ++i) {
    mine[i] = static_cast<float>(predictions.top1[i]);
    mine[n + i] = predictions.in_top5[i];
  }
  ranks.Sum(mine.data(), static_cast<int64_t>(mine.size()), "the test set's predictions");
  for (size_t i = 0; i < n; ++i) {
    predictions.top1[i] = static_cast<int>(mine[i]);
    predictions.in_top5[i] = mine[n + i] != 0;
  }
}

// The top-1 class of every test image, in order: `logits` maps a batch of
// normalized images to its [batch, classes] logits. With several ranks, each
// runs its shard of every batch.
absl::StatusOr<Predictions> Predict(
    const Dataset& test, const Normalization& normalization,
    const std::function<absl::StatusOr<const float*>(const Batch&)>& logits,
    Collectives* ranks = nullptr) {
  LoaderOptions options;
  options.batch_size = kEvalBatch;
  options.shuffle = false;
  options.normalization = normalization;
  if (ranks != nullptr) {
    options.shard = ranks->rank();
    options.shards = ranks->size();
    options.allow_empty_shards = true;
  }
  absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(test, options);
  if (!loader.ok()) return loader.status();
  (*loader)->StartEpoch(0);
  Batch batch;
  Predictions predictions;
  predictions.top1.assign(test.count, 0);
  predictions.in_top5.assign(test.count, 0);
  const int classes = test.num_classes();
  while ((*loader)->Next(&batch)) {
    if (batch.size == 0) continue;
    absl::StatusOr<const float*> out = logits(batch);
    if (!out.ok()) return out.status();
    for (int i = 0; i < batch.size; ++i) {
      const float* row = *out + i * classes;
      const int64_t image = batch.indices[i];
      predictions.top1[image] = static_cast<int>(std::max_element(row, row + classes) - row);
      predictions.in_top5[image] =
          TopKCorrect(row, {batch.labels[i]}, /*rows=*/1, classes, /*k=*/5) == 1;
    }
  }
  if (absl::Status s = (*loader)->status(); !s.ok()) return s;
  if (ranks != nullptr) GatherPredictions(*ranks, predictions);
  return predictions;
}

}  // namespace

absl::Status Calibrate(const RestoredModel& r, int batches, int batch_size, uint64_t seed,
                       Calibrator& calibrator) {
  LoaderOptions loader_options;
  loader_options.batch_size = batch_size;
  loader_options.seed = seed;
  loader_options.decode_threads = r.config.decode_threads();
  loader_options.normalization = DatasetNormalization(r.train);
  absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(r.train, loader_options);
  if (!loader.ok()) return loader.status();
  (*loader)->StartEpoch(0);
  Batch batch;
  FloatTensor x;
  for (int i = 0; i < batches && (*loader)->Next(&batch); ++i) {
    BatchToTensor(batch, x);
    calibrator.Run(x);
  }
  return (*loader)->status();
}

absl::StatusOr<std::unique_ptr<RestoredModel>> RestoreModel(const Checkpoint& checkpoint,
                                                            const std::string& path) {
  auto r = std::make_unique<RestoredModel>();
  r->config = checkpoint.config();
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
  if (absl::Status s = RestoreTensors(checkpoint, r->params); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  return r;
}

ModelDescription DescribeModel(const RestoredModel& r) {
  ModelDescription description;
  description.input_shape = {1, r.train.height, r.train.width, r.train.channels};
  description.normalization = DatasetNormalization(r.train);
  description.class_names = r.train.class_names;
  description.dataset = r.config.dataset();
  description.eval_resize = r.train.eval_resize;
  return description;
}

absl::StatusOr<int64_t> SaveModel(Model& model, const std::string& path) {
  if (absl::Status s = WriteProtoAtomically(model, path); !s.ok()) return s;
  return static_cast<int64_t>(std::filesystem::file_size(path));
}

absl::StatusOr<Predictions> RuntimePredictions(const Model& model, const Dataset& test,
                                               const Normalization& normalization, int threads,
                                               Collectives* ranks) {
  absl::StatusOr<Model> batched = WithBatch(model, kEvalBatch);
  if (!batched.ok()) return batched.status();
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled =
      CompiledModel::FromModel(*std::move(batched), LoadLimits::None());
  if (!compiled.ok()) return compiled.status();
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter =
      Interpreter::Create(*compiled, {Backend::kFast, threads});
  if (!interpreter.ok()) return interpreter.status();
  return Predict(
      test, normalization,
      [&](const Batch& batch) -> absl::StatusOr<const float*> {
        // A short last batch runs padded with zeros; only its real images count.
        float* input = static_cast<float*>((*interpreter)->input_data(0));
        std::fill(input, input + kEvalBatch * test.image_size(), 0.0f);
        std::copy(batch.images.begin(), batch.images.end(), input);
        if (absl::Status s = (*interpreter)->Invoke(); !s.ok()) return s;
        return static_cast<const float*>((*interpreter)->output_data(0));
      },
      ranks);
}

absl::StatusOr<Predictions> SimulationPredictions(QuantSimulation& simulation,
                                                  const Dataset& test,
                                                  const Normalization& normalization) {
  FloatTensor x;
  return Predict(test, normalization, [&](const Batch& batch) -> absl::StatusOr<const float*> {
    BatchToTensor(batch, x);
    return simulation.Forward(x).ptr();
  });
}

double Accuracy(const Predictions& predictions, const Dataset& test) {
  int64_t correct = 0;
  for (size_t i = 0; i < predictions.top1.size(); ++i) {
    correct += predictions.top1[i] == test.labels[i];
  }
  return static_cast<double>(correct) / predictions.top1.size();
}

double Top5Accuracy(const Predictions& predictions, const Dataset& test) {
  if (test.num_classes() <= 10) return -1;
  int64_t correct = 0;
  for (uint8_t hit : predictions.in_top5) correct += hit;
  return static_cast<double>(correct) / predictions.in_top5.size();
}

double Agreement(const Predictions& a, const Predictions& b) {
  int64_t same = 0;
  for (size_t i = 0; i < a.top1.size(); ++i) same += a.top1[i] == b.top1[i];
  return static_cast<double>(same) / a.top1.size();
}

absl::StatusOr<PtqResult> RunPtq(const PtqOptions& options) {
  if (options.calib_batches < 1 || options.calib_batch_size < 1) {
    return absl::InvalidArgumentError("calib_batches and calib_batch_size must be at least 1");
  }
  if (!NamedQConfig(options.qconfig).ok()) return NamedQConfig(options.qconfig).status();
  absl::StatusOr<Checkpoint> checkpoint = ReadCheckpoint(options.checkpoint);
  if (!checkpoint.ok()) return checkpoint.status();
  absl::StatusOr<std::unique_ptr<RestoredModel>> restored =
      RestoreModel(*checkpoint, options.checkpoint);
  if (!restored.ok()) return restored.status();
  RestoredModel& r = **restored;
  const int threads = options.threads > 0 ? options.threads : std::max(1, r.config.threads());
  ConfigurePool(threads);
  FusedMobileNetV2 fused(*r.model, r.params);
  absl::StatusOr<LayerQConfigs> qconfigs =
      ParseLayerQConfigs(options.qconfig, options.overrides, options.float_layers, fused);
  if (!qconfigs.ok()) return qconfigs.status();
  absl::StatusOr<Model> int8_model, float_model;
  {
    Calibrator calibrator(*qconfigs, fused);
    absl::Status calibrated =
        Calibrate(r, options.calib_batches, options.calib_batch_size,
                  options.calibration_seed.value_or(r.config.seed()), calibrator);
    if (!calibrated.ok()) return calibrated;
    ModelDescription description = DescribeModel(r);
    description.producer = absl::StrCat("qforge trainer ptq --qconfig=", options.qconfig);
    if (!options.overrides.empty()) absl::StrAppend(&description.producer, " --overrides=", options.overrides);
    if (!options.float_layers.empty()) absl::StrAppend(&description.producer, " --float_layers=", options.float_layers);
    if (options.calibration_seed) absl::StrAppend(&description.producer, " --seed=", *options.calibration_seed);
    int8_model = ConvertToInt8(fused, calibrator, *qconfigs, description);
    if (!int8_model.ok()) return int8_model.status();
    description.producer = "qforge trainer ptq (float reference)";
    float_model = ConvertToFloat(fused, description);
    if (!float_model.ok()) return float_model.status();
  }

  PtqResult result;
  result.test_images = r.test.count;
  const Normalization normalization = DatasetNormalization(r.train);
  Predictions int8_predictions;
  for (auto [model, accuracy, top5, predictions] :
       {std::tuple{&*int8_model, &result.int8_accuracy, &result.int8_top5, &int8_predictions},
        std::tuple{&*float_model, &result.float_accuracy, &result.float_top5,
                   static_cast<Predictions*>(nullptr)}}) {
    absl::StatusOr<Predictions> measured =
        RuntimePredictions(*model, r.test, normalization, threads);
    if (!measured.ok()) return measured.status();
    *accuracy = Accuracy(*measured, r.test);
    *top5 = Top5Accuracy(*measured, r.test);
    if (predictions != nullptr) *predictions = *measured;
    model->mutable_metadata()->set_accuracy_top1(static_cast<float>(*accuracy));
    if (*top5 >= 0) model->mutable_metadata()->set_accuracy_top5(static_cast<float>(*top5));
    model->mutable_metadata()->set_accuracy_images(static_cast<int32_t>(r.test.count));
  }
  // The fake-quant simulation of the int8 model, held to the runtime's result.
  absl::StatusOr<std::unique_ptr<QuantSimulation>> simulation =
      QuantSimulation::Create(fused, *int8_model);
  if (simulation.ok()) {
    absl::StatusOr<Predictions> simulated =
        SimulationPredictions(**simulation, r.test, normalization);
    if (!simulated.ok()) return simulated.status();
    result.simulation_accuracy = Accuracy(*simulated, r.test);
    result.simulation_agreement = Agreement(*simulated, int8_predictions);
  } else if (simulation.status().code() == absl::StatusCode::kUnimplemented) {
    result.simulation_note = std::string(simulation.status().message());
  } else {
    return simulation.status();
  }

  std::error_code ec;
  std::filesystem::create_directories(options.output_dir, ec);
  const std::filesystem::path dir(options.output_dir);
  // Per-layer choices get their own file rather than replacing the plain one.
  const bool custom = !options.overrides.empty() || !options.float_layers.empty();
  result.int8_path =
      (dir / absl::StrCat("model_int8_", options.qconfig, custom ? "_custom" : "", ".qfm")).string();
  result.float_path = (dir / "model_float.qfm").string();
  absl::StatusOr<int64_t> int8_bytes = SaveModel(*int8_model, result.int8_path);
  if (!int8_bytes.ok()) return int8_bytes.status();
  absl::StatusOr<int64_t> float_bytes = SaveModel(*float_model, result.float_path);
  if (!float_bytes.ok()) return float_bytes.status();
  result.int8_bytes = *int8_bytes;
  result.float_bytes = *float_bytes;
  return result;
}

}  // namespace qforge
