// The interpreter end to end on a small int8 network computed by hand, on both
// backends, and its error cases.
#include "runtime/interpreter.h"

#include <cstring>
#include <thread>
#include <vector>

#include "common/model_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// float [1,2,2,1] -> QUANTIZE (scale 0.5, zp 0) -> 1x1 CONV2D (2 outputs, weights
// 1 and -1 at scale 1, bias 2 and 0) with ReLU -> MEAN_HW -> DEQUANTIZE.
std::shared_ptr<const CompiledModel> SmallNetwork() {
  ModelBuilder b;
  const int x = b.AddFloatTensor("x", {1, 2, 2, 1});
  const int q = b.AddInt8Tensor("q", {1, 2, 2, 1}, 0.5f, 0);
  const int w = b.AddInt8Constant("w", {2, 1, 1, 1}, {1, -1}, {1.0f});
  const int bias = b.AddInt32Constant("b", {2}, {2, 0}, {0.5f});
  const int conv = b.AddInt8Tensor("conv", {1, 2, 2, 2}, 0.5f, -128);
  const int mean = b.AddInt8Tensor("mean", {1, 2}, 0.25f, -128);
  const int y = b.AddFloatTensor("y", {1, 2});
  b.AddOp(QUANTIZE, "quantize", {x}, q);
  b.AddConv2D("conv", q, w, bias, conv, 1, 0, 1, RELU);
  b.AddOp(MEAN_HW, "mean", {conv}, mean);
  b.AddOp(DEQUANTIZE, "dequantize", {mean}, y);
  b.AddInput(x);
  b.AddOutput(y);
  absl::StatusOr<std::shared_ptr<const CompiledModel>> model = CompiledModel::FromModel(b.model());
  EXPECT_TRUE(model.ok()) << model.status();
  return *model;
}

class InterpreterTest : public ::testing::TestWithParam<Backend> {};

TEST_P(InterpreterTest, ComputesTheSmallNetwork) {
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter =
      Interpreter::Create(SmallNetwork(), {GetParam(), /*num_threads=*/2});
  ASSERT_TRUE(interpreter.ok()) << interpreter.status();
  Interpreter& it = **interpreter;
  ASSERT_EQ(it.num_inputs(), 1);
  EXPECT_EQ(it.input_tensor(0).name(), "x");
  EXPECT_EQ(it.output_tensor(0).name(), "y");
  // Run twice with different inputs: nothing may leak from the first run.
  for (int run = 0; run < 2; ++run) {
    const std::vector<float> x = run == 0 ? std::vector<float>{1, 2, -1, 3}
                                          : std::vector<float>{0, 0, 0, 0};
    std::memcpy(it.input_data(0), x.data(), sizeof(float) * 4);
    ASSERT_TRUE(it.Invoke().ok());
    const float* y = static_cast<const float*>(it.output_data(0));
    if (run == 0) {
      // Channel 0: relu(x + 1) = 2, 3, 0, 4 -> mean 2.25. Channel 1: relu(-x) =
      // 0, 0, 1, 0 -> mean 0.25.
      EXPECT_THAT(std::vector<float>(y, y + 2), ElementsAre(2.25f, 0.25f));
    } else {
      EXPECT_THAT(std::vector<float>(y, y + 2), ElementsAre(1.0f, 0.0f));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, InterpreterTest,
                         ::testing::Values(Backend::kFast, Backend::kReference,
                                           Backend::kXnnpackOnly));

TEST(Interpreter, ManyInterpretersShareOneModel) {
  std::shared_ptr<const CompiledModel> model = SmallNetwork();
  auto a = Interpreter::Create(model, {Backend::kFast, 1});
  auto b = Interpreter::Create(model, {Backend::kFast, 1});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->input_data(0), (*b)->input_data(0));
}

TEST(Interpreter, ThreadsWithTheirOwnInterpretersShareOneModel) {
  std::shared_ptr<const CompiledModel> model = SmallNetwork();
  std::vector<std::vector<float>> results(4);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      auto it = Interpreter::Create(model, {t % 2 ? Backend::kFast : Backend::kReference, 1});
      ASSERT_TRUE(it.ok());
      for (int run = 0; run < 200; ++run) {
        const std::vector<float> x = {1, 2, -1, 3};
        std::memcpy((*it)->input_data(0), x.data(), sizeof(float) * 4);
        ASSERT_TRUE((*it)->Invoke().ok());
      }
      const float* y = static_cast<const float*>((*it)->output_data(0));
      results[t].assign(y, y + 2);
    });
  }
  for (std::thread& t : threads) t.join();
  for (const std::vector<float>& r : results) EXPECT_THAT(r, ElementsAre(2.25f, 0.25f));
}

