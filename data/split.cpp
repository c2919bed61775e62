#include "data/split.h"

#include <algorithm>
#include <array>
#include <filesystem>
#include <map>
#include <numeric>
#include <set>
#include <sstream>

#include "data/csv.h"
#include "data/medmnist.h"
#include "tensor/error.h"
#include "tensor/random.h"

namespace scalpel::data {
namespace fs = std::filesystem;

SplitRatios parse_split_ratios(const std::string& text) {
  std::vector<double> parts;
  std::string cleaned = text;
  std::replace(cleaned.begin(), cleaned.end(), '/', ',');
  std::stringstream ss(cleaned);
  for (std::string item; std::getline(ss, item, ',');) {
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SCALPEL_CHECK(used == item.size() && used > 0 && v >= 0, "--split '{}': '{}' is not a non-negative number",
                  text, item);
    parts.push_back(v);
  }
  SCALPEL_CHECK(parts.size() == 2 || parts.size() == 3, "--split '{}': expected train/val[/test]", text);
  const double total = std::accumulate(parts.begin(), parts.end(), 0.0);
  SCALPEL_CHECK(total > 0 && parts[0] > 0, "--split '{}': the train ratio must be positive", text);
  return {parts[0] / total, parts[1] / total, parts.size() == 3 ? parts[2] / total : 0.0};
}

void assign_splits(Dataset& dataset, const SplitRatios& ratios, uint64_t seed) {
  static const std::array<const char*, 3> kNames = {"train", "val", "test"};
  const std::array<double, 3> r = {ratios.train, ratios.val, ratios.test};
  SCALPEL_CHECK(r[0] > 0 && r[1] >= 0 && r[2] >= 0, "split ratios must be non-negative with train > 0");
  const double total = r[0] + r[1] + r[2];
  SCALPEL_CHECK(!dataset.samples.empty(), "cannot split dataset '{}': it has no samples", dataset.root);

  // Groups: samples sharing a group id; an ungrouped sample is a group of its own.
  std::map<std::string, size_t> group_of_id;
  std::vector<std::vector<size_t>> groups;
  for (size_t i = 0; i < dataset.samples.size(); ++i) {
    const std::string& id = dataset.samples[i].group;
    if (id.empty()) {
      groups.push_back({i});
      continue;
    }
    auto [it, fresh] = group_of_id.emplace(id, groups.size());
    if (fresh) groups.emplace_back();
    groups[it->second].push_back(i);
  }
  // Majority class of each group (ties: the smaller class index).
  auto group_class = [&](const std::vector<size_t>& g) {
    std::map<int64_t, size_t> votes;
    for (size_t i : g) ++votes[dataset.samples[i].label];
    return std::max_element(votes.begin(), votes.end(), [](const auto& a, const auto& b) {
             return a.second < b.second;  // max_element keeps the first of equal counts
           })->first;
  };
  std::map<int64_t, std::vector<size_t>> groups_of_class;  // class -> group indices
  for (size_t g = 0; g < groups.size(); ++g) groups_of_class[group_class(groups[g])].push_back(g);

  Generator gen(seed);
  for (auto& [label, members] : groups_of_class) {
    for (size_t i = members.size(); i > 1; --i) std::swap(members[i - 1], members[gen.below(i)]);
    std::stable_sort(members.begin(), members.end(),
                     [&](size_t a, size_t b) { return groups[a].size() > groups[b].size(); });
    size_t n = 0;
    for (size_t g : members) n += groups[g].size();
    std::array<double, 3> deficit;
    for (int s = 0; s < 3; ++s) deficit[s] = static_cast<double>(n) * r[s] / total;
    for (size_t g : members) {
      int best = 0;
      for (int s = 1; s < 3; ++s)
        if (r[s] > 0 && deficit[s] > deficit[best]) best = s;
      deficit[best] -= static_cast<double>(groups[g].size());
      for (size_t i : groups[g]) dataset.samples[i].split = kNames[best];
    }
  }
  for (int s = 0; s < 3; ++s) {
    if (r[s] <= 0) continue;
    const bool any = std::any_of(dataset.samples.begin(), dataset.samples.end(),
                                 [&](const Sample& x) { return x.split == kNames[s]; });
    SCALPEL_CHECK(any, "split '{}' of dataset '{}' is empty: {} samples in {} groups are too few for ratios {}/{}/{}",
                  kNames[s], dataset.root, dataset.samples.size(), groups.size(), r[0] / total,
                  r[1] / total, r[2] / total);
  }
}

void write_split_manifest(const std::string& path, const Dataset& dataset) {
  std::set<std::string> keys;
  for (const Sample& s : dataset.samples)
    for (const auto& [k, v] : s.metadata) keys.insert(k);
  std::vector<std::string> header = {"path", "label", "class", "split", "group", "mask"};
  for (const auto& k : keys) header.push_back("meta:" + k);
  std::vector<std::vector<std::string>> rows;
  rows.reserve(dataset.samples.size());
  for (const Sample& s : dataset.samples) {
    const bool labelled = s.label >= 0 && s.label < static_cast<int64_t>(dataset.classes.size());
    std::vector<std::string> row = {fs::absolute(s.path).string(), std::to_string(s.label),
                                    labelled ? dataset.classes[s.label] : "", s.split, s.group,
                                    s.mask_path.empty() ? "" : fs::absolute(s.mask_path).string()};
    for (const auto& k : keys) {
      auto it = s.metadata.find(k);
      row.push_back(it == s.metadata.end() ? "" : it->second);
    }
    rows.push_back(std::move(row));
  }
  write_csv(path, header, rows);
}

Dataset read_split_manifest(const std::string& path, Warnings& warnings) {
  const CsvTable table = read_csv(path);
  const int c_path = table.require("path"), c_label = table.require("label"),
            c_class = table.require("class"), c_split = table.require("split");
  const int c_group = table.find("group"), c_mask = table.find("mask");
  Dataset out;
  out.root = fs::path(path).parent_path().string();
  out.layout = "manifest";
  std::map<int64_t, std::string> names;
  for (size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    const std::string where = fmt::format("split manifest '{}' line {}", path, table.row_lines[r]);
    Sample s;
    s.path = row[c_path];
    try {
      s.label = std::stoll(row[c_label]);
    } catch (const std::exception&) {
      fail("{}: label '{}' is not an integer", where, row[c_label]);
    }
    if (s.label >= 0) {
      auto [it, fresh] = names.emplace(s.label, row[c_class]);
      SCALPEL_CHECK(it->second == row[c_class], "{}: label {} is class '{}' here but '{}' earlier", where,
                    s.label, row[c_class], it->second);
    }
    s.split = row[c_split];
    SCALPEL_CHECK(s.split == "train" || s.split == "val" || s.split == "test",
                  "{}: split '{}' (train, val or test expected)", where, s.split);
    if (c_group >= 0) s.group = row[c_group];
    if (c_mask >= 0) s.mask_path = row[c_mask];
    for (size_t c = 0; c < table.header.size(); ++c)
      if (table.header[c].starts_with("meta:") && !row[c].empty()) s.metadata[table.header[c].substr(5)] = row[c];
    if (!fs::exists(is_npz_image_name(s.path) ? s.path.substr(0, s.path.rfind(':')) : s.path)) {
      warnings.add(fmt::format("{}: image '{}' does not exist; row skipped", where, s.path));
      continue;
    }
    out.samples.push_back(std::move(s));
  }
  int64_t expected = 0;
  for (const auto& [label, name] : names) {
    SCALPEL_CHECK(label == expected, "split manifest '{}': no row has label {} (labels must be 0..{})", path,
                  expected, names.size() - 1);
    out.classes.push_back(name);
    ++expected;
  }
  return out;
}

size_t apply_split_manifest(Dataset& dataset, const Dataset& manifest, const std::string& manifest_path) {
  const auto key = [](const std::string& path) { return fs::absolute(path).lexically_normal().string(); };
  std::map<std::string, const Sample*> by_path;
  for (const Sample& s : manifest.samples) by_path[key(s.path)] = &s;
  size_t unmatched = 0;
  for (Sample& s : dataset.samples) {
    const auto it = by_path.find(key(s.path));
    if (it == by_path.end()) {
      s.split.clear();
      ++unmatched;
      continue;
    }
    const Sample& m = *it->second;
    if (s.label >= 0 && m.label >= 0) {
      const std::string& ours = dataset.classes.at(static_cast<size_t>(s.label));
      const std::string& theirs = manifest.classes.at(static_cast<size_t>(m.label));
      SCALPEL_CHECK(ours == theirs, "split manifest '{}' records '{}' as class '{}' but the data has it as '{}'",
                    manifest_path, s.path, theirs, ours);
    }
    s.split = m.split;
  }
  return unmatched;
}

}  // namespace scalpel::data
