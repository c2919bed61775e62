#pragma once
// A small ImageFolder of the demo's synthetic lesions, for tests that train through the CLI or
// the training loop (areas that link scalpel_apps).
#include <filesystem>

#include <fmt/format.h>

#include "apps/demo/synthetic.h"
#include "data/image.h"

namespace scalpel::test {

// `root`/<class>/<i>.png for the 2 synthetic classes, `per_class` images of size x size each.
inline void write_synthetic_folder(const std::filesystem::path& root, int64_t per_class, int64_t size = 32) {
  for (int64_t label = 0; label < 2; ++label) {
    const std::filesystem::path dir = root / demo::kSyntheticClasses[label];
    std::filesystem::create_directories(dir);
    for (int64_t i = 0; i < per_class; ++i)
      data::save_image((dir / fmt::format("{}.png", i)).string(), demo::synthetic_lesion(label, size, 1, i));
  }
}

}  // namespace scalpel::test
