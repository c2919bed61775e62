#pragma once
// Train/val/test splits, made before any augmentation or oversampling, and the split
// manifest (CSV) that training and evaluation reuse.
#include <cstdint>
#include <string>

#include "data/dataset.h"

namespace scalpel::data {

struct SplitRatios {
  double train = 0.7, val = 0.15, test = 0.15;
};
// "70/15/15", "0.8,0.1,0.1" or "80/20" (no test split); normalized to sum 1.
SplitRatios parse_split_ratios(const std::string& text);

// Sets Sample::split of every sample to "train", "val" or "test".
// Stratified: each class is split by the ratios on its own. Grouped: samples sharing a
// non-empty group id (patient, lesion) always land in the same split; a group counts toward
// its most frequent class. Per class, groups are shuffled with `seed`, ordered by size
// (largest first, so big groups cannot overshoot at the end) and each goes to the split
// furthest below its target count. Same dataset, ratios and seed -> same split.
// Throws Error when a split with a positive ratio ends up empty (too few samples or groups).
void assign_splits(Dataset& dataset, const SplitRatios& ratios, uint64_t seed);

// Manifest columns: path,label,class,split,group,mask, then one "meta:<key>" column per
// metadata key. Paths are written absolute so the manifest works from any directory.
void write_split_manifest(const std::string& path, const Dataset& dataset);
// Reads a manifest back (classes in label order). Rows naming a missing file are left out
// with a warning; inconsistent label/class pairs are an Error.
Dataset read_split_manifest(const std::string& path, Warnings& warnings);

// Gives every sample of `dataset` the split that `manifest` (read from `manifest_path`) records
// for the same file (paths compared absolute and normalized); samples it does not name get the
// split "" and are counted in the result. Error naming the manifest when it records another
// class for one of them (not the data it was written for).
size_t apply_split_manifest(Dataset& dataset, const Dataset& manifest, const std::string& manifest_path);

}  // namespace scalpel::data
