// Fake quantization on hand-checked values: half-to-even rounding, clamping to
// [qmin, qmax], the straight-through mask, and per-channel scales.
#include "trainer/quant/fake_quant.h"

#include <cmath>
#include <vector>

#include "common/quantization.h"
#include "common/random.h"
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
  // NaN becomes real 0, as the runtime's quantize op makes it.
  EXPECT_EQ(y, (std::vector<float>{63.5f, -64.0f, 63.5f, 0.0f}));
  EXPECT_EQ(mask, (std::vector<uint8_t>{0, 0, 0, 0}));
}

// Fake quantization is the runtime's quantize (common/quantization.h) then
// dequantize, value for value: at and a float step beside rounding ties,
// outside the range, for infinities and NaN, at scales whose reciprocal is not
// exact. This is what keeps QAT's and the simulation's rounding the int8
// model's.
TEST(FakeQuantizePerTensor, EqualsTheRuntimesQuantizeThenDequantize) {
  SplitMix64 rng(11);
  const int n = 4096;
  std::vector<float> x(n), y(n);
  int differ_from_division = 0;
  for (int trial = 0; trial < 50; ++trial) {
    const float scale = std::ldexp(1.0f + rng.UniformFloat(), -static_cast<int>(rng.Below(10)));
    const int32_t zero_point = static_cast<int32_t>(rng.Below(256)) - 128;
    for (int i = 0; i < n; ++i) {
      const float tie = (static_cast<float>(rng.Below(400)) - 200.0f + 0.5f) * scale;
      const int side = static_cast<int>(rng.Below(3));
      x[i] = side == 0 ? tie : std::nextafter(tie, side == 1 ? -INFINITY : INFINITY);
    }
    x[0] = NAN;
    x[1] = INFINITY;
    x[2] = -INFINITY;
    FakeQuantizePerTensor(x.data(), n, {scale, zero_point, -128, 127}, y.data(), nullptr);
    const QuantParams params{scale, zero_point};
    for (int i = 0; i < n; ++i) {
      ASSERT_EQ(y[i], Dequantize(Quantize(x[i], params), params))
          << "x " << x[i] << " scale " << scale << " zero point " << zero_point;
      if (std::isfinite(x[i]) &&
          std::nearbyint(x[i] / scale) != std::nearbyint(x[i] * InverseScale(scale))) {
        ++differ_from_division;
      }
    }
  }
  // The values do sit where dividing would round the other way.
  EXPECT_GT(differ_from_division, 100);
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
