// linear: y = x W^T + b on the packed GEMM (tensor/gemm.h; its reference is gemm_reference).
// x [..., in] is viewed as [M, in]; weight [out, in]; bias [out] or undefined.
//   grad_x = grad_y W     grad_W = grad_y^T x     grad_b = column sums of grad_y
#include "layers/functional.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "layers/ops/batch_tree.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

namespace scalpel::nn {
namespace {

// Above this many entries of tree scratch the weight gradient is one GEMM over the rows.
constexpr int64_t kTreeBudget = int64_t{1} << 22;

// gw [out, in] = g^T x over the M rows of g [M, out] and x [M, in]. A weight of up to a few
// million entries (classifier heads) sums the rows' outer products as layers/ops/batch_tree.h's
// tree, so that data-parallel ranks get one process's bits; larger ones (VGG's fc layers, where
// the scratch would cost hundreds of MB) run one GEMM, exact up to summation order only.
template <typename T>
void linear_weight_grad(int64_t M, int64_t in, int64_t out, const T* g, const T* x, T* gw) {
  const int64_t width = out * in;
  if (width * ops::batch_tree_levels(M) > kTreeBudget) {
    gemm(true, false, out, in, M, T(1), g, out, x, in, T(0), gw, in);
    return;
  }
  std::vector<T> levels(ops::batch_tree_levels(M) * width);
  ops::batch_tree_sum_into(int64_t{0}, M, width, gw, levels.data(), [&](int64_t i, T* outer) {
    parallel_for(out, std::max<int64_t>(1, 4096 / in), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const T go = g[i * out + o];
        const T* xi = x + i * in;
        T* row = outer + o * in;
        for (int64_t k = 0; k < in; ++k) row[k] = go * xi[k];
      }
    });
  });
}

// Below this many rows, y is computed transposed (linear_forward). mobilenet_v2's head (1000 x
// 1280) on Zen 4: 0.21 vs 0.48 ms at 8 rows, 3.3 vs 3.4 at 256, 7.3 vs 6.3 at 512.
constexpr int64_t kTransposedBelowRows = 256;

// y [M, out] = bias + x W^T (bias may be null). A few rows (a classifier head at a small batch)
// run as y^T = W x^T: W is then the GEMM's A, read in place, where as B^T it would be packed
// (transposed) on every call, 5 MB for mobilenet_v2's head to multiply 8 rows. Either way each
// element is the same sum in the same order (tensor/gemm.h: the K blocks are fixed; a
// multiply-add does not care which factor is broadcast), so a row's float bits do not depend
// on M (from 2 rows on).
template <typename T>
void linear_forward(int64_t M, int64_t in, int64_t out, const T* x, const T* w, const T* bias, T* y) {
  // One row is a matrix-vector product either way; double goes through Eigen, whose order
  // depends on the orientation (and only gradient checks use it).
  if (!std::is_same_v<T, float> || M < 2 || M >= kTransposedBelowRows) {
    if (bias)  // y starts as the bias rows, then GEMM accumulates (beta = 1)
      for (int64_t i = 0; i < M; ++i) std::copy(bias, bias + out, y + i * out);
    gemm(false, true, M, out, in, T(1), x, in, w, in, bias ? T(1) : T(0), y, out);
    return;
  }
  std::vector<T> yt(out * M);  // y^T [out, M]
  if (bias)
    for (int64_t o = 0; o < out; ++o) std::fill(yt.begin() + o * M, yt.begin() + (o + 1) * M, bias[o]);
  gemm(false, true, out, M, in, T(1), w, in, x, in, bias ? T(1) : T(0), yt.data(), M);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t o = 0; o < out; ++o) y[i * out + o] = yt[o * M + i];
}

}  // namespace

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias, const std::string& name) {
  SCALPEL_CHECK(x.dim() >= 1 && weight.dim() == 2,
                "{}: need input [..., in] and weight [out, in], got {} and {}", name,
                shape_str(x.shape()), shape_str(weight.shape()));
  const int64_t in = weight.size(1), out = weight.size(0);
  SCALPEL_CHECK(x.size(-1) == in, "{}: input {} has {} features but weight {} expects {}", name,
                shape_str(x.shape()), x.size(-1), shape_str(weight.shape()), in);
  SCALPEL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == out),
                "{}: bias must be [{}] for weight {}, got {}", name, out, shape_str(weight.shape()),
                bias.defined() ? shape_str(bias.shape()) : "");
  SCALPEL_CHECK(is_floating(x.dtype()) && weight.dtype() == x.dtype() &&
                    (!bias.defined() || bias.dtype() == x.dtype()),
                "{}: input, weight and bias must share one float dtype, got {} and {}", name,
                dtype_name(x.dtype()), dtype_name(weight.dtype()));
  if (!x.device().is_cpu()) {  // device branch (tensor/backend.h)
    Tensor y = backend::run<backend::Op::linear>(x.device(), x, weight, bias);
    const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
    const bool need_b = bias.defined() && bias.requires_grad();
    return record("linear", y, {x, weight, bias},
                  [need_x, need_w, need_b, xs = x.detach(), ws = weight.detach()](const Tensor& gy) {
                    backend::LinearGrads g =
                        backend::run<backend::Op::linear_backward>(gy.device(), gy, xs, ws, need_x, need_w, need_b);
                    return std::vector<Tensor>{g.x, g.w, g.bias};
                  });
  }
  SCALPEL_CHECK(x.device().is_cpu() && weight.device().is_cpu() &&
                    (!bias.defined() || bias.device().is_cpu()),
                "{}: only CPU tensors are supported here, got input on {} and weight on {}", name,
                x.device().str(), weight.device().str());
  const int64_t M = x.numel() / in;
  Shape out_shape = x.shape();
  out_shape.back() = out;
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  Tensor y = Tensor::empty(out_shape, x.dtype());
  dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
    if (M > 0 && out > 0)
      linear_forward(M, in, out, xc.data<T>(), wc.data<T>(), bc.defined() ? bc.data<T>() : nullptr, y.data<T>());
  });
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  return record("linear", y, {x, weight, bias},
                [M, in, out, need_x, need_w, need_b, xshape = x.shape(),
                 xs = need_w ? xc.detach() : Tensor(), ws = need_x ? wc.detach() : Tensor()](
                    const Tensor& gy_in) {
                  const Tensor gy = gy_in.contiguous();
                  Tensor gx, gw, gb;
                  dispatch_floating(gy.dtype(), [&](auto tag) {
                    using T = decltype(tag);
                    const T* g = gy.data<T>();
                    if (need_x) {
                      gx = Tensor::zeros(xshape, gy.dtype());
                      if (M > 0 && in > 0 && out > 0)
                        gemm(false, false, M, in, out, T(1), g, out, ws.data<T>(), in, T(0), gx.data<T>(), in);
                    }
                    if (need_w) {
                      gw = Tensor::zeros({out, in}, gy.dtype());
                      if (M > 0 && in > 0 && out > 0) linear_weight_grad(M, in, out, g, xs.data<T>(), gw.data<T>());
                    }
                    if (need_b) {
                      gb = Tensor::zeros({out}, gy.dtype());
                      if (M > 0 && out > 0) {
                        std::vector<T> levels(ops::batch_tree_levels(M) * out);
                        ops::batch_tree_sum_into(int64_t{0}, M, out, gb.data<T>(), levels.data(),
                                                 [&](int64_t i, T* row) { std::copy(g + i * out, g + (i + 1) * out, row); });
                      }
                    }
                  });
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | linear | `layers/ops/linear.cpp` | GEMM | `linear.cu` on `gemm.cu` | |
