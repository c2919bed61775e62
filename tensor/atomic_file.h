#pragma once
// Whole-file writes that never leave a partial file: write to "<path>.tmp.<pid>", fsync,
// rename over <path>. On failure the temporary is removed and Error names the path.
#include <string>
#include <string_view>

namespace scalpel {

void write_file_atomic(const std::string& path, std::string_view bytes);
// Opens `path` read-only when it is a regular file and returns the descriptor (close-on-exec);
// otherwise returns -1 and sets `why`, e.g. "not a regular file (a FIFO)". A FIFO, /dev/zero
// or /dev/urandom given as an input would block or never end; every reader of a user's path
// (images, weights, label lists, CSVs, .npy) goes through here.
int open_regular_file(const std::string& path, std::string& why);
// Reads a whole regular file; Error "cannot read <path>: <why>" otherwise.
std::string read_file(const std::string& path);

}  // namespace scalpel
