// Speed regressions of the runtime, as ratios measured side by side in one
// process (never absolute times: these machines are shared and noisy): the
// tutorial's MobileNetV2 (224x224, random weights) at 1 thread,
//
// - int8 on qforge's kernels against the same network in float (XNNPACK),
// - qforge's kernels against XNNPACK's int8 operators, which is also what
//   the fast backend would run if its kernels silently fell back,
// - qforge's kernels against the reference kernels.
//
// Each variant is run in turn, round after round, and each ratio is of
// medians. Measured on an Intel Xeon at the avx512amx level, on the model
// convert writes: 2.90x float, 2.68x XNNPACK, 73x the reference; capped at
// avx512vnni (QFORGE_ISA), on the earlier builder's model: 1.96x, 2.2x, 60x.
// The bounds, 1.5x, 1.5x and 10x, leave a wide margin. On CPUs without
// AVX-512, where XNNPACK runs its AVX2 kernels, the avxvnni level's bound
// against XNNPACK's int8 is the same 1.5x and the avx2 level's 1.0x: on an AMD EPYC
// Zen 5 with XNNPACK kept from AVX-512 (cpuinfo told so, a measurement only)
// they were 2.14x-2.20x and 1.15x-1.21x, against float 3.80x and 2.03x-2.07x.
// Run there with QFORGE_ISA=avxvnni or avx2, XNNPACK keeps AVX-512 and these
// bounds do not hold.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/build_kind.h"
#include "gtest/gtest.h"
#include "runtime/interpreter.h"
#include "tools/random_mobilenet_v2.h"

namespace qforge {
namespace {

std::unique_ptr<Interpreter> Make(const Model& model, const InterpreterOptions& options) {
  auto compiled = CompiledModel::FromModel(model);
  EXPECT_TRUE(compiled.ok()) << compiled.status();
  if (!compiled.ok()) return nullptr;
  auto interpreter = Interpreter::Create(*compiled, options);
  EXPECT_TRUE(interpreter.ok()) << interpreter.status();
  if (!interpreter.ok()) return nullptr;
  return *std::move(interpreter);
}

// Seconds of one Invoke. The image is written first, untimed: the arena
// reuses the input's bytes, and stale activations read as floats (denormals,
// NaNs) would time a data path no application takes.
double Time(Interpreter& interpreter) {
  static const std::vector<float> image(224 * 224 * 3, 0.5f);
  std::memcpy(interpreter.input_data(0), image.data(), image.size() * sizeof(float));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(interpreter.Invoke().ok());
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

// Median seconds per Invoke of each interpreter, measured round-robin.
std::vector<double> Medians(const std::vector<Interpreter*>& interpreters, int rounds) {
  std::vector<std::vector<double>> times(interpreters.size());
  for (Interpreter* in : interpreters) Time(*in);  // warm up
  for (int r = 0; r < rounds; ++r) {
    for (size_t i = 0; i < interpreters.size(); ++i) times[i].push_back(Time(*interpreters[i]));
  }
  std::vector<double> medians;
  for (const auto& t : times) medians.push_back(Median(t));
  return medians;
}

TEST(RuntimeSpeed, QforgeKernelsBeatFloatXnnpackAndTheReference) {
  if (!kOptimizedBuild) GTEST_SKIP() << "speed is measured in optimized builds only";
  const kernels::Isa isa = kernels::DetectIsa();
  if (isa < kernels::kDefaultMinIsa) {
    GTEST_SKIP() << "this CPU (" << kernels::IsaName(isa)
                 << ") has no level qforge's kernels run at by default; int8 runs on XNNPACK";
  }
  RandomMobileNetV2Options options;
  options.seed = 5;
  absl::StatusOr<MobileNetV2Models> models = BuildRandomMobileNetV2(options);
  ASSERT_TRUE(models.ok()) << models.status();
  auto qforge = Make(models->int8_model, {Backend::kFast, 1});
  auto float_xnnpack = Make(models->float_model, {Backend::kFast, 1});
  auto int8_xnnpack = Make(models->int8_model, {Backend::kXnnpackOnly, 1});
  auto reference = Make(models->int8_model, {Backend::kReference, 1});
  ASSERT_TRUE(qforge && float_xnnpack && int8_xnnpack && reference);
  // Every int8 op on qforge's kernels at this CPU's level, none left to XNNPACK.
  const std::string engine = std::string("qforge-") + kernels::IsaName(isa);
  for (int i = 0; i < models->int8_model.ops_size(); ++i) {
    EXPECT_EQ(qforge->op_engine(i), engine) << "op " << models->int8_model.ops(i).name();
  }

  const std::vector<double> fast = Medians({qforge.get(), float_xnnpack.get(), int8_xnnpack.get()}, 30);
  const double slow = Medians({reference.get()}, 3)[0];
  const double vs_float = fast[1] / fast[0], vs_xnnpack = fast[2] / fast[0],
               vs_reference = slow / fast[0];
  std::printf("MobileNetV2 224x224, 1 thread, %s: qforge int8 %.2f ms; float %.2f ms (%.2fx); "
              "XNNPACK int8 %.2f ms (%.2fx); reference %.1f ms (%.1fx)\n",
              kernels::IsaName(isa), 1e3 * fast[0], 1e3 * fast[1], vs_float, 1e3 * fast[2],
              vs_xnnpack, 1e3 * slow, vs_reference);
  EXPECT_GT(vs_float, 1.5) << "int8 on qforge's kernels is not clearly faster than float";
  const double xnnpack_bound = isa >= kernels::Isa::kAvxVnni ? 1.5 : 1.0;
  EXPECT_GT(vs_xnnpack, xnnpack_bound)
      << "qforge's kernels are not clearly faster than XNNPACK's int8";
  EXPECT_GT(vs_reference, 10) << "qforge's kernels are not much faster than the reference";
}

}  // namespace
}  // namespace qforge
