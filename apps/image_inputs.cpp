#include "apps/image_inputs.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "data/csv.h"
#include "data/image.h"
#include "tensor/error.h"

namespace scalpel::cli {
namespace fs = std::filesystem;

void add_max_pixels_flag(Args& args) {
  args.option("max-pixels",
              "refuse an image whose header declares more pixels (width x height) than this, before decoding it",
              std::to_string(data::kDefaultMaxImagePixels));
}

void apply_max_pixels_flag(const Args& args) {
  const int64_t pixels = args.get_int("max-pixels");
  SCALPEL_CHECK(pixels > 0, "--max-pixels {}: must be a positive number of pixels", pixels);
  data::set_max_image_pixels(pixels);
}

namespace {

bool is_hidden(const fs::path& path) { return path.filename().string().starts_with("."); }

std::vector<std::string> images_in_folder(const std::string& folder) {
  std::vector<std::string> found;
  std::error_code ec;
  fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec), end;
  SCALPEL_CHECK(!ec, "--image {}: cannot list the folder: {}", folder, ec.message());
  for (; it != end; it.increment(ec)) {
    SCALPEL_CHECK(!ec, "--image {}: cannot list the folder: {}", folder, ec.message());
    if (is_hidden(it->path())) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_directory() && data::has_image_extension(it->path().string())) found.push_back(it->path().string());
  }
  SCALPEL_CHECK(!found.empty(), "--image {}: no image files (.png, .jpg, .jpeg, .bmp, ...) in this folder", folder);
  std::sort(found.begin(), found.end());
  return found;
}

bool is_csv(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".csv";
}

std::vector<std::string> images_in_csv(const std::string& csv) {
  const data::CsvTable table = data::read_csv(csv);
  const int column = table.find("path");
  SCALPEL_CHECK(column >= 0, "--image {}: the header row has no 'path' column (a CSV list of images needs one)",
                csv);
  std::vector<std::string> paths;
  for (size_t i = 0; i < table.rows.size(); ++i) {
    const std::string& path = table.rows[i][column];
    SCALPEL_CHECK(!path.empty(), "--image {}: line {} has an empty path", csv, table.row_lines[i]);
    paths.push_back(path);
  }
  SCALPEL_CHECK(!paths.empty(), "--image {}: no rows below the header", csv);
  return paths;
}

}  // namespace

std::vector<std::string> expand_image_inputs(const std::vector<std::string>& inputs) {
  std::vector<std::string> paths;
  for (const std::string& input : inputs) {
    std::vector<std::string> more;
    if (fs::is_directory(input)) more = images_in_folder(input);
    else if (is_csv(input)) more = images_in_csv(input);
    else more = {input};
    paths.insert(paths.end(), more.begin(), more.end());
  }
  return paths;
}

}  // namespace scalpel::cli
