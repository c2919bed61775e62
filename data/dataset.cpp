#include "data/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <unordered_map>

#include "data/csv.h"
#include "data/image.h"
#include "data/medmnist.h"
#include "tensor/atomic_file.h"
#include "tensor/error.h"

namespace scalpel::data {
namespace fs = std::filesystem;

bool Dataset::has_groups() const {
  return std::any_of(samples.begin(), samples.end(), [](const Sample& s) { return !s.group.empty(); });
}

bool Dataset::has_masks() const {
  return std::any_of(samples.begin(), samples.end(), [](const Sample& s) { return !s.mask_path.empty(); });
}

bool Dataset::has_fixed_splits() const {
  return std::any_of(samples.begin(), samples.end(), [](const Sample& s) { return !s.split.empty(); });
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> counts(classes.size(), 0);
  for (const Sample& s : samples)
    if (s.label >= 0 && s.label < static_cast<int64_t>(counts.size())) ++counts[s.label];
  return counts;
}

int64_t Dataset::class_index(const std::string& name) const {
  for (size_t i = 0; i < classes.size(); ++i)
    if (classes[i] == name) return static_cast<int64_t>(i);
  fail("unknown class '{}' (classes: {})", name, fmt::join(classes, ", "));
}

Dataset Dataset::subset(const std::vector<size_t>& indices) const {
  Dataset out;
  out.root = root;
  out.layout = layout;
  out.classes = classes;
  out.samples.reserve(indices.size());
  for (size_t i : indices) {
    SCALPEL_CHECK(i < samples.size(), "subset: index {} out of range ({} samples)", i, samples.size());
    out.samples.push_back(samples[i]);
  }
  return out;
}

Dataset Dataset::split_part(const std::string& split) const {
  std::vector<size_t> indices;
  for (size_t i = 0; i < samples.size(); ++i)
    if (samples[i].split == split) indices.push_back(i);
  return subset(indices);
}

std::string content_fingerprint(const Dataset& dataset) {
  uint64_t hash = 0xcbf29ce484222325ull;
  const auto add = [&hash](const void* bytes, size_t size) {
    const auto* p = static_cast<const uint8_t*>(bytes);
    for (size_t i = 0; i < size; ++i) hash = (hash ^ p[i]) * 0x100000001b3ull;
  };
  for (const Sample& s : dataset.samples) {
    const std::string name = s.label >= 0 ? dataset.classes.at(static_cast<size_t>(s.label)) : "";
    add(name.data(), name.size() + 1);  // with its terminating zero
    if (is_npz_image_name(s.path)) {
      const Image image = load_npz_image(s.path);
      const int dims[3] = {image.width, image.height, image.channels};
      add(dims, sizeof dims);
      add(image.pixels.data(), image.pixels.size());
    } else {
      const std::string bytes = read_file(s.path);
      add(bytes.data(), bytes.size());
    }
  }
  return fmt::format("fnv1a64:{:016x}", hash);
}

void check_classification(const Dataset& dataset) {
  const auto counts = dataset.class_counts();
  const auto used = std::count_if(counts.begin(), counts.end(), [](int64_t n) { return n > 0; });
  SCALPEL_CHECK(used >= 2, "dataset '{}' has {} class(es) with images ({}); classification needs at least two",
                dataset.root, used, fmt::join(dataset.classes, ", "));
}

namespace {

bool hidden(const fs::path& p) {
  const std::string name = p.filename().string();
  return !name.empty() && name[0] == '.';
}

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}

// Non-hidden subdirectory names of `dir`, sorted.
std::vector<std::string> subdirs(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!hidden(entry.path()) && entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Image files below `dir` (recursive), in sorted(os.walk) order: by folder, then by name.
// Files that are not images by extension get a warning; a header check is optional.
std::vector<std::string> image_files(const fs::path& dir, bool recursive, Warnings& warnings,
                                     const LoadOptions& options) {
  std::vector<std::pair<std::string, std::string>> found;  // (folder, name)
  auto visit = [&](const fs::directory_entry& entry) {
    if (!entry.is_regular_file()) return;
    const fs::path& p = entry.path();
    if (!has_image_extension(p.string())) {
      warnings.add(fmt::format("skipping '{}': not a supported image format", p.string()));
      return;
    }
    found.emplace_back(p.parent_path().string(), p.filename().string());
  };
  if (recursive) {
    for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink);
         it != fs::recursive_directory_iterator(); ++it) {
      if (hidden(it->path())) {
        if (it->is_directory()) it.disable_recursion_pending();
        continue;
      }
      visit(*it);
    }
  } else {
    for (const auto& entry : fs::directory_iterator(dir))
      if (!hidden(entry.path())) visit(entry);
  }
  std::sort(found.begin(), found.end());
  std::vector<std::string> paths;
  for (const auto& [folder, name] : found) {
    std::string path = (fs::path(folder) / name).string();
    if (options.check_images) {
      ImageInfo info;
      std::string reason;
      if (!probe_image(path, info, reason)) {
        warnings.add(fmt::format("skipping image '{}': {}", path, reason));
        continue;
      }
    }
    paths.push_back(path);
  }
  return paths;
}

