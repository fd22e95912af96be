// Bytes that are not a valid model — empty, truncated at every offset, with
// random bytes flipped, or not protobuf at all — are rejected cleanly; run it
// under --config=asan to see that none is read out of bounds.
#include "runtime/model_loader.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/model_builder.h"
#include "common/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/interpreter.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

// float [1,8,8,3] -> QUANTIZE -> depthwise CONV2D (with bias, per-channel
// weights, an output zero point above 0) -> MEAN_HW -> DEQUANTIZE, with
// metadata, so the bytes hold every kind of field and the kernels' less common
// cases are a flip away.
std::string ValidModelBytes() {
  ModelBuilder b;
  const int input = b.AddFloatTensor("input", {1, 8, 8, 3});
  const int q = b.AddInt8Tensor("q", {1, 8, 8, 3}, 0.02f, 0);
  std::vector<int8_t> w(27);
  for (int i = 0; i < 27; ++i) w[i] = static_cast<int8_t>(i * 9 - 120);
  const std::vector<float> w_scales = {0.01f, 0.02f, 0.03f};
  const int weights = b.AddInt8Constant("dw.weight", {3, 3, 3, 1}, w, w_scales);
  const int bias = b.AddInt32Constant("dw.bias", {3}, {300, -200, 100},
                                      {0.02f * w_scales[0], 0.02f * w_scales[1], 0.02f * w_scales[2]});
  const int conv = b.AddInt8Tensor("dw.out", {1, 8, 8, 3}, 0.01f, 5);
  const int pooled = b.AddInt8Tensor("pool", {1, 3}, 0.01f, 5);
  const int output = b.AddFloatTensor("output", {1, 3});
  b.AddOp(QUANTIZE, "quant", {input}, q);
  b.AddConv2D("dw", q, weights, bias, conv, 1, 1, /*groups=*/3, ACTIVATION_NONE);
  b.AddOp(MEAN_HW, "pool", {conv}, pooled);
  b.AddOp(DEQUANTIZE, "dequant", {pooled}, output);
  b.AddInput(input);
  b.AddOutput(output);
  b.model().mutable_metadata()->add_class_names("a");
  return b.model().SerializeAsString();
}

TEST(ParseModel, AcceptsAValidModel) {
  const std::string bytes = ValidModelBytes();
  absl::StatusOr<Model> model = ParseModel(bytes.data(), bytes.size());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(model->ops_size(), 4);
}

