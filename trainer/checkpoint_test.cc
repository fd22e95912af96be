// Checkpoint files: a checksum that catches a file cut short or damaged
// anywhere, the previous checkpoint kept beside the latest, and --resume's
// fallback to it with a warning naming both files.
#include "trainer/checkpoint.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

std::string TestPath(const std::string& name) {
  return std::string(std::getenv("TEST_TMPDIR")) + "/" + name;
}

Checkpoint Small(int epoch) {
  Checkpoint c;
  c.mutable_config()->set_dataset("fashion-mnist");
  c.set_epoch(epoch);
  c.set_step(100 * epoch);
  NamedTensor* t = c.add_tensors();
  t->set_name("classifier.1.bias");
  t->add_shape(4);
  t->set_data(std::string(16, static_cast<char>(epoch)));
  return c;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

TEST(Checkpoint, EveryTruncationAndByteFlipIsDetected) {
  const std::string path = TestPath("checked.pb");
  ASSERT_TRUE(WriteCheckpoint(Small(3), path).ok());
  const std::string bytes = ReadBytes(path);
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->epoch(), 3);
  EXPECT_NE(read->checksum(), 0u);
  const std::string damaged = TestPath("damaged.pb");
  for (size_t keep = 0; keep < bytes.size(); ++keep) {
    WriteBytes(damaged, bytes.substr(0, keep));
    EXPECT_FALSE(ReadCheckpoint(damaged).ok()) << "cut to " << keep << " bytes";
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bits : {0x01, 0x10, 0x80, 0x48}) {  // 0x48 turns the first byte into field 6's tag
      std::string flipped = bytes;
      flipped[i] = static_cast<char>(flipped[i] ^ bits);
      WriteBytes(damaged, flipped);
      EXPECT_FALSE(ReadCheckpoint(damaged).ok()) << "byte " << i << " ^ " << bits;
    }
  }
  WriteBytes(damaged, bytes.substr(0, bytes.size() - 1));
  EXPECT_THAT(std::string(ReadCheckpoint(damaged).status().message()),
              HasSubstr("damaged.pb: checksum mismatch"));
}

TEST(Checkpoint, FilesWithoutAChecksumStillLoad) {
  // As tools/torchvision_checkpoint.py and earlier versions write them.
  const std::string path = TestPath("unchecked.pb");
  WriteBytes(path, Small(2).SerializeAsString());
  absl::StatusOr<Checkpoint> read = ReadCheckpoint(path);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->epoch(), 2);
}

TEST(Checkpoint, ResumeFallsBackToThePreviousOneNamingBoth) {
  const std::string path = TestPath("run.pb");
  const std::string prev = PreviousCheckpointPath(path);
  ASSERT_TRUE(WriteCheckpoint(Small(1), path).ok());
  EXPECT_FALSE(std::filesystem::exists(prev));
  ASSERT_TRUE(WriteCheckpoint(Small(2), path).ok());
  EXPECT_EQ(ReadCheckpoint(prev)->epoch(), 1);
  EXPECT_EQ(ReadLatestCheckpoint(path)->epoch(), 2);

  const std::string bytes = ReadBytes(path);
  WriteBytes(path, bytes.substr(0, bytes.size() / 2));
  testing::internal::CaptureStderr();
  absl::StatusOr<Checkpoint> resumed = ReadLatestCheckpoint(path);
  const std::string warning = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_EQ(resumed->epoch(), 1);
  EXPECT_THAT(warning, HasSubstr(path + ": checksum mismatch"));
  EXPECT_THAT(warning, HasSubstr("continuing from the previous checkpoint, " + prev));

  // The damaged file must not replace the sound previous one.
  ASSERT_TRUE(WriteCheckpoint(Small(2), path).ok());
  EXPECT_EQ(ReadCheckpoint(prev)->epoch(), 1);
  EXPECT_EQ(ReadCheckpoint(path)->epoch(), 2);

  std::filesystem::remove(path);
  EXPECT_EQ(ReadLatestCheckpoint(path)->epoch(), 1);  // missing: the previous one
  std::filesystem::remove(prev);
  EXPECT_EQ(ReadLatestCheckpoint(path).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace qforge
