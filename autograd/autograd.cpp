#include "autograd/autograd.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "tensor/ops.h"

namespace scalpel {
namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!any_requires_grad(inputs)) return output;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = inputs;
  node->backward = std::move(backward);
  for (const Tensor& t : inputs) node->needs_grad.push_back(t.defined() && t.requires_grad());
  // The output may share a TensorImpl with an input (a no-op view); give it its own.
  Tensor out = output.detach();
  AutogradMeta& meta = out.autograd_meta();
  meta.requires_grad = true;
  meta.grad_fn = std::move(node);
  return out;
}

namespace {

// Nodes reachable from root, in reverse topological order (outputs before inputs). Owning
// pointers: freeing a node's inputs during backward must not free nodes still to run.
std::vector<std::shared_ptr<Node>> topological_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  // Iterative DFS (deep networks would overflow a recursive one).
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{root, 0}};
  visited.insert(root.get());
  while (!stack.empty()) {
    auto& [node, next] = stack.back();
    if (next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (!in.defined()) continue;
      const std::shared_ptr<Node>& child = in.grad_fn();
      if (child && visited.insert(child.get()).second) stack.push_back({child, 0});
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  std::reverse(order.begin(), order.end());
  return order;
}

void accumulate(std::unordered_map<const void*, Tensor>& grads, const void* key, const Tensor& g) {
  auto it = grads.find(key);
  if (it == grads.end()) grads.emplace(key, g);
  else it->second = ops::add(it->second, g);
}

void check_grad(const Node& node, size_t i, const Tensor& input, const Tensor& g) {
  SCALPEL_CHECK(g.shape() == input.shape(), "autograd: backward of {} returned a gradient of shape {} for input {} of shape {}",
                node.name, shape_str(g.shape()), i, shape_str(input.shape()));
  SCALPEL_CHECK(g.dtype() == input.dtype(), "autograd: backward of {} returned {} gradient for {} input {}", node.name,
                dtype_name(g.dtype()), dtype_name(input.dtype()), i);
}

// Runs the graph. For each input tensor in `wanted` (by autograd meta), the final
// gradient is written to `out`; when accumulate_leaves, leaves' .grad fields are += too.
// grad_ready (may be null) is called for each leaf once its gradient is final.
void run_backward(const Tensor& root, const Tensor& grad_output, bool retain_graph, bool accumulate_leaves,
                  const std::vector<Tensor>& wanted, std::vector<Tensor>* out, const GradReadyFn* grad_ready) {
  SCALPEL_CHECK(root.defined() && root.requires_grad(), "backward: tensor {} does not require grad", root.str());
  Tensor seed = grad_output;
  if (!seed.defined()) {
    SCALPEL_CHECK(root.numel() == 1, "backward: output {} is not a scalar; pass its gradient explicitly", root.str());
    seed = Tensor::ones(root.shape(), root.dtype(), root.device());
  }
  SCALPEL_CHECK(seed.shape() == root.shape(), "backward: gradient shape {} does not match output shape {}",
                shape_str(seed.shape()), shape_str(root.shape()));

  NoGradGuard no_grad;  // backward functions compute with raw ops; no double-backward
  std::unordered_map<const void*, Tensor> grads;  // keyed by AutogradMeta*
  std::unordered_map<const void*, Tensor> wanted_grads;
  std::unordered_set<const void*> wanted_keys;
  for (const Tensor& w : wanted) wanted_keys.insert(w.autograd_meta_ptr().get());

  std::unordered_set<const void*> leaves_reached;  // leaves given a gradient in this backward
  auto deliver = [&](const Tensor& t, const Tensor& g) {
    const void* key = t.autograd_meta_ptr().get();
    if (wanted_keys.count(key)) accumulate(wanted_grads, key, g);
    if (t.is_leaf()) {
      leaves_reached.insert(key);
      if (accumulate_leaves) {
        Tensor old = t.grad();
        const_cast<Tensor&>(t).set_grad(old.defined() ? ops::add(old, g) : g.contiguous());
      }
    } else {
      if (accumulate_leaves && t.autograd_meta_ptr()->retain_grad) {
        Tensor old = t.grad();
        const_cast<Tensor&>(t).set_grad(old.defined() ? ops::add(old, g) : g.contiguous());
      }
      accumulate(grads, t.grad_fn().get(), g);
    }
  };

  if (root.is_leaf()) {
    deliver(root, seed);
    if (grad_ready) (*grad_ready)(root);
  } else {
    if (wanted_keys.count(root.autograd_meta_ptr().get())) accumulate(wanted_grads, root.autograd_meta_ptr().get(), seed);
    grads.emplace(root.grad_fn().get(), seed);
    const std::vector<std::shared_ptr<Node>> order = topological_order(root.grad_fn());
    // Per leaf, the nodes still to run that may give it a gradient: at 0 its gradient is final.
    std::unordered_map<const void*, int64_t> feeders_left;
    const auto leaf_inputs = [](const Node& node, auto&& fn) {
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        if (node.needs_input_grad(i) && node.inputs[i].is_leaf()) fn(node.inputs[i]);
      }
    };
    if (grad_ready) {
      for (const auto& node : order) leaf_inputs(*node, [&](const Tensor& t) { ++feeders_left[t.autograd_meta_ptr().get()]; });
    }
    for (const std::shared_ptr<Node>& node : order) {
      auto it = grads.find(node.get());
      const bool runs = it != grads.end();  // else no gradient flows here
      if (runs) {
        Tensor g = std::move(it->second);
        grads.erase(it);
        SCALPEL_CHECK(node->backward, "autograd: the graph through {} was already freed; pass retain_graph=true to "
                      "run backward twice", node->name);
        std::vector<Tensor> input_grads = node->backward(g);
        SCALPEL_CHECK(input_grads.size() == node->inputs.size(), "autograd: backward of {} returned {} gradients for {} inputs",
                      node->name, input_grads.size(), node->inputs.size());
        for (size_t i = 0; i < node->inputs.size(); ++i) {
          const Tensor& input = node->inputs[i];
          if (!node->needs_input_grad(i) || !input_grads[i].defined()) continue;
          check_grad(*node, i, input, input_grads[i]);
          deliver(input, input_grads[i]);
        }
      }
      if (grad_ready) {
        leaf_inputs(*node, [&](const Tensor& t) {
          const void* key = t.autograd_meta_ptr().get();
          if (--feeders_left[key] == 0 && leaves_reached.count(key)) (*grad_ready)(t);
        });
      }
      if (runs && !retain_graph) {
        node->backward = nullptr;
        node->inputs.clear();
      }
    }
  }
  if (out) {
    out->clear();
    for (const Tensor& w : wanted) {
      auto it = wanted_grads.find(w.autograd_meta_ptr().get());
      out->push_back(it == wanted_grads.end() ? Tensor::zeros(w.shape(), w.dtype(), w.device()) : it->second);
    }
  }
}

}  // namespace

void backward(const Tensor& root, const Tensor& grad_output, bool retain_graph) {
  run_backward(root, grad_output, retain_graph, /*accumulate_leaves=*/true, {}, nullptr, nullptr);
}

void backward_with_grad_ready(const Tensor& root, const GradReadyFn& grad_ready) {
  run_backward(root, Tensor(), /*retain_graph=*/false, /*accumulate_leaves=*/true, {}, nullptr, &grad_ready);
}

std::vector<Tensor> grad(const Tensor& output, const std::vector<Tensor>& inputs, const Tensor& grad_output,
                         bool retain_graph) {
  for (const Tensor& t : inputs)
    SCALPEL_CHECK(t.defined() && t.requires_grad(), "grad: input {} does not require grad", t.str());
  std::vector<Tensor> out;
  run_backward(output, grad_output, retain_graph, /*accumulate_leaves=*/false, inputs, &out, nullptr);
  return out;
}

}  // namespace scalpel
