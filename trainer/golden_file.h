// Reads the golden files tools/make_trainer_goldens.py writes from PyTorch:
// named float32 arrays (see the script for the format), for tests.
#ifndef QFORGE_TRAINER_GOLDEN_FILE_H_
#define QFORGE_TRAINER_GOLDEN_FILE_H_

#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "trainer/tensor.h"

namespace qforge {

inline absl::StatusOr<std::map<std::string, FloatTensor>> ReadGoldenFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), {});
  size_t at = 0;
  auto take = [&](void* dst, size_t n) {
    if (at + n > bytes.size()) return false;
    std::memcpy(dst, bytes.data() + at, n);
    at += n;
    return true;
  };
  char magic[8];
  uint32_t count = 0;
  if (!take(magic, 8) || std::memcmp(magic, "QFGOLD01", 8) != 0 || !take(&count, 4)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a golden file"));
  }
  std::map<std::string, FloatTensor> arrays;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t name_length = 0, rank = 0;
    if (!take(&name_length, 4) || at + name_length > bytes.size()) break;
    std::string name = bytes.substr(at, name_length);
    at += name_length;
    FloatTensor t;
    t.shape.resize(take(&rank, 4) ? rank : 0);
    if (rank > 8 || !take(t.shape.data(), rank * sizeof(int64_t))) break;
    t.Resize(t.shape);
    if (!take(t.ptr(), t.size() * sizeof(float))) break;
    arrays[name] = std::move(t);
  }
  if (arrays.size() != count) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": truncated golden file"));
  }
  return arrays;
}

}  // namespace qforge

#endif  // QFORGE_TRAINER_GOLDEN_FILE_H_
