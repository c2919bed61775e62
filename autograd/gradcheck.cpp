#include "autograd/gradcheck.h"

#include <cmath>

#include "autograd/functions.h"
#include "tensor/random.h"

namespace scalpel {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& opt) {
  GradcheckResult result;
  for (const Tensor& t : inputs)
    SCALPEL_CHECK(t.dtype() == DType::F64, "gradcheck: inputs must be float64, got {}", t.str());

  // A fixed random projection makes every output element count in the scalar checked.
  Tensor probe = fn(inputs);
  Generator gen(1234);
  Tensor weights = randn(probe.shape(), gen, DType::F64);
  auto scalar_of = [&](const std::vector<Tensor>& xs) {
    NoGradGuard no_grad;
    return ops::sum(ops::mul(fn(xs), weights)).item();
  };

  std::vector<Tensor> wanted;
  for (const Tensor& t : inputs)
    if (t.requires_grad()) wanted.push_back(t);
  SCALPEL_CHECK(!wanted.empty(), "gradcheck: no input requires grad");
  Tensor loss = sum(mul(fn(inputs), weights));
  std::vector<Tensor> analytic = grad(loss, wanted);

  size_t w = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    Tensor x = inputs[i];
    SCALPEL_CHECK(x.is_contiguous(), "gradcheck: input {} must be contiguous", i);
    std::vector<double> g = analytic[w++].to_vector();
    double* data = x.data<double>();
    for (int64_t k = 0; k < x.numel(); ++k) {
      const double saved = data[k];
      auto numeric = [&](double eps) {
        data[k] = saved + eps;
        double up = scalar_of(inputs);
        data[k] = saved - eps;
        double down = scalar_of(inputs);
        data[k] = saved;
        return (up - down) / (2 * eps);
      };
      double n1 = numeric(opt.eps);
      if (opt.skip_kinks) {
        // A kink within eps changes the one-sided slopes; compare with a halved step.
        double n2 = numeric(opt.eps / 2);
        if (std::abs(n1 - n2) > 1e-3 * std::max({std::abs(n1), std::abs(n2), 1.0})) {
          ++result.skipped_kinks;
          continue;
        }
      }
      ++result.checked;
      const double a = g[k];
      const double tol = opt.atol + opt.rtol * std::max({std::abs(a), std::abs(n1), opt.floor});
      if (!(std::abs(a - n1) <= tol) && result.ok) {
        result.ok = false;
        result.message = fmt::format("input {} element {}: analytic {:.10g} vs numeric {:.10g}", i, k, a, n1);
      }
    }
  }
  return result;
}

}  // namespace scalpel
