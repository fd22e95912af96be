// Fuzzes the CIFAR-10 reader on a test batch file of any content.
#include <cstddef>
#include <cstdint>

#include "data/cifar10.h"
#include "fuzz/fuzz_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  qforge::WriteFuzzFile("test_batch.bin", data, size);
  (void)qforge::LoadCifar10(qforge::FuzzDir(), qforge::Split::kTest);
  return 0;
}
