// Forward entry points of the CUDA backend and its registration with the tensor library.
#include <algorithm>
#include <cstring>

#include "cuda/conv_library.h"
#include "cuda/cudnn.h"
#include "cuda/tensor_ops_internal.h"
#include "tensor/backend.h"
#include "tensor/ops.h"

namespace scalpel::cuda {

using detail::dense;
using detail::empty_like_device;
using detail::in;
using detail::out;
using detail::stream_for;

namespace detail {

Stream stream_for(const char* op, std::initializer_list<const Tensor*> tensors) {
  const Tensor& first = **tensors.begin();
  const Device device = first.device();
  SCALPEL_CHECK(device.type == DeviceType::CUDA || device.type == DeviceType::CUDAEmu,
                "{}: tensor {} is on {}, not a CUDA device", op, first.str(), device.str());
  for (const Tensor* t : tensors) {
    if (!t->defined()) continue;
    SCALPEL_CHECK(t->device() == device, "{}: tensors on {} and {}; move them to one device first",
                  op, device.str(), t->device().str());
    SCALPEL_CHECK(t->dtype() == DType::F32, "{}: the CUDA backend runs float32 only, got {}", op,
                  dtype_name(t->dtype()));
  }
  return default_stream(device);
}

}  // namespace detail

namespace {

// Tensor::to(device) and copy_ between the host and a CUDA device, through the counted copies.
void tensor_device_copy(void* dst, Device dst_device, const void* src, Device src_device,
                        size_t nbytes) {
  if (dst_device.is_cpu())
    copy_device_to_host(default_stream(src_device), dst, src, nbytes);
  else if (src_device.is_cpu())
    copy_host_to_device(default_stream(dst_device), dst, src, nbytes);
  else {
    SCALPEL_CHECK(dst_device == src_device, "cannot copy between devices {} and {} directly",
                  src_device.str(), dst_device.str());
    copy_device_to_device(default_stream(dst_device), dst, src, nbytes);
  }
}

void strided_copy(Tensor& dst, const Tensor& src) {
  const Stream s = stream_for("contiguous copy", {&src, &dst});
  SCALPEL_CHECK(src.dim() <= kMaxDims, "contiguous copy: {} has more than {} dimensions", src.str(), kMaxDims);
  StridedLayout layout;
  layout.ndim = static_cast<int>(src.dim());
  for (int d = 0; d < layout.ndim; ++d) {
    layout.shape[d] = src.size(d);
    layout.strides[d] = src.strides()[d];
  }
  SCALPEL_CUDA_CALL(s, strided_copy, static_cast<const float*>(src.raw_data()), out(dst), layout);
}

}  // namespace

void init() {
  register_allocators();
  for (DeviceType type : {DeviceType::CUDAEmu, DeviceType::CUDA}) {
#if !SCALPEL_HAVE_CUDA
    if (type == DeviceType::CUDA) continue;
#endif
    register_device_copy(type, tensor_device_copy);
    detail::register_forward_kernels(type);
    detail::register_backward_kernels(type);
    detail::register_optimizer_kernels(type);
  }
}

Conv2dOutput conv2d(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in, const Conv2dGeometry& g) {
  const Tensor x = dense(x_in), w = dense(w_in), bias = dense(bias_in);
  const Stream s = stream_for("conv2d", {&x, &w, &bias});
  Tensor y = Tensor::empty({g.batch, g.out_channels, g.out_h, g.out_w}, DType::F32, x.device());
  // The engine switch: cuDNN when asked for globally or for this layer (cuda/conv_library.h).
  if (resolve_conv_library(w_in, x.device()) == ConvLibrary::Cudnn) {
    cudnn::conv2d_forward(s, g, in(x), in(w), in(bias), out(y));
    return {y, ConvLibrary::Cudnn};
  }
  // The depthwise kernel needs no column buffer; im2col needs one sample and group's.
  const bool depthwise = g.is_depthwise_one_filter();
  Tensor workspace = Tensor::empty({depthwise ? 1 : conv2d_workspace_floats(g)}, DType::F32, x.device());
  SCALPEL_CUDA_CALL(s, conv2d_forward, g, in(x), in(w), in(bias), out(y), out(workspace),
                    ConvConfig{CudaConvAlgorithm::Auto, detail::gemm_config(s)});
  return {y, ConvLibrary::Handwritten};
}

// Batch-norm tensors as the kernels see them: [n, c, hw].
static void nchw(const Tensor& x, int64_t& n, int64_t& c, int64_t& hw) {
  n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
}

Tensor batch_norm_eval(const Tensor& x_in, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, double eps) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  Tensor y = empty_like_device(x.shape(), x);
  // Null gamma/beta: an affine-free batch norm (the kernels read them as 1 and 0).
  SCALPEL_CUDA_CALL(s, batch_norm_eval_forward, in(x), in(dense(gamma)), in(dense(beta)),
                    in(dense(running_mean)), in(dense(running_var)), out(y), n, c, hw,
                    static_cast<float>(eps));
  return y;
}