// Samples of root/<class>/** for the given class list (missing class folders are skipped).
void add_class_folders(const fs::path& root, const std::vector<std::string>& classes,
                       const std::string& split, Dataset& out, Warnings& warnings,
                       const LoadOptions& options) {
  for (size_t c = 0; c < classes.size(); ++c) {
    const fs::path dir = root / classes[c];
    if (!is_dir(dir)) continue;
    auto files = image_files(dir, /*recursive=*/true, warnings, options);
    if (files.empty()) warnings.add(fmt::format("class folder '{}' has no images", dir.string()));
    for (auto& f : files) {
      Sample s;
      s.path = std::move(f);
      s.label = static_cast<int64_t>(c);
      s.split = split;
      out.samples.push_back(std::move(s));
    }
  }
}

void require_dir(const std::string& root) {
  SCALPEL_CHECK(is_dir(root), "dataset folder '{}' does not exist or is not a folder", root);
}

// Aliases of the three split folder names.
const std::vector<std::pair<std::string, std::string>> kSplitDirs = {
    {"train", "train"}, {"val", "val"}, {"valid", "val"}, {"validation", "val"}, {"test", "test"}};

// Which mask size is acceptable for an image: equal, or the same aspect ratio within 1%
// (the COVID-19 Radiography Database ships 256x256 masks for 299x299 images; masks are
// resized with nearest-neighbour to the image size when loading).
bool mask_size_ok(const ImageInfo& image, const ImageInfo& mask) {
  if (image.width == mask.width && image.height == mask.height) return true;
  const double a = static_cast<double>(image.width) / image.height;
  const double b = static_cast<double>(mask.width) / mask.height;
  return std::abs(a / b - 1.0) < 0.01;
}

// Attaches `mask` to `s` after checking its header against the image's (whatever
// LoadOptions::check_images says: a mask of another shape must never be paired).
void attach_mask(Sample& s, const std::string& mask, Warnings& warnings) {
  ImageInfo im, mk;
  std::string reason;
  if (!probe_image(mask, mk, reason)) {
    warnings.add(fmt::format("mask '{}' for '{}' is unreadable: {}", mask, s.path, reason));
    return;
  }
  if (probe_image(s.path, im, reason) && !mask_size_ok(im, mk)) {
    warnings.add(fmt::format("mask '{}' is {}x{} but its image '{}' is {}x{}; mask ignored", mask,
                             mk.width, mk.height, s.path, im.width, im.height));
    return;
  }
  s.mask_path = mask;
}

}  // namespace

Dataset load_image_folder(const std::string& root, Warnings& warnings, const LoadOptions& options) {
  require_dir(root);
  Dataset out;
  out.root = root;
  out.layout = "image_folder";
  out.classes = subdirs(root);
  SCALPEL_CHECK(!out.classes.empty(), "dataset folder '{}' has no class folders (expected {}/<class>/<image>)",
                root, root);
  add_class_folders(root, out.classes, "", out, warnings, options);
  return out;
}

Dataset load_split_folders(const std::string& root, Warnings& warnings, const LoadOptions& options) {
  require_dir(root);
  Dataset out;
  out.root = root;
  out.layout = "split_folders";
  std::set<std::string> classes;
  for (const auto& [dir, split] : kSplitDirs)
    if (is_dir(fs::path(root) / dir))
      for (auto& c : subdirs(fs::path(root) / dir)) classes.insert(c);
  out.classes.assign(classes.begin(), classes.end());
  SCALPEL_CHECK(!out.classes.empty(), "dataset folder '{}' has no {{train,val,test}}/<class> folders", root);
  for (const auto& [dir, split] : kSplitDirs)
    if (is_dir(fs::path(root) / dir))
      add_class_folders(fs::path(root) / dir, out.classes, split, out, warnings, options);
  return out;
}