TEST(ParseModel, RejectsEmptyAndGarbage) {
  EXPECT_THAT(ParseModel("", 0).status().message(), HasSubstr("empty"));
  const std::string text = "this is a text file, not a model";
  absl::StatusOr<Model> model = ParseModel(text.data(), text.size());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseModel, EveryTruncationIsRejected) {
  // Fields are serialized in field-number order and the optional metadata comes
  // last: a prefix that ends exactly before it is the same model without
  // metadata, and valid. Every other strict prefix cuts a field short
  // (malformed) or lacks something the validator requires.
  const std::string bytes = ValidModelBytes();
  Model without_metadata;
  ASSERT_TRUE(without_metadata.ParseFromString(bytes));
  without_metadata.clear_metadata();
  const size_t metadata_start = without_metadata.ByteSizeLong();
  for (size_t length = 0; length < bytes.size(); ++length) {
    absl::StatusOr<Model> model = ParseModel(bytes.data(), length);
    if (length == metadata_start) {
      EXPECT_TRUE(model.ok()) << model.status();
      continue;
    }
    ASSERT_FALSE(model.ok()) << "truncated to " << length << " of " << bytes.size();
    ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

// Output 0 of `model` on each backend for one input, or the error that
// refused it; a model that loads must either run or be refused cleanly.
struct Outcome {
  absl::Status status;
  std::vector<float> output;
};

Outcome RunOn(std::shared_ptr<const CompiledModel> model, const InterpreterOptions& options) {
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter = Interpreter::Create(model, options);
  if (!interpreter.ok()) return {interpreter.status(), {}};
  Interpreter& in = **interpreter;
  const Tensor& input = in.input_tensor(0);
  int64_t n = 1;
  for (int64_t d : input.shape()) n *= d;
  float* x = static_cast<float*>(in.input_data(0));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(i % 7) * 0.1f - 0.2f;
  if (absl::Status s = in.Invoke(); !s.ok()) return {s, {}};
  int64_t m = 1;
  for (int64_t d : in.output_tensor(0).shape()) m *= d;
  const float* y = static_cast<const float*>(in.output_data(0));
  return {absl::OkStatus(), std::vector<float>(y, y + m)};
}

// Flipped bytes either make ParseModel refuse the model, or give a model that
// is prepared and run on every backend: qforge's kernels exactly as the
// reference, XNNPACK refusing it cleanly or running it. (A flip may turn the
// input or output into an int8 tensor; those models are loaded and prepared
// but not run, since this test feeds and reads floats.)
TEST(ParseModel, RandomByteFlipsAreRefusedOrRun) {
  const std::string bytes = ValidModelBytes();
  SplitMix64 rng(31337);
  int rejected = 0, ran = 0;
  constexpr int kTrials = 6000;
  for (int trial = 0; trial < kTrials; ++trial) {
    std::string broken = bytes;
    const int flips = 1 + static_cast<int>(rng.Below(4));
    for (int f = 0; f < flips; ++f) {
      broken[rng.Below(broken.size())] ^= static_cast<char>(1 + rng.Below(255));
    }
    absl::StatusOr<Model> model = ParseModel(broken.data(), broken.size());
    if (!model.ok()) {
      ++rejected;
      ASSERT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
      ASSERT_FALSE(model.status().message().empty());
      continue;
    }
    absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled =
        CompiledModel::FromModel(*model);
    if (!compiled.ok()) {
      ++rejected;
      ASSERT_FALSE(compiled.status().message().empty()) << "trial " << trial;
      continue;
    }
    const Model& m = (*compiled)->model();
    if (m.tensors(m.inputs(0)).type() != FLOAT32 || m.tensors(m.outputs(0)).type() != FLOAT32) {
      continue;
    }
    const Outcome reference = RunOn(*compiled, {Backend::kReference, 1});
    ASSERT_TRUE(reference.status.ok()) << "trial " << trial << ": " << reference.status;
    InterpreterOptions generic{Backend::kFast, 2, kernels::Isa::kGeneric};
    InterpreterOptions best{Backend::kFast, 2, kernels::kBestIsa};
    for (const InterpreterOptions& options : {generic, best}) {
      const Outcome fast = RunOn(*compiled, options);
      ASSERT_TRUE(fast.status.ok()) << "trial " << trial << ": " << fast.status;
      ASSERT_EQ(fast.output, reference.output) << "trial " << trial;
    }
    const Outcome xnnpack = RunOn(*compiled, {Backend::kXnnpackOnly, 1});
    if (!xnnpack.status.ok()) {
      ASSERT_FALSE(xnnpack.status.message().empty());
    }
    ++ran;
  }
  // Flips inside weight bytes or names leave a valid model; most flips do not.
  EXPECT_GT(rejected, kTrials / 4);
  EXPECT_GT(ran, kTrials / 20);
}

TEST(ReadModelFile, MissingFileAndPathInErrors) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  EXPECT_EQ(ReadModelFile(dir + "/absent.qfm").status().code(), absl::StatusCode::kNotFound);
  std::ofstream(dir + "/bad.qfm") << "garbage";
  absl::StatusOr<Model> bad = ReadModelFile(dir + "/bad.qfm");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("bad.qfm: not a qforge model"));
  const std::string bytes = ValidModelBytes();
  std::ofstream(dir + "/good.qfm", std::ios::binary).write(bytes.data(), bytes.size());
  EXPECT_TRUE(ReadModelFile(dir + "/good.qfm").ok());
}

}  // namespace
}  // namespace qforge

namespace qforge {
namespace {

TEST(WithBatch, ChangesEveryActivationAndKeepsConstants) {
  Model model;
  ASSERT_TRUE(model.ParseFromString(ValidModelBytes()));
  absl::StatusOr<Model> rebatched = WithBatch(model, 8);
  ASSERT_TRUE(rebatched.ok()) << rebatched.status();
  EXPECT_EQ(rebatched->tensors(0).shape(0), 8);  // input
  EXPECT_EQ(rebatched->tensors(2).shape(0), 3);  // depthwise weights: untouched
  EXPECT_EQ(rebatched->tensors(5).shape(0), 8);  // output
  EXPECT_FALSE(WithBatch(model, 0).ok());
  model.mutable_tensors(4)->set_shape(0, 2);
  EXPECT_THAT(WithBatch(model, 8).status().message(), HasSubstr("cannot change the batch"));
}

}  // namespace
}  // namespace qforge
