#include "tensor/tensor.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <optional>

#include "tensor/backend.h"
#include "tensor/strided.h"

namespace scalpel {

std::string shape_str(const Shape& shape) { return fmt::format("[{}]", fmt::join(shape, ", ")); }

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

Shape contiguous_strides(const Shape& shape) {
  Shape strides(shape.size());
  int64_t s = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = s;
    s *= std::max<int64_t>(shape[d], 1);
  }
  return strides;
}

int64_t wrap_axis(int64_t axis, int64_t ndim, const char* what) {
  int64_t n = std::max<int64_t>(ndim, 1);
  SCALPEL_CHECK(axis >= -n && axis < n, "{} {} is out of range for a tensor with {} dimensions",
                what, axis, ndim);
  return axis < 0 ? axis + n : axis;
}

namespace detail {
Shape broadcast_strides(const Tensor& t, const Shape& shape) {
  Shape out(shape.size(), 0);
  const int64_t lead = static_cast<int64_t>(shape.size()) - t.dim();
  for (int64_t d = 0; d < t.dim(); ++d)
    out[lead + d] = t.shape()[d] == 1 && shape[lead + d] != 1 ? 0 : t.strides()[d];
  return out;
}
}  // namespace detail

// ---------------------------------------------------------------- creation

static void check_shape(const Shape& shape) {
  for (int64_t s : shape) SCALPEL_CHECK(s >= 0, "negative size in shape {}", shape_str(shape));
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  check_shape(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), allocator_for(device));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  if (device.is_cpu()) {
    std::memset(t.raw_data(), 0, t.nbytes());
  } else {
    std::vector<char> zero(t.nbytes(), 0);
    device_copy(t.raw_data(), device, zero.data(), Device::cpu(), t.nbytes());
  }
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1, dtype, device); }

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return device.is_cpu() ? t : t.to(device);
}

Tensor Tensor::scalar(double value, DType dtype) { return full({}, value, dtype); }

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  check_shape(shape);
  SCALPEL_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
                "from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype);
  dispatch_dtype(dtype, [&](auto tag) {
    using T = decltype(tag);
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  });
  return t;
}

Tensor Tensor::arange(double start, double end, double step, DType dtype) {
  SCALPEL_CHECK(step != 0, "arange: step must not be zero");
  int64_t n = std::max<int64_t>(0, static_cast<int64_t>(std::ceil((end - start) / step)));
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = start + i * step;
  return from_vector(v, {n}, dtype);
}

Tensor Tensor::from_blob(void* data, const Shape& shape, DType dtype, std::shared_ptr<void> keep_alive,
                         Device device) {
  check_shape(shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(data, shape_numel(shape) * dtype_size(dtype), device,
                                            std::move(keep_alive));
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

// ---------------------------------------------------------------- metadata

TensorImpl& Tensor::impl() const {
  SCALPEL_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

void Tensor::check_dtype(DType expected) const {
  SCALPEL_CHECK(dtype() == expected, "tensor {} accessed as {}", str(), dtype_name(expected));
}

int64_t Tensor::size(int64_t axis) const { return shape()[wrap_axis(axis, dim())]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  for (int64_t d = dim() - 1; d >= 0; --d) {
    if (shape()[d] != 1 && strides()[d] != expected) return false;
    expected *= shape()[d];
  }
  return true;
}

std::string Tensor::str() const {
  if (!defined()) return "Tensor(undefined)";
  return fmt::format("Tensor{} {} {}", shape_str(shape()), dtype_name(dtype()), device().str());
}

bool Tensor::shares_storage(const Tensor& other) const {
  return defined() && other.defined() && storage() == other.storage();
}

void* Tensor::raw_data() const {
  return static_cast<char*>(storage()->data()) + offset() * dtype_size(dtype());
}

// ---------------------------------------------------------------- element access

double Tensor::at(std::initializer_list<int64_t> index) const {
  SCALPEL_CHECK(static_cast<int64_t>(index.size()) == dim(), "at(): {} indices for a tensor of shape {}",
                index.size(), shape_str(shape()));
  SCALPEL_CHECK(device().is_cpu(), "at(): tensor is on {}", device().str());
  int64_t off = offset();
  int64_t d = 0;
  for (int64_t i : index) {
    SCALPEL_CHECK(i >= 0 && i < shape()[d], "at(): index {} out of range for axis {} of {}", i, d,
                  shape_str(shape()));
    off += i * strides()[d++];
  }
  return dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    return static_cast<double>(static_cast<const T*>(storage()->data())[off]);
  });
}

double Tensor::item() const {
  SCALPEL_CHECK(numel() == 1, "item(): tensor {} has {} elements, not 1", str(), numel());
  Tensor c = to(Device::cpu()).contiguous();
  return dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    return static_cast<double>(c.data<T>()[0]);
  });
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = to(Device::cpu()).contiguous();
  std::vector<double> out(c.numel());
  dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    const T* p = c.data<T>();
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

// ---------------------------------------------------------------- views

static Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

