#include "data/quality.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>
#include <numeric>

#include "data/transforms.h"
#include "tensor/error.h"
#include "tensor/parallel.h"

namespace scalpel::data {
namespace {

Image gray(const Image& image) { return convert_channels(image, 1); }

}  // namespace

uint64_t dhash(const Image& image) {
  const Image g = resize(gray(image), 9, 8, Interp::area);
  uint64_t h = 0;
  for (int y = 0; y < 8; ++y)
    for (int x = 0; x < 8; ++x)
      if (g.at(y, x) < g.at(y, x + 1)) h |= uint64_t{1} << (y * 8 + x);
  return h;
}

uint64_t phash(const Image& image) {
  const ImageF g = resize(to_float(gray(image)), 32, 32, Interp::area);
  constexpr int N = 32;
  // DCT-II of the rows then the columns, only the 8 lowest frequencies of each.
  double cosines[8][N];
  for (int k = 0; k < 8; ++k)
    for (int n = 0; n < N; ++n) cosines[k][n] = std::cos(std::numbers::pi / N * (n + 0.5) * k);
  double rows[N][8];
  for (int y = 0; y < N; ++y)
    for (int k = 0; k < 8; ++k) {
      double acc = 0;
      for (int x = 0; x < N; ++x) acc += g.at(y, x) * cosines[k][x];
      rows[y][k] = acc;
    }
  double coef[64];
  for (int ky = 0; ky < 8; ++ky)
    for (int kx = 0; kx < 8; ++kx) {
      double acc = 0;
      for (int y = 0; y < N; ++y) acc += rows[y][kx] * cosines[ky][y];
      coef[ky * 8 + kx] = acc;
    }
  std::vector<double> ac(coef + 1, coef + 64);
  std::nth_element(ac.begin(), ac.begin() + 31, ac.end());
  const double median = ac[31];
  uint64_t h = 0;
  for (int k = 1; k < 64; ++k)
    if (coef[k] > median) h |= uint64_t{1} << k;
  return h;
}

int hamming_distance(uint64_t a, uint64_t b) { return std::popcount(a ^ b); }

double ssim(const Image& a, const Image& b) {
  SCALPEL_CHECK(a.channels == 1 && b.channels == 1 && a.width == b.width && a.height == b.height,
                "ssim: needs two one-channel images of equal size ({}x{}x{} vs {}x{}x{})", a.width, a.height,
                a.channels, b.width, b.height, b.channels);
  constexpr int R = 5;  // 11x11 window
  SCALPEL_CHECK(a.width > 2 * R && a.height > 2 * R, "ssim: images of {}x{} are smaller than the 11x11 window",
                a.width, a.height);
  double w[2 * R + 1], total = 0;
  for (int i = -R; i <= R; ++i) total += w[i + R] = std::exp(-0.5 * i * i / (1.5 * 1.5));
  for (double& v : w) v /= total;
  const double C1 = (0.01 * 255) * (0.01 * 255), C2 = (0.03 * 255) * (0.03 * 255);
  double sum = 0;
  int count = 0;
  for (int y = R; y < a.height - R; ++y)
    for (int x = R; x < a.width - R; ++x) {
      double ma = 0, mb = 0, aa = 0, bb = 0, ab = 0;
      for (int dy = -R; dy <= R; ++dy)
        for (int dx = -R; dx <= R; ++dx) {
          const double k = w[dy + R] * w[dx + R];
          const double va = a.at(y + dy, x + dx), vb = b.at(y + dy, x + dx);
          ma += k * va;
          mb += k * vb;
          aa += k * va * va;
          bb += k * vb * vb;
          ab += k * va * vb;
        }
      const double va = aa - ma * ma, vb = bb - mb * mb, cov = ab - ma * mb;
      sum += ((2 * ma * mb + C1) * (2 * cov + C2)) / ((ma * ma + mb * mb + C1) * (va + vb + C2));
      ++count;
    }
  return sum / count;
}

double blur_score(const Image& image) {
  const Image g = gray(image);
  if (g.width < 3 || g.height < 3) return 0;
  double sum = 0, sum2 = 0;
  int64_t n = 0;
  for (int y = 1; y < g.height - 1; ++y)
    for (int x = 1; x < g.width - 1; ++x) {
      const double l = static_cast<double>(g.at(y - 1, x)) + g.at(y + 1, x) + g.at(y, x - 1) + g.at(y, x + 1) -
                       4.0 * g.at(y, x);
      sum += l;
      sum2 += l * l;
      ++n;
    }
  const double mean = sum / n;
  return sum2 / n - mean * mean;
}

ImageSummary summarize_image(const Image& image) {
  ImageSummary s;
  s.width = image.width;
  s.height = image.height;
  s.channels = image.channels;
  const Image g = gray(image);
  double sum = 0, sum2 = 0;
  for (uint8_t v : g.pixels) {
    sum += v;
    sum2 += static_cast<double>(v) * v;
  }
  const double n = static_cast<double>(g.pixels.size());
  s.mean = sum / n;
  s.contrast = std::sqrt(std::max(sum2 / n - s.mean * s.mean, 0.0));
  s.blur = blur_score(g);
  s.dhash = dhash(g);
  s.phash = phash(g);
  s.thumb = resize(g, 64, 64, Interp::area);
  return s;
}

std::vector<ImageSummary> summarize_dataset(const Dataset& dataset, Warnings& warnings, std::vector<bool>& ok) {
  const auto n = static_cast<int64_t>(dataset.samples.size());
  std::vector<ImageSummary> out(n);
  std::vector<std::string> errors(n);
  // Errors are collected per sample: an exception must not leave an OpenMP region.
  parallel_for(n, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      try {
        out[i] = summarize_image(load_image(dataset.samples[i].path));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  });
  ok.assign(n, true);
  for (int64_t i = 0; i < n; ++i)
    if (!errors[i].empty()) {
      ok[i] = false;
      warnings.add(errors[i]);
    }
  return out;
}

std::vector<size_t> blurry_samples(const std::vector<ImageSummary>& summaries, const std::vector<bool>& ok,
                                   double threshold) {
  std::vector<size_t> out;
  for (size_t i = 0; i < summaries.size(); ++i)
    if (ok[i] && summaries[i].blur < threshold) out.push_back(i);
  return out;
}

std::vector<DuplicatePair> find_duplicates(const Dataset& dataset, const std::vector<ImageSummary>& summaries,
                                           const std::vector<bool>& ok, const DuplicateOptions& options) {
  const size_t n = summaries.size();
  SCALPEL_CHECK(n == dataset.samples.size() && ok.size() == n, "find_duplicates: {} summaries for {} samples",
                n, dataset.samples.size());
  std::vector<DuplicatePair> pairs;
  for (size_t a = 0; a < n; ++a) {
    if (!ok[a]) continue;
    const uint64_t ha = options.use_phash ? summaries[a].phash : summaries[a].dhash;
    for (size_t b = a + 1; b < n; ++b) {
      if (!ok[b]) continue;
      const uint64_t hb = options.use_phash ? summaries[b].phash : summaries[b].dhash;
      const int d = hamming_distance(ha, hb);
      if (d > options.max_distance) continue;
      const double s = ssim(summaries[a].thumb, summaries[b].thumb);
      if (s < options.min_ssim) continue;
      const std::string &sa = dataset.samples[a].split, &sb = dataset.samples[b].split;
      pairs.push_back({a, b, d, s, !sa.empty() && !sb.empty() && sa != sb});
    }
  }
  return pairs;
}

std::vector<size_t> duplicates_to_drop(const Dataset& dataset, const std::vector<DuplicatePair>& pairs) {
  const size_t n = dataset.samples.size();
  std::vector<size_t> parent(n);
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&](size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  for (const auto& p : pairs) parent[find(p.b)] = find(p.a);
  // The member each cluster keeps: its first train sample, else its smallest index.
  std::vector<size_t> keep(n, n);
  for (size_t i = 0; i < n; ++i) {
    size_t& k = keep[find(i)];
    if (k == n || (dataset.samples[k].split != "train" && dataset.samples[i].split == "train")) k = i;
  }
  std::vector<bool> in_pair(n, false);
  for (const auto& p : pairs) in_pair[p.a] = in_pair[p.b] = true;
  std::vector<size_t> drop;
  for (size_t i = 0; i < n; ++i)
    if (in_pair[i] && keep[find(i)] != i) drop.push_back(i);
  return drop;
}

}  // namespace scalpel::data
