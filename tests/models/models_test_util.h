#pragma once
// Helpers shared by the model-zoo tests.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>

#include "layers/module.h"
#include "support/errors.h"
#include "support/files.h"
#include "tensor/error.h"
#include "tensor/json.h"

namespace scalpel::models::test {

namespace fs = std::filesystem;

inline fs::path fixtures_dir() { return fs::path(SCALPEL_FIXTURES) / "models"; }

using scalpel::test::error_of;
using scalpel::test::read_json;

inline Shape to_shape(const Json& j) {
  Shape s;
  for (const Json& v : j.as_array()) s.push_back(v.as_int());
  return s;
}

// Runs fn() with a forward hook recording the output shape of every module of `root`
// called at a dotted-name depth <= max_dots + 1 ("layer1", "layer1.0"), by name.
inline std::map<std::string, Shape> record_shapes(nn::Module& root, const std::function<void()>& fn,
                                                  int max_dots = 1) {
  std::map<const nn::Module*, std::string> names;
  for (const auto& [name, module] : root.named_modules())
    if (!name.empty() && std::count(name.begin(), name.end(), '.') <= max_dots) names[module] = name;
  std::map<std::string, Shape> shapes;
  nn::ForwardHookGuard guard([&](nn::Module& m, const Tensor&, const Tensor& out) {
    auto it = names.find(&m);
    if (it != names.end()) shapes[it->second] = out.shape();
  });
  fn();
  return shapes;
}

}  // namespace scalpel::models::test
