// The image library against Pillow and torchvision: every file of testdata/
// (written by tools/make_image_goldens.py with Debian's Pillow 9.4 and
// torchvision 0.14) decodes, and resizes and crops, to exactly their bytes.
#include "runtime/image/image.h"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/image/qforge_image.h"

namespace qforge::image {
namespace {

const std::string kDir = "runtime/image/testdata/";

std::vector<uint8_t> ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)),
                              std::istreambuf_iterator<char>());
}

struct Golden {
  std::string file;  // NAME.cC.raw or NAME.cC.rRcS.raw
  int height, width, channels;
};

std::vector<Golden> Manifest() {
  std::ifstream in(kDir + "manifest.txt");
  std::vector<Golden> goldens;
  Golden g;
  while (in >> g.file >> g.height >> g.width >> g.channels) goldens.push_back(g);
  return goldens;
}

// How many bytes differ, and the largest difference.
std::string Differences(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return "sizes differ";
  int count = 0, largest = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const int d = std::abs(int{a[i]} - int{b[i]});
    count += d != 0;
    largest = std::max(largest, d);
  }
  return std::to_string(count) + " of " + std::to_string(a.size()) +
         " bytes differ, by up to " + std::to_string(largest);
}

TEST(Image, DecodesResizesAndCropsAsPillowAndTorchvision) {
  const std::vector<Golden> goldens = Manifest();
  ASSERT_EQ(goldens.size(), 40u);
  for (const Golden& g : goldens) {
    // NAME.cC.raw: the decoded image; NAME.cC.rRcS.raw: its eval transform.
    const size_t c_at = g.file.find(".c");
    const std::string name = g.file.substr(0, g.file.find('.', g.file.find('.') + 1));
    absl::StatusOr<Image> image = ReadImageFile(kDir + name, g.channels);
    ASSERT_TRUE(image.ok()) << image.status();
    int resize = 0, crop = 0;
    if (std::sscanf(g.file.c_str() + c_at, ".c%*d.r%dc%d.raw", &resize, &crop) == 2) {
      absl::StatusOr<Image> transformed = ResizeAndCenterCrop(*image, resize, crop);
      ASSERT_TRUE(transformed.ok()) << transformed.status();
      image = *std::move(transformed);
    }
    EXPECT_EQ(image->height, g.height) << g.file;
    EXPECT_EQ(image->width, g.width) << g.file;
    EXPECT_EQ(image->channels, g.channels) << g.file;
    const std::vector<uint8_t> expected = ReadBytes(kDir + g.file);
    EXPECT_TRUE(image->pixels == expected) << g.file << ": " << Differences(image->pixels, expected);
  }
}

TEST(Image, KeepsTheFilesOwnChannelsByDefault) {
  absl::StatusOr<Image> gray = ReadImageFile(kDir + "gray.jpg");
  ASSERT_TRUE(gray.ok()) << gray.status();
  EXPECT_EQ(gray->channels, 1);
  absl::StatusOr<Image> rgb = ReadImageFile(kDir + "palette.png");
  ASSERT_TRUE(rgb.ok()) << rgb.status();
  EXPECT_EQ(rgb->channels, 3);
}

TEST(Image, RefusesBadFilesNamingThem) {
  EXPECT_EQ(ReadImageFile(kDir + "missing.jpg").status().code(), absl::StatusCode::kNotFound);
  const std::vector<uint8_t> jpeg = ReadBytes(kDir + "photo.jpg");
  const std::vector<uint8_t> png = ReadBytes(kDir + "rgba.png");
  struct Case {
    std::vector<uint8_t> bytes;
    const char* message;
  };
  const std::vector<Case> cases = {
      {std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + jpeg.size() / 2), "JPEG"},
      {std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2), "PNG"},
      {std::vector<uint8_t>{'G', 'I', 'F', '8', '9', 'a'}, "not a JPEG, PNG, PPM or PGM"},
      {std::vector<uint8_t>{'P', '6', ' ', '4', ' ', '4', ' ', '6', '5', '5', '3', '5', '\n'},
       "maxval 65535"},
      {std::vector<uint8_t>{'P', '5', ' ', '4', ' ', '4', ' ', '2', '5', '5', '\n', 1, 2},
       "truncated"},
      {std::vector<uint8_t>{'P', '5', ' ', '0', ' ', '4', ' ', '2', '5', '5', '\n'}, "0x4"},
  };
  for (const Case& c : cases) {
    const absl::StatusOr<Image> image = DecodeImage(c.bytes);
    EXPECT_FALSE(image.ok()) << c.message;
    EXPECT_NE(image.status().message().find(c.message), std::string::npos)
        << image.status().message();
  }
  Image small{10, 10, 3, std::vector<uint8_t>(300)};
  EXPECT_FALSE(ResizeAndCenterCrop(small, 8, 12).ok());
}

TEST(ImageCApi, ReadsTransformsAndReportsErrors) {
  qforge_image image{}, out{};
  ASSERT_EQ(qforge_image_read((kDir + "photo.jpg").c_str(), 3, &image), QFORGE_OK);
  EXPECT_EQ(image.width, 97);
  EXPECT_EQ(image.height, 61);
  ASSERT_EQ(qforge_image_resize_center_crop(&image, 40, 32, &out), QFORGE_OK);
  EXPECT_TRUE(std::vector<uint8_t>(out.pixels, out.pixels + 32 * 32 * 3) ==
              ReadBytes(kDir + "photo.jpg.c3.r40c32.raw"));
  qforge_image_free(&out);
  qforge_image_free(&image);
  EXPECT_EQ(image.pixels, nullptr);
  EXPECT_EQ(qforge_image_read((kDir + "missing.png").c_str(), 3, &image), QFORGE_NOT_FOUND);
  EXPECT_NE(std::string(qforge_image_last_error()).find("missing.png"), std::string::npos);
  EXPECT_EQ(qforge_image_read((kDir + "manifest.txt").c_str(), 3, &image),
            QFORGE_INVALID_ARGUMENT);
}

}  // namespace
}  // namespace qforge::image
