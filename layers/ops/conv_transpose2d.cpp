// conv_transpose2d through conv2d's kernels (see conv_transpose2d.h).
#include "layers/ops/conv_transpose2d.h"

#include "tensor/backend.h"
#include "layers/functional.h"
#include "tensor/error.h"

namespace scalpel::ops {

Conv2dGeometry conv_transpose2d_geometry(const Shape& x, const Shape& weight,
                                         const nn::ConvTranspose2dOptions& o,
                                         const std::string& name) {
  SCALPEL_CHECK(x.size() == 4, "{}: input must be 4-D [N, C, H, W], got {}", name, shape_str(x));
  SCALPEL_CHECK(weight.size() == 4, "{}: weight must be 4-D [C_in, C_out/groups, kH, kW], got {}",
                name, shape_str(weight));
  for (int64_t s : x)
    SCALPEL_CHECK(s > 0, "{}: input {} has an empty or negative size", name, shape_str(x));
  for (int64_t s : weight)
    SCALPEL_CHECK(s > 0, "{}: weight {} has an empty or negative size", name, shape_str(weight));
  SCALPEL_CHECK(o.groups >= 1, "{}: groups must be >= 1, got {}", name, o.groups);
  SCALPEL_CHECK(x[1] % o.groups == 0, "{}: groups {} must divide input channels {} (input {})",
                name, o.groups, x[1], shape_str(x));
  SCALPEL_CHECK(weight[0] == x[1],
                "{}: input {} has {} channels but weight {} expects {} (layout [C_in, "
                "C_out/groups, kH, kW])",
                name, shape_str(x), x[1], shape_str(weight), weight[0]);
  Conv2dGeometry g;
  g.batch = x[0];
  g.out_channels = x[1];
  g.out_h = x[2];
  g.out_w = x[3];
  g.groups = o.groups;
  g.in_channels = weight[1] * o.groups;
  g.kernel_h = weight[2];
  g.kernel_w = weight[3];
  g.stride_h = o.stride[0];
  g.stride_w = o.stride[1];
  g.pad_top = o.padding[0];
  g.pad_left = o.padding[1];
  // The matching conv's input is output_padding larger than its padding needs: its last rows
  // are never read (tensor/conv2d_geometry.h), so the bottom/right padding is smaller.
  g.pad_bottom = o.padding[0] - o.output_padding[0];
  g.pad_right = o.padding[1] - o.output_padding[1];
  g.dilation_h = o.dilation[0];
  g.dilation_w = o.dilation[1];
  for (int axis = 0; axis < 2; ++axis) {
    SCALPEL_CHECK(o.stride[axis] >= 1 && o.dilation[axis] >= 1 && o.padding[axis] >= 0 &&
                      o.output_padding[axis] >= 0,
                  "{}: need stride >= 1, dilation >= 1, padding >= 0, output_padding >= 0; got "
                  "stride [{}, {}], dilation [{}, {}], padding [{}, {}], output_padding [{}, {}]",
                  name, o.stride[0], o.stride[1], o.dilation[0], o.dilation[1], o.padding[0],
                  o.padding[1], o.output_padding[0], o.output_padding[1]);
    // As PyTorch: a larger output_padding would add output pixels no input reaches.
    SCALPEL_CHECK(o.output_padding[axis] < o.stride[axis] ||
                      o.output_padding[axis] < o.dilation[axis],
                  "{}: output_padding [{}, {}] must be smaller than stride [{}, {}] or dilation "
                  "[{}, {}]",
                  name, o.output_padding[0], o.output_padding[1], o.stride[0], o.stride[1],
                  o.dilation[0], o.dilation[1]);
  }
  g.in_h = (g.out_h - 1) * g.stride_h - 2 * g.pad_top + g.dilation_h * (g.kernel_h - 1) +
           o.output_padding[0] + 1;
  g.in_w = (g.out_w - 1) * g.stride_w - 2 * g.pad_left + g.dilation_w * (g.kernel_w - 1) +
           o.output_padding[1] + 1;
  SCALPEL_CHECK(g.in_h > 0 && g.in_w > 0,
                "{}: padding [{}, {}] leaves no output for input {} and weight {} (output {}x{})",
                name, o.padding[0], o.padding[1], shape_str(x), shape_str(weight), g.in_h, g.in_w);
  return g;
}

}  // namespace scalpel::ops

