#pragma once
// Helpers for the data tests: a temporary folder removed at the end, and synthetic images.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "data/image.h"

namespace scalpel::data::testing {

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = std::filesystem::temp_directory_path() /
            ("scalpel_data_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  std::string operator/(const std::string& rel) const { return (path_ / rel).string(); }
  std::string str() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

// A w x h image with c channels whose content depends on `seed` (smooth pattern + hash noise),
// so images with different seeds are far apart for perceptual hashes.
inline Image pattern_image(int w, int h, int c, uint32_t seed) {
  Image im(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int k = 0; k < c; ++k) {
        uint32_t v = (x * 73856093u) ^ (y * 19349663u) ^ (k * 83492791u) ^ (seed * 2654435761u);
        v ^= v >> 13;
        v *= 0x5bd1e995u;
        v ^= v >> 15;
        const int smooth = ((x * (seed % 7 + 1) + y * (seed % 5 + 2)) * 8 + seed * 37) % 256;
        im.at(y, x, k) = static_cast<uint8_t>((smooth * 3 + (v & 63)) / 4 + 20);
      }
  return im;
}

// A smooth "photograph": a gradient plus four Gaussian blobs placed by `seed`, with mild
// pixel noise. Low-frequency content like real scans, for perceptual hashing tests.
inline Image blob_image(int w, int h, int c, uint32_t seed) {
  auto rnd = [state = seed * 747796405u + 2891336453u]() mutable {
    state = state * 747796405u + 2891336453u;
    uint32_t v = ((state >> ((state >> 28) + 4)) ^ state) * 277803737u;
    return ((v >> 22) ^ v) / 4294967296.0;
  };
  double cx[4], cy[4], r[4], a[4];
  for (int k = 0; k < 4; ++k) {
    cx[k] = rnd() * w;
    cy[k] = rnd() * h;
    r[k] = (0.1 + 0.25 * rnd()) * w;
    a[k] = 60 + 100 * rnd();
  }
  const double gx = rnd() * 80, gy = rnd() * 80;
  Image im(w, h, c);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      double v = 20 + gx * x / w + gy * y / h;
      for (int k = 0; k < 4; ++k)
        v += a[k] * std::exp(-((x - cx[k]) * (x - cx[k]) + (y - cy[k]) * (y - cy[k])) / (2 * r[k] * r[k]));
      for (int ch = 0; ch < c; ++ch)
        im.at(y, x, ch) = static_cast<uint8_t>(std::clamp(v * (1.0 - 0.15 * ch) + 8 * (rnd() - 0.5), 0.0, 255.0));
    }
  return im;
}

inline void write_image(const std::string& path, const Image& image) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  save_image(path, image);
}

inline void write_text(const std::string& path, const std::string& text) {
  std::filesystem::create_directories(std::filesystem::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace scalpel::data::testing
