#pragma once
// `scalpel data stats DIR`: the exploratory analysis of a dataset as a report struct and a
// printer: counts per split and class, image sizes, intensity and contrast per class,
// duplicates (within and across splits) and the blurriest images.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "data/dataset.h"
#include "data/quality.h"

namespace scalpel::data {

struct StatsOptions {
  bool duplicates = true;
  DuplicateOptions duplicate;
  double blur_threshold = 0;  // list images with blur score below it (0: none)
  int blurriest = 5;          // always list this many lowest blur scores
};

struct ClassStats {
  std::string name;
  std::map<std::string, int64_t> count_per_split;  // split ("" when none) -> samples
  int64_t count = 0;
  double mean_intensity = 0;  // average over images of the mean gray level
  double mean_contrast = 0;   // average over images of the gray-level standard deviation
};

struct DataStats {
  std::string root, layout;
  int64_t samples = 0, unreadable = 0, with_masks = 0, groups = 0;
  std::vector<std::string> splits;  // splits present, in train/val/test order ("" when none)
  std::vector<ClassStats> classes;
  std::map<std::pair<int, int>, int64_t> sizes;  // (width, height) -> images
  std::map<int, int64_t> channels;               // channel count -> images
  int min_width = 0, max_width = 0, min_height = 0, max_height = 0;
  std::vector<DuplicatePair> duplicates;
  int64_t cross_split_duplicates = 0;
  std::vector<std::pair<size_t, double>> blurry;  // (sample, score), lowest first
  std::vector<std::string> sample_paths;          // to name the samples above
};

DataStats compute_stats(const Dataset& dataset, const StatsOptions& options, Warnings& warnings);
// Human-readable report (tables of counts, sizes, intensity, duplicates, blur).
std::string format_stats(const DataStats& stats);

}  // namespace scalpel::data
