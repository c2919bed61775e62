#pragma once
// Data cleaning: perceptual hashes for duplicate and near-duplicate images (confirmed by
// SSIM), duplicate leakage across splits, and a blur score.
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/image.h"

namespace scalpel::data {

// All hashes and scores work on the grayscale (luma) image.
// dHash: area-resize to 9x8, bit (y * 8 + x) = pixel(x, y) < pixel(x + 1, y).
uint64_t dhash(const Image& image);
// pHash: area-resize to 32x32, 2-D DCT-II, the 8x8 lowest frequencies; bit k = coefficient
// k > median of the 63 coefficients without the DC term (bit 0, the DC, is always 0).
uint64_t phash(const Image& image);
int hamming_distance(uint64_t a, uint64_t b);
// Mean SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, L 255) of
// two one-channel images of equal size; "valid" windows only, so sides must be >= 11.
double ssim(const Image& a, const Image& b);
// Variance of the 3x3 Laplacian [0 1 0; 1 -4 1; 0 1 0] over the interior of the gray image
// (OpenCV's blur heuristic: low = blurry). Depends on resolution; compare like with like.
double blur_score(const Image& image);

// What the cleaning passes keep about one image (a 64x64 gray thumbnail for SSIM).
struct ImageSummary {
  int width = 0, height = 0, channels = 0;
  double mean = 0;      // mean gray level (0..255)
  double contrast = 0;  // standard deviation of the gray levels
  double blur = 0;      // blur_score at full resolution
  uint64_t dhash = 0, phash = 0;
  Image thumb;
};
ImageSummary summarize_image(const Image& image);
// Decodes and summarizes every sample (in parallel); an unreadable file gets a warning and
// ok[i] = false.
std::vector<ImageSummary> summarize_dataset(const Dataset& dataset, Warnings& warnings,
                                            std::vector<bool>& ok);

// Indices of the usable samples whose blur score is below `threshold`, for the optional
// "drop blurry images" filter (use Dataset::subset with the complement).
std::vector<size_t> blurry_samples(const std::vector<ImageSummary>& summaries, const std::vector<bool>& ok,
                                   double threshold);

struct DuplicateOptions {
  bool use_phash = true;   // else dHash
  int max_distance = 6;    // Hamming distance for a candidate pair
  double min_ssim = 0.90;  // confirmation on the 64x64 thumbnails
};
struct DuplicatePair {
  size_t a = 0, b = 0;  // dataset indices, a < b
  int distance = 0;
  double ssim = 0;
  bool cross_split = false;  // both have a split and they differ (leakage)
};
// Every pair of usable samples whose hashes are within max_distance and whose thumbnails
// reach min_ssim; O(n^2) hash comparisons (64-bit popcounts), SSIM only on candidates.
std::vector<DuplicatePair> find_duplicates(const Dataset& dataset, const std::vector<ImageSummary>& summaries,
                                           const std::vector<bool>& ok, const DuplicateOptions& options = {});
// Samples to drop so that no duplicate cluster (connected pairs) keeps more than one member:
// each cluster keeps a train member when it has one, else its smallest index. Sorted.
std::vector<size_t> duplicates_to_drop(const Dataset& dataset, const std::vector<DuplicatePair>& pairs);

}  // namespace scalpel::data