BatchNormTrainOutput batch_norm_train(const Tensor& x_in, const Tensor& gamma, const Tensor& beta,
                                      Tensor running_mean, Tensor running_var, double momentum,
                                      double eps) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  int64_t n, c, hw;
  nchw(x, n, c, hw);
  BatchNormTrainOutput r{empty_like_device(x.shape(), x), empty_like_device({c}, x),
                         empty_like_device({c}, x)};
  // The running statistics are module buffers, updated in place: they must be contiguous.
  SCALPEL_CUDA_CALL(s, batch_norm_train_forward, in(x), in(dense(gamma)), in(dense(beta)),
                    out(r.y), out(running_mean), out(running_var), out(r.save_mean),
                    out(r.save_invstd), n, c, hw, static_cast<float>(momentum),
                    static_cast<float>(eps));
  return r;
}

Tensor unary(UnaryOp op, const Tensor& x_in, double alpha) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("activation", {&x});
  Tensor y = empty_like_device(x.shape(), x);
  SCALPEL_CUDA_CALL(s, unary_forward, op, static_cast<float>(alpha), in(x), out(y), x.numel());
  return y;
}

Tensor binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  const Stream s = stream_for("binary op", {&a, &b});
  const Shape shape = ops::broadcast_shapes(a.shape(), b.shape());
  const int ndim = static_cast<int>(shape.size());
  SCALPEL_CHECK(ndim <= kMaxDims, "binary op: {} dimensions, the CUDA kernel takes at most {}", ndim, kMaxDims);
  BroadcastLayout layout;
  layout.ndim = ndim;
  // Right-aligned element strides of a and b (views welcome), 0 on the axes they broadcast along.
  for (int d = ndim - 1; d >= 0; --d) {
    layout.shape[d] = shape[d];
    const int da = d - (ndim - static_cast<int>(a.dim())), db = d - (ndim - static_cast<int>(b.dim()));
    layout.a_strides[d] = da >= 0 && a.size(da) != 1 ? a.strides()[da] : 0;
    layout.b_strides[d] = db >= 0 && b.size(db) != 1 ? b.strides()[db] : 0;
  }
  Tensor y = empty_like_device(shape, a);
  if (y.numel() > 0)
    SCALPEL_CUDA_CALL(s, binary, op, static_cast<const float*>(a.raw_data()),
                      static_cast<const float*>(b.raw_data()), out(y), layout);
  return y;
}

Tensor affine(const Tensor& x_in, double scale, double shift) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("scalar op", {&x});
  Tensor y = empty_like_device(x.shape(), x);
  SCALPEL_CUDA_CALL(s, affine, in(x), out(y), x.numel(), static_cast<float>(scale), static_cast<float>(shift));
  return y;
}

Tensor reduce(ReduceOp op, const Tensor& x_in, const std::vector<int64_t>& axes_in, bool keepdim) {
  Tensor x = dense(x_in);
  const Stream s = stream_for("reduction", {&x});
  const int64_t ndim = x.dim();
  std::vector<bool> reduced(ndim, axes_in.empty());
  for (int64_t a : axes_in) {
    const int64_t axis = a < 0 ? a + ndim : a;
    SCALPEL_CHECK(axis >= 0 && axis < ndim, "reduction: axis {} out of range for {}", a, x.str());
    reduced[axis] = true;
  }
  SCALPEL_CHECK(op != ReduceOp::Max || x.numel() > 0, "max: empty tensor {} has no max", x.str());
  // One kernel per run of adjacent reduced axes, last run first: the tensor viewed as
  // [outer, len, inner] with len the run's extent. A mean sums and scales by the count once.
  const ReduceOp pass = op == ReduceOp::Mean ? ReduceOp::Sum : op;
  Shape shape = x.shape();
  int64_t count = 1;
  for (int64_t end = ndim; end > 0;) {
    if (!reduced[end - 1]) {
      --end;
      continue;
    }
    int64_t begin = end - 1;
    while (begin > 0 && reduced[begin - 1]) --begin;
    int64_t outer = 1, len = 1, inner = 1;
    for (int64_t d = 0; d < begin; ++d) outer *= shape[d];
    for (int64_t d = begin; d < end; ++d) len *= shape[d];
    for (int64_t d = end; d < ndim; ++d) inner *= shape[d];
    for (int64_t d = begin; d < end; ++d) shape[d] = 1;
    Tensor y = empty_like_device(shape, x);
    SCALPEL_CUDA_CALL(s, reduce, pass, in(x), out(y), outer, len, inner);
    x = y;
    count *= len;
    end = begin;
  }
  if (op == ReduceOp::Mean) x = affine(x, 1.0 / static_cast<double>(count), 0.0);
  if (keepdim) return x;
  Shape squeezed;
  for (int64_t d = 0; d < ndim; ++d)
    if (!reduced[d]) squeezed.push_back(shape[d]);
  return x.reshape(squeezed);
}

