#include "trainer/nn/elementwise.h"

#include <vector>

#include "gtest/gtest.h"

namespace qforge {
namespace {

std::vector<float> Values(const FloatTensor& t) { return {t.data.begin(), t.data.end()}; }

// tools/side_by_side.py replays qforge's dropout masks in PyTorch's QAT, so
// that both sides fine-tune on the same masks as well as the same batches.
// These are the masks its replica gives; the two must not drift apart.
TEST(Dropout, MasksAreWhatTheSideBySideReplicaGives) {
  Dropout dropout("classifier.0", 0.2f);
  FloatTensor ones, y;
  ones.Resize({2, 5});
  for (float& v : ones.data) v = 1.0f;
  PassContext ctx{/*training=*/true, /*seed=*/3, /*step=*/17};
  dropout.Forward(ones, y, ctx);
  EXPECT_EQ(Values(y), (std::vector<float>{1.25f, 0, 1.25f, 1.25f, 0, 1.25f, 1.25f, 0, 0, 1.25f}));
  // A data-parallel shard from row 1 draws the whole batch's second row.
  FloatTensor row;
  row.Resize({1, 5});
  for (float& v : row.data) v = 1.0f;
  ctx.row_offset = 1;
  dropout.Forward(row, y, ctx);
  EXPECT_EQ(Values(y), (std::vector<float>{1.25f, 1.25f, 0, 0, 1.25f}));
  // A keep scale that float32 does not hold exactly: 1 / (1 - 0.7f) in float.
  Dropout most("classifier.0", 0.7f);
  FloatTensor eight;
  eight.Resize({1, 8});
  for (float& v : eight.data) v = 1.0f;
  most.Forward(eight, y, PassContext{/*training=*/true, /*seed=*/12, /*step=*/4});
  const float k = 0x1.aaaaaap+1f;  // 3.3333333, the replica's float32 1 / (1 - p)
  EXPECT_EQ(Values(y), (std::vector<float>{0, k, 0, k, 0, k, k, k}));
}

TEST(Dropout, IsTheIdentityOutsideTraining) {
  Dropout dropout("classifier.0", 0.2f);
  FloatTensor x, y;
  x.Resize({1, 3});
  x.data[0] = 1.0f;
  x.data[1] = -2.0f;
  x.data[2] = 3.0f;
  dropout.Forward(x, y, PassContext{});
  EXPECT_EQ(Values(y), (std::vector<float>{1.0f, -2.0f, 3.0f}));
}

}  // namespace
}  // namespace qforge
