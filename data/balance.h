#pragma once
// Class imbalance: loss weights per class, and sampling plans that over-represent minority
// classes. Use them on the training split only; validation and test keep their natural mix.
#include <cstdint>
#include <string>
#include <vector>

namespace scalpel {
class Generator;
}

namespace scalpel::data {

// sklearn's "balanced" weights n / (k * n_c), k = number of classes with samples; a class
// without samples gets 0.
std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts);
// `spec`: "none" (all 1), "balanced", or explicit "COVID=3,Normal=1" (unlisted classes 1).
// Error names an unknown class or a bad number.
std::vector<double> parse_class_weights(const std::string& spec, const std::vector<std::string>& classes,
                                        const std::vector<int64_t>& counts);

// `n` indices drawn with replacement, index i with probability weights[i] / sum(weights).
std::vector<size_t> weighted_sample(const std::vector<double>& weights, size_t n, Generator& gen);
// Per-sample weights 1 / n_label, so that a weighted sample is class-balanced in expectation.
std::vector<double> inverse_frequency_weights(const std::vector<int64_t>& labels);
// Oversampling: every sample once, plus random repeats of each smaller class until every
// class has as many entries as the largest (whole extra copies first, then a random subset
// without replacement). Returned in class order; the loader shuffles.
std::vector<size_t> oversample(const std::vector<int64_t>& labels, Generator& gen);

}  // namespace scalpel::data
