#include "data/stats.h"

#include <algorithm>
#include <set>

#include <fmt/format.h>

namespace scalpel::data {

DataStats compute_stats(const Dataset& dataset, const StatsOptions& options, Warnings& warnings) {
  DataStats st;
  st.root = dataset.root;
  st.layout = dataset.layout;
  st.samples = static_cast<int64_t>(dataset.samples.size());
  std::set<std::string> groups, splits;
  for (const Sample& s : dataset.samples) {
    if (!s.group.empty()) groups.insert(s.group);
    if (!s.mask_path.empty()) ++st.with_masks;
    splits.insert(s.split);
    st.sample_paths.push_back(s.path);
  }
  st.groups = static_cast<int64_t>(groups.size());
  for (const char* name : {"", "train", "val", "test"})
    if (splits.count(name)) st.splits.push_back(name);

  std::vector<bool> ok;
  const std::vector<ImageSummary> sums = summarize_dataset(dataset, warnings, ok);
  st.classes.resize(dataset.classes.size());
  for (size_t c = 0; c < dataset.classes.size(); ++c) st.classes[c].name = dataset.classes[c];
  std::vector<int64_t> decoded(dataset.classes.size(), 0);
  bool first = true;
  for (size_t i = 0; i < sums.size(); ++i) {
    const Sample& s = dataset.samples[i];
    if (s.label >= 0 && s.label < static_cast<int64_t>(st.classes.size())) {
      ClassStats& cs = st.classes[s.label];
      ++cs.count;
      ++cs.count_per_split[s.split];
      if (ok[i]) {
        cs.mean_intensity += sums[i].mean;
        cs.mean_contrast += sums[i].contrast;
        ++decoded[s.label];
      }
    }
    if (!ok[i]) {
      ++st.unreadable;
      continue;
    }
    const ImageSummary& m = sums[i];
    ++st.sizes[{m.width, m.height}];
    ++st.channels[m.channels];
    st.min_width = first ? m.width : std::min(st.min_width, m.width);
    st.max_width = first ? m.width : std::max(st.max_width, m.width);
    st.min_height = first ? m.height : std::min(st.min_height, m.height);
    st.max_height = first ? m.height : std::max(st.max_height, m.height);
    first = false;
    st.blurry.emplace_back(i, m.blur);
  }
  for (size_t c = 0; c < st.classes.size(); ++c)
    if (decoded[c] > 0) {
      st.classes[c].mean_intensity /= static_cast<double>(decoded[c]);
      st.classes[c].mean_contrast /= static_cast<double>(decoded[c]);
    }
  std::sort(st.blurry.begin(), st.blurry.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  size_t keep = std::min<size_t>(st.blurry.size(), std::max(options.blurriest, 0));
  while (keep < st.blurry.size() && st.blurry[keep].second < options.blur_threshold) ++keep;
  st.blurry.resize(keep);
  if (options.duplicates) {
    st.duplicates = find_duplicates(dataset, sums, ok, options.duplicate);
    st.cross_split_duplicates =
        std::count_if(st.duplicates.begin(), st.duplicates.end(), [](const DuplicatePair& p) { return p.cross_split; });
  }
  return st;
}

std::string format_stats(const DataStats& st) {
  std::string out;
  auto line = [&](const std::string& s) { out += s + "\n"; };
  line(fmt::format("dataset: {} (layout {})", st.root, st.layout));
  line(fmt::format("samples: {}  unreadable: {}  with masks: {}  groups: {}", st.samples, st.unreadable,
                   st.with_masks, st.groups));
  line("");
  std::string head = fmt::format("{:<24}", "class");
  for (const auto& sp : st.splits) head += fmt::format(" {:>8}", sp.empty() ? "count" : sp);
  if (st.splits.size() > 1) head += fmt::format(" {:>8}", "total");
  head += fmt::format(" {:>8} {:>10} {:>9}", "share", "intensity", "contrast");
  line(head);
  for (const ClassStats& c : st.classes) {
    std::string row = fmt::format("{:<24}", c.name);
    for (const auto& sp : st.splits) {
      auto it = c.count_per_split.find(sp);
      row += fmt::format(" {:>8}", it == c.count_per_split.end() ? 0 : it->second);
    }
    if (st.splits.size() > 1) row += fmt::format(" {:>8}", c.count);
    const double share = st.samples ? 100.0 * c.count / st.samples : 0.0;
    row += fmt::format(" {:>7.1f}% {:>10.1f} {:>9.1f}", share, c.mean_intensity, c.mean_contrast);
    line(row);
  }
  line("");
  line(fmt::format("image sizes: width {}..{}, height {}..{}", st.min_width, st.max_width, st.min_height,
                   st.max_height));
  std::vector<std::pair<std::pair<int, int>, int64_t>> sizes(st.sizes.begin(), st.sizes.end());
  std::stable_sort(sizes.begin(), sizes.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  for (size_t i = 0; i < sizes.size() && i < 5; ++i)
    line(fmt::format("  {}x{}: {}", sizes[i].first.first, sizes[i].first.second, sizes[i].second));
  if (sizes.size() > 5) line(fmt::format("  ... {} other sizes", sizes.size() - 5));
  std::string ch = "channels:";
  for (const auto& [c, n] : st.channels) ch += fmt::format(" {}ch={}", c, n);
  line(ch);
  line("");
  line(fmt::format("duplicates: {} pairs ({} across splits)", st.duplicates.size(), st.cross_split_duplicates));
  for (size_t i = 0; i < st.duplicates.size() && i < 20; ++i) {
    const DuplicatePair& p = st.duplicates[i];
    line(fmt::format("  {}{} ~ {} (hamming {}, ssim {:.3f})", p.cross_split ? "[leak] " : "",
                     st.sample_paths[p.a], st.sample_paths[p.b], p.distance, p.ssim));
  }
  if (st.duplicates.size() > 20) line(fmt::format("  ... {} more", st.duplicates.size() - 20));
  line("blurriest images (variance of Laplacian):");
  for (const auto& [i, score] : st.blurry) line(fmt::format("  {:>10.1f}  {}", score, st.sample_paths[i]));
  return out;
}

}  // namespace scalpel::data