namespace scalpel::nn {

// The device branch (tensor/backend.h): the transpose is conv2d's data gradient over the adjoint geometry
// `g`, so it runs conv2d's kernels with the roles swapped (forward = backward-data, input
// gradient = forward, weight gradient = backward-filter with x and dy exchanged).
static Tensor device_conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                      const Conv2dGeometry& g) {
  Tensor y = backend::run<backend::Op::conv2d_backward_data>(x.device(), x, weight, g, ConvLibrary::Handwritten);
  if (bias.defined()) y = ops::add(y, bias.reshape({1, g.in_channels, 1, 1}));
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  return record("conv_transpose2d", y, {x, weight, bias},
                [g, need_x, need_w, need_b, xs = need_w ? x.detach() : Tensor(),
                 ws = need_x ? weight.detach() : Tensor()](const Tensor& gy) {
                  const Device device = gy.device();
                  const Tensor gx =
                      need_x ? backend::run<backend::Op::conv2d>(device, gy, ws, Tensor(), g).y : Tensor();
                  const Tensor gw = need_w ? backend::run<backend::Op::conv2d_backward_filter>(
                                                 device, xs, gy, g, true, false, ConvLibrary::Handwritten)
                                                 .w
                                           : Tensor();
                  const Tensor gb = need_b ? ops::sum(gy, {0, 2, 3}) : Tensor();
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

Tensor conv_transpose2d(const Tensor& x, const Tensor& weight, const Tensor& bias,
                        const ConvTranspose2dOptions& options, const std::string& name) {
  const Conv2dGeometry g = ops::conv_transpose2d_geometry(x.shape(), weight.shape(), options, name);
  SCALPEL_CHECK(is_floating(x.dtype()) && weight.dtype() == x.dtype() &&
                    (!bias.defined() || bias.dtype() == x.dtype()),
                "{}: input, weight and bias must share one float dtype, got {} and {}", name,
                dtype_name(x.dtype()), dtype_name(weight.dtype()));
  SCALPEL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == g.in_channels),
                "{}: bias must be [{}] for weight {} with groups {}, got {}", name, g.in_channels,
                shape_str(weight.shape()), g.groups, bias.defined() ? shape_str(bias.shape()) : "");
  if (!x.device().is_cpu()) return device_conv_transpose2d(x, weight, bias, g);
  SCALPEL_CHECK(x.device().is_cpu() && weight.device().is_cpu() &&
                    (!bias.defined() || bias.device().is_cpu()),
                "{}: only CPU tensors are supported here, got input on {} and weight on {}", name,
                x.device().str(), weight.device().str());
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  Tensor y = Tensor::empty({g.batch, g.in_channels, g.in_h, g.in_w}, x.dtype());
  dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ops::conv2d_backward_input<T>(ops::resolve_cpu_conv_algorithm(g), g, xc.data<T>(), wc.data<T>(), y.data<T>());
    if (bias.defined()) {
      const Tensor bc = bias.contiguous();
      const T* b = bc.data<T>();
      T* yp = y.data<T>();
      const int64_t plane = g.in_h * g.in_w;
      for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t c = 0; c < g.in_channels; ++c)
          for (T* p = yp + (n * g.in_channels + c) * plane, *e = p + plane; p < e; ++p) *p += b[c];
    }
  });
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  return record("conv_transpose2d", y, {x, weight, bias},
                [g, need_x, need_w, need_b, xs = need_w ? xc.detach() : Tensor(),
                 ws = need_x ? wc.detach() : Tensor()](const Tensor& gy_in) {
                  const Tensor gy = gy_in.contiguous();
                  Tensor gx, gw, gb;
                  dispatch_floating(gy.dtype(), [&](auto tag) {
                    using T = decltype(tag);
                    if (need_x) {
                      gx = Tensor::empty({g.batch, g.out_channels, g.out_h, g.out_w}, gy.dtype());
                      ops::conv2d_forward<T>(ops::resolve_cpu_conv_algorithm(g), g, gy.data<T>(), ws.data<T>(),
                                             nullptr, gx.data<T>());
                    }
                    if (need_w) {
                      gw = Tensor::empty({g.out_channels, g.in_per_group(), g.kernel_h, g.kernel_w}, gy.dtype());
                      ops::conv2d_backward_weight<T>(ops::resolve_cpu_conv_weight_gradient_algorithm(g), g,
                                                     gy.data<T>(), xs.data<T>(), gw.data<T>());
                    }
                    if (need_b) {
                      gb = Tensor::empty({g.in_channels}, gy.dtype());
                      ops::conv2d_backward_bias<T>(g.batch, g.in_channels, g.in_h * g.in_w, gy.data<T>(),
                                                   gb.data<T>());
                    }
                  });
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | conv_transpose2d | adjoint of conv2d (`conv_transpose2d.cpp`) | every conv engine | conv2d's kernels, adjoint (`conv.cu`) | |
