// Bad input to conv2d / conv_transpose2d / linear: a scalpel::Error whose message names the
// layer and the shapes involved. Plus TF "SAME" padding values.
#include <gtest/gtest.h>

#include "layers/functional.h"
#include "support/errors.h"

namespace scalpel {
namespace {

using nn::Conv2dOptions;
using nn::Padding2d;

using scalpel::test::expect_error;

Conv2dOptions padded(int64_t p, int64_t groups = 1) {
  Conv2dOptions o;
  o.padding = Padding2d::symmetric(p);
  o.groups = groups;
  return o;
}

TEST(ConvErrors, Conv2dNamesLayerAndShapes) {
  const Tensor x = Tensor::zeros({2, 3, 8, 8});
  // Channels of the input and the weight do not match.
  expect_error([&] { nn::conv2d(x, Tensor::zeros({16, 4, 3, 3}), Tensor(), padded(1), "stem.conv"); },
               {"stem.conv", "[2, 3, 8, 8]", "[16, 4, 3, 3]"});
  // Groups that do not divide the channels.
  expect_error([&] { nn::conv2d(x, Tensor::zeros({4, 1, 3, 3}), Tensor(), padded(1, 2), "block.dw"); },
               {"block.dw", "groups 2", "[2, 3, 8, 8]"});
  expect_error(
      [&] { nn::conv2d(Tensor::zeros({1, 4, 8, 8}), Tensor::zeros({5, 2, 3, 3}), Tensor(), padded(1, 2), "g"); },
      {"g:", "output channels 5"});
  // Kernel larger than the padded input.
  expect_error([&] { nn::conv2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({2, 3, 7, 7}), Tensor(), padded(1), "c7"); },
               {"c7", "7x7", "6x6", "[1, 3, 4, 4]"});
  // Dilation makes the kernel too large.
  Conv2dOptions dilated = padded(0);
  dilated.dilation = {3, 3};
  expect_error([&] { nn::conv2d(Tensor::zeros({1, 3, 6, 6}), Tensor::zeros({2, 3, 3, 3}), Tensor(), dilated, "d"); },
               {"d:", "dilation [3, 3]"});
  // Negative padding, bad stride, empty sizes, wrong ranks, wrong bias, mixed dtypes.
  Conv2dOptions negative;
  negative.padding = {-1, 0, 0, 0};
  expect_error([&] { nn::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), negative, "neg"); },
               {"neg", "padding must be >= 0", "top -1"});
  Conv2dOptions zero_stride;
  zero_stride.stride = {0, 1};
  expect_error([&] { nn::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), zero_stride, "s"); }, {"s:", "stride"});
  expect_error([&] { nn::conv2d(Tensor::zeros({2, 3, 0, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor(), padded(1), "e"); },
               {"e:", "[2, 3, 0, 8]"});
  expect_error([&] { nn::conv2d(Tensor::zeros({3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor(), padded(1), "r"); },
               {"r:", "4-D", "[3, 8, 8]"});
  expect_error([&] { nn::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({5}), padded(1), "b"); },
               {"b:", "bias", "[5]"});
  expect_error([&] { nn::conv2d(x, Tensor::zeros({4, 3, 3, 3}, DType::F64), Tensor(), padded(1), "t"); },
               {"t:", "float32", "float64"});
}

TEST(ConvErrors, ConvTranspose2dNamesLayerAndShapes) {
  nn::ConvTranspose2dOptions o;
  o.stride = {2, 2};
  expect_error([&] { nn::conv_transpose2d(Tensor::zeros({1, 4, 5, 5}), Tensor::zeros({3, 2, 2, 2}), Tensor(), o, "up1"); },
               {"up1", "[1, 4, 5, 5]", "[3, 2, 2, 2]"});
  o.output_padding = {2, 2};
  expect_error([&] { nn::conv_transpose2d(Tensor::zeros({1, 4, 5, 5}), Tensor::zeros({4, 2, 2, 2}), Tensor(), o, "up2"); },
               {"up2", "output_padding"});
  nn::ConvTranspose2dOptions big_pad;
  big_pad.padding = {3, 3};
  expect_error([&] { nn::conv_transpose2d(Tensor::zeros({1, 4, 2, 2}), Tensor::zeros({4, 2, 2, 2}), Tensor(), big_pad, "up3"); },
               {"up3", "padding [3, 3]"});
  nn::ConvTranspose2dOptions ok;
  expect_error([&] { nn::conv_transpose2d(Tensor::zeros({1, 4, 2, 2}), Tensor::zeros({4, 2, 2, 2}), Tensor::zeros({3}), ok, "up4"); },
               {"up4", "bias", "[3]"});
}

TEST(ConvErrors, LinearNamesLayerAndShapes) {
  expect_error([] { nn::linear(Tensor::zeros({2, 5}), Tensor::zeros({3, 4}), Tensor(), "fc"); },
               {"fc", "[2, 5]", "[3, 4]"});
  expect_error([] { nn::linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), Tensor::zeros({4}), "head"); },
               {"head", "bias", "[4]"});
  expect_error([] { nn::linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4, 1}), Tensor(), "w"); }, {"w:", "[3, 4, 1]"});
}

// TF "SAME": output ceil(in / stride); the odd padding pixel goes bottom/right.
TEST(SamePadding, MatchesTensorFlowRule) {
  EXPECT_EQ(nn::same_padding(8, 7, 3, 3, 2, 2), (Padding2d{0, 1, 1, 1}));
  EXPECT_EQ(nn::same_padding(224, 224, 3, 3, 2, 2), (Padding2d{0, 1, 0, 1}));
  EXPECT_EQ(nn::same_padding(225, 225, 3, 3, 2, 2), (Padding2d{1, 1, 1, 1}));
  EXPECT_EQ(nn::same_padding(6, 5, 4, 4, 1, 1), (Padding2d{1, 2, 1, 2}));
  EXPECT_EQ(nn::same_padding(9, 9, 3, 3, 1, 1, 2, 2), (Padding2d{2, 2, 2, 2}));
  EXPECT_EQ(nn::same_padding(5, 5, 1, 1, 2, 2), (Padding2d{0, 0, 0, 0}));
  EXPECT_EQ(nn::same_padding(2, 2, 5, 5, 3, 3), (Padding2d{1, 2, 1, 2}));  // out 1: 5 - 2 = 3
  // The SAME output size is ceil(in / stride) for every input size.
  for (int64_t in = 1; in < 20; ++in)
    for (int64_t k : {1, 2, 3, 5})
      for (int64_t s : {1, 2, 3}) {
        Conv2dOptions o;
        o.stride = {s, s};
        o.same = true;
        const Tensor y = nn::conv2d(Tensor::zeros({1, 1, in, in}), Tensor::zeros({1, 1, k, k}), Tensor(), o);
        EXPECT_EQ(y.size(2), (in + s - 1) / s) << "in " << in << " k " << k << " s " << s;
      }
  expect_error([] { nn::same_padding(0, 5, 3, 3, 1, 1); }, {"same_padding", "0x5"});
}

}  // namespace
}  // namespace scalpel
