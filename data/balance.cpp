#include "data/balance.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <sstream>

#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::data {

std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts) {
  const int64_t n = std::accumulate(counts.begin(), counts.end(), int64_t{0});
  const auto k = std::count_if(counts.begin(), counts.end(), [](int64_t c) { return c > 0; });
  std::vector<double> w(counts.size(), 0.0);
  for (size_t c = 0; c < counts.size(); ++c)
    if (counts[c] > 0) w[c] = static_cast<double>(n) / (static_cast<double>(k) * counts[c]);
  return w;
}

std::vector<double> parse_class_weights(const std::string& spec, const std::vector<std::string>& classes,
                                        const std::vector<int64_t>& counts) {
  if (spec == "balanced") return balanced_class_weights(counts);
  std::vector<double> w(classes.size(), 1.0);
  if (spec == "none" || spec.empty()) return w;
  std::stringstream ss(spec);
  for (std::string item; std::getline(ss, item, ',');) {
    const auto eq = item.find('=');
    SCALPEL_CHECK(eq != std::string::npos, "--class-weights: '{}' is not CLASS=WEIGHT (or use 'balanced')", item);
    const std::string name = item.substr(0, eq), value = item.substr(eq + 1);
    auto it = std::find(classes.begin(), classes.end(), name);
    SCALPEL_CHECK(it != classes.end(), "--class-weights: unknown class '{}' (classes: {})", name,
                  fmt::join(classes, ", "));
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(value, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SCALPEL_CHECK(used == value.size() && used > 0 && v >= 0, "--class-weights: weight '{}' for '{}' is not a non-negative number",
                  value, name);
    w[it - classes.begin()] = v;
  }
  return w;
}

std::vector<size_t> weighted_sample(const std::vector<double>& weights, size_t n, Generator& gen) {
  std::vector<double> cumulative(weights.size());
  double total = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    SCALPEL_CHECK(weights[i] >= 0, "weighted_sample: weight {} of sample {} is negative", weights[i], i);
    cumulative[i] = total += weights[i];
  }
  SCALPEL_CHECK(total > 0, "weighted_sample: all {} weights are zero", weights.size());
  std::vector<size_t> out(n);
  for (size_t k = 0; k < n; ++k) {
    const double u = gen.uniform() * total;
    auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
    out[k] = std::min(static_cast<size_t>(it - cumulative.begin()), weights.size() - 1);
  }
  return out;
}

std::vector<double> inverse_frequency_weights(const std::vector<int64_t>& labels) {
  std::map<int64_t, int64_t> counts;
  for (int64_t l : labels) ++counts[l];
  std::vector<double> w(labels.size());
  for (size_t i = 0; i < labels.size(); ++i) w[i] = 1.0 / static_cast<double>(counts[labels[i]]);
  return w;
}

std::vector<size_t> oversample(const std::vector<int64_t>& labels, Generator& gen) {
  std::map<int64_t, std::vector<size_t>> by_class;
  for (size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(i);
  size_t largest = 0;
  for (const auto& [label, members] : by_class) largest = std::max(largest, members.size());
  std::vector<size_t> out;
  for (auto& [label, members] : by_class) {
    const size_t m = members.size();
    for (size_t k = 0; k < largest / m; ++k) out.insert(out.end(), members.begin(), members.end());
    // The remainder: a partial Fisher-Yates shuffle picks `largest % m` distinct members.
    std::vector<size_t> pool = members;
    for (size_t k = 0; k < largest % m; ++k) {
      std::swap(pool[k], pool[k + gen.below(m - k)]);
      out.push_back(pool[k]);
    }
  }
  return out;
}

}  // namespace scalpel::data
