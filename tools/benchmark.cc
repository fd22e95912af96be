// Measures a flat model in the runtime: warm-up, then many timed inferences.
//
//   bazel run //tools:benchmark -- --model=/tmp/qforge/mobilenet_v2_int8.qfm --threads=1
//
// Prints median and p90 latency per inference, images/s, peak resident memory,
// the model file size and the arena the memory plan needs; --json prints the
// same as one JSON line for scripts (tools/compare_pytorch.py reads it).
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/random.h"
#include "runtime/interpreter.h"
#include "runtime/kernels/isa.h"
#include "runtime/model_loader.h"
#include "runtime/model_validator.h"

ABSL_FLAG(std::string, model, "", "Path of the flat model (.qfm).");
ABSL_FLAG(int, threads, 1, "Threads.");
ABSL_FLAG(int, batch, 1, "Images per inference.");
ABSL_FLAG(std::string, backend, "fast",
          "fast (qforge's kernels, XNNPACK for float ops), xnnpack (XNNPACK alone) or reference.");
ABSL_FLAG(std::string, isa, "",
          "The fast backend's kernel level: generic, avx2, avxvnni, avx512vnni or avx512amx "
          "(the CPU may allow less); "
          "empty: the best SIMD level the CPU has, or XNNPACK alone if none.");
ABSL_FLAG(int, warmup, 10, "Untimed inferences first.");
ABSL_FLAG(int, runs, 100, "Timed inferences.");
ABSL_FLAG(bool, json, false, "Print one JSON line instead of text.");
ABSL_FLAG(bool, profile, false,
          "Also time each op over the runs: the slowest ops and the share of an inference "
          "spent outside the ops (the interpreter's own overhead).");

