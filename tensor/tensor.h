#pragma once
// Tensor: an N-dimensional strided view of a shared Storage.
//
// - shape/strides are in elements; `offset` is the element offset of the first element.
// - Views (view, reshape when possible, permute, transpose, slice, select, squeeze,
//   unsqueeze, expand) share storage and never copy. `contiguous()` copies only when needed.
// - Methods on Tensor never record autograd history: they are raw data operations. The
//   differentiable ops are free functions in autograd/functions.h (scalpel::reshape, ...).
// - A default-constructed Tensor is "undefined" (defined() == false), used for absent grads.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "tensor/dtype.h"
#include "tensor/storage.h"

namespace scalpel {

using Shape = std::vector<int64_t>;

std::string shape_str(const Shape& shape);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
// Wraps a possibly negative axis into [0, ndim); throws Error naming `what` when out of range.
int64_t wrap_axis(int64_t axis, int64_t ndim, const char* what = "axis");

struct Node;  // autograd graph node, defined in autograd/

// Autograd bookkeeping attached to a tensor (owned here, interpreted by autograd/).
struct AutogradMeta {
  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;  // null for leaves
  std::shared_ptr<struct TensorImpl> grad;  // accumulated gradient (leaves, or retained)
  bool retain_grad = false;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;
  DType dtype = DType::F32;
  std::shared_ptr<AutogradMeta> autograd;  // lazily created
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation (contiguous, on `device`) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = {});
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = {});
  static Tensor ones(const Shape& shape, DType dtype = DType::F32, Device device = {});
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32, Device device = {});
  static Tensor scalar(double value, DType dtype = DType::F32);
  // Copies `values` (converted to `dtype`) into a new CPU tensor of `shape`.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::F32);
  template <typename T>
  static Tensor from_data(const T* values, const Shape& shape) {
    Tensor t = empty(shape, dtype_of<T>);
    std::copy(values, values + t.numel(), t.data<T>());
    return t;
  }
  // 0, 1, ..., n-1 (or start, start+step, ... below end).
  static Tensor arange(double start, double end, double step = 1, DType dtype = DType::F32);
  // Wraps borrowed memory without copying; `keep_alive` owns it.
  static Tensor from_blob(void* data, const Shape& shape, DType dtype,
                          std::shared_ptr<void> keep_alive, Device device = {});

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t axis) const;  // negative axes count from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  std::string str() const;  // "Tensor[2, 3] float32 cpu"
  // True when both tensors are views of the same storage.
  bool shares_storage(const Tensor& other) const;

  // ---- data access ----
  // Pointer to the first element (storage + offset). Checks that T matches dtype.
  template <typename T> T* data() {
    check_dtype(dtype_of<T>);
    return static_cast<T*>(storage()->data()) + offset();
  }
  template <typename T> const T* data() const {
    check_dtype(dtype_of<T>);
    return static_cast<const T*>(storage()->data()) + offset();
  }
  void* raw_data() const;  // first element, untyped
  // Element at a multi-index, converted to double (tests, debugging).
  double at(std::initializer_list<int64_t> index) const;
  double item() const;  // the single element of a one-element tensor
  // All elements in row-major order, converted (tests, small tensors).
  std::vector<double> to_vector() const;
  template <typename T> std::vector<T> values() const {
    Tensor c = contiguous();
    const T* p = c.data<T>();
    return std::vector<T>(p, p + c.numel());
  }

  // ---- views (share storage, no autograd) ----
  Tensor view(const Shape& shape) const;     // requires compatible strides; one -1 allowed
  Tensor reshape(const Shape& shape) const;  // view when possible, else a contiguous copy
  Tensor permute(const Shape& order) const;
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor slice(int64_t axis, int64_t start, int64_t end, int64_t step = 1) const;
  Tensor select(int64_t axis, int64_t index) const;  // removes `axis`
  Tensor squeeze(int64_t axis) const;
  Tensor unsqueeze(int64_t axis) const;
  Tensor expand(const Shape& shape) const;  // broadcast size-1 axes with stride 0
  Tensor flatten(int64_t start_axis = 0, int64_t end_axis = -1) const;

  // ---- copies ----
  Tensor contiguous() const;  // `*this` when already contiguous
  Tensor clone() const;       // always a new contiguous copy
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  // Copies src (broadcast to this shape, any dtype) into this tensor's elements, in place.
  Tensor& copy_(const Tensor& src);
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0); }

  // ---- autograd bits (interpreted by autograd/) ----
  bool requires_grad() const { return impl().autograd && impl().autograd->requires_grad; }
  // Marks a leaf as needing a gradient. Returns *this for chaining.
  Tensor& set_requires_grad(bool value = true);
  Tensor grad() const;  // undefined when none accumulated
  void set_grad(const Tensor& grad);
  const std::shared_ptr<Node>& grad_fn() const;
  bool is_leaf() const { return !grad_fn(); }
  // Same storage and metadata, no autograd history (PyTorch's detach()).
  Tensor detach() const;
  AutogradMeta& autograd_meta();  // created on first use
  const std::shared_ptr<AutogradMeta>& autograd_meta_ptr() const { return impl().autograd; }

  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  TensorImpl& impl() const;
  void check_dtype(DType expected) const;
  std::shared_ptr<TensorImpl> impl_;
};

}  // namespace scalpel
