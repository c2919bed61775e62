#pragma once
// The op-case table of the backend tests (test_ops_device.cpp), after ggml's test-backend-ops:
// each row builds its inputs on the CPU and says which of them are differentiable; the test
// runs the row on the CPU (the reference) and on every available device backend from the same
// inputs and compares the output, every input gradient and the inputs the op updates in place.
// A new op is checked on every backend by one row, written beside its other tests:
//
//   SCALPEL_OP_CASES(pad2d) {  // in tests/layer_ops/test_<op>.cpp
//     return {{"pad2d", [](Generator& gen) { return Inputs{randn({2, 3, 5, 4}, gen)}; }, {true},
//              [](const Inputs& in) { return nn::pad2d(in[0], nn::Padding2d{1, 0, 2, 3}, -0.5); }}};
//   }
//
// The ops whose tests live in other areas (convolution, linear, losses, tensor ops) keep their
// rows in the table below.
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

// Rows a test file adds with SCALPEL_OP_CASES, collected at start-up (gtest expands the table
// after static initialization, in InitGoogleTest).
using OpCaseMaker = std::vector<OpCase> (*)();
inline std::vector<OpCaseMaker>& op_case_makers() {
  static std::vector<OpCaseMaker> makers;
  return makers;
}
struct OpCaseRegistrar {
  explicit OpCaseRegistrar(OpCaseMaker maker) { op_case_makers().push_back(maker); }
};
#define SCALPEL_OP_CASES(name)                                                                         \
  static std::vector<::scalpel::testing_ops::OpCase> scalpel_op_cases_##name();                       \
  static const ::scalpel::testing_ops::OpCaseRegistrar scalpel_op_case_registrar_##name(               \
      scalpel_op_cases_##name);                                                                         \
  static std::vector<::scalpel::testing_ops::OpCase> scalpel_op_cases_##name()

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

// The table, then the rows of SCALPEL_OP_CASES. Small odd shapes, so that partial tiles and
// tails are exercised.
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
    c.push_back(cross_entropy("cross_entropy_mean", nn::Reduction::Mean));
    c.push_back(cross_entropy("cross_entropy_sum", nn::Reduction::Sum));
    c.push_back({"concat_channels", [](Generator& gen) { return randn_inputs(gen, {{2, 3, 5, 4}, {2, 2, 5, 4}}); },
                 {true, true},
                 [](const Inputs& in) { return concat({in[0], in[1], in[0]}, 1); }});
    c.push_back({"contiguous_copy_of_a_view", [](Generator& gen) { return randn_inputs(gen, {{3, 4, 5}}); }, {false},
                 [](const Inputs& in) { return in[0].permute({2, 0, 1}).slice(1, 1, 3).contiguous(); }, 0.0});
    for (OpCaseMaker make : op_case_makers())
      for (OpCase& row : make()) c.push_back(std::move(row));
    return c;
  }();
  return cases;
}

}  // namespace scalpel::testing_ops
