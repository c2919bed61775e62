#pragma once
// conv_transpose2d ("deconvolution", U-Net up-sampling) is the adjoint of conv2d and reuses its
// kernels and engines (layers/ops/conv2d.h). For x [N, C_in, H, W] and weight
// [C_in, C_out/groups, kH, kW] (PyTorch layout), take the conv2d geometry g whose input is the
// transposed conv's output [N, C_out, OH, OW] and whose output is x, with
//   OH = (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1
// (likewise OW). The weight is then exactly that conv2d's weight [C_in, C_out/groups, kH, kW], and
//   y       = conv2d_backward_input(g, x, weight) + bias
//   grad_x  = conv2d_forward(g, grad_y, weight)
//   grad_w  = conv2d_backward_weight(g, grad_y, x)
#include <string>

#include "layers/functional.h"
#include "layers/ops/conv2d.h"

namespace scalpel::ops {

// Validates the shapes and options (errors name the layer `name` and the shapes) and returns g.
Conv2dGeometry conv_transpose2d_geometry(const Shape& x, const Shape& weight,
                                         const nn::ConvTranspose2dOptions& options,
                                         const std::string& name);

}  // namespace scalpel::ops
