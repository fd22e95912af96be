// Microbenchmarks of the runtime's ops, one op kind and one MobileNetV2-sized
// shape at a time, on each backend: the reference kernels, qforge's own int8
// kernels (at the best level this CPU has) and XNNPACK. For people working on
// kernels; the speed regressions `bazel test` guards are ratios measured in
// one process (tests/runtime_speed_test).
//
//   bazel run //tools:op_benchmarks
//   bazel run //tools:op_benchmarks -- --benchmark_filter='depthwise.*int8'
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/model_builder.h"
#include "common/random.h"
#include "runtime/interpreter.h"

namespace qforge {
namespace {

struct OpCase {
  std::string name;
  OpKind kind;
  int h, w, c;      // input [1, h, w, c]
  int o = 0;        // output channels (conv, fully connected)
  int kernel = 1;   // conv kernel size
  int stride = 1;
  bool depthwise = false;
};

const std::vector<OpCase>& Cases() {
  static const std::vector<OpCase> cases = {
      {"conv3x3_s2_224x224x3_to_32", CONV2D, 224, 224, 3, 32, 3, 2},
      {"conv1x1_112x112x16_to_96", CONV2D, 112, 112, 16, 96},
      {"conv1x1_112x112x32_to_16", CONV2D, 112, 112, 32, 16},
      {"conv1x1_56x56x24_to_144", CONV2D, 56, 56, 24, 144},
      {"conv1x1_56x56x144_to_24", CONV2D, 56, 56, 144, 24},
      {"conv1x1_7x7x320_to_1280", CONV2D, 7, 7, 320, 1280},
      {"depthwise3x3_s1_112x112x32", CONV2D, 112, 112, 32, 32, 3, 1, true},
      {"depthwise3x3_s1_56x56x144", CONV2D, 56, 56, 144, 144, 3, 1, true},
      {"depthwise3x3_s2_112x112x96", CONV2D, 112, 112, 96, 96, 3, 2, true},
      {"fully_connected_1280_to_1000", FULLY_CONNECTED, 1, 1, 1280, 1000},
      {"add_56x56x24", ADD, 56, 56, 24},
      {"mean_7x7x1280", MEAN_HW, 7, 7, 1280},
      {"quantize_224x224x3", QUANTIZE, 224, 224, 3},
      {"dequantize_1000", DEQUANTIZE, 1, 1, 1000},
  };
  return cases;
}

int64_t OutSize(int in, int kernel, int stride) {
  const int pad = kernel / 2;
  return (in + 2 * pad - kernel) / stride + 1;
}

// Multiply-adds of one run (0 for ops without products).
int64_t MultiplyAdds(const OpCase& c) {
  if (c.kind == FULLY_CONNECTED) return int64_t{c.c} * c.o;
  if (c.kind != CONV2D) return 0;
  const int64_t pixels = OutSize(c.h, c.kernel, c.stride) * OutSize(c.w, c.kernel, c.stride);
  const int64_t per_output = int64_t{c.kernel} * c.kernel * (c.depthwise ? 1 : c.c);
  return pixels * c.o * per_output;
}

std::vector<int8_t> RandomInt8(int64_t n, SplitMix64& rng) {
  std::vector<int8_t> v(n);
  for (int8_t& x : v) x = static_cast<int8_t>(static_cast<int>(rng.Below(255)) - 127);
  return v;
}

std::vector<float> RandomFloat(int64_t n, SplitMix64& rng) {
  std::vector<float> v(n);
  for (float& x : v) x = rng.UniformFloat() - 0.5f;
  return v;
}

// The one-op model of `c`, int8 or float, with random weights and output
// ranges about as wide as the values the op computes.
Model OneOp(const OpCase& c, bool int8) {
  SplitMix64 rng(7);
  ModelBuilder b;
  const std::vector<int64_t> in_shape = c.kind == FULLY_CONNECTED || c.kind == DEQUANTIZE
                                            ? std::vector<int64_t>{1, c.c}
                                            : std::vector<int64_t>{1, c.h, c.w, c.c};
  const float in_scale = 0.05f;
  auto activation = [&](const std::string& name, const std::vector<int64_t>& shape, float scale) {
    return int8 ? b.AddInt8Tensor(name, shape, scale, -10) : b.AddFloatTensor(name, shape);
  };
  if (c.kind == QUANTIZE || c.kind == DEQUANTIZE) {
    const bool quantize = c.kind == QUANTIZE;
    const int x = quantize ? b.AddFloatTensor("x", in_shape) : b.AddInt8Tensor("x", in_shape, in_scale, 0);
    const int y = quantize ? b.AddInt8Tensor("y", in_shape, in_scale, 0) : b.AddFloatTensor("y", in_shape);
    b.AddOp(c.kind, "op", {x}, y);
    b.AddInput(x);
    b.AddOutput(y);
    return b.model();
  }
  const int x = activation("x", in_shape, in_scale);
  int y = -1;
  if (c.kind == CONV2D || c.kind == FULLY_CONNECTED) {
    const int per_output = c.kernel * c.kernel * (c.depthwise ? 1 : c.c);
    const std::vector<int64_t> w_shape =
        c.kind == FULLY_CONNECTED
            ? std::vector<int64_t>{c.o, c.c}
            : std::vector<int64_t>{c.o, c.kernel, c.kernel, c.depthwise ? 1 : c.c};
    const int64_t weights = int64_t{c.o} * per_output;
    const float w_scale = 0.01f;
    // The sum of per_output products of values up to ~64 and ~64 steps.
    const float out_scale = in_scale * w_scale * 64 * 64 * std::sqrt(per_output) / 40;
    const int w = int8 ? b.AddInt8Constant("w", w_shape, RandomInt8(weights, rng),
                                           std::vector<float>(c.o, w_scale))
                       : b.AddFloatConstant("w", w_shape, RandomFloat(weights, rng));
    const int bias = int8 ? b.AddInt32Constant("b", {c.o}, std::vector<int32_t>(c.o, 100),
                                               std::vector<float>(c.o, in_scale * w_scale))
                          : b.AddFloatConstant("b", {c.o}, RandomFloat(c.o, rng));
    if (c.kind == FULLY_CONNECTED) {
      y = activation("y", {1, c.o}, out_scale);
      b.AddOp(FULLY_CONNECTED, "op", {x, w, bias}, y);
    } else {
      y = activation("y", {1, OutSize(c.h, c.kernel, c.stride), OutSize(c.w, c.kernel, c.stride), c.o},
                     out_scale);
      b.AddConv2D("op", x, w, bias, y, c.stride, c.kernel / 2, c.depthwise ? c.c : 1, RELU6);
    }
  } else if (c.kind == ADD) {
    // Unequal scales, as a residual add's inputs have: with equal ones both
    // rescales are shifts, and the output multiplier a power of two.
    const int x2 = activation("x2", in_shape, 0.037f);
    y = activation("y", in_shape, 0.071f);
    b.AddOp(ADD, "op", {x, x2}, y);
    b.AddInput(x2);
  } else {  // MEAN_HW
    y = activation("y", {1, c.c}, in_scale);
    b.AddOp(MEAN_HW, "op", {x}, y);
  }
  b.AddInput(x);
  b.AddOutput(y);
  return b.model();
}

void RunOp(benchmark::State& state, const OpCase& c, bool int8, const InterpreterOptions& options) {
  absl::StatusOr<std::shared_ptr<const CompiledModel>> model = CompiledModel::FromModel(OneOp(c, int8));
  if (!model.ok()) {
    state.SkipWithError(std::string(model.status().message()).c_str());
    return;
  }
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter = Interpreter::Create(*model, options);
  if (!interpreter.ok()) {
    state.SkipWithError(std::string(interpreter.status().message()).c_str());
    return;
  }
  Interpreter& in = **interpreter;
  for (int i = 0; i < in.num_inputs(); ++i) {
    // Bytes that are small values in both int8 and float.
    int64_t bytes = in.input_tensor(i).type() == INT8 ? 1 : 4;
    for (int64_t d : in.input_tensor(i).shape()) bytes *= d;
    std::memset(in.input_data(i), 0x11, bytes);
  }
  for (auto _ : state) {
    if (!in.Invoke().ok()) {
      state.SkipWithError("Invoke failed");
      return;
    }
  }
  state.SetLabel(in.op_engine(0));
  if (const int64_t macs = MultiplyAdds(c); macs > 0) {
    state.counters["MAC/s"] =
        benchmark::Counter(static_cast<double>(macs), benchmark::Counter::kIsIterationInvariantRate);
  }
}

void RegisterAll() {
  struct BackendChoice {
    const char* name;
    Backend backend;
    bool int8_only;
  };
  const BackendChoice backends[] = {{"reference", Backend::kReference, false},
                               {"qforge", Backend::kFast, true},
                               {"xnnpack", Backend::kXnnpackOnly, false}};
  for (const OpCase& c : Cases()) {
    for (bool int8 : {true, false}) {
      if (!int8 && (c.kind == QUANTIZE || c.kind == DEQUANTIZE)) continue;
      for (const BackendChoice& backend : backends) {
        if (backend.int8_only && !int8) continue;  // float ops run on XNNPACK
        for (int threads : {1, 2}) {
          if (backend.backend == Backend::kReference && threads > 1) continue;
          InterpreterOptions options{backend.backend, threads};
          if (backend.backend == Backend::kFast) options.kernel_isa = kernels::kBestIsa;
          const std::string name = c.name + (int8 ? "/int8/" : "/float/") + backend.name +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), [c, int8, options](benchmark::State& state) {
            RunOp(state, c, int8, options);
          })->UseRealTime();
        }
      }
    }
  }
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  qforge::RegisterAll();
  std::printf("qforge kernels: %s\n", qforge::kernels::IsaName(qforge::kernels::DetectIsa()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
