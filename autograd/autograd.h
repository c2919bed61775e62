#pragma once
// Reverse-mode automatic differentiation over a dynamic graph.
//
// An op that gets an input requiring grad (while grad mode is on) returns a tensor whose
// grad_fn is a Node: it holds the op's inputs and a backward function mapping the output's
// gradient to one gradient per input. backward() walks the graph in reverse topological
// order, sums gradients that meet, and accumulates (+=) into the .grad of leaves that
// require grad. The graph's saved tensors are released afterwards unless retain_graph.
//
// Writing a new op (see autograd/functions.cpp for many):
//   Tensor y = ops::something(x);                      // raw computation, no history
//   return record("something", y, {x}, [x = x.detach()](const Tensor& gy) {
//     return std::vector<Tensor>{ops::mul(gy, ...)};  // one entry per input, shapes = inputs'
//   });
// Save inputs/outputs with detach() inside the closure: saving the output itself would make
// a reference cycle (output -> node -> closure -> output).
#include <functional>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace scalpel {

using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct Node {
  std::string name;
  std::vector<Tensor> inputs;  // with their autograd metadata; cleared after backward
  BackwardFn backward;
  // Which inputs need a gradient (the backward may return undefined Tensors for the others).
  std::vector<bool> needs_grad;
  bool needs_input_grad(size_t i) const { return i < needs_grad.size() && needs_grad[i]; }
};

// ---- grad mode ----
bool grad_enabled();
class NoGradGuard {  // disables recording in its scope (evaluation, optimizer updates)
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when grad mode is on and any input requires grad.
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Attaches history to `output` when any input requires grad (and grad mode is on); returns it.
Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn backward);

// Runs backward from `root`. With no grad_output, root must have one element (grad 1).
void backward(const Tensor& root, const Tensor& grad_output = Tensor(), bool retain_graph = false);

// backward(root) that calls grad_ready(leaf) as soon as a leaf's .grad is final for this backward
// (every node that may feed it has run), while backward goes on: data-parallel training sends
// the gradients to the other ranks from there (apps/train/distributed.h). Leaves that get no
// gradient are not reported.
using GradReadyFn = std::function<void(const Tensor& leaf)>;
void backward_with_grad_ready(const Tensor& root, const GradReadyFn& grad_ready);

// Gradients of `outputs` w.r.t. `inputs` without touching .grad (used by the grad checker).
std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs,
                         const Tensor& grad_output = Tensor(), bool retain_graph = false);

}  // namespace scalpel