namespace qforge {
namespace {

struct Result {
  int runs = 0;
  double median_ms = 0, p90_ms = 0, min_ms = 0;
  double load_ms = 0;
  double overhead_percent = -1;  // median share of an inference outside the ops; -1: not profiled
  std::vector<std::pair<double, std::string>> slowest_ops;  // median ms, op name
  std::vector<std::pair<std::string, double>> ms_by_op;     // op name, median ms, in run order
  std::vector<std::pair<std::string, double>> ms_by_kind;   // op kind, summed median ms
  std::string engines;  // what runs the ops, e.g. "65 qforge-avx512vnni, 1 copy"
  int64_t model_bytes = 0, arena_bytes = 0, unshared_bytes = 0, peak_rss_kb = 0;
};

double Ms(std::chrono::steady_clock::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

// Deterministic pseudo-random inputs: timings must not depend on the data path.
// The arena reuses an input's bytes once the ops have consumed it, so they are
// written again before every inference (untimed), as an application writes
// each new image; otherwise later runs would quantize stale activations.
class Inputs {
 public:
  explicit Inputs(Interpreter& interpreter) {
    SplitMix64 rng(1);
    for (int i = 0; i < interpreter.num_inputs(); ++i) {
      const Tensor& t = interpreter.input_tensor(i);
      int64_t n = 1;
      for (int64_t d : t.shape()) n *= d;
      std::vector<uint8_t>& bytes = inputs_.emplace_back(n * ElementSize(t.type()));
      if (t.type() == FLOAT32) {
        for (int64_t j = 0; j < n; ++j) {
          const float v = 4.0f * rng.UniformFloat() - 2.0f;
          std::memcpy(bytes.data() + j * sizeof(float), &v, sizeof(float));
        }
      } else {
        for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.Next());
      }
    }
  }
  void WriteTo(Interpreter& interpreter) const {
    for (size_t i = 0; i < inputs_.size(); ++i) {
      std::memcpy(interpreter.input_data(static_cast<int>(i)), inputs_[i].data(), inputs_[i].size());
    }
  }

 private:
  std::vector<std::vector<uint8_t>> inputs_;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The kind of work an op does, for the profile's time by kind.
std::string KindLabel(const PreparedOp& op) {
  if (const auto* conv = std::get_if<reference::Conv2DInt8Params>(&op.params)) {
    const reference::ConvGeometry& g = conv->geometry;
    if (g.groups > 1) return "depthwise conv";
    if (g.kernel_height == 1 && g.kernel_width == 1) return "1x1 conv";
    return "KxK conv";
  }
  if (const auto* conv = std::get_if<reference::Conv2DFloatParams>(&op.params)) {
    const reference::ConvGeometry& g = conv->geometry;
    if (g.groups > 1) return "depthwise conv";
    if (g.kernel_height == 1 && g.kernel_width == 1) return "1x1 conv";
    return "KxK conv";
  }
  switch (op.kind) {
    case ADD: return "add";
    case MEAN_HW: return "mean (pooling)";
    case FULLY_CONNECTED: return "fully connected";
    case QUANTIZE: return "quantize";
    case DEQUANTIZE: return "dequantize";
    default: return "other";
  }
}

// Per-op medians and the share of each inference spent between ops: the
// whole Invoke timed from outside against the sum of its ops timed inside.
absl::Status Profile(Interpreter& interpreter, const Inputs& inputs,
                     const std::vector<PreparedOp>& ops, int runs, Result& r) {
  std::vector<std::vector<double>> per_op(ops.size());
  std::vector<double> overhead(runs), op_ms;
  for (int run = 0; run < runs; ++run) {
    inputs.WriteTo(interpreter);
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = interpreter.InvokeProfiled(op_ms); !s.ok()) return s;
    const double total = Ms(std::chrono::steady_clock::now() - start);
    double inside = 0;
    for (size_t i = 0; i < ops.size(); ++i) {
      per_op[i].push_back(op_ms[i]);
      inside += op_ms[i];
    }
    overhead[run] = 100.0 * (total - inside) / total;
  }
  r.overhead_percent = Median(overhead);
  for (size_t i = 0; i < ops.size(); ++i) r.ms_by_op.emplace_back(ops[i].name, Median(per_op[i]));
  for (const auto& [name, ms] : r.ms_by_op) r.slowest_ops.emplace_back(ms, name);
  for (size_t i = 0; i < ops.size(); ++i) {
    const std::string kind = KindLabel(ops[i]);
    auto it = std::find_if(r.ms_by_kind.begin(), r.ms_by_kind.end(),
                           [&](const auto& entry) { return entry.first == kind; });
    if (it == r.ms_by_kind.end()) it = r.ms_by_kind.insert(it, {kind, 0.0});
    it->second += r.slowest_ops[i].first;
  }
  std::sort(r.slowest_ops.rbegin(), r.slowest_ops.rend());
  r.slowest_ops.resize(std::min<size_t>(r.slowest_ops.size(), 5));
  return absl::OkStatus();
}

absl::StatusOr<InterpreterOptions> Options() {
  InterpreterOptions options;
  options.num_threads = absl::GetFlag(FLAGS_threads);
  const std::string backend = absl::GetFlag(FLAGS_backend);
  if (backend == "fast") {
    options.backend = Backend::kFast;
  } else if (backend == "xnnpack") {
    options.backend = Backend::kXnnpackOnly;
  } else if (backend == "reference") {
    options.backend = Backend::kReference;
  } else {
    return absl::InvalidArgumentError("--backend must be fast, xnnpack or reference, not " +
                                      backend);
  }
  if (!absl::GetFlag(FLAGS_isa).empty()) {
    absl::StatusOr<kernels::Isa> isa = kernels::ParseIsa(absl::GetFlag(FLAGS_isa));
    if (!isa.ok()) return isa.status();
    options.kernel_isa = *isa;
  }
  return options;
}

// "57 qforge-avx512vnni, 1 copy": how many ops each engine runs.
std::string Engines(const Interpreter& interpreter, size_t ops) {
  std::vector<std::pair<std::string, int>> counts;
  for (size_t i = 0; i < ops; ++i) {
    const std::string engine = interpreter.op_engine(static_cast<int>(i));
    auto it = std::find_if(counts.begin(), counts.end(),
                           [&](const auto& entry) { return entry.first == engine; });
    if (it == counts.end()) it = counts.insert(it, {engine, 0});
    ++it->second;
  }
  std::string out;
  for (const auto& [engine, count] : counts) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", count, " ", engine);
  }
  return out;
}

absl::StatusOr<Result> Measure() {
  Result r;
  const std::string path = absl::GetFlag(FLAGS_model);
  const auto load_start = std::chrono::steady_clock::now();
  absl::StatusOr<Model> model = ReadModelFile(path);
  if (!model.ok()) return model.status();
  model = WithBatch(*std::move(model), absl::GetFlag(FLAGS_batch));
  if (!model.ok()) return model.status();
  absl::StatusOr<std::shared_ptr<const CompiledModel>> compiled =
      CompiledModel::FromModel(*std::move(model), LoadLimits::None());
  if (!compiled.ok()) return compiled.status();
  absl::StatusOr<InterpreterOptions> options = Options();
  if (!options.ok()) return options.status();
  absl::StatusOr<std::unique_ptr<Interpreter>> interpreter =
      Interpreter::Create(*compiled, *options);
  if (!interpreter.ok()) return interpreter.status();
  r.engines = Engines(**interpreter, (*compiled)->ops().size());
  r.load_ms = Ms(std::chrono::steady_clock::now() - load_start);
  const Inputs inputs(**interpreter);
  for (int i = 0; i < absl::GetFlag(FLAGS_warmup); ++i) {
    inputs.WriteTo(**interpreter);
    if (absl::Status s = (*interpreter)->Invoke(); !s.ok()) return s;
  }
  const int runs = std::max(1, absl::GetFlag(FLAGS_runs));
  r.runs = runs;
  std::vector<double> times(runs);
  for (double& t : times) {
    inputs.WriteTo(**interpreter);
    const auto start = std::chrono::steady_clock::now();
    if (absl::Status s = (*interpreter)->Invoke(); !s.ok()) return s;
    t = Ms(std::chrono::steady_clock::now() - start);
  }
  if (absl::GetFlag(FLAGS_profile)) {
    if (absl::Status s = Profile(**interpreter, inputs, (*compiled)->ops(), runs, r); !s.ok()) return s;
  }
  std::sort(times.begin(), times.end());
  r.min_ms = times.front();
  r.median_ms = times[runs / 2];
  r.p90_ms = times[std::min(runs - 1, (runs * 9) / 10)];
  r.model_bytes = static_cast<int64_t>(std::filesystem::file_size(path));
  r.arena_bytes = (*compiled)->plan().arena_bytes;
  r.unshared_bytes = (*compiled)->plan().unshared_bytes;
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  r.peak_rss_kb = usage.ru_maxrss;
  return r;
}

// A string as a JSON string literal.
std::string Quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      out += absl::StrFormat("\\u%04x", ch);
      continue;
    }
    out += ch;
  }
  return out + "\"";
}

