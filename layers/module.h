#pragma once
// Module: the small layer interface (after torch.nn.Module).
//
// A module owns named parameters (learnable, requires_grad) and buffers (state such as BN
// running statistics), and named children. Names join with '.' into PyTorch-style state-dict
// keys ("layer1.0.conv1.weight"). Networks are built at run time from code.
// forward() takes and returns one tensor; modules with more inputs expose their own methods.
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/functional.h"

namespace scalpel::nn {

class Module;
using ModulePtr = std::shared_ptr<Module>;

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

class Module {
 public:
  explicit Module(std::string type) : type_(std::move(type)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  virtual Tensor forward(const Tensor& x) = 0;
  // forward(x), then the calling thread's ForwardHook (if one is installed). Parents call
  // their children through this, so a hook sees every module of a network.
  Tensor operator()(const Tensor& x);
  // Tells the calling thread's ForwardHook about a call made without operator() (a graph node
  // with several inputs reports its first one).
  void report_forward(const Tensor& input, const Tensor& output);

  // Short type name for summaries ("Conv2d", "BatchNorm2d", ...) and a one-line description
  // of its configuration ("3->64, k7x7, s2, p3").
  const std::string& type() const { return type_; }
  virtual std::string describe() const { return ""; }
  // Multiply-accumulates of the last forward (for `summary`); 0 for cheap layers. Counts
  // only the module's own work: composite modules leave their children's MACs to them.
  virtual int64_t macs(const Shape& /*input_shape*/, const Shape& /*output_shape*/) const { return 0; }

  // ---- parameters, buffers, children ----
  // Registration keeps insertion order (= definition order, used by --weights-map order).
  // The returned reference stays valid for the module's lifetime; keeping a copy of the
  // Tensor handle works too, because loading and to() update the tensors in place.
  // Names must be unique within a module and contain no '.'; Error otherwise.
  Tensor& register_parameter(const std::string& name, Tensor value, bool requires_grad = true);
  // counted = false marks bookkeeping buffers (BatchNorm's num_batches_tracked): they are in
  // the state dict, but not counted as non-trainable and not required by load_state_dict.
  Tensor& register_buffer(const std::string& name, Tensor value, bool counted = true);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }
  // Replaces a direct child (e.g. a classifier head) by name; Error when absent. Only
  // forwards that reach the child through the tree (Sequential, child(name)) see the new one;
  // a shared_ptr member a module kept still points to the old child.
  void replace_module(const std::string& name, ModulePtr module);

  std::vector<NamedTensor> named_parameters(bool recurse = true) const;  // dotted names
  std::vector<NamedTensor> named_buffers(bool recurse = true) const;
  std::vector<Tensor> parameters(bool recurse = true) const;
  std::vector<std::pair<std::string, ModulePtr>> named_children() const { return children_; }
  // Every module in the tree, depth first, with dotted names ("" for this one).
  std::vector<std::pair<std::string, Module*>> named_modules();
  ModulePtr child(const std::string& name) const;  // nullptr when absent

  // Dotted name of this module in the tree it was last registered into ("" for a root);
  // label() is that name, or type() for a root. Layers put label() in their error messages.
  const std::string& path() const { return path_; }
  std::string label() const { return path_.empty() ? type_ : path_; }

  // Parameters and buffers in definition order, named as in a PyTorch state dict.
  std::vector<NamedTensor> state_dict() const;
  // Copies values in by name. Missing, unexpected and shape-mismatched keys are listed in
  // the Error unless strict is false (then they are returned in the report instead).
  struct LoadReport {
    std::vector<std::string> missing, unexpected, mismatched;
  };
  LoadReport load_state_dict(const std::vector<NamedTensor>& state, bool strict = true);

  // ---- modes ----
  virtual void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }

  // ---- freezing ----
  // requires_grad off (or on) for every parameter whose dotted name starts with `prefix`
  // ("" = all). Returns how many parameters changed.
  int64_t set_requires_grad(const std::string& prefix, bool requires_grad);

  // ---- counting (Keras convention: buffers are non-trainable) ----
  int64_t count_parameters(bool trainable_only = false) const;
  int64_t count_buffers() const;

  // Moves every parameter and buffer to `device` (in place, keeping requires_grad).
  void to(Device device);
  // Converts every floating parameter and buffer to `dtype` (in place; integer buffers such
  // as num_batches_tracked keep theirs). Used for float64 gradient checks of whole blocks.
  void to(DType dtype);
  // Drops accumulated gradients (PyTorch's zero_grad(set_to_none=True)).
  void zero_grad();

 protected:
  bool training_ = true;

 private:
  struct Entry {
    std::string name;
    Tensor tensor;
    bool counted = true;  // buffers only
  };
  void add_child(const std::string& name, ModulePtr module);
  void check_new_name(const std::string& name) const;
  void set_path(const std::string& path);
  template <typename Fn> void visit_entries(const std::string& prefix, bool recurse, bool buffers, Fn&& fn) const;

  std::string type_;
  std::string path_;
  // deques: references returned by register_* stay valid as more entries are added.
  std::deque<Entry> parameters_;
  std::deque<Entry> buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
};

// Observes module calls on the current thread (summary: shapes and MACs per layer; Grad-CAM:
// the activation of a named layer). Installed for a scope by ForwardHookGuard; guards nest,
// the innermost wins. Called after forward with the module, its input and its output.
using ForwardHook = std::function<void(Module& module, const Tensor& input, const Tensor& output)>;
class ForwardHookGuard {
 public:
  // Whether the calling thread has a hook installed (blocks that would split their batch into
  // separate calls keep it whole then, so that a hook sees the calls the batch makes).
  static bool installed();
  explicit ForwardHookGuard(ForwardHook hook);
  ~ForwardHookGuard();
  ForwardHookGuard(const ForwardHookGuard&) = delete;
  ForwardHookGuard& operator=(const ForwardHookGuard&) = delete;

 private:
  ForwardHook hook_;
  const ForwardHook* previous_;
};

// Runs children in order.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  // For composite blocks that are sequences (ConvBNAct, ...) and want their own type name.
  explicit Sequential(std::string type) : Module(std::move(type)) {}
  Sequential& add(ModulePtr module);  // named "0", "1", ...
  Sequential& add(const std::string& name, ModulePtr module);
  Tensor forward(const Tensor& x) override;
  size_t size() const { return named_children().size(); }
};

// Wraps a stateless function (activation, flatten, ...) as a module.
class Lambda : public Module {
 public:
  Lambda(std::string type, std::function<Tensor(const Tensor&)> fn, std::string description = "")
      : Module(std::move(type)), fn_(std::move(fn)), description_(std::move(description)) {}
  Tensor forward(const Tensor& x) override { return fn_(x); }
  std::string describe() const override { return description_; }

 private:
  std::function<Tensor(const Tensor&)> fn_;
  std::string description_;
};

}  // namespace scalpel::nn
