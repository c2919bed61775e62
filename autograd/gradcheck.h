#pragma once
// Gradient checker used by every differentiable op's test (after Caffe's GradientChecker).
// Compares autograd gradients with central differences in float64:
//   |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|, floor)
// Inputs must be float64 leaves with requires_grad set on those to check. `fn` maps the
// inputs to one tensor; the scalar checked is sum(fn(inputs) * W) for a fixed random W so
// that every output element matters. Elements where the function has a kink close by (a
// numeric derivative that changes when the step is halved) are skipped and counted.
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel {

struct GradcheckOptions {
  double eps = 1e-6;
  double rtol = 1e-4;
  double atol = 1e-6;
  double floor = 1.0;
  bool skip_kinks = true;
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // first failure: input index, element, analytic, numeric
  int64_t checked = 0;
  int64_t skipped_kinks = 0;
};

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& options = {});

}  // namespace scalpel
