// A model file's float outputs from qforge's runtime on given inputs: how a
// model exported to another runtime (tools/export_onnx.py) is checked against
// qforge's own results on the same inputs.
//
//   model_outputs --model=model_int8.qfm --inputs=x.f32 --count=N --outputs=y.f32
//
// Inputs are float32 in the model input's layout (NHWC), already normalized,
// `count` of them; the outputs are the model's first output, float32, one row
// per input. One thread, the default backend.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "runtime/compiled_model.h"
#include "runtime/interpreter.h"

ABSL_FLAG(std::string, model, "", "A .qfm model with a float32 input and output.");
ABSL_FLAG(std::string, inputs, "", "float32 inputs, one after another.");
ABSL_FLAG(int64_t, count, 1, "How many inputs the file holds.");
ABSL_FLAG(std::string, outputs, "", "Where the float32 outputs go.");

namespace qforge {
namespace {

int64_t Elements(const Tensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape()) n *= d;
  return n;
}

absl::Status Run() {
  auto compiled = CompiledModel::FromFile(absl::GetFlag(FLAGS_model), LoadLimits::None());
  if (!compiled.ok()) return compiled.status();
  auto interpreter = Interpreter::Create(*compiled, InterpreterOptions{});
  if (!interpreter.ok()) return interpreter.status();
  Interpreter& run = **interpreter;
  if (run.input_tensor(0).type() != FLOAT32 || run.output_tensor(0).type() != FLOAT32) {
    return absl::InvalidArgumentError("the model's input and output must be float32");
  }
  const int64_t in_size = Elements(run.input_tensor(0)), out_size = Elements(run.output_tensor(0));
  const int64_t count = absl::GetFlag(FLAGS_count);
  std::ifstream in(absl::GetFlag(FLAGS_inputs), std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", absl::GetFlag(FLAGS_inputs)));
  std::ofstream out(absl::GetFlag(FLAGS_outputs), std::ios::binary);
  std::vector<float> input(in_size);
  for (int64_t i = 0; i < count; ++i) {
    in.read(reinterpret_cast<char*>(input.data()), in_size * static_cast<int64_t>(sizeof(float)));
    if (!in) return absl::InvalidArgumentError(absl::StrCat("the inputs end before input ", i));
    std::copy(input.begin(), input.end(), static_cast<float*>(run.input_data(0)));
    if (absl::Status s = run.Invoke(); !s.ok()) return s;
    out.write(static_cast<const char*>(run.output_data(0)),
              static_cast<std::streamsize>(out_size * sizeof(float)));
  }
  if (!out.flush()) {
    return absl::InternalError(absl::StrCat("cannot write ", absl::GetFlag(FLAGS_outputs)));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace qforge

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = qforge::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "model_outputs: %s\n", std::string(status.message()).c_str());
    return 1;
  }
  return 0;
}
