#pragma once
// MedMNIST v2 .npz files (Yang et al., Scientific Data 2023), e.g. pneumoniamnist.npz: arrays
// {train,val,test}_images, uint8 (N, H, W) gray or (N, H, W, 3) RGB, and {train,val,test}_labels,
// integer (N, 1) class indices. The official splits are kept as Sample::split.
//
// Samples have no file of their own: each is named "<npz path>:<split>/<index>"
// (".../pneumoniamnist.npz:test/17"), and load_image() / probe_image() (image.h) resolve such
// names through a per-process cache of the decoded archive, so the loader, eval and reports treat
// them like image files.
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"

namespace scalpel::data {

// Whether `path` names a regular file with the extension .npz (case-insensitive).
bool is_npz_file(const std::string& path);

// Loads the MedMNIST layout. Class names are the MedMNIST names for the files this knows by
// name (pneumoniamnist: normal, pneumonia), else "0".."K-1" with K = the largest label + 1.
// Error naming the file and array for a missing array, wrong shapes or dtypes, negative labels,
// and for multi-label files (labels (N, L) with L > 1, e.g. ChestMNIST).
Dataset load_medmnist(const std::string& npz_path);

// True for a sample name "<file>.npz:<split>/<index>".
bool is_npz_image_name(const std::string& name);
// The image a sample name refers to; Error naming it when the file, split or index is absent.
Image load_npz_image(const std::string& name);

// Renames `dataset`'s classes from a comma-separated list (--class-names); Error when the count
// differs from the dataset's or a name is empty or repeated.
void rename_classes(Dataset& dataset, const std::string& comma_separated);

}  // namespace scalpel::data
