#pragma once
// The op-case table of the backend tests (test_ops_device.cpp), after ggml's test-backend-ops:
// each row builds its inputs on the CPU and says which of them are differentiable; the test
// runs the row on the CPU (the reference) and on every available device backend from the same
// inputs and compares the output, every input gradient and the inputs the op updates in place.
// A new op is checked on every backend by adding one row here.
//
// Inputs reach the op all on one device (labels and running statistics included), so a row's
// `op` never names a device. Rows marked `convolution` also run under cuDNN where it works.
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "autograd/functions.h"
#include "conv/conv_cases.h"
#include "layers/functional.h"
#include "layers/loss.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace scalpel::testing_ops {

using Inputs = std::vector<Tensor>;

struct OpCase {
  std::string name;                          // letters, digits and underscores (a gtest name)
  std::function<Inputs(Generator&)> inputs;  // on the CPU; undefined tensors allowed (no bias)
  std::vector<bool> differentiable;          // per input: requires_grad, gradient compared
  std::function<Tensor(const Inputs&)> op;
  double tol = 1e-5;                         // on max |got - want| / max(1, max |want|)
  bool convolution = false;                  // also run under each device convolution engine
  std::vector<size_t> updated_in_place = {};  // inputs the op writes (running statistics)
};

namespace op_cases_detail {

inline Inputs randn_inputs(Generator& gen, const std::vector<Shape>& shapes) {
  Inputs in;
  for (const Shape& s : shapes) in.push_back(randn(s, gen));
  return in;
}

// Every row of tests/conv/conv_cases.h, asymmetric and TF SAME padding included.
inline void add_conv_cases(std::vector<OpCase>& cases) {
  for (const testing_conv::ConvCase& c : testing_conv::conv_cases()) {
    cases.push_back({"conv2d_" + c.name,
                     [c](Generator& gen) {
                       return Inputs{randn(c.x, gen), randn(c.weight(), gen),
                                     c.bias ? randn({c.out_channels}, gen) : Tensor()};
                     },
                     {true, true, c.bias},
                     [o = c.options](const Inputs& in) { return nn::conv2d(in[0], in[1], in[2], o); },
                     1e-4,
                     true});
  }
}

inline nn::ConvTranspose2dOptions transpose_options(std::array<int64_t, 2> stride, std::array<int64_t, 2> padding,
                                                    std::array<int64_t, 2> output_padding, int64_t groups) {
  nn::ConvTranspose2dOptions o;
  o.stride = stride;
  o.padding = padding;
  o.output_padding = output_padding;
  o.groups = groups;
  return o;
}

inline OpCase unary(const std::string& name, Tensor (*fn)(const Tensor&)) {
  // Spread over [-8, 8] so every piece of relu6/hardswish/hardsigmoid is hit.
  return {name, [](Generator& gen) { return Inputs{ops::mul_scalar(randn({3, 5, 7}, gen), 4.0)}; }, {true},
          [fn](const Inputs& in) { return fn(in[0]); }};
}

// Inputs x, weight, bias, running mean, running var; without affine parameters there are no
// running statistics either.
inline OpCase batch_norm(const std::string& name, bool training, bool affine) {
  return {name,
          [affine](Generator& gen) {
            const Tensor x = randn({3, 4, 5, 3}, gen);
            if (!affine) return Inputs{x, Tensor(), Tensor(), Tensor(), Tensor()};
            const Tensor w = randn({4}, gen), b = randn({4}, gen);
            const Tensor rm = randn({4}, gen), rv = ops::add_scalar(rand({4}, gen), 0.5);
            return Inputs{x, w, b, rm, rv};
          },
          {true, affine, affine, false, false},
          [training](const Inputs& in) { return nn::batch_norm(in[0], in[3], in[4], in[1], in[2], training, 0.1, 1e-5); },
          1e-4,
          false,
          {3, 4}};
}

inline OpCase pool(const std::string& name, std::function<Tensor(const Tensor&)> fn) {
  return {name, [](Generator& gen) { return Inputs{randn({2, 3, 7, 6}, gen)}; }, {true},
          [fn = std::move(fn)](const Inputs& in) { return fn(in[0]); }};
}

inline nn::Pool2dOptions pool3x3_stride2(bool count_include_pad) {
  nn::Pool2dOptions o;
  o.kernel = {3, 3};
  o.stride = {2, 2};
  o.padding = nn::Padding2d::symmetric(1);
  o.count_include_pad = count_include_pad;
  return o;
}

inline OpCase cross_entropy(const std::string& name, nn::Reduction reduction) {
  return {name,
          [](Generator& gen) {
            return Inputs{ops::mul_scalar(randn({5, 7}, gen), 3.0),
                          Tensor::from_vector({0, 6, 3, 3, 1}, {5}, DType::I64)};
          },
          {true, false},
          [reduction](const Inputs& in) {
            nn::CrossEntropyOptions o;
            o.reduction = reduction;
            return nn::cross_entropy(in[0], in[1], o);
          }};
}

}  // namespace op_cases_detail

