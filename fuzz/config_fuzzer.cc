// Fuzzes the trainer's config files: text-format TrainConfig merged over the
// defaults, then validated, as `trainer train --config=...` reads them.
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_file.h"
#include "trainer/train.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qforge::WriteFuzzFile("config.textproto", data, size);
  absl::StatusOr<qforge::TrainConfig> config = qforge::LoadTrainConfig(path);
  if (config.ok()) (void)qforge::ValidateTrainConfig(*config);
  return 0;
}