Dataset load_covid_radiography(const std::string& root, Warnings& warnings, const LoadOptions& options) {
  require_dir(root);
  Dataset out;
  out.root = root;
  out.layout = "covid_radiography";
  for (auto& c : subdirs(root))
    if (is_dir(fs::path(root) / c / "images")) out.classes.push_back(c);
  SCALPEL_CHECK(!out.classes.empty(), "dataset folder '{}' has no <class>/images folders", root);
  for (size_t c = 0; c < out.classes.size(); ++c) {
    const fs::path dir = fs::path(root) / out.classes[c];
    auto files = image_files(dir / "images", /*recursive=*/false, warnings, options);
    if (files.empty()) warnings.add(fmt::format("class folder '{}' has no images", (dir / "images").string()));
    const bool has_masks = is_dir(dir / "masks");
    for (auto& f : files) {
      Sample s;
      s.label = static_cast<int64_t>(c);
      s.path = f;
      if (has_masks) {
        const fs::path mask = dir / "masks" / fs::path(f).filename();
        if (fs::exists(mask)) attach_mask(s, mask.string(), warnings);
        else warnings.add(fmt::format("no mask '{}' for image '{}'", mask.string(), f));
      }
      out.samples.push_back(std::move(s));
    }
  }
  return out;
}

Dataset load_image_mask_pairs(const std::string& image_dir, const std::string& mask_dir,
                              Warnings& warnings, const LoadOptions& options) {
  require_dir(image_dir);
  require_dir(mask_dir);
  Dataset out;
  out.root = fs::path(image_dir).parent_path().string();
  out.layout = "image_mask_pairs";
  std::unordered_map<std::string, std::string> masks;  // stem -> path
  for (auto& m : image_files(mask_dir, /*recursive=*/false, warnings, options)) {
    std::string stem = fs::path(m).stem().string();
    if (stem.size() > 5 && stem.ends_with("_mask")) stem.resize(stem.size() - 5);
    masks.emplace(stem, m);
  }
  for (auto& f : image_files(image_dir, /*recursive=*/false, warnings, options)) {
    auto it = masks.find(fs::path(f).stem().string());
    if (it == masks.end()) {
      warnings.add(fmt::format("no mask in '{}' for image '{}'; image left out", mask_dir, f));
      continue;
    }
    Sample s;
    s.path = f;
    attach_mask(s, it->second, warnings);
    if (!s.mask_path.empty()) out.samples.push_back(std::move(s));
  }
  return out;
}

namespace {

// Files below the image folders, by relative path, file name and stem.
struct FileIndex {
  std::unordered_map<std::string, std::string> by_name, by_stem;
  std::vector<std::string> dirs;

