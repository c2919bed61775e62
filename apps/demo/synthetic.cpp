#include "apps/demo/synthetic.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <numbers>

#include <fmt/format.h>

#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::demo {
namespace {

using Rgb = std::array<double, 3>;

struct Rng {  // small deterministic helper over Generator
  Generator gen;
  explicit Rng(uint64_t seed) : gen(seed) {}
  double uniform(double lo, double hi) {
    Tensor t = rand({1}, gen, DType::F64);
    return lo + (hi - lo) * t.item();
  }
};

void blend(data::Image& img, int x, int y, const Rgb& c, double alpha) {
  if (x < 0 || y < 0 || x >= img.width || y >= img.height || alpha <= 0) return;
  alpha = std::min(alpha, 1.0);
  uint8_t* p = &img.pixels[(static_cast<size_t>(y) * img.width + x) * 3];
  for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::clamp(p[k] * (1 - alpha) + c[k] * alpha, 0.0, 255.0));
}

}  // namespace

data::Image synthetic_lesion(int64_t label, int size, uint64_t seed, int64_t index) {
  SCALPEL_CHECK(label == 0 || label == 1, "synthetic_lesion: label must be 0 or 1, got {}", label);
  Rng r(seed * 1000003ULL + static_cast<uint64_t>(label) * 7919ULL + static_cast<uint64_t>(index) * 104729ULL + 1);
  data::Image img;
  img.width = img.height = size;
  img.channels = 3;
  img.pixels.resize(static_cast<size_t>(size) * size * 3);
  // Skin: a tone with a lighting gradient and a little noise.
  const Rgb skin{r.uniform(200, 240), r.uniform(150, 190), r.uniform(120, 160)};
  const double gx = r.uniform(-0.15, 0.15), gy = r.uniform(-0.15, 0.15);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double shade = 1 + gx * (x / double(size) - 0.5) + gy * (y / double(size) - 0.5);
      for (int k = 0; k < 3; ++k) {
        img.pixels[(static_cast<size_t>(y) * size + x) * 3 + k] =
            static_cast<uint8_t>(std::clamp(skin[k] * shade + r.uniform(-6, 6), 0.0, 255.0));
      }
    }
  }
  // Lesion outline: radius(theta) = R (1 + harmonics). Benign: a mild ellipse; malignant:
  // strong low harmonics (asymmetry) and high ones (irregular, notched border).
  const bool malignant = label == 1;
  const double cx = size * r.uniform(0.42, 0.58), cy = size * r.uniform(0.42, 0.58);
  const double radius = size * r.uniform(0.2, 0.3);
  std::array<double, 8> amp{}, phase{};
  for (size_t h = 0; h < amp.size(); ++h) {
    const int harmonic = static_cast<int>(h) + 1;
    const double scale = malignant ? (harmonic <= 3 ? 0.18 : 0.07) : (harmonic == 2 ? 0.06 : 0.01);
    amp[h] = r.uniform(0.3, 1.0) * scale;
    phase[h] = r.uniform(0, 2 * std::numbers::pi);
  }
  const Rgb brown{r.uniform(90, 130), r.uniform(55, 80), r.uniform(30, 55)};
  const std::array<Rgb, 4> patches{Rgb{40, 25, 20}, Rgb{15, 15, 20}, Rgb{95, 105, 135}, Rgb{160, 60, 55}};
  std::array<std::array<double, 3>, 3> blobs{};  // colour patch centres (x, y) and colour index
  for (auto& b : blobs) b = {cx + r.uniform(-0.6, 0.6) * radius, cy + r.uniform(-0.6, 0.6) * radius, r.uniform(0, 4)};
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) {
      const double dx = x - cx, dy = y - cy, theta = std::atan2(dy, dx);
      double rt = 1;
      for (size_t h = 0; h < amp.size(); ++h) rt += amp[h] * std::sin((h + 1) * theta + phase[h]);
      const double edge = radius * rt - std::hypot(dx, dy);  // > 0 inside
      if (edge <= -1) continue;
      Rgb c = brown;
      if (malignant) {
        for (const auto& b : blobs) {
          const double d = std::hypot(x - b[0], y - b[1]) / (0.45 * radius);
          if (d < 1) {
            const Rgb& pc = patches[std::min<size_t>(3, static_cast<size_t>(b[2]))];
            for (int k = 0; k < 3; ++k) c[k] = c[k] * d + pc[k] * (1 - d);
          }
        }
      }
      blend(img, x, y, c, 0.9 * std::min(1.0, edge + 1));
    }
  }
  // A few hairs, in both classes, so that dark thin strokes do not decide the class.
  const int hairs = static_cast<int>(r.uniform(0, 4));
  for (int h = 0; h < hairs; ++h) {
    double x = r.uniform(0, size), y = r.uniform(0, size);
    const double angle = r.uniform(0, 2 * std::numbers::pi);
    for (int t = 0; t < size; ++t) {
      blend(img, static_cast<int>(x), static_cast<int>(y), Rgb{40, 30, 25}, 0.7);
      x += std::cos(angle);
      y += std::sin(angle);
    }
  }
  return img;
}

void write_synthetic_dataset(const std::string& root, int64_t per_class, int size, uint64_t seed) {
  SCALPEL_CHECK(per_class >= 7, "synthetic data: need at least 7 images per class, got {}", per_class);
  const int64_t n_train = per_class * 70 / 100, n_val = per_class * 15 / 100;
  for (int64_t label = 0; label < 2; ++label) {
    for (int64_t i = 0; i < per_class; ++i) {
      const char* split = i < n_train ? "train" : i < n_train + n_val ? "val" : "test";
      const std::string dir = fmt::format("{}/{}/{}", root, split, kSyntheticClasses[label]);
      std::filesystem::create_directories(dir);
      data::save_image(fmt::format("{}/{}_{:04d}.png", dir, kSyntheticClasses[label], i),
                       synthetic_lesion(label, size, seed, i));
    }
  }
}

}  // namespace scalpel::demo
