// Reads the golden files tools/make_trainer_goldens.py (and make_qat_goldens.py)
// write from PyTorch: named float32 arrays (see the script for the format), and
// the checks tests make with them: tensors agree to a relative error of 1e-4,
// max |ours - PyTorch's| over max |PyTorch's|.
#ifndef QFORGE_TRAINER_NN_GOLDEN_FILE_H_
#define QFORGE_TRAINER_NN_GOLDEN_FILE_H_

#include <cstdint>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "trainer/nn/parameters.h"
#include "trainer/nn/tensor.h"

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

using Golden = std::map<std::string, FloatTensor>;

// tests/testdata/golden/<name>.bin, or an empty map after a test failure.
inline Golden Load(const std::string& name) {
  absl::StatusOr<Golden> golden = ReadGoldenFile("tests/testdata/golden/" + name + ".bin");
  EXPECT_TRUE(golden.ok()) << golden.status();
  return golden.ok() ? *std::move(golden) : Golden();
}

inline float MaxAbs(const FloatTensor& t) {
  float m = 0;
  for (float v : t.data) m = std::max(m, std::fabs(v));
  return m;
}

// `scale_floor`: the smallest magnitude the error is measured against. Some
// gradients are zero in exact arithmetic (a batch-norm bias feeding another
// batch-normalised layer) and only float noise of ~1e-8 in both frameworks;
// the whole-network test measures them against 1% of the model's largest
// gradient instead of against their own noise.
inline void ExpectClose(const float* got, const FloatTensor& want, const std::string& what,
                 float scale_floor = 1e-6f) {
  float max_diff = 0;
  for (int64_t i = 0; i < want.size(); ++i) {
    max_diff = std::max(max_diff, std::fabs(got[i] - want.data[i]));
  }
  const float scale = std::max(MaxAbs(want), scale_floor);
  EXPECT_LE(max_diff, 1e-4f * scale)
      << what << ": max difference " << max_diff << ", max magnitude " << MaxAbs(want);
}

inline void ExpectClose(const FloatTensor& got, const FloatTensor& want, const std::string& what) {
  ASSERT_EQ(got.shape, want.shape) << what;
  ExpectClose(got.ptr(), want, what);
}

inline void Set(ParameterStore& params, int id, const FloatTensor& value) {
  ASSERT_EQ(params.info(id).size, value.size()) << params.info(id).name;
  std::copy(value.data.begin(), value.data.end(), params.value(id));
}

}  // namespace qforge

#endif  // QFORGE_TRAINER_NN_GOLDEN_FILE_H_
