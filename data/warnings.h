#pragma once
// Collects the warnings about bad input files (corrupt image, missing file, empty class
// folder, ...) so that one bad file never stops training: each is recorded with the file it
// names and reported with a count at the end. In strict mode the first one throws Error
// instead. Thread-safe (the loader's workers share one).
#include <mutex>
#include <string>
#include <vector>

namespace scalpel::data {

class Warnings {
 public:
  explicit Warnings(bool strict = false) : strict_(strict) {}
  bool strict() const { return strict_; }
  // Records `message` (it should name the file); throws Error(message) in strict mode.
  void add(const std::string& message);
  size_t count() const;
  std::vector<std::string> messages() const;
  // "warning: <message>" lines (at most `limit`, then "... and N more"), then
  // "<N> warning(s) about input files"; empty when there are none.
  std::string report(size_t limit = 20) const;

 private:
  bool strict_;
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

}  // namespace scalpel::data
