// linear: y = x W^T + b on the packed GEMM (tensor/gemm.h; its reference is gemm_reference).
// x [..., in] is viewed as [M, in]; weight [out, in]; bias [out] or undefined.
//   grad_x = grad_y W     grad_W = grad_y^T x     grad_b = column sums of grad_y
#include "layers/functional.h"
#include "tensor/backend.h"
#include "tensor/error.h"
#include "tensor/gemm.h"

namespace scalpel::nn {

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
    T* yp = y.data<T>();
    if (bias.defined()) {  // y starts as the bias rows, then GEMM accumulates (beta = 1)
      const Tensor bc = bias.contiguous();
      for (int64_t i = 0; i < M; ++i) std::copy(bc.data<T>(), bc.data<T>() + out, yp + i * out);
    }
    if (M > 0 && out > 0)
      gemm(false, true, M, out, in, T(1), xc.data<T>(), in, wc.data<T>(), in,
           bias.defined() ? T(1) : T(0), yp, out);
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
                      if (M > 0 && in > 0 && out > 0)
                        gemm(true, false, out, in, M, T(1), g, out, xs.data<T>(), in, T(0), gw.data<T>(), in);
                    }
                    if (need_b) {
                      gb = Tensor::zeros({out}, gy.dtype());
                      T* b = gb.data<T>();
                      for (int64_t i = 0; i < M; ++i)
                        for (int64_t j = 0; j < out; ++j) b[j] += g[i * out + j];
                    }
                  });
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

}  // namespace scalpel::nn
