// Fake quantization on hand-checked values: half-to-even rounding, clamping to
// [qmin, qmax], the straight-through mask, and per-channel scales.
#include "trainer/quant/fake_quant.h"

#include <cmath>
#include <vector>

#include "gtest/gtest.h"

namespace qforge {
namespace {

TEST(FakeQuantizePerTensor, RoundsHalfToEvenAndClamps) {
  // scale 0.5, zero point 2, q in [0, 10]: representable values -1 .. 4.
  const FakeQuantParams p{0.5f, 2, 0, 10};
  const std::vector<float> x = {0.25f, 0.75f, -0.25f, 1.1f, 4.0f, 4.3f, -1.0f, -3.0f, 100.0f};
  // x / s + z = 2.5 -> 2, 3.5 -> 4, 1.5 -> 2, 4.2 -> 4, 10, 10.6 -> 11 (out),
  // 0, -4 (out), 202 (out).
  const std::vector<float> expected = {0.0f, 1.0f, 0.0f, 1.0f, 4.0f, 4.0f, -1.0f, -1.0f, 4.0f};
  const std::vector<uint8_t> expected_mask = {1, 1, 1, 1, 1, 0, 1, 0, 0};
  std::vector<float> y(x.size());
  std::vector<uint8_t> mask(x.size());
  FakeQuantizePerTensor(x.data(), x.size(), p, y.data(), mask.data());
  EXPECT_EQ(y, expected);
  EXPECT_EQ(mask, expected_mask);

  std::vector<float> in_place = x;
  FakeQuantizePerTensor(in_place.data(), in_place.size(), p, in_place.data(), nullptr);
  EXPECT_EQ(in_place, expected);
}

TEST(FakeQuantizePerTensor, NonFiniteValuesAreClampedNotConverted) {
  const FakeQuantParams p{0.5f, 0, -128, 127};
  const std::vector<float> x = {INFINITY, -INFINITY, 1e30f, NAN};
  std::vector<float> y(4);
  std::vector<uint8_t> mask(4);
  FakeQuantizePerTensor(x.data(), 4, p, y.data(), mask.data());
  EXPECT_EQ(y, (std::vector<float>{63.5f, -64.0f, 63.5f, -64.0f}));
  EXPECT_EQ(mask, (std::vector<uint8_t>{0, 0, 0, 0}));
}

TEST(FakeQuantizePerChannel, EachChannelTakesItsOwnScale) {
  // Two channels of three values, symmetric int8 weights.
  const std::vector<float> x = {0.1f, -0.26f, 20.0f, 0.1f, -0.26f, 20.0f};
  std::vector<float> y(6);
  std::vector<uint8_t> mask(6);
  FakeQuantizePerChannel(x.data(), /*inner=*/3, {{0.1f, 1.0f}, {0, 0}, -127, 127}, y.data(),
                         mask.data());
  const std::vector<float> expected = {0.1f, -0.3f, 12.7f, 0.0f, 0.0f, 20.0f};
  for (int i = 0; i < 6; ++i) EXPECT_FLOAT_EQ(y[i], expected[i]) << i;
  EXPECT_EQ(mask, (std::vector<uint8_t>{1, 1, 0, 1, 1, 1}));
}

TEST(FakeQuantizeBackward, PassesTheGradientOnlyInsideTheRange) {
  const std::vector<float> dy = {1.0f, 2.0f, 3.0f};
  const std::vector<uint8_t> mask = {1, 0, 1};
  std::vector<float> dx(3);
  FakeQuantizeBackward(dy.data(), mask.data(), 3, dx.data());
  EXPECT_EQ(dx, (std::vector<float>{1.0f, 0.0f, 3.0f}));
}

}  // namespace
}  // namespace qforge
