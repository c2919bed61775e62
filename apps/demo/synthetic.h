#pragma once
// A procedural, dermoscopy-like data set for the demo and the tests: no download, and a
// decision a small CNN can learn from shape and colour alone (the ABCD rule of thumb).
//   benign     round or slightly elliptical, regular smooth border, one brown tone
//   malignant  asymmetric, irregular (lobulated, notched) border, several colours
//              (dark brown, black, blue-grey, reddish) in patches
// on skin-toned backgrounds with lighting gradients, noise and hairs. The images are
// SYNTHETIC: nothing here is a real lesion and nothing learned from them is medical.
#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"

namespace scalpel::demo {

inline const std::vector<std::string> kSyntheticClasses{"benign", "malignant"};

// One RGB image of class `label` (0 benign, 1 malignant), `size` x `size`; deterministic
// in (seed, label, index).
data::Image synthetic_lesion(int64_t label, int size, uint64_t seed, int64_t index);

// Writes `per_class` PNGs per class as root/<split>/<class>/<class>_<i>.png with the split
// folders train/val/test in the proportions 70/15/15 (the split_folders layout of
// data/dataset.h). Error naming the folder when it cannot be written.
void write_synthetic_dataset(const std::string& root, int64_t per_class, int size, uint64_t seed);

}  // namespace scalpel::demo