// Resolves one -1 in `shape` against numel; checks the element count.
static Shape infer_shape(const Tensor& t, Shape shape) {
  int64_t known = 1, infer_at = -1;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == -1) {
      SCALPEL_CHECK(infer_at < 0, "reshape: more than one -1 in {}", shape_str(shape));
      infer_at = static_cast<int64_t>(d);
    } else {
      SCALPEL_CHECK(shape[d] >= 0, "reshape: negative size in {}", shape_str(shape));
      known *= shape[d];
    }
  }
  if (infer_at >= 0) {
    SCALPEL_CHECK(known != 0 && t.numel() % known == 0, "cannot reshape {} into {}",
                  shape_str(t.shape()), shape_str(shape));
    shape[infer_at] = t.numel() / known;
  }
  SCALPEL_CHECK(shape_numel(shape) == t.numel(), "cannot reshape {} ({} elements) into {}",
                shape_str(t.shape()), t.numel(), shape_str(shape));
  return shape;
}

// Strides for viewing `t` with `shape` without copying, or empty when impossible
// (the same rule as PyTorch's computeStride: split/merge only runs of compatible axes).
static std::optional<Shape> view_strides(const Tensor& t, const Shape& shape) {
  if (t.numel() <= 1) return contiguous_strides(shape);  // any layout fits 0 or 1 element
  Shape new_strides(shape.size());
  const Shape& old_shape = t.shape();
  const Shape& old_strides = t.strides();
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.empty() ? 1 : old_strides.back();
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    if (d == 0 || (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        new_strides[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return new_strides;
}

Tensor Tensor::view(const Shape& shape_in) const {
  Shape shape = infer_shape(*this, shape_in);
  auto strides = view_strides(*this, shape);
  SCALPEL_CHECK(strides.has_value(), "view {} of a non-contiguous tensor {} is impossible; use reshape",
                shape_str(shape), shape_str(this->shape()));
  return make_view(*this, shape, *strides, offset());
}

Tensor Tensor::reshape(const Shape& shape_in) const {
  Shape shape = infer_shape(*this, shape_in);
  if (auto strides = view_strides(*this, shape)) return make_view(*this, shape, *strides, offset());
  return contiguous().view(shape);
}

Tensor Tensor::permute(const Shape& order) const {
  SCALPEL_CHECK(static_cast<int64_t>(order.size()) == dim(), "permute order {} does not match shape {}",
                shape_str(order), shape_str(shape()));
  Shape shape(dim()), strides(dim());
  std::vector<bool> seen(dim(), false);
  for (int64_t d = 0; d < dim(); ++d) {
    int64_t src = wrap_axis(order[d], dim());
    SCALPEL_CHECK(!seen[src], "permute order {} repeats axis {}", shape_str(order), src);
    seen[src] = true;
    shape[d] = this->shape()[src];
    strides[d] = this->strides()[src];
  }
  return make_view(*this, shape, strides, offset());
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  a = wrap_axis(a, dim());
  b = wrap_axis(b, dim());
  Shape shape = this->shape(), strides = this->strides();
  std::swap(shape[a], shape[b]);
  std::swap(strides[a], strides[b]);
  return make_view(*this, shape, strides, offset());
}

Tensor Tensor::slice(int64_t axis, int64_t start, int64_t end, int64_t step) const {
  axis = wrap_axis(axis, dim());
  SCALPEL_CHECK(step > 0, "slice step must be positive, got {}", step);
  const int64_t n = shape()[axis];
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  Shape shape = this->shape(), strides = this->strides();
  shape[axis] = (end - start + step - 1) / step;
  strides[axis] *= step;
  return make_view(*this, shape, strides, offset() + start * this->strides()[axis]);
}

Tensor Tensor::select(int64_t axis, int64_t index) const {
  axis = wrap_axis(axis, dim());
  const int64_t n = shape()[axis];
  SCALPEL_CHECK(index >= -n && index < n, "select: index {} out of range for axis {} of {}", index, axis,
                shape_str(shape()));
  if (index < 0) index += n;
  Shape shape = this->shape(), strides = this->strides();
  shape.erase(shape.begin() + axis);
  strides.erase(strides.begin() + axis);
  return make_view(*this, shape, strides, offset() + index * this->strides()[axis]);
}

Tensor Tensor::squeeze(int64_t axis) const {
  axis = wrap_axis(axis, dim());
  if (shape()[axis] != 1) return *this;
  Shape shape = this->shape(), strides = this->strides();
  shape.erase(shape.begin() + axis);
  strides.erase(strides.begin() + axis);
  return make_view(*this, shape, strides, offset());
}

Tensor Tensor::unsqueeze(int64_t axis) const {
  axis = wrap_axis(axis, dim() + 1);
  Shape shape = this->shape(), strides = this->strides();
  int64_t stride = axis < dim() ? this->strides()[axis] * this->shape()[axis] : 1;
  shape.insert(shape.begin() + axis, 1);
  strides.insert(strides.begin() + axis, stride);
  return make_view(*this, shape, strides, offset());
}

Tensor Tensor::expand(const Shape& target) const {
  SCALPEL_CHECK(static_cast<int64_t>(target.size()) >= dim(), "cannot expand {} to {}", shape_str(shape()),
                shape_str(target));
  Shape shape = target;
  const int64_t lead = static_cast<int64_t>(target.size()) - dim();
  for (int64_t d = 0; d < dim(); ++d) {
    if (target[lead + d] == -1) shape[lead + d] = this->shape()[d];
    SCALPEL_CHECK(this->shape()[d] == shape[lead + d] || this->shape()[d] == 1, "cannot expand {} to {}",
                  shape_str(this->shape()), shape_str(target));
  }
  return make_view(*this, shape, detail::broadcast_strides(*this, shape), offset());
}

Tensor Tensor::flatten(int64_t start_axis, int64_t end_axis) const {
  if (dim() == 0) return reshape({1});
  start_axis = wrap_axis(start_axis, dim());
  end_axis = wrap_axis(end_axis, dim());
  SCALPEL_CHECK(start_axis <= end_axis, "flatten: start axis {} after end axis {}", start_axis, end_axis);
  Shape shape(this->shape().begin(), this->shape().begin() + start_axis);
  int64_t merged = 1;
  for (int64_t d = start_axis; d <= end_axis; ++d) merged *= this->shape()[d];
  shape.push_back(merged);
  shape.insert(shape.end(), this->shape().begin() + end_axis + 1, this->shape().end());
  return reshape(shape);
}

// ---------------------------------------------------------------- copies

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  Tensor src = contiguous();
  Tensor out = empty(shape(), dtype(), target);
  device_copy(out.raw_data(), target, src.raw_data(), device(), nbytes());
  return out;
}

Tensor& Tensor::copy_(const Tensor& src) {
  SCALPEL_CHECK(device() == src.device() || (device().is_cpu() && src.device().is_cpu()),
                "copy_ between devices {} and {}: use to(device)", device().str(), src.device().str());
  SCALPEL_CHECK(device().is_cpu() || (src.dtype() == dtype() && src.shape() == shape() && is_contiguous()),
                "copy_ on device {} needs equal shapes/dtypes and a contiguous destination", device().str());
  if (!device().is_cpu()) {
    if (src.is_contiguous()) {
      device_copy(raw_data(), device(), src.raw_data(), src.device(), nbytes());
      return *this;
    }
    // A strided view on the device: the backend gathers it (tensor/backend.h).
    SCALPEL_CHECK(src.device() == device(), "copy_ of the strided view {} on {} to {}: move it to one device first",
                  src.str(), src.device().str(), device().str());
    backend::run<backend::Op::strided_copy>(device(), *this, src);
    return *this;
  }
  Tensor source = src.expand(shape());
  if (source.dtype() == dtype() && is_contiguous() && source.is_contiguous()) {
    if (!shares_storage(source) || raw_data() != source.raw_data()) std::memmove(raw_data(), source.raw_data(), nbytes());
    return *this;
  }
  dispatch_dtype(dtype(), [&](auto dst_tag) {
    using D = decltype(dst_tag);
    dispatch_dtype(source.dtype(), [&](auto src_tag) {
      using S = decltype(src_tag);
      D* dst = static_cast<D*>(storage()->data());
      const S* s = static_cast<const S*>(source.storage()->data());
      detail::strided_for_each<2>(shape(), {&strides(), &source.strides()}, {offset(), source.offset()},
                                  [&](const std::array<int64_t, 2>& o) { dst[o[0]] = static_cast<D>(s[o[1]]); });
    });
  });
  return *this;
}

Tensor& Tensor::fill_(double value) {
  if (!device().is_cpu()) {
    copy_(full(shape(), value, dtype()).to(device()));
    return *this;
  }
  dispatch_dtype(dtype(), [&](auto tag) {
    using T = decltype(tag);
    T v = static_cast<T>(value);
    T* base = static_cast<T*>(storage()->data());
    if (is_contiguous()) {
      std::fill(base + offset(), base + offset() + numel(), v);
      return;
    }
    detail::strided_for_each<1>(shape(), {&strides()}, {offset()},
                                [&](const std::array<int64_t, 1>& o) { base[o[0]] = v; });
  });
  return *this;
}

// ---------------------------------------------------------------- autograd bits

AutogradMeta& Tensor::autograd_meta() {
  if (!impl().autograd) impl().autograd = std::make_shared<AutogradMeta>();
  return *impl().autograd;
}

Tensor& Tensor::set_requires_grad(bool value) {
  SCALPEL_CHECK(!value || is_floating(dtype()), "only float tensors can require grad, not {}", str());
  SCALPEL_CHECK(is_leaf() || value, "requires_grad can only be cleared on leaf tensors");
  autograd_meta().requires_grad = value;
  return *this;
}

Tensor Tensor::grad() const {
  const auto& meta = impl().autograd;
  return meta && meta->grad ? Tensor(meta->grad) : Tensor();
}

void Tensor::set_grad(const Tensor& grad) { autograd_meta().grad = grad.impl_ptr(); }

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  const auto& meta = impl().autograd;
  return meta ? meta->grad_fn : none;
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>(this->impl());
  impl->autograd.reset();
  return Tensor(std::move(impl));
}

}  // namespace scalpel
