// Accuracy regressions on a committed model (tests/testdata/small_model):
//
// - Its int8 model, run by the runtime on all 10,000 Fashion-MNIST test images,
//   must get exactly the recorded number of images right on every backend and
//   kernel level. The int8 numerics are integer and fully specified, so any
//   change in them (requantization rounding, a kernel, the input quantizer)
//   shows up as a different count, or as a level that disagrees.
// - Its float checkpoint, converted again by today's trainer, must give the
//   same model file byte for byte, or the test names the first difference.
//
// Regenerate both after an intended change of the numerics (README, "Tests"):
//   tools/make_small_model.sh
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/batch_loader.h"
#include "gtest/gtest.h"
#include "runtime/interpreter.h"
#include "runtime/model_loader.h"
#include "trainer/nn/gemm.h"
#include "trainer/ptq.h"
#include "trainer/train.h"

namespace qforge {
namespace {

constexpr char kDir[] = "tests/testdata/small_model/";
constexpr int kBatch = 100;

// Recorded by tools/make_small_model.sh: images right out of 10,000, and a
// digest of every logit of every image (qforge's kernels are bit-exact with
// the reference, so a rounding change shows even where no class changes).
constexpr int kInt8Correct = 9038;
constexpr uint64_t kInt8LogitsDigest = 14577435933856357154u;
// XNNPACK requantizes in fp32, within 1 LSB of qforge's kernels per op, so it
// gets its own count (XNNPACK's fp32 requantization is the same on every CPU).
constexpr int kXnnpackCorrect = 9039;

Model LoadCommitted(const std::string& name) {
  absl::StatusOr<Model> model = ReadModelFile(absl::StrCat(kDir, name));
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *model : Model();
}

const Dataset& TestSet() {
  static const Dataset* test = [] {
    TrainConfig config = DefaultTrainConfig();  // Fashion-MNIST from Debian's package
    absl::StatusOr<Dataset> loaded = LoadDatasetSplit(config, Split::kTest);
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return new Dataset(loaded.ok() ? *std::move(loaded) : Dataset());
  }();
  return *test;
}

struct Scores {
  int correct = 0;          // images whose top-1 class is the label
  uint64_t digest = 14695981039346656037u;  // FNV-1a of all logits' bytes
};

// `model` on the whole test set (printed too, for tools/make_small_model.sh).
// One thread: tests run two at a time on two cores, and a spinning thread
// pool loses much when it shares them.
Scores Score(const Model& model, const InterpreterOptions& options, const std::string& what) {
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<Model> batched = WithBatch(model, kBatch);
  EXPECT_TRUE(batched.ok()) << batched.status();
  if (!batched.ok()) return {};
  auto compiled = CompiledModel::FromModel(*std::move(batched));
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  if (!compiled.ok()) return {};
  auto interpreter = Interpreter::Create(*compiled, options);
  EXPECT_TRUE(interpreter.ok()) << interpreter.status();
  if (!interpreter.ok()) return {};
  LoaderOptions loader_options;
  loader_options.batch_size = kBatch;
  loader_options.shuffle = false;
  loader_options.normalization.mean.assign(model.preprocessing().mean().begin(),
                                           model.preprocessing().mean().end());
  loader_options.normalization.std.assign(model.preprocessing().std().begin(),
                                          model.preprocessing().std().end());
  auto loader = BatchLoader::Create(TestSet(), loader_options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  if (!loader.ok()) return {};
  (*loader)->StartEpoch(0);
  const int classes = TestSet().num_classes();
  Scores scores;
  Batch batch;
  while ((*loader)->Next(&batch)) {
    EXPECT_EQ(batch.size, kBatch);  // 10,000 images in whole batches
    std::copy(batch.images.begin(), batch.images.end(),
              static_cast<float*>((*interpreter)->input_data(0)));
    EXPECT_TRUE((*interpreter)->Invoke().ok());
    const float* logits = static_cast<const float*>((*interpreter)->output_data(0));
    for (int i = 0; i < batch.size; ++i) {
      const float* row = logits + i * classes;
      scores.correct += std::max_element(row, row + classes) - row == batch.labels[i];
    }
    const auto* bytes = reinterpret_cast<const unsigned char*>(logits);
    for (size_t i = 0; i < sizeof(float) * kBatch * classes; ++i) {
      scores.digest = (scores.digest ^ bytes[i]) * 1099511628211u;
    }
  }
  std::printf("%s: %d images right, logits digest %llu (%.1f s)\n", what.c_str(),
              scores.correct, static_cast<unsigned long long>(scores.digest),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return scores;
}

void ExpectRecorded(const Scores& scores) {
  EXPECT_EQ(scores.correct, kInt8Correct);
  EXPECT_EQ(scores.digest, kInt8LogitsDigest);
}

TEST(CommittedModel, Int8AccuracyIsTheRecordedOneOnQforgeKernelsAndXnnpack) {
  const Model model = LoadCommitted("model_int8.qfm");
  ASSERT_EQ(TestSet().count, 10000);
  // What the trainer measured when it made the model (on qforge's kernels).
  EXPECT_EQ(std::lround(model.metadata().accuracy_top1() * 10000), kInt8Correct);
  for (kernels::Isa isa : {kernels::Isa::kAvx2, kernels::Isa::kAvxVnni, kernels::Isa::kAvx512Vnni,
                           kernels::Isa::kAvx512Amx}) {
    if (kernels::ResolveIsa(isa) != isa) continue;  // not on this CPU
    ExpectRecorded(
        Score(model, {Backend::kFast, 1, isa}, absl::StrCat("qforge kernels at ", kernels::IsaName(isa))));
  }
  EXPECT_EQ(Score(model, {Backend::kXnnpackOnly, 1}, "XNNPACK").correct, kXnnpackCorrect);
}

// The portable kernels are slow (about two minutes here): a test of its own,
// tagged slow.
TEST(CommittedModel, Int8AccuracyIsTheRecordedOneOnTheReferenceAndGenericKernels) {
  const Model model = LoadCommitted("model_int8.qfm");
  ExpectRecorded(Score(model, {Backend::kReference, 1}, "reference"));
  ExpectRecorded(Score(model, {Backend::kFast, 1, kernels::Isa::kGeneric}, "qforge kernels at generic"));
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The first place two models differ, in words ("" if none).
std::string FirstDifference(const Model& a, const Model& b) {
  if (a.tensors_size() != b.tensors_size()) {
    return absl::StrCat(a.tensors_size(), " tensors against ", b.tensors_size());
  }
  for (int i = 0; i < a.tensors_size(); ++i) {
    if (a.tensors(i).SerializeAsString() != b.tensors(i).SerializeAsString()) {
      return absl::StrCat("tensor ", i, " '", a.tensors(i).name(), "'");
    }
  }
  if (a.ops_size() != b.ops_size()) return absl::StrCat(a.ops_size(), " ops against ", b.ops_size());
  for (int i = 0; i < a.ops_size(); ++i) {
    if (a.ops(i).SerializeAsString() != b.ops(i).SerializeAsString()) {
      return absl::StrCat("op ", i, " '", a.ops(i).name(), "'");
    }
  }
  if (a.preprocessing().SerializeAsString() != b.preprocessing().SerializeAsString()) {
    return "preprocessing";
  }
  if (a.metadata().SerializeAsString() != b.metadata().SerializeAsString()) {
    return absl::StrCat("metadata: ", a.metadata().ShortDebugString(), " against ",
                        b.metadata().ShortDebugString());
  }
  return a.SerializeAsString() == b.SerializeAsString() ? "" : "the model's other fields";
}

TEST(CommittedModel, ConvertingTheCheckpointAgainGivesTheSameFile) {
  // The trainer's float arithmetic (its GEMMs' summation order) depends on the
  // instruction set it was built for; calibration ranges follow it.
  std::ifstream made_with(absl::StrCat(kDir, "made_with.txt"));
  std::string instruction_set;
  made_with >> instruction_set;
  if (instruction_set != GemmInstructionSet()) {
    GTEST_SKIP() << "the committed model was made by a trainer built for " << instruction_set
                 << ", this one is built for " << GemmInstructionSet();
  }
  PtqOptions options;
  options.checkpoint = absl::StrCat(kDir, "checkpoint.pb");
  options.qconfig = "per_channel_histogram";
  options.output_dir = std::getenv("TEST_TMPDIR");
  options.threads = 1;  // the model was made with 2; the result must not depend on it
  absl::StatusOr<PtqResult> result = RunPtq(options);
  ASSERT_TRUE(result.ok()) << result.status();
  const std::string committed = ReadBytes(absl::StrCat(kDir, "model_int8.qfm"));
  const std::string made = ReadBytes(result->int8_path);
  if (made != committed) {
    Model a, b;
    ASSERT_TRUE(a.ParseFromString(made) && b.ParseFromString(committed));
    FAIL() << "the converted model differs from the committed one: " << FirstDifference(a, b);
  }
}

}  // namespace
}  // namespace qforge
