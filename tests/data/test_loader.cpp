#include <gtest/gtest.h>

#include <map>
#include <memory>

#include "data/loader.h"
#include "data_test_util.h"
#include "tensor/error.h"

namespace scalpel::data {
namespace {
using testing::pattern_image;
using testing::TempDir;

// root/<class>/<i>.png with different sizes and channel counts, plus masks.
Dataset make_dataset(const TempDir& dir, int per_class, bool with_masks = false) {
  Dataset d;
  d.root = dir.str();
  d.classes = {"neg", "pos"};
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < per_class + c * 3; ++i) {
      Sample s;
      const std::string stem = d.classes[c] + "/" + std::to_string(i);
      s.path = dir / (stem + ".png");
      testing::write_image(s.path, pattern_image(20 + i, 16 + 2 * c, i % 2 ? 3 : 1, 100 * c + i));
      if (with_masks) {
        Image m(20 + i, 16 + 2 * c, 1, 0);
        for (int y = 0; y < m.height; ++y)
          for (int x = 0; x < m.width / 2; ++x) m.at(y, x) = 255;
        s.mask_path = dir / (stem + "_mask.png");
        testing::write_image(s.mask_path, m);
      }
      s.label = c;
      d.samples.push_back(s);
    }
  return d;
}

LoaderConfig base_config() {
  LoaderConfig cfg;
  cfg.preprocess.width = 12;
  cfg.preprocess.height = 10;
  cfg.batch_size = 4;
  cfg.seed = 9;
  return cfg;
}

std::vector<Batch> run_epoch(DataLoader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  Batch b;
  while (loader.next(b)) out.push_back(b);
  return out;
}

TEST(Loader, SequentialOrderShapesAndLabels) {
  TempDir dir;
  const Dataset d = make_dataset(dir, 4);  // 4 neg + 7 pos
  Warnings w;
  LoaderConfig cfg = base_config();
  cfg.workers = 0;
  DataLoader loader(d, cfg, w);
  EXPECT_EQ(loader.batches_per_epoch(), 3);
  const auto batches = run_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 3u);
  EXPECT_EQ(batches[0].images.shape(), (Shape{4, 3, 10, 12}));
  EXPECT_EQ(batches[2].images.shape(), (Shape{3, 3, 10, 12}));
  EXPECT_EQ(batches[0].labels.dtype(), DType::I64);
  std::vector<size_t> seen;
  for (const auto& b : batches) seen.insert(seen.end(), b.indices.begin(), b.indices.end());
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], i);
  EXPECT_EQ(batches[1].labels.to_vector(), (std::vector<double>{1, 1, 1, 1}));
  // No augmentation: the batch equals the preprocessed image.
  const Tensor expected = preprocess_file(d.samples[5].path, cfg.preprocess);
  const auto got = batches[1].images.to_vector();
  const auto want = expected.to_vector();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[want.size() + i], want[i], 1e-6);
}

// Data-parallel sharding: the shards of each global batch, concatenated in rank order, are the
// batch of one loader with the global batch size, for every epoch's permutation.
TEST(Loader, ShardsTogetherAreTheGlobalBatch) {
  TempDir dir;
  const Dataset d = make_dataset(dir, 4);  // 11 samples
  Warnings w;
  LoaderConfig global_cfg = base_config();
  global_cfg.sampling = Sampling::shuffle;
  global_cfg.batch_size = 6;
  DataLoader global(d, global_cfg, w);
  std::vector<std::unique_ptr<DataLoader>> shards;
  for (int r = 0; r < 2; ++r) {
    LoaderConfig cfg = global_cfg;
    cfg.batch_size = 3;
    cfg.shard_rank = r;
    cfg.shard_count = 2;
    shards.push_back(std::make_unique<DataLoader>(d, cfg, w));
    EXPECT_EQ(shards.back()->batches_per_epoch(), 2);  // 6 + 5 samples: 3 + 3, then 2 + 3
  }
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    const auto want = run_epoch(global, epoch);
    std::vector<std::vector<Batch>> got;
    for (auto& s : shards) got.push_back(run_epoch(*s, epoch));
    ASSERT_EQ(want.size(), 2u);
    for (size_t b = 0; b < want.size(); ++b) {
      std::vector<size_t> joined;
      for (const auto& shard : got) {
        ASSERT_EQ(shard.size(), want.size());
        EXPECT_GE(shard[b].size(), 2);
        joined.insert(joined.end(), shard[b].indices.begin(), shard[b].indices.end());
      }
      EXPECT_EQ(joined, want[b].indices) << "epoch " << epoch << " batch " << b;
    }
  }
  // A last global batch that cannot give every shard 2 samples (11 = 8 + 3, 2 shards of 4) is
  // dropped, so that every rank takes the same steps, each with batch norm's 2 samples or more.
  LoaderConfig cfg = global_cfg;
  cfg.batch_size = 4;
  cfg.shard_count = 2;
  EXPECT_EQ(DataLoader(d, cfg, w).batches_per_epoch(), 1);
  cfg.batch_size = 1;  // batch 1 per rank: 1 sample each is the batch asked for
  cfg.shard_count = 3;
  EXPECT_EQ(DataLoader(d, cfg, w).batches_per_epoch(), 3);  // 11 = 3 + 3 + 3 + 2
  cfg.shard_rank = 3;
  EXPECT_THROW(DataLoader(d, cfg, w), Error);
}

