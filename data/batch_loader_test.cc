#include "data/batch_loader.h"

#include <algorithm>
#include <set>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace qforge {
namespace {

using ::testing::HasSubstr;

// `count` 4x4 gray images; image i is filled with the value i and labelled i % 10.
Dataset CountingDataset(int64_t count) {
  Dataset dataset;
  dataset.name = "counting";
  dataset.count = count;
  dataset.height = 4;
  dataset.width = 4;
  dataset.channels = 1;
  for (int64_t i = 0; i < count; ++i) {
    dataset.pixels.insert(dataset.pixels.end(), 16, static_cast<uint8_t>(i));
    dataset.labels.push_back(static_cast<int32_t>(i % 10));
  }
  dataset.class_names.resize(10, "class");
  return dataset;
}

std::vector<Batch> Epoch(BatchLoader& loader, int64_t epoch) {
  loader.StartEpoch(epoch);
  std::vector<Batch> batches;
  Batch batch;
  while (loader.Next(&batch)) batches.push_back(batch);
  return batches;
}

std::unique_ptr<BatchLoader> MakeLoader(const Dataset& dataset, LoaderOptions options) {
  absl::StatusOr<std::unique_ptr<BatchLoader>> loader = BatchLoader::Create(dataset, options);
  EXPECT_TRUE(loader.ok()) << loader.status();
  return std::move(loader).value();
}

TEST(BatchLoader, EveryImageOnceWithItsLabelAndAShortLastBatch) {
  const Dataset dataset = CountingDataset(100);
  LoaderOptions options;
  options.batch_size = 32;
  options.seed = 1;
  auto loader = MakeLoader(dataset, options);
  EXPECT_EQ(loader->batches_per_epoch(), 4);
  const std::vector<Batch> batches = Epoch(*loader, 0);
  ASSERT_EQ(batches.size(), 4u);
  EXPECT_EQ(batches[3].size, 4);
  std::set<int64_t> seen;
  for (const Batch& b : batches) {
    ASSERT_EQ(b.images.size(), static_cast<size_t>(b.size) * 16);
    for (int i = 0; i < b.size; ++i) {
      seen.insert(b.indices[i]);
      EXPECT_EQ(b.labels[i], b.indices[i] % 10);
      EXPECT_FLOAT_EQ(b.images[i * 16 + 5], b.indices[i] / 255.0f);
    }
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(BatchLoader, SameSeedAndEpochGiveIdenticalBatches) {
  const Dataset dataset = CountingDataset(50);
  LoaderOptions options;
  options.batch_size = 8;
  options.seed = 42;
  options.pad = 1;
  options.horizontal_flip = true;
  auto a = MakeLoader(dataset, options);
  auto b = MakeLoader(dataset, options);
  const std::vector<Batch> first = Epoch(*a, 3);
  // b runs another epoch first: epoch 3 must not depend on what came before.
  Epoch(*b, 0);
  const std::vector<Batch> second = Epoch(*b, 3);
  ASSERT_EQ(first.size(), second.size());
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].indices, second[i].indices);
    EXPECT_EQ(first[i].images, second[i].images);
  }
}

TEST(BatchLoader, EpochsAndSeedsShuffleDifferently) {
  const Dataset dataset = CountingDataset(64);
  LoaderOptions options;
  options.batch_size = 64;
  options.seed = 7;
  auto loader = MakeLoader(dataset, options);
  const std::vector<int64_t> epoch0 = Epoch(*loader, 0)[0].indices;
  const std::vector<int64_t> epoch1 = Epoch(*loader, 1)[0].indices;
  EXPECT_NE(epoch0, epoch1);
  options.seed = 8;
  auto other = MakeLoader(dataset, options);
  EXPECT_NE(Epoch(*other, 0)[0].indices, epoch0);
}

TEST(BatchLoader, NoShuffleKeepsFileOrder) {
  const Dataset dataset = CountingDataset(10);
  LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  auto loader = MakeLoader(dataset, options);
  const std::vector<Batch> batches = Epoch(*loader, 5);
  EXPECT_THAT(batches[1].indices, ::testing::ElementsAre(4, 5, 6, 7));
}

TEST(BatchLoader, AugmentationVariesAcrossEpochsForTheSameImage) {
  Dataset dataset = CountingDataset(1);
  for (int p = 0; p < 16; ++p) dataset.pixels[p] = static_cast<uint8_t>(10 + p);
  LoaderOptions options;
  options.batch_size = 1;
  options.pad = 2;
  auto loader = MakeLoader(dataset, options);
  std::set<std::vector<float>> variants;
  for (int epoch = 0; epoch < 40; ++epoch) variants.insert(Epoch(*loader, epoch)[0].images);
  EXPECT_GT(variants.size(), 5u);
}

TEST(BatchLoader, DropLastAndRestartMidEpoch) {
  const Dataset dataset = CountingDataset(10);
  LoaderOptions options;
  options.batch_size = 4;
  options.drop_last = true;
  auto loader = MakeLoader(dataset, options);
  EXPECT_EQ(loader->batches_per_epoch(), 2);
  loader->StartEpoch(0);
  Batch batch;
  ASSERT_TRUE(loader->Next(&batch));
  const std::vector<int64_t> first = batch.indices;
  // Restarting discards what was prefetched and begins the epoch again.
  const std::vector<Batch> again = Epoch(*loader, 0);
  ASSERT_EQ(again.size(), 2u);
  EXPECT_EQ(again[0].indices, first);
}