  explicit FileIndex(const std::vector<std::string>& image_dirs) : dirs(image_dirs) {
    for (const auto& d : image_dirs) {
      require_dir(d);
      for (auto it = fs::recursive_directory_iterator(d, fs::directory_options::follow_directory_symlink);
           it != fs::recursive_directory_iterator(); ++it) {
        if (hidden(it->path())) {
          if (it->is_directory()) it.disable_recursion_pending();
          continue;
        }
        if (!it->is_regular_file() || !has_image_extension(it->path().string())) continue;
        by_name.emplace(it->path().filename().string(), it->path().string());
        by_stem.emplace(it->path().stem().string(), it->path().string());
      }
    }
  }
  // The file a CSV cell names: a path relative to an image folder, a file name, or a stem.
  std::string resolve(const std::string& value) const {
    for (const auto& d : dirs) {
      fs::path p = fs::path(d) / value;
      std::error_code ec;
      if (fs::is_regular_file(p, ec)) return p.string();
    }
    if (auto it = by_name.find(value); it != by_name.end()) return it->second;
    if (auto it = by_stem.find(value); it != by_stem.end()) return it->second;
    return "";
  }
};

bool is_positive(const std::string& cell) {
  try {
    return std::stod(cell) > 0.5;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

Dataset load_csv_dataset(const CsvSpec& spec, Warnings& warnings, const LoadOptions& options) {
  const CsvTable table = read_csv(spec.csv);
  SCALPEL_CHECK(spec.label_column.empty() != spec.one_hot_columns.empty(),
                "CSV dataset '{}': give either a label column or one-hot columns", spec.csv);
  std::vector<std::string> image_dirs = spec.image_dirs;
  if (image_dirs.empty()) image_dirs.push_back(fs::path(spec.csv).parent_path().string());
  const FileIndex files(image_dirs);

  const int path_col = table.require(spec.path_column);
  const int group_col = spec.group_column.empty() ? -1 : table.require(spec.group_column);
  std::vector<std::pair<int, std::string>> meta_cols;
  for (const auto& [col, key] : spec.metadata_columns)
    if (int i = table.find(col); i >= 0) meta_cols.emplace_back(i, key);

  // Optional metadata CSV, joined on its id column.
  CsvTable meta;
  std::unordered_map<std::string, size_t> meta_rows;
  std::vector<std::pair<int, std::string>> meta_csv_cols;
  int meta_group_col = -1;
  if (!spec.metadata_csv.empty()) {
    meta = read_csv(spec.metadata_csv);
    const int id = meta.require(spec.metadata_id_column);
    for (size_t r = 0; r < meta.rows.size(); ++r) meta_rows.emplace(meta.rows[r][id], r);
    for (const auto& [col, key] : spec.metadata_csv_columns)
      if (int i = meta.find(col); i >= 0) meta_csv_cols.emplace_back(i, key);
    if (!spec.metadata_group_column.empty()) meta_group_col = meta.find(spec.metadata_group_column);
  }

  Dataset out;
  out.root = fs::path(spec.csv).parent_path().string();
  out.layout = "csv";
  std::vector<int> label_cols;  // one-hot column indices
  if (!spec.label_column.empty()) {
    const int col = table.require(spec.label_column);
    std::set<std::string> names;
    for (const auto& row : table.rows)
      if (!row[col].empty()) names.insert(row[col]);
    out.classes.assign(names.begin(), names.end());
  } else {
    // Keep the one-hot columns that have at least one positive row (ISIC 2019's UNK has none).
    for (const auto& name : spec.one_hot_columns) {
      const int col = table.find(name);
      if (col < 0) continue;
      if (std::any_of(table.rows.begin(), table.rows.end(), [&](const auto& row) { return is_positive(row[col]); })) {
        label_cols.push_back(col);
        out.classes.push_back(name);
      }
    }
    SCALPEL_CHECK(!label_cols.empty(), "CSV '{}' has none of the one-hot columns {} with a positive row",
                  spec.csv, fmt::join(spec.one_hot_columns, ", "));
  }

  for (size_t r = 0; r < table.rows.size(); ++r) {
    const auto& row = table.rows[r];
    const std::string where = fmt::format("CSV '{}' line {}", spec.csv, table.row_lines[r]);
    Sample s;
    if (!spec.label_column.empty()) {
      const std::string& name = row[table.find(spec.label_column)];
      if (name.empty()) {
        warnings.add(fmt::format("{}: empty label for '{}'; row skipped", where, row[path_col]));
        continue;
      }
      s.label = std::lower_bound(out.classes.begin(), out.classes.end(), name) - out.classes.begin();
    } else {
      int hits = 0;
      for (size_t k = 0; k < label_cols.size(); ++k)
        if (is_positive(row[label_cols[k]])) {
          ++hits;
          s.label = static_cast<int64_t>(k);
        }
      if (hits != 1) {
        warnings.add(fmt::format("{}: '{}' has {} positive label columns (exactly one expected); row skipped",
                                 where, row[path_col], hits));
        continue;
      }
    }
    s.path = files.resolve(row[path_col]);
    if (s.path.empty()) {
      warnings.add(fmt::format("{}: image '{}' not found under {}; row skipped", where, row[path_col],
                               fmt::join(image_dirs, ", ")));
      continue;
    }
    if (options.check_images) {
      ImageInfo info;
      std::string reason;
      if (!probe_image(s.path, info, reason)) {
        warnings.add(fmt::format("skipping image '{}': {}", s.path, reason));
        continue;
      }
    }
    if (group_col >= 0) s.group = row[group_col];
    for (const auto& [col, key] : meta_cols) s.metadata[key] = row[col];
    if (auto it = meta_rows.find(row[path_col]); it != meta_rows.end()) {
      const auto& mrow = meta.rows[it->second];
      for (const auto& [col, key] : meta_csv_cols) s.metadata[key] = mrow[col];
      if (meta_group_col >= 0 && s.group.empty()) s.group = mrow[meta_group_col];
    }
    out.samples.push_back(std::move(s));
  }
  // Class order, then path order within a class, as the folder layouts.
  std::stable_sort(out.samples.begin(), out.samples.end(), [](const Sample& a, const Sample& b) {
    return a.label != b.label ? a.label < b.label : a.path < b.path;
  });
  return out;
}

CsvSpec ham10000_spec(const std::string& root) {
  CsvSpec spec;
  spec.csv = (fs::path(root) / "HAM10000_metadata.csv").string();
  spec.image_dirs = {root};
  spec.path_column = "image_id";
  spec.label_column = "dx";
  spec.group_column = "lesion_id";
  spec.metadata_columns = {{"age", "age"}, {"sex", "sex"}, {"localization", "site"}};
  return spec;
}

CsvSpec isic2019_spec(const std::string& root) {
  CsvSpec spec;
  spec.csv = (fs::path(root) / "ISIC_2019_Training_GroundTruth.csv").string();
  spec.image_dirs = {root};
  spec.path_column = "image";
  spec.one_hot_columns = {"MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK"};
  const fs::path meta = fs::path(root) / "ISIC_2019_Training_Metadata.csv";
  if (fs::exists(meta)) {
    spec.metadata_csv = meta.string();
    spec.metadata_id_column = "image";
    spec.metadata_group_column = "lesion_id";
    spec.metadata_csv_columns = {{"age_approx", "age"}, {"sex", "sex"}, {"anatom_site_general", "site"}};
  }
  return spec;
}

std::string detect_layout(const std::string& root) {
  if (is_npz_file(root)) return "medmnist";
  SCALPEL_CHECK(fs::path(root).extension() != ".npz", "dataset file '{}' does not exist", root);
  require_dir(root);
  const fs::path r(root);
  if (fs::exists(r / "HAM10000_metadata.csv")) return "ham10000";
  if (fs::exists(r / "ISIC_2019_Training_GroundTruth.csv")) return "isic2019";
  if (is_dir(r / "train")) {
    for (const auto& [dir, split] : kSplitDirs)
      if (split != "train" && is_dir(r / dir)) return "split_folders";
  }
  const auto dirs = subdirs(r);
  if (is_dir(r / "images") && is_dir(r / "masks")) {
    for (const auto& entry : fs::directory_iterator(r / "images"))
      if (entry.is_regular_file() && has_image_extension(entry.path().string())) return "image_mask_pairs";
  }
  if (!dirs.empty() && std::all_of(dirs.begin(), dirs.end(), [&](const std::string& d) { return is_dir(r / d / "images"); }))
    return "covid_radiography";
  return "image_folder";
}

namespace {
Dataset load_detected(const std::string& root, Warnings& warnings, const LoadOptions& options) {
  const std::string layout = detect_layout(root);
  Dataset d;
  if (layout == "medmnist") {
    return load_medmnist(root);
  } else if (layout == "ham10000") {
    d = load_csv_dataset(ham10000_spec(root), warnings, options);
  } else if (layout == "isic2019") {
    d = load_csv_dataset(isic2019_spec(root), warnings, options);
  } else if (layout == "split_folders") {
    return load_split_folders(root, warnings, options);
  } else if (layout == "image_mask_pairs") {
    return load_image_mask_pairs((fs::path(root) / "images").string(), (fs::path(root) / "masks").string(),
                                 warnings, options);
  } else if (layout == "covid_radiography") {
    return load_covid_radiography(root, warnings, options);
  } else {
    return load_image_folder(root, warnings, options);
  }
  d.root = root;
  d.layout = layout;
  return d;
}
}  // namespace

Dataset load_dataset(const std::string& root, Warnings& warnings, const LoadOptions& options) {
  try {
    return load_detected(root, warnings, options);
  } catch (const fs::filesystem_error& e) {
    // e.g. a folder without read permission: report it as a user error naming the path.
    fail("cannot read dataset '{}': {}", root, e.what());
  }
}

}  // namespace scalpel::data
