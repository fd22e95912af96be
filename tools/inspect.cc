// Prints what a qforge model file holds: its ops in order with their tensors'
// shapes, types and quantization parameters, the constant bytes of each op and
// in all, the preprocessing and the metadata. The file is read and validated as
// the runtime reads it, so a file this tool shows is one the runtime loads.
//
//   bazel run //tools:inspect -- /path/to/model.qfm [--json]
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "runtime/model_loader.h"
#include "tools/model_summary.h"

ABSL_FLAG(bool, json, false, "Print one JSON object instead of the table.");

int main(int argc, char** argv) {
  const std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() != 2) {
    std::fprintf(stderr, "usage: inspect MODEL.qfm [--json]\n");
    return 2;
  }
  // bazel run starts tools in the runfiles tree; a relative path means the
  // caller's directory.
  std::string path = args[1];
  if (const char* dir = std::getenv("BUILD_WORKING_DIRECTORY");
      dir != nullptr && !std::filesystem::path(path).is_absolute()) {
    path = (std::filesystem::path(dir) / path).string();
  }
  const absl::StatusOr<qforge::Model> model = qforge::ReadModelFile(path);
  if (!model.ok()) {
    std::fprintf(stderr, "inspect: %s\n", model.status().ToString().c_str());
    return 1;
  }
  std::error_code error;
  const auto size = std::filesystem::file_size(path, error);
  const int64_t file_bytes = error ? 0 : static_cast<int64_t>(size);
  const std::string out = absl::GetFlag(FLAGS_json) ? qforge::SummaryJson(*model, file_bytes)
                                                    : qforge::SummaryText(*model, file_bytes);
  std::printf("%s\n", out.c_str());
  return 0;
}
