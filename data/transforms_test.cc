#include "data/transforms.h"

#include <cmath>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::testing::ElementsAre;
using ::testing::FloatEq;
using ::testing::Pointwise;

// A 2x3 single-channel image:  0  51 102
//                             153 204 255
const std::vector<uint8_t> kImage = {0, 51, 102, 153, 204, 255};

std::vector<float> Transform(int pad, CropFlip crop, const Normalization& norm = {}) {
  std::vector<float> out(6);
  TransformImage(kImage.data(), 2, 3, 1, pad, crop, MakePixelScaling(norm, 1), out.data());
  return out;
}

TEST(TransformImage, ScalesToUnitInterval) {
  EXPECT_THAT(Transform(0, CenterCrop(0)), Pointwise(FloatEq(), {0.0f, 0.2f, 0.4f, 0.6f, 0.8f, 1.0f}));
}

TEST(TransformImage, Normalizes) {
  const Normalization norm{{0.5f}, {0.25f}};
  EXPECT_THAT(Transform(0, CenterCrop(0), norm),
              Pointwise(::testing::FloatNear(1e-6f), {-2.0f, -1.2f, -0.4f, 0.4f, 1.2f, 2.0f}));
}

TEST(TransformImage, CenterCropWithPaddingIsIdentity) {
  EXPECT_THAT(Transform(2, CenterCrop(2)), Pointwise(FloatEq(), Transform(0, CenterCrop(0))));
}

TEST(TransformImage, CropShiftsInZeroPadding) {
  // Window at (0, 0) of the image padded by 1: one row and one column of zeros.
  EXPECT_THAT(Transform(1, CropFlip{0, 0, false}),
              Pointwise(FloatEq(), {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.2f}));
  // Window at (2, 2): shifted up and left.
  EXPECT_THAT(Transform(1, CropFlip{2, 2, false}),
              Pointwise(FloatEq(), {0.8f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f}));
}

TEST(TransformImage, PaddingIsZeroPixelsBeforeNormalization) {
  const Normalization norm{{0.5f}, {0.25f}};
  const std::vector<float> out = Transform(1, CropFlip{0, 0, false}, norm);
  EXPECT_FLOAT_EQ(out[0], -2.0f);  // (0 - 0.5) / 0.25
}

TEST(TransformImage, FlipMirrorsTheCroppedWindow) {
  EXPECT_THAT(Transform(0, CropFlip{0, 0, true}),
              Pointwise(FloatEq(), {0.4f, 0.2f, 0.0f, 1.0f, 0.8f, 0.6f}));
  // Crop then flip (torchvision's order): window at x offset 2 of pad 1 is
  // columns [1, 2, pad]; mirrored it is [pad, 2, 1].
  EXPECT_THAT(Transform(1, CropFlip{1, 2, true}),
              Pointwise(FloatEq(), {0.0f, 0.4f, 0.2f, 0.0f, 1.0f, 0.8f}));
}

TEST(TransformImage, InterleavedChannelsStayTogether) {
  const std::vector<uint8_t> rgb = {255, 0, 51, 0, 255, 102};  // 1x2 RGB
  std::vector<float> out(6);
  TransformImage(rgb.data(), 1, 2, 3, 0, CropFlip{0, 0, true}, MakePixelScaling({}, 3),
                 out.data());
  EXPECT_THAT(out, Pointwise(FloatEq(), {0.0f, 1.0f, 0.4f, 1.0f, 0.0f, 0.2f}));
}

TEST(DrawCropFlip, CoversEveryOffsetAndBothFlips) {
  SplitMix64 rng(9);
  std::vector<int> seen(5 * 5 * 2, 0);
  for (int i = 0; i < 5000; ++i) {
    const CropFlip c = DrawCropFlip(rng, 2, true);
    ASSERT_GE(c.offset_y, 0);
    ASSERT_LE(c.offset_y, 4);
    ASSERT_GE(c.offset_x, 0);
    ASSERT_LE(c.offset_x, 4);
    ++seen[(c.offset_y * 5 + c.offset_x) * 2 + c.flip];
  }
  for (int count : seen) EXPECT_GT(count, 50);
  const CropFlip no_flip = DrawCropFlip(rng, 0, false);
  EXPECT_EQ(no_flip.offset_x, 0);
  EXPECT_FALSE(no_flip.flip);
}

TEST(ValidateNormalization, RejectsWrongCountsAndBadStd) {
  EXPECT_TRUE(ValidateNormalization({}, 3).ok());
  EXPECT_TRUE(ValidateNormalization({{0.5f}, {0.5f}}, 1).ok());
  EXPECT_FALSE(ValidateNormalization({{0.5f}, {0.5f}}, 3).ok());
  EXPECT_FALSE(ValidateNormalization({{0.5f}, {0.0f}}, 1).ok());
  EXPECT_FALSE(ValidateNormalization({{NAN}, {1.0f}}, 1).ok());
  EXPECT_FALSE(ValidateNormalization({{0.5f}, {}}, 1).ok());
}

}  // namespace
}  // namespace qforge