// tools/side_by_side.py replays the loader's order and crops in Python, so that
// PyTorch calibrates and fine-tunes on qforge's very batches. These are the
// values its replica gives; the two must not drift apart.
TEST(BatchLoader, OrderAndCropsAreWhatTheSideBySideReplicaGives) {
  const Dataset dataset = CountingDataset(60000);
  LoaderOptions options;
  options.batch_size = 8;
  std::unique_ptr<BatchLoader> loader = MakeLoader(dataset, options);
  EXPECT_EQ(Epoch(*loader, 0)[0].indices,
            (std::vector<int64_t>{32998, 16474, 7192, 40058, 52457, 38692, 54688, 50110}));
  const std::vector<int64_t> epoch3(Epoch(*loader, 3)[0].indices);
  EXPECT_EQ(std::vector<int64_t>(epoch3.begin(), epoch3.begin() + 4),
            (std::vector<int64_t>{35435, 2011, 51536, 38757}));
  // Image 1234's crop in epoch 5 (the augmentation stream is key 2).
  SplitMix64 rng(DeriveSeed({0, 2, 5, 1234}));
  const CropFlip crop = DrawCropFlip(rng, 2, true);
  EXPECT_EQ(crop.offset_y, 2);
  EXPECT_EQ(crop.offset_x, 0);
  EXPECT_TRUE(crop.flip);
}

// Data-parallel ranks: the shards of each batch, put together in rank order,
// are the whole batch, crops and flips included.
TEST(BatchLoader, ShardsTogetherAreTheWholeBatch) {
  const Dataset dataset = CountingDataset(103);  // a last batch of 7
  LoaderOptions options;
  options.batch_size = 32;
  options.seed = 5;
  options.pad = 1;
  options.horizontal_flip = true;
  const std::vector<Batch> whole = Epoch(*MakeLoader(dataset, options), 2);
  std::vector<std::vector<Batch>> parts;
  for (int shard = 0; shard < 3; ++shard) {
    options.shard = shard;
    options.shards = 3;
    parts.push_back(Epoch(*MakeLoader(dataset, options), 2));
  }
  for (size_t b = 0; b < whole.size(); ++b) {
    std::vector<float> images;
    std::vector<int64_t> indices;
    int offset = 0;
    for (const std::vector<Batch>& part : parts) {
      ASSERT_EQ(part.size(), whole.size());
      const Batch& shard = part[b];
      EXPECT_EQ(shard.global_size, whole[b].size);
      EXPECT_EQ(shard.offset, offset);
      EXPECT_GE(shard.size, whole[b].size / 3);
      EXPECT_LE(shard.size, whole[b].size / 3 + 1);
      offset += shard.size;
      images.insert(images.end(), shard.images.begin(), shard.images.end());
      indices.insert(indices.end(), shard.indices.begin(), shard.indices.end());
    }
    EXPECT_EQ(images, whole[b].images) << "batch " << b;
    EXPECT_EQ(indices, whole[b].indices) << "batch " << b;
  }
}

TEST(BatchLoader, RefusesShardsThatLeaveARankEmpty) {
  const Dataset dataset = CountingDataset(33);  // batches of 32, then 1
  LoaderOptions options;
  options.batch_size = 32;
  options.shards = 2;
  EXPECT_THAT(BatchLoader::Create(dataset, options).status().message(),
              HasSubstr("(the last of 1) cannot give each of 2 ranks an image"));
  options.drop_last = true;
  EXPECT_TRUE(BatchLoader::Create(dataset, options).ok());
  options.shard = 2;
  EXPECT_THAT(BatchLoader::Create(dataset, options).status().message(),
              HasSubstr("shard 2 of 2 does not exist"));
}

TEST(BatchLoader, EvaluationShardsMayBeEmpty) {
  const Dataset dataset = CountingDataset(33);  // batches of 32, then 1
  LoaderOptions options;
  options.batch_size = 32;
  options.shuffle = false;
  options.shards = 2;
  options.allow_empty_shards = true;
  std::vector<int> sizes;
  for (int shard = 0; shard < 2; ++shard) {
    options.shard = shard;
    const std::vector<Batch> batches = Epoch(*MakeLoader(dataset, options), 0);
    ASSERT_EQ(batches.size(), 2u);
    sizes.push_back(batches[1].size);
    EXPECT_EQ(batches[1].global_size, 1);
  }
  EXPECT_EQ(sizes, (std::vector<int>{0, 1}));  // rank 1 takes the last image
}

TEST(BatchLoader, NextBeforeStartEpochReturnsFalse) {
  const Dataset dataset = CountingDataset(3);
  auto loader = MakeLoader(dataset, LoaderOptions());
  Batch batch;
  EXPECT_FALSE(loader->Next(&batch));
}

TEST(BatchLoader, RejectsBadOptions) {
  const Dataset dataset = CountingDataset(3);
  LoaderOptions zero_batch;
  zero_batch.batch_size = 0;
  EXPECT_THAT(BatchLoader::Create(dataset, zero_batch).status().message(),
              HasSubstr("batch size 0"));
  LoaderOptions negative_pad;
  negative_pad.pad = -1;
  EXPECT_FALSE(BatchLoader::Create(dataset, negative_pad).ok());
  LoaderOptions huge_pad;
  huge_pad.pad = 1 << 30;
  EXPECT_THAT(BatchLoader::Create(dataset, huge_pad).status().message(),
              HasSubstr("must lie in [0, image side]"));
  LoaderOptions too_few;
  too_few.batch_size = 4;
  too_few.drop_last = true;
  EXPECT_THAT(BatchLoader::Create(dataset, too_few).status().message(),
              HasSubstr("make no batch"));
  LoaderOptions rgb_norm;
  rgb_norm.normalization = {{0.5f, 0.5f, 0.5f}, {0.2f, 0.2f, 0.2f}};
  EXPECT_THAT(BatchLoader::Create(dataset, rgb_norm).status().message(),
              HasSubstr("for 1 channels"));
}

}  // namespace
}  // namespace qforge
