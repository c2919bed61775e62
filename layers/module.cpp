#include "layers/module.h"

#include <unordered_map>

#include "tensor/error.h"

namespace scalpel::nn {

namespace {

std::string join(const std::string& prefix, const std::string& name) {
  if (prefix.empty()) return name;
  return name.empty() ? prefix : prefix + "." + name;
}

// "a, b, c" with at most `limit` items, then "and N more" (a wrong checkpoint can miss hundreds).
std::string list_some(const std::vector<std::string>& items, size_t limit = 10) {
  std::string out;
  for (size_t i = 0; i < items.size() && i < limit; ++i) out += (i ? ", " : "") + items[i];
  if (items.size() > limit) out += fmt::format(", and {} more", items.size() - limit);
  return out;
}

// Replaces what `t` refers to by `value`, keeping the TensorImpl (and so every Tensor handle
// a layer holds, and the autograd flags). The old gradient no longer fits and is dropped.
void assign_in_place(Tensor& t, const Tensor& value) {
  TensorImpl& impl = *t.impl_ptr();
  impl.storage = value.storage();
  impl.shape = value.shape();
  impl.strides = value.strides();
  impl.offset = value.offset();
  impl.dtype = value.dtype();
  if (impl.autograd) impl.autograd->grad.reset();
}

}  // namespace

// ---------------------------------------------------------------- registration

void Module::check_new_name(const std::string& name) const {
  SCALPEL_CHECK(!name.empty() && name.find('.') == std::string::npos,
                "{}: invalid member name '{}' (must be non-empty, without '.')", label(), name);
  auto taken = [&](const auto& list) {
    for (const auto& e : list)
      if (e.name == name) return true;
    return false;
  };
  bool child_taken = false;
  for (const auto& [n, m] : children_) child_taken |= n == name;
  SCALPEL_CHECK(!taken(parameters_) && !taken(buffers_) && !child_taken, "{}: member name '{}' is already used",
                label(), name);
}

Tensor& Module::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  check_new_name(name);
  SCALPEL_CHECK(value.defined(), "{}: parameter '{}' is undefined", label(), name);
  value.set_requires_grad(requires_grad);
  parameters_.push_back({name, std::move(value), true});
  return parameters_.back().tensor;
}

Tensor& Module::register_buffer(const std::string& name, Tensor value, bool counted) {
  check_new_name(name);
  SCALPEL_CHECK(value.defined(), "{}: buffer '{}' is undefined", label(), name);
  buffers_.push_back({name, std::move(value), counted});
  return buffers_.back().tensor;
}

void Module::add_child(const std::string& name, ModulePtr module) {
  check_new_name(name);
  SCALPEL_CHECK(module != nullptr, "{}: child '{}' is null", label(), name);
  module->set_path(join(path_, name));
  children_.emplace_back(name, std::move(module));
}

void Module::replace_module(const std::string& name, ModulePtr module) {
  SCALPEL_CHECK(module != nullptr, "{}: replacement for '{}' is null", label(), name);
  for (auto& [n, m] : children_) {
    if (n == name) {
      module->set_path(join(path_, name));
      m = std::move(module);
      return;
    }
  }
  std::vector<std::string> names;
  for (const auto& [n, m] : children_) names.push_back(n);
  fail("{}: no child named '{}' to replace (children: {})", label(), name, list_some(names, 50));
}

void Module::set_path(const std::string& path) {
  path_ = path;
  for (auto& [n, m] : children_) m->set_path(join(path_, n));
}

ModulePtr Module::child(const std::string& name) const {
  for (const auto& [n, m] : children_)
    if (n == name) return m;
  return nullptr;
}

// ---------------------------------------------------------------- traversal

// Pre-order, as torch.nn.Module: this module's own entries, then each child's.
template <typename Fn>
void Module::visit_entries(const std::string& prefix, bool recurse, bool buffers, Fn&& fn) const {
  for (const Entry& e : buffers ? buffers_ : parameters_) fn(join(prefix, e.name), e);
  if (!recurse) return;
  for (const auto& [n, m] : children_) m->visit_entries(join(prefix, n), true, buffers, fn);
}

