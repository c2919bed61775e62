#include <gtest/gtest.h>

#include <map>
#include <set>

#include "data/split.h"
#include "data_test_util.h"
#include "tensor/error.h"

namespace scalpel::data {
namespace {

// A synthetic dataset: `per_class[c]` samples of class c; with `group_size` > 1, consecutive
// samples of a class share a group id.
Dataset synthetic(const std::vector<int>& per_class, int group_size) {
  Dataset d;
  d.root = "synthetic";
  for (size_t c = 0; c < per_class.size(); ++c) {
    d.classes.push_back("class" + std::to_string(c));
    for (int i = 0; i < per_class[c]; ++i) {
      Sample s;
      s.path = "c" + std::to_string(c) + "_" + std::to_string(i) + ".png";
      s.label = static_cast<int64_t>(c);
      if (group_size > 1) s.group = "g" + std::to_string(c) + "_" + std::to_string(i / group_size);
      d.samples.push_back(s);
    }
  }
  return d;
}

std::map<std::string, std::vector<int>> counts(const Dataset& d) {
  std::map<std::string, std::vector<int>> out;
  for (const Sample& s : d.samples) {
    auto& v = out[s.split];
    v.resize(d.classes.size());
    ++v[s.label];
  }
  return out;
}

TEST(Split, StratifiedCountsFollowTheRatios) {
  Dataset d = synthetic({100, 40, 20}, 1);
  assign_splits(d, {0.7, 0.15, 0.15}, 1);
  auto c = counts(d);
  EXPECT_EQ(c["train"], (std::vector<int>{70, 28, 14}));
  EXPECT_EQ(c["val"], (std::vector<int>{15, 6, 3}));
  EXPECT_EQ(c["test"], (std::vector<int>{15, 6, 3}));
}

TEST(Split, SeededAndDifferentSeedsDiffer) {
  Dataset a = synthetic({50, 50}, 1), b = a, c = a;
  assign_splits(a, {0.6, 0.2, 0.2}, 42);
  assign_splits(b, {0.6, 0.2, 0.2}, 42);
  assign_splits(c, {0.6, 0.2, 0.2}, 43);
  std::vector<std::string> sa, sb, sc;
  for (size_t i = 0; i < a.samples.size(); ++i) {
    sa.push_back(a.samples[i].split);
    sb.push_back(b.samples[i].split);
    sc.push_back(c.samples[i].split);
  }
  EXPECT_EQ(sa, sb);
  EXPECT_NE(sa, sc);
}

TEST(Split, GroupsNeverCrossSplits) {
  // Groups of 1..4 samples (HAM10000 lesions have 1 to 6 images).
  Dataset d;
  d.root = "grouped";
  d.classes = {"nv", "mel", "bkl"};
  int id = 0;
  for (int g = 0; g < 150; ++g) {
    const int size = 1 + (g * 7) % 4;
    for (int k = 0; k < size; ++k) {
      Sample s;
      s.path = "img" + std::to_string(id++);
      s.label = g % 5 == 0 ? 1 : (g % 5 == 1 ? 2 : 0);
      s.group = "lesion" + std::to_string(g);
      d.samples.push_back(s);
    }
  }
  for (uint64_t seed = 0; seed < 5; ++seed) {
    assign_splits(d, {0.7, 0.15, 0.15}, seed);
    std::map<std::string, std::set<std::string>> splits_of_group;
    for (const Sample& s : d.samples) splits_of_group[s.group].insert(s.split);
    for (const auto& [group, splits] : splits_of_group) EXPECT_EQ(splits.size(), 1u) << group;
    // Stratification still holds approximately per class.
    auto c = counts(d);
    const auto total = d.class_counts();
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_NEAR(c["train"][k], 0.7 * total[k], 5) << k;
      EXPECT_NEAR(c["val"][k], 0.15 * total[k], 4) << k;
      EXPECT_GT(c["test"][k], 0) << k;
    }
  }
}

TEST(Split, EmptySplitIsAnError) {
  Dataset d = synthetic({1, 1}, 1);
  EXPECT_THROW(assign_splits(d, {0.7, 0.15, 0.15}, 0), Error);
  Dataset two = synthetic({3, 3}, 1);
  EXPECT_NO_THROW(assign_splits(two, {0.5, 0.5, 0.0}, 0));
  for (const Sample& s : two.samples) EXPECT_NE(s.split, "test");
}

TEST(Split, ParseRatios) {
  SplitRatios r = parse_split_ratios("70/15/15");
  EXPECT_NEAR(r.train, 0.7, 1e-12);
  EXPECT_NEAR(r.test, 0.15, 1e-12);
  r = parse_split_ratios("0.8,0.2");
  EXPECT_NEAR(r.val, 0.2, 1e-12);
  EXPECT_EQ(r.test, 0);
  EXPECT_THROW(parse_split_ratios("70"), Error);
  EXPECT_THROW(parse_split_ratios("a/b/c"), Error);
  EXPECT_THROW(parse_split_ratios("0/50/50"), Error);
}

TEST(Split, ManifestRoundTrip) {
  testing::TempDir dir;
  Dataset d = synthetic({8, 8}, 2);  // 4 groups per class: 2 train, 1 val, 1 test
  for (Sample& s : d.samples) {
    s.path = dir / s.path;
    testing::write_image(s.path, testing::pattern_image(4, 4, 1, 1));
    s.metadata["age"] = "50";
  }
  d.samples[1].metadata["site"] = "back, upper";
  assign_splits(d, {0.5, 0.25, 0.25}, 3);
  write_split_manifest(dir / "split.csv", d);
  std::filesystem::remove(d.samples[15].path);  // a file that disappeared since
  Warnings w;
  const Dataset back = read_split_manifest(dir / "split.csv", w);
  EXPECT_EQ(back.classes, d.classes);
  ASSERT_EQ(back.samples.size(), 15u);
  EXPECT_EQ(w.count(), 1u);
  for (size_t i = 0; i < 15; ++i) {
    EXPECT_EQ(back.samples[i].path, std::filesystem::absolute(d.samples[i].path).string());
    EXPECT_EQ(back.samples[i].label, d.samples[i].label);
    EXPECT_EQ(back.samples[i].split, d.samples[i].split);
    EXPECT_EQ(back.samples[i].group, d.samples[i].group);
    EXPECT_EQ(back.samples[i].metadata, d.samples[i].metadata);
  }
  // Label 0 named "a" on one row and "b" on the next.
  testing::write_text(dir / "bad.csv", "path,label,class,split\n" + (dir / "x.png") + ",0,a,train\n" +
                                           (dir / "y.png") + ",0,b,train\n");
  testing::write_image(dir / "x.png", testing::pattern_image(4, 4, 1, 1));
  testing::write_image(dir / "y.png", testing::pattern_image(4, 4, 1, 1));
  EXPECT_THROW(read_split_manifest(dir / "bad.csv", w), Error);
}

// eval's use of a run's manifest: the split of each file, by path; files it does not name get
// no split; a class that differs means other data.
TEST(Split, ApplyManifestMatchesFilesByPath) {
  testing::TempDir dir;
  Dataset d = synthetic({4, 4}, 1);
  for (Sample& s : d.samples) {
    s.path = dir / s.path;
    testing::write_image(s.path, testing::pattern_image(4, 4, 1, 1));
  }
  assign_splits(d, {0.5, 0.25, 0.25}, 1);
  write_split_manifest(dir / "split.csv", d);
  Warnings w;
  const Dataset manifest = read_split_manifest(dir / "split.csv", w);

  Dataset again = d;
  for (Sample& s : again.samples) s.split.clear();
  again.samples[2].path = dir / "other.png";  // not in the manifest
  EXPECT_EQ(apply_split_manifest(again, manifest, "split.csv"), 1u);
  for (size_t i = 0; i < d.samples.size(); ++i) EXPECT_EQ(again.samples[i].split, i == 2 ? "" : d.samples[i].split);

  Dataset renamed = d;
  renamed.classes = {"class1", "class0"};
  try {
    apply_split_manifest(renamed, manifest, "split.csv");
    ADD_FAILURE() << "no Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "split manifest 'split.csv' records '" + d.samples[0].path +
                                         "' as class 'class0' but the data has it as 'class1'");
  }
}

TEST(Split, ContentFingerprintFollowsBytesAndLabelsNotPaths) {
  testing::TempDir a, b;
  Dataset da = synthetic({2, 2}, 1), db = synthetic({2, 2}, 1);
  for (size_t i = 0; i < da.samples.size(); ++i) {
    da.samples[i].path = a / da.samples[i].path;
    db.samples[i].path = b / ("renamed_" + std::to_string(i) + ".png");
    testing::write_image(da.samples[i].path, testing::pattern_image(4, 4, 1, static_cast<uint32_t>(i)));
    testing::write_image(db.samples[i].path, testing::pattern_image(4, 4, 1, static_cast<uint32_t>(i)));
  }
  const std::string fa = content_fingerprint(da);
  EXPECT_EQ(fa.size(), 8u + 16u);
  EXPECT_EQ(fa, content_fingerprint(db));
  db.samples[0].label = 1;  // a label changed
  EXPECT_NE(fa, content_fingerprint(db));
  db.samples[0].label = 0;
  testing::write_image(db.samples[3].path, testing::pattern_image(4, 4, 1, 99));  // an image changed
  EXPECT_NE(fa, content_fingerprint(db));
}

}  // namespace
}  // namespace scalpel::data
