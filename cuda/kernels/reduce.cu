// Reductions (sum, mean, max, argmax) over the middle axis of [outer, len, inner]: kernels,
// entry points and registration. The reduce launcher serves linear's bias gradient too
// (declared in cuda/kernels.inc).
#include "cuda/kernels/block_reduce.cuh"

SCALPEL_KERNEL_API(
// out[outer, inner] (int64) = index of the maximum along the middle axis (first one wins; NaN
// is the maximum). len > 0.
void argmax(const Stream& s, const float* x, int64_t* out, int64_t outer, int64_t len,
            int64_t inner);
)

namespace scalpel::cuda::SCALPEL_CUDA_IMPL {

namespace {

constexpr int kThreads = 256;

// inner == 1: one block per row; threads stride over the row (coalesced), then reduce with
// warp shuffles.
__global__ void reduce_rows_kernel(ReduceOp op, const float* x, float* out, int64_t outer,
                                   int64_t len) {
  for (int64_t row = blockIdx.x; row < outer; row += gridDim.x) {
    const float* p = x + row * len;
    const bool is_max = op == ReduceOp::Max;
    float acc = is_max ? -INFINITY : 0.0f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) acc = is_max ? fmaxf(acc, p[i]) : acc + p[i];
    acc = is_max ? block_max(acc) : block_sum(acc);
    if (threadIdx.x == 0) out[row] = op == ReduceOp::Mean ? acc / static_cast<float>(len) : acc;
  }
}

// inner > 1: one thread per output element walks down its column; neighbouring threads read
// neighbouring addresses, so loads stay coalesced.
__global__ void reduce_columns_kernel(ReduceOp op, const float* x, float* out, int64_t outer,
                                      int64_t len, int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const int64_t o = i / inner, j = i % inner;
    const float* p = x + o * len * inner + j;
    const bool is_max = op == ReduceOp::Max;
    float acc = is_max ? -INFINITY : 0.0f;
    for (int64_t l = 0; l < len; ++l) acc = is_max ? fmaxf(acc, p[l * inner]) : acc + p[l * inner];
    out[i] = op == ReduceOp::Mean ? acc / static_cast<float>(len) : acc;
  }
}

// One thread per [outer, inner] output walks its column; the first maximum wins and NaN
// counts as the maximum, as ops::argmax.
__global__ void argmax_kernel(const float* x, int64_t* out, int64_t outer, int64_t len,
                              int64_t inner) {
  const int64_t n = outer * inner;
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n;
       i += int64_t{gridDim.x} * blockDim.x) {
    const float* p = x + i / inner * len * inner + i % inner;
    int64_t best = 0;
    for (int64_t l = 1; l < len && !isnan(p[best * inner]); ++l)
      if (p[l * inner] > p[best * inner] || isnan(p[l * inner])) best = l;
    out[i] = best;
  }
}

}  // namespace

void argmax(const Stream& s, const float* x, int64_t* out, int64_t outer, int64_t len,
            int64_t inner) {
  if (outer * inner > 0 && len > 0)
    SCALPEL_LAUNCH(argmax_kernel, grid_for(outer * inner, kThreads), kThreads, 0, s, x, out, outer,
                   len, inner);
}

void reduce(const Stream& s, ReduceOp op, const float* x, float* out, int64_t outer,
            int64_t len, int64_t inner) {
  if (outer * inner == 0) return;
  if (len == 0) {  // empty reduction: sum 0, mean NaN, max -inf (as PyTorch's sum; max throws there)
    const float value = op == ReduceOp::Sum ? 0.0f : (op == ReduceOp::Mean ? NAN : -INFINITY);
    fill(s, out, outer * inner, value);
    return;
  }
  if (inner == 1)
    SCALPEL_LAUNCH(reduce_rows_kernel, grid_for(outer, 1, 65535), kReductionThreads, 0, s, op, x, out,
                   outer, len);
  else
    SCALPEL_LAUNCH(reduce_columns_kernel, grid_for(outer * inner, kThreads), kThreads, 0, s, op,
                   x, out, outer, len, inner);
}

}  // namespace scalpel::cuda::SCALPEL_CUDA_IMPL

#if SCALPEL_CUDA_ENTRY_POINTS
#include "cuda/tensor_ops_internal.h"

namespace scalpel::cuda {
namespace {
using namespace detail;

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
  if (op == ReduceOp::Mean) {
    Tensor y = empty_like_device(x.shape(), x);
    SCALPEL_CUDA_CALL(s, affine, in(x), out(y), x.numel(), static_cast<float>(1.0 / static_cast<double>(count)),
                      0.0f);
    x = y;
  }
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

}  // namespace
}  // namespace scalpel::cuda

SCALPEL_REGISTER_KERNELS(reduce) {
  backend::register_kernel<backend::Op::reduce>(type, reduce);
  backend::register_kernel<backend::Op::argmax>(type, argmax);
}
#endif