TEST(Loader, DeterministicForAnyThreadCountAndCache) {
  TempDir dir;
  const Dataset d = make_dataset(dir, 9);
  Warnings w;
  LoaderConfig cfg = base_config();
  cfg.sampling = Sampling::shuffle;
  cfg.augment = parse_augment("dermoscopy,noise=0.5,blur=0.3,crop_scale=0.6");
  std::vector<std::vector<double>> reference;
  std::vector<std::vector<size_t>> reference_order;
  for (int workers : {0, 1, 3}) {
    for (bool cache : {false, true}) {
      cfg.workers = workers;
      cfg.cache = cache;
      cfg.prefetch = workers == 3 ? 1 : 4;
      DataLoader loader(d, cfg, w);
      std::vector<std::vector<double>> values;
      std::vector<std::vector<size_t>> order;
      for (int64_t epoch = 0; epoch < 2; ++epoch)
        for (const Batch& b : run_epoch(loader, epoch)) {
          values.push_back(b.images.to_vector());
          order.push_back(b.indices);
        }
      if (reference.empty()) {
        reference = values;
        reference_order = order;
      } else {
        EXPECT_EQ(order, reference_order) << workers << " workers, cache " << cache;
        EXPECT_EQ(values, reference) << workers << " workers, cache " << cache;
      }
    }
  }
  // Epochs differ in order and augmentation; a different seed differs too.
  cfg.workers = 2;
  DataLoader loader(d, cfg, w);
  EXPECT_NE(loader.epoch_order(0), loader.epoch_order(1));
  cfg.seed = 10;
  DataLoader other(d, cfg, w);
  EXPECT_NE(run_epoch(other, 0)[0].images.to_vector(), reference[0]);
}

TEST(Loader, BadFilesAreSkippedWithOneWarningOrThrowInStrictMode) {
  TempDir dir;
  Dataset d = make_dataset(dir, 3);
  testing::write_text(d.samples[1].path, "not a png at all");
  LoaderConfig cfg = base_config();
  cfg.workers = 2;
  Warnings w;
  DataLoader loader(d, cfg, w);
  for (int epoch = 0; epoch < 3; ++epoch) {
    int64_t total = 0;
    for (const Batch& b : run_epoch(loader, epoch)) {
      total += b.size();
      for (size_t i : b.indices) EXPECT_NE(i, 1u);
      EXPECT_EQ(b.images.size(0), b.size());
    }
    EXPECT_EQ(total, static_cast<int64_t>(d.samples.size()) - 1);
  }
  EXPECT_EQ(w.count(), 1u);
  EXPECT_NE(w.report().find(d.samples[1].path), std::string::npos);

  Warnings strict(true);
  DataLoader strict_loader(d, cfg, strict);
  strict_loader.start_epoch(0);
  Batch b;
  EXPECT_THROW(while (strict_loader.next(b)) {}, Error);
}

TEST(Loader, MasksFollowImagesThroughAugmentation) {
  TempDir dir;
  const Dataset d = make_dataset(dir, 3, /*with_masks=*/true);
  LoaderConfig cfg = base_config();
  cfg.load_masks = true;
  cfg.preprocess.norm = normalization_preset("none");
  cfg.preprocess.channels = 1;
  cfg.augment.hflip = 0.5;
  cfg.workers = 2;
  Warnings w;
  DataLoader loader(d, cfg, w);
  int flipped = 0, kept = 0;
  for (const Batch& b : run_epoch(loader, 0)) {
    ASSERT_EQ(b.masks.shape(), (Shape{b.size(), 10, 12}));
    for (int64_t n = 0; n < b.size(); ++n) {
      const double left = b.masks.at({n, 5, 0}), right = b.masks.at({n, 5, 11});
      EXPECT_NE(left, right);
      (left == 1 ? kept : flipped)++;
    }
  }
  EXPECT_GT(flipped, 0);
  EXPECT_GT(kept, 0);
  Dataset no_mask = d;
  no_mask.samples[0].mask_path.clear();
  EXPECT_THROW(DataLoader(no_mask, cfg, w), Error);
}

TEST(Loader, WeightedAndOversampledEpochsAreBalanced) {
  TempDir dir;
  const Dataset d = make_dataset(dir, 2);  // 2 neg, 5 pos
  Warnings w;
  LoaderConfig cfg = base_config();
  cfg.sampling = Sampling::oversample;
  DataLoader over(d, cfg, w);
  std::map<int64_t, int> per_class;
  for (size_t i : over.epoch_order(0)) ++per_class[d.samples[i].label];
  EXPECT_EQ(per_class[0], 5);
  EXPECT_EQ(per_class[1], 5);
  EXPECT_EQ(over.batches_per_epoch(), 3);
  cfg.sampling = Sampling::weighted;
  DataLoader weighted(d, cfg, w);
  per_class.clear();
  for (int64_t e = 0; e < 300; ++e)
    for (size_t i : weighted.epoch_order(e)) ++per_class[d.samples[i].label];
  EXPECT_NEAR(per_class[0] / 2100.0, 0.5, 0.05);
  EXPECT_THROW(parse_sampling("random"), Error);
}

}  // namespace
}  // namespace scalpel::data