// The table. Small odd shapes, so that partial tiles and tails are exercised.
inline const std::vector<OpCase>& op_cases() {
  using namespace op_cases_detail;
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> c;
    add_conv_cases(c);
    c.push_back({"conv_transpose2d_2x2_stride2",
                 [](Generator& gen) { return randn_inputs(gen, {{2, 4, 3, 5}, {4, 3, 2, 2}, {3}}); },
                 {true, true, true},
                 [](const Inputs& in) {
                   return nn::conv_transpose2d(in[0], in[1], in[2], transpose_options({2, 2}, {0, 0}, {0, 0}, 1));
                 },
                 1e-4});
    c.push_back({"conv_transpose2d_grouped_output_padding",
                 [](Generator& gen) {
                   return Inputs{randn({2, 4, 3, 4}, gen), randn({4, 3, 3, 3}, gen), Tensor()};
                 },
                 {true, true, false},
                 [](const Inputs& in) {
                   return nn::conv_transpose2d(in[0], in[1], in[2], transpose_options({2, 3}, {1, 0}, {1, 2}, 2));
                 },
                 1e-4});
    // output_padding >= stride (allowed below the dilation): output rows no window reaches.
    c.push_back({"conv_transpose2d_dilated_output_padding",
                 [](Generator& gen) { return randn_inputs(gen, {{2, 3, 4, 5}, {3, 2, 3, 2}, {2}}); },
                 {true, true, true},
                 [](const Inputs& in) {
                   nn::ConvTranspose2dOptions o = transpose_options({1, 1}, {1, 0}, {1, 2}, 1);
                   o.dilation = {2, 3};
                   return nn::conv_transpose2d(in[0], in[1], in[2], o);
                 },
                 1e-4});
    c.push_back({"linear_batch_axes",
                 [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5}, {4, 5}, {4}}); },
                 {true, true, true},
                 [](const Inputs& in) { return nn::linear(in[0], in[1], in[2]); },
                 1e-4});
    c.push_back(batch_norm("batch_norm_training", true, true));
    c.push_back(batch_norm("batch_norm_eval", false, true));
    c.push_back(batch_norm("batch_norm_training_without_affine_or_running_stats", true, false));
    c.push_back(unary("relu", nn::relu));
    c.push_back(unary("relu6", nn::relu6));
    c.push_back(unary("silu", nn::silu));
    c.push_back(unary("sigmoid", nn::sigmoid));
    c.push_back(unary("tanh", nn::tanh));
    c.push_back(unary("hardswish", nn::hardswish));
    c.push_back(unary("hardsigmoid", nn::hardsigmoid));
    c.push_back(unary("gelu", nn::gelu));
    c.push_back({"leaky_relu", [](Generator& gen) { return Inputs{ops::mul_scalar(randn({3, 5, 7}, gen), 4.0)}; },
                 {true},
                 [](const Inputs& in) { return nn::leaky_relu(in[0], 0.1); }});
    // Residual add, squeeze-excite scale [N, C, 1, 1], a bias-like [C, 1, 1].
    c.push_back({"broadcast_mul_add",
                 [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}, {2, 3, 1, 1}, {3, 1, 1}}); },
                 {true, true, true},
                 [](const Inputs& in) { return add(add(mul(in[0], in[1]), in[2]), in[0]); }});
    c.push_back({"mean_and_sum_over_axes", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); },
                 {true},
                 [](const Inputs& in) { return add(mul(mean(in[0], {2, 3}, true), 2.0), sum(in[0], {0, 2}, true)); }});
    // The raw reductions (no autograd) over non-adjacent and negative axes, without keepdim.
    c.push_back({"max_axes_1_last", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {false},
                 [](const Inputs& in) { return ops::max(in[0], {1, -1}); }});
    c.push_back({"sum_all", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {false},
                 [](const Inputs& in) { return ops::sum(in[0]); }});
    c.push_back({"mean_axes_0_3", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {false},
                 [](const Inputs& in) { return ops::mean(in[0], {0, 3}); }});
    for (int64_t axis : {0, 1, 3})
      c.push_back({"argmax_axis" + std::to_string(axis), [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); },
                   {false}, [axis](const Inputs& in) { return ops::argmax(in[0], axis); }, 0.0});
    c.push_back(pool("max_pool2d", [](const Tensor& x) { return nn::max_pool2d(x, pool3x3_stride2(true)); }));
    // TF "SAME" (Xception's pools: the odd pixel bottom/right) and ceil_mode: an explicitly
    // -inf-padded input on the device.
    c.push_back(pool("max_pool2d_same", [](const Tensor& x) {
      nn::Pool2dOptions same = pool3x3_stride2(true);
      same.padding = nn::same_padding(7, 6, 3, 3, 2, 2);
      return nn::max_pool2d(x, same);
    }));
    c.push_back(pool("max_pool2d_ceil_mode", [](const Tensor& x) {
      nn::Pool2dOptions ceil = pool3x3_stride2(true);
      ceil.padding = {};
      ceil.ceil_mode = true;
      return nn::max_pool2d(x, ceil);
    }));
    c.push_back(pool("avg_pool2d", [](const Tensor& x) { return nn::avg_pool2d(x, pool3x3_stride2(false)); }));
    c.push_back(pool("global_avg_pool", [](const Tensor& x) { return nn::global_avg_pool(x); }));
    c.push_back(pool("adaptive_avg_pool2d_7x6_to_7x2", [](const Tensor& x) { return nn::adaptive_avg_pool2d(x, 7, 2); }));
    for (int64_t axis : {-1, 1}) {
      const std::string suffix = axis < 0 ? "_last_axis" : "_axis1";
      auto inputs = [](Generator& gen) { return Inputs{ops::mul_scalar(randn({2, 5, 3, 4}, gen), 3.0)}; };
      c.push_back({"softmax" + suffix, inputs, {true}, [axis](const Inputs& in) { return nn::softmax(in[0], axis); }});
      c.push_back({"log_softmax" + suffix, inputs, {true},
                   [axis](const Inputs& in) { return nn::log_softmax(in[0], axis); }});
    }
    c.push_back(cross_entropy("cross_entropy_mean", nn::Reduction::Mean));
    c.push_back(cross_entropy("cross_entropy_sum", nn::Reduction::Sum));
    c.push_back({"upsample_nearest", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {true},
                 [](const Inputs& in) { return nn::upsample(in[0], 10, 9, "nearest"); }});
    c.push_back({"upsample_bilinear", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {true},
                 [](const Inputs& in) { return nn::upsample(in[0], 11, 8, "bilinear"); }});
    c.push_back({"pad2d", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}}); }, {true},
                 [](const Inputs& in) { return nn::pad2d(in[0], nn::Padding2d{1, 0, 2, 3}, -0.5); }});
    c.push_back({"concat_channels", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}, {2, 2, 5, 4}}); },
                 {true, true},
                 [](const Inputs& in) { return concat({in[0], in[1], in[0]}, 1); }});
    c.push_back({"contiguous_copy_of_a_view", [](Generator& gen) { return randn_inputs(gen, {{3, 4, 5}}); }, {false},
                 [](const Inputs& in) { return in[0].permute({2, 0, 1}).slice(1, 1, 3).contiguous(); }, 0.0});
    return c;
  }();
  return cases;
}

}  // namespace scalpel::testing_ops