std::vector<NamedTensor> Module::named_parameters(bool recurse) const {
  std::vector<NamedTensor> out;
  visit_entries("", recurse, false, [&](const std::string& name, const Entry& e) { out.push_back({name, e.tensor}); });
  return out;
}

std::vector<NamedTensor> Module::named_buffers(bool recurse) const {
  std::vector<NamedTensor> out;
  visit_entries("", recurse, true, [&](const std::string& name, const Entry& e) { out.push_back({name, e.tensor}); });
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& nt : named_parameters(recurse)) out.push_back(nt.tensor);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [n, m] : children_)
    for (auto& [sub, ptr] : m->named_modules()) out.emplace_back(join(n, sub), ptr);
  return out;
}

// ---------------------------------------------------------------- state dict

// Per module: parameters, then buffers, then children (torch.nn.Module.state_dict's order).
std::vector<NamedTensor> Module::state_dict() const {
  std::vector<NamedTensor> out;
  for (const Entry& e : parameters_) out.push_back({e.name, e.tensor});
  for (const Entry& e : buffers_) out.push_back({e.name, e.tensor});
  for (const auto& [n, m] : children_)
    for (auto& nt : m->state_dict()) out.push_back({join(n, nt.name), nt.tensor});
  return out;
}

Module::LoadReport Module::load_state_dict(const std::vector<NamedTensor>& state, bool strict) {
  // Our entries by name, with whether they must be present in `state`.
  struct Target {
    Tensor tensor;
    bool required;
  };
  std::vector<std::pair<std::string, Target>> targets;
  visit_entries("", true, false, [&](const std::string& name, const Entry& e) {
    targets.push_back({name, {e.tensor, true}});
  });
  visit_entries("", true, true, [&](const std::string& name, const Entry& e) {
    targets.push_back({name, {e.tensor, e.counted}});
  });
  std::unordered_map<std::string, const Tensor*> given;
  for (const NamedTensor& nt : state) given[nt.name] = &nt.tensor;

  LoadReport report;
  std::vector<std::string> mismatch_details;
  std::unordered_map<std::string, bool> known;
  std::vector<std::pair<Tensor, const Tensor*>> copies;
  for (auto& [name, target] : targets) {
    known[name] = true;
    auto it = given.find(name);
    if (it == given.end()) {
      if (target.required) report.missing.push_back(name);
      continue;
    }
    const Tensor& src = *it->second;
    if (src.shape() != target.tensor.shape()) {
      report.mismatched.push_back(name);
      mismatch_details.push_back(fmt::format("{}: model {}, given {}", name, shape_str(target.tensor.shape()),
                                             shape_str(src.shape())));
      continue;
    }
    copies.emplace_back(target.tensor, &src);
  }
  for (const NamedTensor& nt : state)
    if (!known.count(nt.name)) report.unexpected.push_back(nt.name);

  if (strict && (!report.missing.empty() || !report.unexpected.empty() || !report.mismatched.empty())) {
    std::string message = fmt::format("load_state_dict into {}:", label());
    if (!report.missing.empty())
      message += fmt::format(" {} missing key(s): {};", report.missing.size(), list_some(report.missing));
    if (!report.unexpected.empty())
      message += fmt::format(" {} unexpected key(s): {};", report.unexpected.size(), list_some(report.unexpected));
    if (!report.mismatched.empty())
      message += fmt::format(" {} shape mismatch(es): {};", report.mismatched.size(), list_some(mismatch_details));
    message.pop_back();
    throw Error(message);
  }
  // Copy only after the checks, so a strict failure leaves the module untouched. Values may
  // come from another device (a file read on the CPU into a model on a GPU): convert on the
  // host, then copy across.
  for (auto& [dst, src] : copies) {
    if (dst.device() == src->device()) {
      dst.copy_(*src);
    } else {
      dst.copy_(src->to(Device::cpu()).to(dst.dtype()).contiguous().to(dst.device()));
    }
  }
  return report;
}

