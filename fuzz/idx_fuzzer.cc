// Fuzzes the IDX reader (MNIST and Fashion-MNIST files, plain or gzip) on
// files of any content: it must refuse what it cannot read, never crash.
#include <cstddef>
#include <cstdint>

#include "data/idx.h"
#include "fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = qforge::WriteFuzzFile("input.idx", data, size);
  (void)qforge::ReadIdxFile(path);
  return 0;
}
