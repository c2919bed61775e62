#pragma once
// Whole-file writes that never leave a partial file: write to "<path>.tmp.<pid>", fsync,
// rename over <path>. On failure the temporary is removed and Error names the path.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scalpel {

void write_file_atomic(const std::string& path, std::string_view bytes);
// Several files published together (a report's metrics.json, predictions.csv, report.html): every
// temporary is written first, and only when all of them are complete are they renamed into
// place, so a failure (a full disk) leaves none of the new files and the previous ones intact.
void write_files_atomic(const std::vector<std::pair<std::string, std::string>>& path_and_bytes);
// Removes the "<name>.tmp.<pid>" files in `dir` that a killed run left behind (its pid no
// longer alive; a live writer's temporaries are kept). Returns the paths removed.
std::vector<std::string> remove_stale_temporaries(const std::string& dir);
// Opens `path` read-only when it is a regular file and returns the descriptor (close-on-exec);
// otherwise returns -1 and sets `why`, e.g. "not a regular file (a FIFO)". A FIFO, /dev/zero
// or /dev/urandom given as an input would block or never end; every reader of a user's path
// (images, weights, label lists, CSVs, .npy) goes through here.
int open_regular_file(const std::string& path, std::string& why);
// Reads a whole regular file; Error "cannot read <path>: <why>" otherwise.
std::string read_file(const std::string& path);

}  // namespace scalpel
