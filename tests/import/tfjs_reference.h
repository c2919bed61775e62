#pragma once
// Running @tensorflow/tfjs 4.22 under node for the reference tests of tests/import (scripts in
// tests/reference, modules from `make reference`), and comparing with its outputs.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel::reference {

namespace fs = std::filesystem;

inline const fs::path kScripts = SCALPEL_REFERENCE_SCRIPTS;
inline const fs::path kNodeModules = SCALPEL_REFERENCE_NODE_MODULES;
inline const fs::path kSamples = SCALPEL_SAMPLES;

// Why the reference cannot run here, or "" when it can.
inline std::string reference_missing() {
  const std::string node = SCALPEL_NODE;
  if (node.empty()) return "node not found at configure time";
  if (!fs::exists(kNodeModules / "@tensorflow/tfjs/package.json")) {
    return "@tensorflow/tfjs not installed in " + kNodeModules.string() + " (run `make reference`)";
  }
  return "";
}

#define SKIP_WITHOUT_REFERENCE()                                          \
  do {                                                                    \
    const std::string missing = reference_missing();                     \
    if (!missing.empty()) GTEST_SKIP() << "tfjs reference: " << missing;  \
  } while (0)

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "scalpel-tfjsref-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

inline std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a script of tests/reference with node; fails the test (returns false) when it fails.
inline bool run_node(const std::string& script, const std::vector<std::string>& args) {
  std::string command = "NODE_PATH=" + quoted(kNodeModules.string()) + " " + quoted(SCALPEL_NODE) + " " +
                        quoted((kScripts / script).string());
  for (const std::string& a : args) command += " " + quoted(a);
  command += " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) {
    ADD_FAILURE() << "cannot run " << command;
    return false;
  }
  std::string output;
  std::array<char, 4096> buffer;
  while (fgets(buffer.data(), buffer.size(), pipe) != nullptr) output += buffer.data();
  const int status = pclose(pipe);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ADD_FAILURE() << script << " failed (status " << status << "):\n" << output;
    return false;
  }
  return true;
}

// max |a - b| <= tolerance * max(1, max |b|).
inline void expect_close(const Tensor& actual, const Tensor& expected, double tolerance, const std::string& what) {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  const std::vector<double> a = actual.to_vector();
  const std::vector<double> b = expected.to_vector();
  double scale = 1;
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    scale = std::max(scale, std::abs(b[i]));
    worst = std::max(worst, std::abs(a[i] - b[i]));
  }
  EXPECT_LE(worst, tolerance * scale) << what << ": max abs difference " << worst << " (scale " << scale << ")";
}

}  // namespace scalpel::reference
