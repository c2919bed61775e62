// SyncBatchNorm (layers/communicator.h) without MPI: two ranks as two threads of this process,
// each with half of a batch, give the outputs, input gradients, summed weight/bias gradients
// and running statistics of batch_norm() over the whole batch, bit for bit.
#include <gtest/gtest.h>

#include <barrier>
#include <cmath>
#include <thread>
#include <vector>

#include "autograd/autograd.h"
#include "autograd/functions.h"
#include "layers/communicator.h"
#include "layers/functional.h"
#include "tensor/random.h"

namespace scalpel {
namespace {

// Ranks are threads; each collective exchanges the ranks' buffers through shared slots.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : slots_(size), barrier_(size) {}
  void allreduce(int rank, double* data, int64_t n) {
    slots_[rank].assign(data, data + n);
    barrier_.arrive_and_wait();
    for (int64_t i = 0; i < n; ++i) {
      double sum = 0;
      for (const auto& s : slots_) sum += s[i];
      data[i] = sum;
    }
    barrier_.arrive_and_wait();  // nobody overwrites a slot before everyone has read it
  }
  int size() const { return static_cast<int>(slots_.size()); }

 private:
  std::vector<std::vector<double>> slots_;
  std::barrier<> barrier_;
};

class ThreadCommunicator : public nn::Communicator {
 public:
  ThreadCommunicator(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return group_.size(); }
  std::string backend() const override { return "threads"; }
  void allreduce_sum(double* data, int64_t n) override { group_.allreduce(rank_, data, n); }
  void allreduce_sum(float* data, int64_t n) override {
    std::vector<double> d(data, data + n);
    group_.allreduce(rank_, d.data(), n);
    for (int64_t i = 0; i < n; ++i) data[i] = static_cast<float>(d[i]);
  }
  void broadcast(double*, int64_t, int) override { FAIL() << "not used by batch norm"; }

 private:
  ThreadGroup& group_;
  int rank_;
};

struct BnResult {
  Tensor y, gx, gw, gb, running_mean, running_var;
};

// batch_norm of x (a leaf) in training mode, then backward of sum(y * coef).
BnResult run_bn(const Tensor& x_values, const Tensor& coef, const Tensor& weight_values, const Tensor& bias_values) {
  Tensor x = x_values.clone().set_requires_grad(true);
  Tensor w = weight_values.clone().set_requires_grad(true);
  Tensor b = bias_values.clone().set_requires_grad(true);
  Tensor rm = Tensor::zeros({x.size(1)}), rv = Tensor::ones({x.size(1)});
  const Tensor y = nn::batch_norm(x, rm, rv, w, b, /*training=*/true, 0.1, 1e-5);
  backward(sum(mul(y, coef)));
  return {y.detach(), x.grad(), w.grad(), b.grad(), rm, rv};
}

// Bit for bit: both sum the batch in the same order (layers/ops/batch_tree.h).
void expect_same(const Tensor& got, const Tensor& want, const char* what) {
  const auto g = got.to_vector(), w = want.to_vector();
  ASSERT_EQ(g.size(), w.size()) << what;
  for (size_t i = 0; i < g.size(); ++i) EXPECT_EQ(g[i], w[i]) << what << " " << i;
}

TEST(SyncBatchNorm, TwoThreadRanksEqualOneBatch) {
  Generator gen(7);
  // An offset mean (5) over a small spread: the case where sum-of-squares variances lose digits.
  std::vector<double> values = randn({8, 3, 2, 2}, gen).to_vector();
  for (double& v : values) v = 5 + 0.01 * v;
  const Tensor shifted = Tensor::from_vector(values, {8, 3, 2, 2});
  const Tensor coef = randn({8, 3, 2, 2}, gen), w = randn({3}, gen), b = randn({3}, gen);
  const BnResult whole = run_bn(shifted, coef, w, b);

  ThreadGroup group(2);
  BnResult part[2];
  std::vector<std::thread> ranks;
  for (int r = 0; r < 2; ++r) {
    ranks.emplace_back([&, r] {
      ThreadCommunicator comm(group, r);
      nn::SyncBatchNorm scope(&comm);
      part[r] = run_bn(shifted.slice(0, 4 * r, 4 * r + 4).contiguous(), coef.slice(0, 4 * r, 4 * r + 4).contiguous(),
                       w, b);
    });
  }
  for (auto& t : ranks) t.join();
  for (int r = 0; r < 2; ++r) {
    expect_same(part[r].y, whole.y.slice(0, 4 * r, 4 * r + 4).contiguous(), "y");
    expect_same(part[r].gx, whole.gx.slice(0, 4 * r, 4 * r + 4).contiguous(), "x grad");
    expect_same(part[r].running_mean, whole.running_mean, "running_mean");
    expect_same(part[r].running_var, whole.running_var, "running_var");
  }
  // Per-rank weight and bias gradients (rank 0's the global ones, rank 1's zero) add up to the
  // whole batch's.
  const auto add = [](const Tensor& a, const Tensor& c) {
    std::vector<double> v = a.to_vector();
    const std::vector<double> u = c.to_vector();
    for (size_t i = 0; i < v.size(); ++i) v[i] += u[i];
    return Tensor::from_vector(v, a.shape());
  };
  expect_same(add(part[0].gw, part[1].gw), whole.gw, "weight grad");
  expect_same(add(part[0].gb, part[1].gb), whole.gb, "bias grad");
  // Outside a scope, a rank normalizes with its own half only (as PyTorch DDP).
  const BnResult alone = run_bn(shifted.slice(0, 0, 4).contiguous(), coef.slice(0, 0, 4).contiguous(), w, b);
  EXPECT_GT(std::abs(alone.running_mean.to_vector()[0] - whole.running_mean.to_vector()[0]), 1e-6);
}

}  // namespace
}  // namespace scalpel