Tensor argmax(const Tensor& x_in, int64_t axis, bool keepdim) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("argmax", {&x});
  const int64_t ndim = x.dim();
  const int64_t a = axis < 0 ? axis + ndim : axis;
  SCALPEL_CHECK(a >= 0 && a < ndim && x.size(a) > 0, "argmax: axis {} of {} is out of range or empty", axis, x.str());
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < a; ++d) outer *= x.size(d);
  for (int64_t d = a + 1; d < ndim; ++d) inner *= x.size(d);
  Shape shape = x.shape();
  if (keepdim) shape[a] = 1;
  else shape.erase(shape.begin() + a);
  Tensor idx = Tensor::empty(shape, DType::I64, x.device());
  SCALPEL_CUDA_CALL(s, argmax, in(x), static_cast<int64_t*>(idx.raw_data()), outer, x.size(a), inner);
  return idx;
}

MaxPoolOutput max_pool2d(const Tensor& x_in, const Pool2dShape& shape) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("max_pool2d", {&x});
  const Shape y_shape{shape.n, shape.c, shape.out_h(), shape.out_w()};
  static_assert(sizeof(int32_t) == sizeof(float));
  MaxPoolOutput r{empty_like_device(y_shape, x), empty_like_device(y_shape, x)};
  SCALPEL_CUDA_CALL(s, max_pool2d_forward, shape, in(x), out(r.y), static_cast<int32_t*>(r.indices.raw_data()));
  return r;
}

Tensor avg_pool2d(const Tensor& x_in, const Pool2dShape& shape) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("avg_pool2d", {&x});
  Tensor y = empty_like_device({shape.n, shape.c, shape.out_h(), shape.out_w()}, x);
  SCALPEL_CUDA_CALL(s, avg_pool2d_forward, shape, in(x), out(y));
  return y;
}

Tensor linear(const Tensor& x_in, const Tensor& w_in, const Tensor& bias_in) {
  const Tensor x = dense(x_in), w = dense(w_in), bias = dense(bias_in);
  const Stream s = stream_for("linear", {&x, &w, &bias});
  const int64_t in_f = w.size(1), out_f = w.size(0), M = x.numel() / std::max<int64_t>(in_f, 1);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor y = empty_like_device(out_shape, x);
  if (y.numel() == 0) return y;
  if (bias.defined()) {  // y starts as the bias rows (a stride-0 source), then GEMM accumulates
    SCALPEL_CUDA_CALL(s, copy_2d, in(bias), 0, out(y), out_f, M, out_f);
  }
  SCALPEL_CUDA_CALL(s, gemm, detail::gemm_config(s), false, true, M, out_f, in_f, 1.0f, in(x), in_f, in(w),
                    in_f, bias.defined() ? 1.0f : 0.0f, out(y), out_f);
  return y;
}

Tensor softmax_last(const Tensor& x_in, bool log) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for(log ? "log_softmax" : "softmax", {&x});
  const int64_t cols = x.size(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  Tensor y = empty_like_device(x.shape(), x);
  if (y.numel() > 0) SCALPEL_CUDA_CALL(s, softmax_forward, in(x), out(y), rows, cols, log);
  return y;
}

// Labels are int64 device memory; the kernels index with them, so they are checked on the host.
static void check_labels(const Tensor& labels, int64_t classes) {
  SCALPEL_CHECK(labels.dtype() == DType::I64 && labels.dim() == 1,
                "cross_entropy: expected int64 labels [N] on the device, got {}", labels.str());
  const std::vector<double> values = labels.to(Device::cpu()).to_vector();  // a counted copy
  for (size_t i = 0; i < values.size(); ++i)
    SCALPEL_CHECK(values[i] >= 0 && values[i] < static_cast<double>(classes),
                  "cross_entropy: target {} at position {} is outside [0, {})", values[i], i, classes);
}

Tensor cross_entropy_rows(const Tensor& logits_in, const Tensor& labels_in) {
  const Tensor logits = dense(logits_in), labels = dense(labels_in);
  const Stream s = stream_for("cross_entropy", {&logits});
  SCALPEL_CHECK(labels.device() == logits.device(), "cross_entropy: logits on {} but labels on {}",
                logits.device().str(), labels.device().str());
  const int64_t rows = logits.size(0), cols = logits.size(1);
  check_labels(labels, cols);
  Tensor loss = empty_like_device({rows}, logits);
  SCALPEL_CUDA_CALL(s, cross_entropy_forward, in(logits), static_cast<const int64_t*>(labels.raw_data()),
                    out(loss), rows, cols);
  return loss;
}

