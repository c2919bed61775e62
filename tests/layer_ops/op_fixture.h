#pragma once
// PyTorch parity cases from tests/fixtures/ops/<case>/ (written by scripts/make_fixtures.py)
// and tests/fixtures/ops_extra/<case>/ (scripts/make_op_extra_fixtures.py):
// meta.json plus float64 .npy files for inputs, constants, outputs y, the upstream gradient gy
// and the input gradients grad_<input>. Also shared by tests/loss.
//
// expect_parity() runs an op on the case's inputs in float32 or float64, then compares y and
// every input gradient with the reference (elementwise |a - b| <= tol * max(|b|, 1)).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>

#include "autograd/autograd.h"
#include "autograd/gradcheck.h"
#include "tensor/json.h"
#include "tensor/npy.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::testing {

class OpCase {
 public:
  // `name` is a case of tests/fixtures/ops, or "<group>/<case>" for another group (ops_extra).
  explicit OpCase(const std::string& name)
      : name_(name),
        dir_(std::string(SCALPEL_FIXTURES) + (name.find('/') == std::string::npos ? "/ops/" : "/") + name) {
    std::ifstream in(dir_ + "/meta.json");
    std::stringstream text;
    text << in.rdbuf();
    meta_ = Json::parse(text.str(), dir_ + "/meta.json");
  }
  const std::string& name() const { return name_; }
  const Json& meta() const { return meta_; }
  bool has(const std::string& stem) const { return meta_.at("files").contains(stem); }
  // The array `stem`; floating arrays converted to `dtype`, int64 ones kept.
  Tensor get(const std::string& stem, DType dtype) const {
    Tensor t = load_npy(dir_ + "/" + stem + ".npy");
    return is_floating(t.dtype()) ? t.to(dtype) : t;
  }

 private:
  std::string name_, dir_;
  Json meta_;
};

// Tolerances of the spec: forward 1e-5, gradients 1e-4 (float32); float64 is held tighter.
struct ParityTolerance {
  double forward, grad;
  static ParityTolerance for_dtype(DType dtype) {
    return dtype == DType::F32 ? ParityTolerance{1e-5, 1e-4} : ParityTolerance{1e-9, 1e-9};
  }
};

inline void expect_close(const Tensor& actual, const Tensor& expected, double tol, const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what << ": missing";
  ASSERT_EQ(shape_str(actual.shape()), shape_str(expected.shape())) << what;
  const std::vector<double> a = actual.to_vector(), b = expected.to_vector();
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!(std::abs(a[i] - b[i]) <= tol * std::max(std::abs(b[i]), 1.0))) {
      if (first < 0) first = static_cast<int64_t>(i);
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << a.size() << " elements off by more than " << tol
                    << "; first at " << first << ": " << (first >= 0 ? a[first] : 0) << " vs "
                    << (first >= 0 ? b[first] : 0);
}

// The op under test: gets the case (for attributes and constants) and its differentiable
// inputs by name (leaves with requires_grad), returns y.
using CaseFn = std::function<Tensor(const OpCase&, const std::map<std::string, Tensor>&, DType)>;

inline OpCase expect_parity(const std::string& name, DType dtype, const CaseFn& fn,
                            std::optional<ParityTolerance> tolerance = std::nullopt) {
  OpCase c(name);
  const ParityTolerance tol = tolerance.value_or(ParityTolerance::for_dtype(dtype));
  std::map<std::string, Tensor> inputs;
  std::vector<Tensor> leaves;
  for (const Json& in : c.meta().at("inputs").as_array()) {
    Tensor t = c.get(in.as_string(), dtype);
    t.set_requires_grad(true);
    inputs[in.as_string()] = t;
    leaves.push_back(t);
  }
  Tensor y = fn(c, inputs, dtype);
  const std::string where = name + " (" + std::string(dtype_name(dtype)) + ")";
  expect_close(y, c.get("y", dtype), tol.forward, where + " y");
  std::vector<Tensor> grads = grad(y, leaves, c.get("gy", dtype));
  size_t i = 0;
  for (const Json& in : c.meta().at("inputs").as_array()) {
    expect_close(grads[i++], c.get("grad_" + in.as_string(), dtype), tol.grad, where + " grad_" + in.as_string());
  }
  return c;
}

// gradcheck in float64 with a readable failure.
inline void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                             const std::vector<Tensor>& inputs, GradcheckOptions options = {}) {
  GradcheckResult r = gradcheck(fn, inputs, options);
  EXPECT_TRUE(r.ok) << r.message;
  EXPECT_GT(r.checked, 0);
}

// A float64 leaf with values uniform in [lo, hi), requiring grad.
inline Tensor random_leaf(const Shape& shape, uint64_t seed, double lo = -2, double hi = 2) {
  Generator gen(seed);
  Tensor t = Tensor::empty(shape, DType::F64);
  uniform_(t, lo, hi, gen);
  t.set_requires_grad(true);
  return t;
}

// A 1-D tensor of hand-written values.
inline Tensor vec(const std::vector<double>& v, DType dtype = DType::F64) {
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, dtype);
}

}  // namespace scalpel::testing