TEST(Interpreter, ReportsWhatRunsEachOp) {
  std::shared_ptr<const CompiledModel> model = SmallNetwork();
  for (kernels::Isa isa : {kernels::Isa::kGeneric, kernels::kBestIsa}) {
    InterpreterOptions options;
    options.kernel_isa = isa;
    auto fast = Interpreter::Create(model, options);
    ASSERT_TRUE(fast.ok());
    bool any_kernel = false;
    for (size_t i = 0; i < model->ops().size(); ++i) {
      const std::string engine = (*fast)->op_engine(static_cast<int>(i));
      if (engine.rfind("qforge-", 0) == 0) {
        any_kernel = true;
        EXPECT_EQ(engine, std::string("qforge-") + kernels::IsaName(kernels::ResolveIsa(isa)));
      }
    }
    EXPECT_TRUE(any_kernel);
  }
  auto xnnpack = Interpreter::Create(model, {Backend::kXnnpackOnly, 1});
  ASSERT_TRUE(xnnpack.ok());
  for (size_t i = 0; i < model->ops().size(); ++i) {
    EXPECT_NE((*xnnpack)->op_engine(static_cast<int>(i)).rfind("qforge-", 0), 0u);
  }
}

// By default the fast backend uses qforge's kernels only where the CPU has
// AVX2 or better; elsewhere (or with QFORGE_ISA=generic, as the
// interpreter_generic_cpu_test target runs this) XNNPACK runs every op.
TEST(Interpreter, DefaultFastBackendFollowsTheCpu) {
  std::shared_ptr<const CompiledModel> model = SmallNetwork();
  auto fast = Interpreter::Create(model, {Backend::kFast, 1});
  ASSERT_TRUE(fast.ok());
  const bool simd = kernels::DetectIsa() >= kernels::kDefaultMinIsa;
  std::printf("detected level %s\n", kernels::IsaName(kernels::DetectIsa()));
  for (size_t i = 0; i < model->ops().size(); ++i) {
    EXPECT_EQ((*fast)->op_engine(static_cast<int>(i)),
              simd ? std::string("qforge-") + kernels::IsaName(kernels::DetectIsa()) : "xnnpack");
  }
}

TEST(Interpreter, RejectsZeroThreads) {
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter =
      Interpreter::Create(SmallNetwork(), {Backend::kFast, 0});
  ASSERT_FALSE(interpreter.ok());
  EXPECT_THAT(interpreter.status().message(), HasSubstr("num_threads 0"));
}

TEST(CompiledModel, ReportsPrepareErrorsAndMissingFiles) {
  ModelBuilder b;
  const int x = b.AddFloatTensor("x", {1, 3});
  const int y = b.AddFloatTensor("y", {1, 4});
  b.AddOp(ADD, "add", {x, x}, y);
  b.AddInput(x);
  b.AddOutput(y);
  absl::StatusOr<std::shared_ptr<const CompiledModel>> bad = CompiledModel::FromModel(b.model());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("op 0 'add' (ADD)"));
  EXPECT_EQ(CompiledModel::FromFile("/nonexistent/model.qfm").status().code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qforge
