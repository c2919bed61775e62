#pragma once
// A tiny segmentation dataset for tests, in the image_mask_pairs layout of data/dataset.h:
//   root/images/<i>.png  RGB, a bright disk on a dark noisy background
//   root/masks/<i>.png   gray, 255 on the disk and 0 elsewhere
// Disk centres and radii vary per image; deterministic in `seed`.
#include <cstdint>
#include <filesystem>
#include <string>

#include "data/image.h"

namespace scalpel::test {

inline void write_disk_dataset(const std::filesystem::path& root, int count, int size, uint32_t seed) {
  std::filesystem::create_directories(root / "images");
  std::filesystem::create_directories(root / "masks");
  uint32_t state = seed * 2654435761u + 1;
  auto next = [&state](int below) {  // LCG draw in [0, below)
    state = state * 1664525u + 1013904223u;
    return static_cast<int>((state >> 8) % static_cast<uint32_t>(below));
  };
  for (int i = 0; i < count; ++i) {
    const int cx = size / 4 + next(size / 2), cy = size / 4 + next(size / 2);
    const int r = size / 8 + next(size / 8 + 1);
    data::Image image(size, size, 3), mask(size, size, 1);
    for (int y = 0; y < size; ++y) {
      for (int x = 0; x < size; ++x) {
        const bool inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) <= r * r;
        mask.at(y, x) = inside ? 255 : 0;
        for (int c = 0; c < 3; ++c) image.at(y, x, c) = static_cast<uint8_t>((inside ? 150 : 40) + next(60));
      }
    }
    const std::string name = std::to_string(i) + ".png";
    data::save_image((root / "images" / name).string(), image);
    data::save_image((root / "masks" / name).string(), mask);
  }
}

}  // namespace scalpel::test
