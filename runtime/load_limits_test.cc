// LoadLimits: what an application accepts from a model file it did not make.
// Each limit refuses a small file that would demand too much, with an error
// naming the limit, before anything is allocated for it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/model_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/compiled_model.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

// float [1, 2^28] -> ADD with itself -> float: two 1 GiB tensors that are
// both live, so a 2 GiB arena, from a file of about 60 bytes.
std::string HugeArena() {
  ModelBuilder b;
  const int x = b.AddFloatTensor("x", {1, int64_t{1} << 28});
  const int y = b.AddFloatTensor("y", {1, int64_t{1} << 28});
  b.AddOp(ADD, "add", {x, x}, y);
  b.AddInput(x);
  b.AddOutput(y);
  return b.model().SerializeAsString();
}

// A float 3x3 conv, 64 to 64 channels, over a 512x512 image: 147 KB of
// weights asking for 512 * 512 * 64 * 576 = 9.7e9 multiply-adds.
std::string HeavyConv() {
  ModelBuilder b;
  const int x = b.AddFloatTensor("x", {1, 512, 512, 64});
  const int w = b.AddFloatConstant("w", {64, 3, 3, 64}, std::vector<float>(64 * 9 * 64, 0.01f));
  const int y = b.AddFloatTensor("y", {1, 512, 512, 64});
  b.AddConv2D("conv", x, w, /*bias=*/-1, y, /*stride=*/1, /*pad=*/1, /*groups=*/1, ACTIVATION_NONE);
  b.AddInput(x);
  b.AddOutput(y);
  return b.model().SerializeAsString();
}

absl::StatusOr<std::shared_ptr<const CompiledModel>> Load(const std::string& bytes,
                                                          const LoadLimits& limits) {
  return CompiledModel::FromBuffer(bytes.data(), bytes.size(), limits);
}

TEST(LoadLimits, ArenaLimitRefusesATinyFileThatWantsAHugeArena) {
  const std::string bytes = HugeArena();
  EXPECT_LT(bytes.size(), 100u);
  const auto refused = Load(bytes, LoadLimits());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("needs 2147483648 bytes of arena, over the 1073741824 that "
                        "LoadLimits::max_arena_bytes allows"));
  // An application that means it: loads, and allocates nothing yet.
  LoadLimits limits;
  limits.max_arena_bytes = int64_t{2} << 30;
  const auto loaded = Load(bytes, limits);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->plan().arena_bytes, int64_t{2} << 30);
}

TEST(LoadLimits, MultiplyAddsAreCountedAndLimited) {
  const std::string bytes = HeavyConv();
  const auto loaded = Load(bytes, LoadLimits());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)->multiply_adds(), int64_t{512} * 512 * 64 * 576);
  LoadLimits limits;
  limits.max_multiply_adds = 1000000000;
  const auto refused = Load(bytes, limits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("needs 9663676416 multiply-adds per invoke, over the 1000000000 that "
                        "LoadLimits::max_multiply_adds allows"));
}

TEST(LoadLimits, ConstantBytesAreLimited) {
  const std::string bytes = HeavyConv();
  LoadLimits limits;
  limits.max_constant_bytes = 100000;
  const auto refused = Load(bytes, limits);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr("needs 147456 bytes of constants, over the 100000 that "
                        "LoadLimits::max_constant_bytes allows"));
  limits.max_constant_bytes = 147456;
  EXPECT_TRUE(Load(bytes, limits).ok());
}

TEST(LoadLimits, NoneLiftsEveryLimit) {
  for (const std::string& bytes : {HugeArena(), HeavyConv()}) {
    EXPECT_FALSE(Load(bytes, LoadLimits{1, 1, 1}).ok());
    EXPECT_TRUE(Load(bytes, LoadLimits::None()).ok());
  }
}

}  // namespace
}  // namespace qforge
