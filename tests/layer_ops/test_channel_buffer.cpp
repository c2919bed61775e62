// nn::ChannelBuffer (DenseNet's concatenation into one preallocated buffer): the same values
// and gradients as concat, no copies of earlier channels (views of one storage that later
// appends leave intact), the float64 gradient check through a chain of appends, errors.
#include <gtest/gtest.h>

#include "layer_ops/op_fixture.h"
#include "layers/functional.h"

namespace scalpel {
namespace {

using testing::expect_gradcheck;
using testing::random_leaf;

// Two dense "layers" (1x1 convs of everything so far), grown in a ChannelBuffer or by concat.
Tensor dense_chain(const std::vector<Tensor>& in, bool buffered) {
  const Tensor& x = in[0];
  if (buffered) {
    nn::ChannelBuffer buffer(x, 3 + 2 + 2);
    buffer.append(nn::conv2d(buffer.filled(), in[1], Tensor(), {}));
    buffer.append(nn::conv2d(buffer.filled(), in[2], Tensor(), {}));
    return buffer.filled();
  }
  Tensor all = x;
  all = concat({all, nn::conv2d(all, in[1], Tensor(), {})}, 1);
  return concat({all, nn::conv2d(all, in[2], Tensor(), {})}, 1);
}

TEST(ChannelBuffer, EqualsConcatForwardAndBackward) {
  const std::vector<Tensor> in = {random_leaf({2, 3, 4, 5}, 1), random_leaf({2, 3, 1, 1}, 2),
                                  random_leaf({2, 5, 1, 1}, 3)};
  const Tensor a = dense_chain(in, true), b = dense_chain(in, false);
  EXPECT_EQ(a.shape(), (Shape{2, 7, 4, 5}));
  EXPECT_EQ(ops::max_abs_diff(a, b), 0.0);
  const Tensor gy = random_leaf({2, 7, 4, 5}, 4).detach();
  const auto ga = grad(a, in, gy), gb = grad(b, in, gy);
  for (size_t i = 0; i < in.size(); ++i) EXPECT_LT(ops::max_abs_diff(ga[i], gb[i]), 1e-12) << i;
}

TEST(ChannelBuffer, Gradcheck) {
  expect_gradcheck([](const std::vector<Tensor>& in) { return dense_chain(in, true); },
                   {random_leaf({2, 3, 3, 4}, 5), random_leaf({2, 3, 1, 1}, 6), random_leaf({2, 5, 1, 1}, 7)});
}

TEST(ChannelBuffer, ViewsOfOneStorageThatAppendsLeaveIntact) {
  const Tensor x = random_leaf({2, 2, 3, 3}, 8).detach();
  nn::ChannelBuffer buffer(x, 6);
  const Tensor first = buffer.filled();
  const std::vector<double> before = first.to_vector();
  const Tensor y = random_leaf({2, 3, 3, 3}, 9).detach();
  const Tensor grown = buffer.append(y);
  EXPECT_TRUE(first.shares_storage(buffer.buffer()));
  EXPECT_TRUE(grown.shares_storage(buffer.buffer()));
  EXPECT_EQ(first.to_vector(), before) << "an append overwrote earlier channels";
  EXPECT_EQ(ops::max_abs_diff(grown, concat({x, y}, 1)), 0.0);
}

TEST(ChannelBuffer, Errors) {
  const Tensor x = Tensor::zeros({2, 2, 3, 3}, DType::F64);
  nn::ChannelBuffer buffer(x, 4, "denseblock1");
  auto message = [&](const Tensor& y) {
    try {
      buffer.append(y);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message(Tensor::zeros({2, 1, 3, 4}, DType::F64)).find("denseblock1: cannot append [2, 1, 3, 4]"),
            std::string::npos);
  EXPECT_NE(message(Tensor::zeros({2, 3, 3, 3}, DType::F64)).find("overflows the capacity 4"), std::string::npos);
  EXPECT_NE(message(Tensor::zeros({2, 1, 3, 3}, DType::F32)).find("float32"), std::string::npos);
  EXPECT_THROW(nn::ChannelBuffer(x, 1), Error);
}

}  // namespace
}  // namespace scalpel
