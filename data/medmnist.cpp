#include "data/medmnist.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include <fmt/format.h>

#include "tensor/error.h"
#include "tensor/npy.h"

namespace scalpel::data {
namespace fs = std::filesystem;

namespace {

const char* const kSplits[] = {"train", "val", "test"};

// MedMNIST's label names (medmnist/info.py) for the files whose names are not just numbers.
const std::map<std::string, std::vector<std::string>> kKnownClassNames = {
    {"pneumoniamnist", {"normal", "pneumonia"}},
};

struct SplitArrays {
  Tensor images;  // uint8 [N, H, W, C], contiguous
  std::vector<int64_t> labels;
};

// One decoded archive: split name -> arrays.
using Archive = std::map<std::string, SplitArrays>;

Archive read_archive(const std::string& path) {
  std::map<std::string, Tensor> arrays = load_npz(path);
  Archive archive;
  for (const char* split : kSplits) {
    const std::string image_key = std::string(split) + "_images", label_key = std::string(split) + "_labels";
    const bool has_images = arrays.count(image_key) > 0, has_labels = arrays.count(label_key) > 0;
    if (!has_images && !has_labels) continue;
    SCALPEL_CHECK(has_images && has_labels, "{}: has '{}' but no '{}' (MedMNIST files hold both)", path,
                  has_images ? image_key : label_key, has_images ? label_key : image_key);
    Tensor images = arrays.at(image_key);
    const Tensor& labels = arrays.at(label_key);
    SCALPEL_CHECK(images.dtype() == DType::U8, "{}: '{}' is {}, expected uint8 images", path, image_key,
                  dtype_name(images.dtype()));
    SCALPEL_CHECK(images.dim() == 3 || (images.dim() == 4 && (images.shape()[3] == 1 || images.shape()[3] == 3)),
                  "{}: '{}' has shape ({}), expected (N, H, W) gray or (N, H, W, 3) RGB images", path, image_key,
                  fmt::join(images.shape(), ", "));
    if (images.dim() == 3) images = images.unsqueeze(3);
    SCALPEL_CHECK(labels.dtype() == DType::U8 || labels.dtype() == DType::I64, "{}: '{}' is {}, expected integer labels",
                  path, label_key, dtype_name(labels.dtype()));
    SCALPEL_CHECK(labels.dim() == 1 || labels.dim() == 2, "{}: '{}' has shape ({}), expected (N, 1)", path, label_key,
                  fmt::join(labels.shape(), ", "));
    SCALPEL_CHECK(labels.dim() == 1 || labels.shape()[1] == 1,
                  "{}: '{}' has shape ({}): {} labels per image is a multi-label task (as ChestMNIST), which scalpel "
                  "does not train yet; use a single-label MedMNIST file",
                  path, label_key, fmt::join(labels.shape(), ", "), labels.shape()[1]);
    SCALPEL_CHECK(labels.shape()[0] == images.shape()[0], "{}: '{}' has {} images but '{}' has {} labels", path,
                  image_key, images.shape()[0], label_key, labels.shape()[0]);
    SplitArrays s;
    s.images = images.contiguous();
    for (double v : labels.to_vector()) {
      SCALPEL_CHECK(v >= 0, "{}: '{}' holds the negative label {}", path, label_key, v);
      s.labels.push_back(static_cast<int64_t>(v));
    }
    archive[split] = std::move(s);
  }
  SCALPEL_CHECK(!archive.empty(), "{}: no MedMNIST arrays (train_images, train_labels, val_..., test_...)", path);
  return archive;
}

// Archives decoded so far in this process, by the path in their sample names.
std::shared_ptr<const Archive> cached_archive(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Archive>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto& entry = cache[path];
  if (!entry) entry = std::make_shared<const Archive>(read_archive(path));
  return entry;
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

bool is_npz_file(const std::string& path) {
  std::error_code ec;
  return lower(fs::path(path).extension().string()) == ".npz" && fs::is_regular_file(path, ec);
}

Dataset load_medmnist(const std::string& npz_path) {
  const std::string path = fs::absolute(npz_path).lexically_normal().string();
  const std::shared_ptr<const Archive> archive = cached_archive(path);
  Dataset d;
  d.root = path;
  d.layout = "medmnist";
  int64_t classes = 0;
  for (const char* split : kSplits) {
    if (!archive->count(split)) continue;
    const SplitArrays& arrays = archive->at(split);
    for (size_t i = 0; i < arrays.labels.size(); ++i) {
      Sample s;
      s.path = fmt::format("{}:{}/{}", path, split, i);
      s.label = arrays.labels[i];
      s.split = split;
      classes = std::max(classes, s.label + 1);
      d.samples.push_back(std::move(s));
    }
  }
  const auto known = kKnownClassNames.find(lower(fs::path(path).stem().string()));
  if (known != kKnownClassNames.end() && static_cast<int64_t>(known->second.size()) == classes) {
    d.classes = known->second;
  } else {
    for (int64_t c = 0; c < classes; ++c) d.classes.push_back(std::to_string(c));
  }
  return d;
}

bool is_npz_image_name(const std::string& name) {
  const size_t colon = name.rfind(':');
  return colon != std::string::npos && lower(name.substr(0, colon)).ends_with(".npz");
}

Image load_npz_image(const std::string& name) {
  const size_t colon = name.rfind(':');
  const size_t slash = name.find('/', colon);
  SCALPEL_CHECK(is_npz_image_name(name) && slash != std::string::npos,
                "'{}' is not a sample name of the form FILE.npz:SPLIT/INDEX", name);
  const std::string path = name.substr(0, colon), split = name.substr(colon + 1, slash - colon - 1);
  const std::string index_text = name.substr(slash + 1);
  SCALPEL_CHECK(!index_text.empty() && index_text.size() < 12 &&
                    std::all_of(index_text.begin(), index_text.end(), [](char c) { return c >= '0' && c <= '9'; }),
                "'{}': the image index '{}' is not a number", name, index_text);
  SCALPEL_CHECK(fs::is_regular_file(path), "'{}': {} does not exist", name, path);
  const std::shared_ptr<const Archive> archive = cached_archive(path);
  SCALPEL_CHECK(archive->count(split) > 0, "'{}': {} has no split '{}'", name, path, split);
  const Tensor& images = archive->at(split).images;
  const int64_t index = std::stoll(index_text);
  SCALPEL_CHECK(index < images.shape()[0], "'{}': the {} split has {} images", name, split, images.shape()[0]);
  Image image(static_cast<int>(images.shape()[2]), static_cast<int>(images.shape()[1]),
              static_cast<int>(images.shape()[3]));
  const uint8_t* first = images.data<uint8_t>() + index * static_cast<int64_t>(image.pixels.size());
  std::copy(first, first + image.pixels.size(), image.pixels.begin());
  return image;
}

void rename_classes(Dataset& dataset, const std::string& comma_separated) {
  std::vector<std::string> names;
  size_t start = 0;
  for (;;) {
    const size_t comma = comma_separated.find(',', start);
    names.push_back(comma_separated.substr(start, comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  SCALPEL_CHECK(names.size() == dataset.classes.size(), "--class-names: {} names for the {} classes of {} ({})",
                names.size(), dataset.classes.size(), dataset.root, fmt::join(dataset.classes, ", "));
  std::set<std::string> seen;
  for (const std::string& n : names) {
    SCALPEL_CHECK(!n.empty(), "--class-names: empty class name in '{}'", comma_separated);
    SCALPEL_CHECK(seen.insert(n).second, "--class-names: '{}' appears twice", n);
  }
  dataset.classes = std::move(names);
}

}  // namespace scalpel::data