Tensor upsample2d(const Tensor& x_in, UpsampleMode mode, int64_t out_h, int64_t out_w) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("upsample", {&x});
  Tensor y = empty_like_device({x.size(0), x.size(1), out_h, out_w}, x);
  SCALPEL_CUDA_CALL(s, upsample2d_forward, mode, in(x), out(y), x.size(0) * x.size(1), x.size(2), x.size(3),
                    out_h, out_w);
  return y;
}

Tensor pad2d(const Tensor& x_in, int64_t top, int64_t bottom, int64_t left, int64_t right, double value) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("pad2d", {&x});
  const int64_t h = x.size(-2), w = x.size(-1);
  Shape shape = x.shape();
  shape[shape.size() - 2] += top + bottom;
  shape[shape.size() - 1] += left + right;
  Tensor y = empty_like_device(shape, x);
  SCALPEL_CUDA_CALL(s, pad2d, in(x), out(y), x.numel() / std::max<int64_t>(h * w, 1), h, w, top, left,
                    h + top + bottom, w + left + right, static_cast<float>(value));
  return y;
}

Tensor concat(const std::vector<Tensor>& tensors, int64_t axis) {
  std::vector<Tensor> parts;
  std::vector<const float*> inputs;
  std::vector<int64_t> sizes;
  for (const Tensor& t : tensors) {
    parts.push_back(dense(t));
    stream_for("concat", {&parts.front(), &parts.back()});
    inputs.push_back(in(parts.back()));
    sizes.push_back(t.size(axis));
  }
  const Stream s = default_stream(parts.front().device());
  Shape shape = parts.front().shape();
  shape[axis] = 0;
  for (int64_t size : sizes) shape[axis] += size;
  // Viewed as [outer, size_i * inner]: each input is one pitched block copy.
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= shape[d];
  for (int64_t d = axis + 1; d < static_cast<int64_t>(shape.size()); ++d) inner *= shape[d];
  Tensor y = empty_like_device(shape, parts.front());
  SCALPEL_CUDA_CALL(s, concat_forward, inputs.data(), sizes.data(), static_cast<int>(parts.size()), outer, inner,
                    out(y));
  return y;
}

DropoutOutput dropout(const Tensor& x_in, double p, uint64_t seed) {
  const Tensor x = dense(x_in);
  const Stream s = stream_for("dropout", {&x});
  DropoutOutput r{empty_like_device(x.shape(), x), Tensor::empty(x.shape(), DType::U8, x.device())};
  SCALPEL_CUDA_CALL(s, dropout_forward, in(x), out(r.y), static_cast<uint8_t*>(r.mask.raw_data()),
                    x.numel(), static_cast<float>(p), seed);
  return r;
}

Tensor drop_path_scale(int64_t n, double p, uint64_t seed, Device device) {
  const Stream s = default_stream(device);
  Tensor ones = Tensor::empty({n}, DType::F32, device);
  SCALPEL_CUDA_CALL(s, fill, out(ones), n, 1.0f);
  return dropout(ones, p, seed).y;
}

// This file's ops in the dispatch table (tensor/backend.h), one line per op.
void detail::register_forward_kernels(DeviceType type) {
  using backend::Op;
  using backend::register_kernel;
  register_kernel<Op::conv2d>(type, conv2d);
  register_kernel<Op::batch_norm_eval>(type, batch_norm_eval);
  register_kernel<Op::batch_norm_train>(type, batch_norm_train);
  register_kernel<Op::unary>(type, unary);
  register_kernel<Op::binary>(type, binary);
  register_kernel<Op::affine>(type, affine);
  register_kernel<Op::reduce>(type, reduce);
  register_kernel<Op::argmax>(type, argmax);
  register_kernel<Op::strided_copy>(type, strided_copy);
  register_kernel<Op::concat>(type, concat);
  register_kernel<Op::max_pool2d>(type, max_pool2d);
  register_kernel<Op::avg_pool2d>(type, avg_pool2d);
  register_kernel<Op::linear>(type, linear);
  register_kernel<Op::softmax_last>(type, softmax_last);
  register_kernel<Op::cross_entropy_rows>(type, cross_entropy_rows);
  register_kernel<Op::upsample2d>(type, upsample2d);
  register_kernel<Op::pad2d>(type, pad2d);
  register_kernel<Op::dropout>(type, dropout);
  register_kernel<Op::drop_path_scale>(type, drop_path_scale);
}

}  // namespace scalpel::cuda
