#include "cuda/tensor_ops.h"

#include <cstring>

#include "cuda/conv_engine.h"
#include "cuda/cudnn.h"
#include "cuda/device.h"
#include "tensor/error.h"
#include "tensor/ops.h"

namespace scalpel::cuda {

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

// The stream of the device all `tensors` (undefined ones skipped) live on; checks that each
// is a contiguous float32 tensor there (the kernels' contract).
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
    // Copying a strided view into a contiguous one needs a gather kernel, not wired yet.
    if (!t->is_contiguous()) not_wired(fmt::format("{} of a non-contiguous view", op), device);
  }
  return default_stream(device);
}

const float* in(const Tensor& t) { return t.defined() ? static_cast<const float*>(t.raw_data()) : nullptr; }
float* out(const Tensor& t) { return static_cast<float*>(t.raw_data()); }

Tensor arithmetic(const char* op, const Tensor& a, const Tensor& b) {
  const std::string name = op;
  BinaryOp kind;
  if (name == "add") kind = BinaryOp::Add;
  else if (name == "sub") kind = BinaryOp::Sub;
  else if (name == "mul") kind = BinaryOp::Mul;
  else if (name == "div") kind = BinaryOp::Div;
  else if (name == "pow") kind = BinaryOp::Pow;
  else if (name == "maximum") kind = BinaryOp::Max;
  else if (name == "minimum") kind = BinaryOp::Min;
  else not_wired(name, a.device());
  return binary(kind, a, b);
}

}  // namespace

void init() {
  register_allocators();
  register_device_copy(DeviceType::CUDAEmu, tensor_device_copy);
  ops::register_device_arithmetic(DeviceType::CUDAEmu, arithmetic);
#if SCALPEL_HAVE_CUDA
  register_device_copy(DeviceType::CUDA, tensor_device_copy);
  ops::register_device_arithmetic(DeviceType::CUDA, arithmetic);
#endif
}

void not_wired(const std::string& op, Device device) {
  fail("{}: not implemented on {} yet (CUDA backend); run it with --device cpu", op, device.str());
}

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dShape& shape) {
  const Stream s = stream_for("conv2d", {&x, &w, &bias});
  Tensor y = Tensor::empty({shape.n, shape.k, shape.out_h(), shape.out_w()}, DType::F32, x.device());
  // The engine switch: cuDNN when asked for globally or for this layer (cuda/conv_engine.h).
  if (resolve_conv_engine(w, x.device()) == ConvEngine::Cudnn) {
    cudnn::conv2d_forward(s, shape, in(x), in(w), in(bias), out(y));
    return y;
  }
  // The depthwise kernel needs no column buffer; im2col needs one sample and group's.
  const bool depthwise = shape.depthwise();
  Tensor workspace = Tensor::empty({depthwise ? 1 : conv2d_workspace_floats(shape)}, DType::F32, x.device());
  SCALPEL_CUDA_CALL(s, conv2d_forward, shape, in(x), in(w), in(bias), out(y), out(workspace));
  return y;
}

Tensor batch_norm_eval(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                       const Tensor& running_mean, const Tensor& running_var, double eps) {
  const Stream s = stream_for("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  const int64_t n = x.size(0), c = x.size(1), hw = x.numel() / std::max<int64_t>(n * c, 1);
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  // The kernel takes gamma and beta; an affine-free batch norm is gamma 1, beta 0.
  Tensor g = gamma, b = beta;
  if (!g.defined()) {
    g = Tensor::empty({c}, DType::F32, x.device());
    SCALPEL_CUDA_CALL(s, fill, out(g), c, 1.0f);
  }
  if (!b.defined()) {
    b = Tensor::empty({c}, DType::F32, x.device());
    SCALPEL_CUDA_CALL(s, fill, out(b), c, 0.0f);
  }
  SCALPEL_CUDA_CALL(s, batch_norm_eval_forward, in(x), in(g), in(b), in(running_mean),
                    in(running_var), out(y), n, c, hw, static_cast<float>(eps));
  return y;
}

Tensor unary(UnaryOp op, const Tensor& x, double alpha) {
  const Stream s = stream_for("activation", {&x});
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
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
  // Right-aligned contiguous strides of a and b, 0 on the axes they broadcast along.
  int64_t sa = 1, sb = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    layout.shape[d] = shape[d];
    const int da = d - (ndim - a.dim()), db = d - (ndim - b.dim());
    const int64_t na = da >= 0 ? a.size(da) : 1, nb = db >= 0 ? b.size(db) : 1;
    layout.a_strides[d] = na == 1 ? 0 : sa;
    layout.b_strides[d] = nb == 1 ? 0 : sb;
    sa *= na;
    sb *= nb;
  }
  Tensor y = Tensor::empty(shape, DType::F32, a.device());
  if (y.numel() > 0) SCALPEL_CUDA_CALL(s, binary, op, in(a), in(b), out(y), layout);
  return y;
}

Tensor max_pool2d(const Tensor& x, const Pool2dShape& shape) {
  const Stream s = stream_for("max_pool2d", {&x});
  Tensor y = Tensor::empty({shape.n, shape.c, shape.out_h(), shape.out_w()}, DType::F32, x.device());
  // int32 argmax indices (for backward, not wired yet) in a float32 buffer of the same size:
  // tensors have no int32 dtype.
  static_assert(sizeof(int32_t) == sizeof(float));
  Tensor indices = Tensor::empty({y.numel()}, DType::F32, x.device());
  SCALPEL_CUDA_CALL(s, max_pool2d_forward, shape, in(x), out(y), static_cast<int32_t*>(indices.raw_data()));
  return y;
}

Tensor avg_pool2d(const Tensor& x, const Pool2dShape& shape) {
  const Stream s = stream_for("avg_pool2d", {&x});
  Tensor y = Tensor::empty({shape.n, shape.c, shape.out_h(), shape.out_w()}, DType::F32, x.device());
  SCALPEL_CUDA_CALL(s, avg_pool2d_forward, shape, in(x), out(y));
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  const Stream s = stream_for("linear", {&x, &w, &bias});
  const int64_t in_f = w.size(1), out_f = w.size(0), M = x.numel() / std::max<int64_t>(in_f, 1);
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  Tensor y = Tensor::empty(out_shape, DType::F32, x.device());
  if (y.numel() == 0) return y;
  if (bias.defined()) {  // y starts as the bias rows (a stride-0 source), then GEMM accumulates
    SCALPEL_CUDA_CALL(s, copy_2d, in(bias), 0, out(y), out_f, M, out_f);
  }
  SCALPEL_CUDA_CALL(s, gemm, GemmConfig{}, false, true, M, out_f, in_f, 1.0f, in(x), in_f, in(w),
                    in_f, bias.defined() ? 1.0f : 0.0f, out(y), out_f);
  return y;
}

Tensor softmax_last(const Tensor& x, bool log) {
  const Stream s = stream_for(log ? "log_softmax" : "softmax", {&x});
  const int64_t cols = x.size(-1), rows = x.numel() / std::max<int64_t>(cols, 1);
  Tensor y = Tensor::empty(x.shape(), DType::F32, x.device());
  if (y.numel() > 0) SCALPEL_CUDA_CALL(s, softmax_forward, in(x), out(y), rows, cols, log);
  return y;
}

}  // namespace scalpel::cuda