void Print(const Result& r) {
  const int batch = absl::GetFlag(FLAGS_batch);
  const double images_per_s = batch * 1000.0 / r.median_ms;
  if (absl::GetFlag(FLAGS_json)) {
    std::string by_kind, by_op;
    for (const auto& [kind, ms] : r.ms_by_kind) {
      absl::StrAppend(&by_kind, by_kind.empty() ? "" : ", ", Quoted(kind), ": ",
                      absl::StrFormat("%.4f", ms));
    }
    // A list of [name, ms] pairs: op names are not required to be unique.
    for (const auto& [name, ms] : r.ms_by_op) {
      absl::StrAppend(&by_op, by_op.empty() ? "" : ", ", "[", Quoted(name), ", ",
                      absl::StrFormat("%.4f", ms), "]");
    }
    std::printf(
        "%s\n",
        absl::StrFormat(
            R"({"model": %s, "backend": %s, "engines": %s, "threads": %d, "batch": %d, "runs": %d, )"
            R"("median_ms": %.4f, "p90_ms": %.4f, "min_ms": %.4f, "images_per_s": %.2f, )"
            R"("load_ms": %.2f, "model_bytes": %d, "arena_bytes": %d, "unshared_bytes": %d, )"
            R"("peak_rss_kb": %d, "overhead_percent": %.3f, "ms_by_kind": {%s}, "ms_by_op": [%s]})",
            Quoted(absl::GetFlag(FLAGS_model)), Quoted(absl::GetFlag(FLAGS_backend)),
            Quoted(r.engines), absl::GetFlag(FLAGS_threads), batch, r.runs, r.median_ms, r.p90_ms,
            r.min_ms, images_per_s, r.load_ms, r.model_bytes, r.arena_bytes, r.unshared_bytes,
            r.peak_rss_kb, r.overhead_percent, by_kind, by_op)
            .c_str());
    return;
  }
  std::printf("model:        %s (%.2f MB)\n", absl::GetFlag(FLAGS_model).c_str(), r.model_bytes / 1e6);
  std::printf("backend:      %s, %d thread(s), batch %d\n", absl::GetFlag(FLAGS_backend).c_str(),
              absl::GetFlag(FLAGS_threads), batch);
  std::printf("ops run by:   %s\n", r.engines.c_str());
  std::printf("latency:      median %.3f ms, p90 %.3f ms, min %.3f ms over %d runs\n",
              r.median_ms, r.p90_ms, r.min_ms, r.runs);
  std::printf("throughput:   %.1f images/s\n", images_per_s);
  std::printf("memory:       arena %.2f MB (%.2f MB without reuse), peak RSS %.1f MB\n",
              r.arena_bytes / 1e6, r.unshared_bytes / 1e6, r.peak_rss_kb / 1024.0);
  std::printf("load+prepare: %.1f ms\n", r.load_ms);
  if (r.overhead_percent < 0) return;
  std::printf("overhead:     %.3f%% of an inference outside the ops (median)\n",
              r.overhead_percent);
  std::printf("time by op kind (sum of per-op medians):\n");
  for (const auto& [kind, ms] : r.ms_by_kind) std::printf("  %8.3f ms  %s\n", ms, kind.c_str());
  std::printf("slowest ops:\n");
  for (const auto& [ms, name] : r.slowest_ops) std::printf("  %8.3f ms  %s\n", ms, name.c_str());
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<qforge::Result> result = qforge::Measure();
  if (!result.ok()) {
    std::fprintf(stderr, "benchmark: %s\n", std::string(result.status().message()).c_str());
    return 1;
  }
  qforge::Print(*result);
  return 0;
}
