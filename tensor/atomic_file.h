#pragma once
// Whole-file writes that never leave a partial file: write to "<path>.tmp.<pid>", fsync,
// rename over <path>. On failure the temporary is removed and Error names the path.
#include <string>
#include <string_view>

namespace scalpel {

void write_file_atomic(const std::string& path, std::string_view bytes);
// Reads a whole file; Error naming the path when it cannot be opened.
std::string read_file(const std::string& path);

}  // namespace scalpel