// ---------------------------------------------------------------- modes, freezing, counting

void Module::train(bool on) {
  training_ = on;
  for (auto& [n, m] : children_) m->train(on);
}

int64_t Module::set_requires_grad(const std::string& prefix, bool requires_grad) {
  auto matches = [&](const std::string& name) {
    if (prefix.empty() || name == prefix) return true;
    if (prefix.back() == '.') return name.rfind(prefix, 0) == 0;
    return name.rfind(prefix + ".", 0) == 0;  // "layer1" matches "layer1.0.w", not "layer10.w"
  };
  int64_t matched = 0, changed = 0;
  for (auto& nt : named_parameters()) {
    if (!matches(nt.name)) continue;
    ++matched;
    if (nt.tensor.requires_grad() != requires_grad) {
      nt.tensor.set_requires_grad(requires_grad);
      ++changed;
    }
  }
  // A misspelt prefix must not silently freeze nothing.
  SCALPEL_CHECK(matched > 0, "{}: no parameter name starts with '{}'", label(), prefix);
  return changed;
}

int64_t Module::count_parameters(bool trainable_only) const {
  int64_t n = 0;
  visit_entries("", true, false, [&](const std::string&, const Entry& e) {
    if (!trainable_only || e.tensor.requires_grad()) n += e.tensor.numel();
  });
  return n;
}

int64_t Module::count_buffers() const {
  int64_t n = 0;
  visit_entries("", true, true, [&](const std::string&, const Entry& e) {
    if (e.counted) n += e.tensor.numel();
  });
  return n;
}

// ---------------------------------------------------------------- devices, dtypes, grads

void Module::to(Device device) {
  auto move = [&](const std::string&, const Entry& e) {
    Tensor t = e.tensor;
    if (t.device() != device) assign_in_place(t, t.to(device));
  };
  visit_entries("", true, false, move);
  visit_entries("", true, true, move);
}

void Module::to(DType dtype) {
  SCALPEL_CHECK(is_floating(dtype), "{}: can only convert a module to a floating dtype, not {}", label(),
                dtype_name(dtype));
  auto convert = [&](const std::string&, const Entry& e) {
    Tensor t = e.tensor;
    if (is_floating(t.dtype()) && t.dtype() != dtype) assign_in_place(t, t.to(dtype));
  };
  visit_entries("", true, false, convert);
  visit_entries("", true, true, convert);
}

void Module::zero_grad() {
  visit_entries("", true, false, [](const std::string&, const Entry& e) {
    const auto& meta = e.tensor.autograd_meta_ptr();
    if (meta) meta->grad.reset();
  });
}

// ---------------------------------------------------------------- forward hooks

namespace {
thread_local const ForwardHook* current_hook = nullptr;
}

ForwardHookGuard::ForwardHookGuard(ForwardHook hook) : hook_(std::move(hook)), previous_(current_hook) {
  current_hook = &hook_;
}

ForwardHookGuard::~ForwardHookGuard() { current_hook = previous_; }

bool ForwardHookGuard::installed() { return current_hook != nullptr; }

Tensor Module::operator()(const Tensor& x) {
  Tensor y = forward(x);
  report_forward(x, y);
  return y;
}

void Module::report_forward(const Tensor& input, const Tensor& output) {
  if (current_hook) (*current_hook)(*this, input, output);
}

// ---------------------------------------------------------------- Sequential

Sequential& Sequential::add(ModulePtr module) { return add(std::to_string(size()), std::move(module)); }

Sequential& Sequential::add(const std::string& name, ModulePtr module) {
  register_module(name, std::move(module));
  return *this;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [n, m] : named_children()) y = (*m)(y);
  return y;
}

}  // namespace scalpel::nn
