#pragma once
// Reading back what a test (or the program it runs) wrote.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tensor/json.h"

namespace scalpel::test {

// The whole file as bytes; "" when it cannot be opened (the test's comparison then fails).
inline std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A JSON file (a fixture's meta.json, a run's history.json); a missing file fails the test.
inline Json read_json(const std::filesystem::path& path) {
  EXPECT_TRUE(std::filesystem::exists(path)) << "cannot read " << path;
  return Json::parse(slurp(path), path.string());
}

}  // namespace scalpel::test
