// cuDNN 9 behind cuda/cudnn.h (compiled only with cuDNN). Descriptors are built per call
// (cheap host structs); handles are per thread and device; algorithm choices are cached per
// shape. See the header for what is chosen and why.
#include <cudnn.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <climits>
#include <map>
#include <mutex>

#include "cuda/cudnn.h"
#include "cuda/cudnn/loader.h"
#include "cuda/device.h"
#include "cuda/gpu/runtime.h"
#include "tensor/error.h"

// Checks a cuDNN call: SCALPEL_CUDNN_CHECK(cudnnCreate(&h));
#define SCALPEL_CUDNN_CHECK(expr) \
  ::scalpel::cuda::cudnn::check(expr, #expr, __FILE__, __LINE__)

namespace scalpel::cuda::cudnn {

namespace {

void check(cudnnStatus_t status, const char* expr, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  fail("{}:{}: {} failed: {} ({}); --conv-engine handwritten avoids cuDNN", file, line, expr,
       cudnnGetErrorString(status), static_cast<int>(status));
}

int to_int(int64_t v, const char* what) {
  SCALPEL_CHECK(v >= 0 && v <= INT_MAX, "cuDNN: {} = {} does not fit cuDNN's int", what, v);
  return static_cast<int>(v);
}

// RAII owners of cuDNN descriptors (destroy results are not checked: nothing to do about them).
struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc(int64_t n, int64_t c, int64_t h, int64_t w) {
    SCALPEL_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
    SCALPEL_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT,
                                                   to_int(n, "n"), to_int(c, "c"), to_int(h, "h"),
                                                   to_int(w, "w")));
  }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

struct FilterDesc {
  cudnnFilterDescriptor_t d = nullptr;
  explicit FilterDesc(const Conv2dGeometry& p) {
    SCALPEL_CUDNN_CHECK(cudnnCreateFilterDescriptor(&d));
    SCALPEL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(d, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW,
                                                   to_int(p.out_channels, "out_channels"),
                                                   to_int(p.in_per_group(), "in_channels/groups"),
                                                   to_int(p.kernel_h, "kernel_h"), to_int(p.kernel_w, "kernel_w")));
  }
  ~FilterDesc() { cudnnDestroyFilterDescriptor(d); }
  FilterDesc(const FilterDesc&) = delete;
  FilterDesc& operator=(const FilterDesc&) = delete;
};

struct ConvDesc {
  cudnnConvolutionDescriptor_t d = nullptr;
  explicit ConvDesc(const Conv2dGeometry& p) {
    SCALPEL_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&d));
    // PyTorch's convolution is cuDNN's cross-correlation (no kernel flip).
    SCALPEL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(
        d, to_int(p.pad_top, "pad_top"), to_int(p.pad_left, "pad_left"), to_int(p.stride_h, "stride_h"),
        to_int(p.stride_w, "stride_w"), to_int(p.dilation_h, "dilation_h"), to_int(p.dilation_w, "dilation_w"),
        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    SCALPEL_CUDNN_CHECK(cudnnSetConvolutionGroupCount(d, to_int(p.groups, "groups")));
    SCALPEL_CUDNN_CHECK(cudnnSetConvolutionMathType(d, CUDNN_FMA_MATH));  // no TF32
  }
  ~ConvDesc() { cudnnDestroyConvolutionDescriptor(d); }
  ConvDesc(const ConvDesc&) = delete;
  ConvDesc& operator=(const ConvDesc&) = delete;
};

// The four descriptors of one convolution.
struct ConvDescs {
  TensorDesc x, y;
  FilterDesc w;
  ConvDesc conv;
  explicit ConvDescs(const Conv2dGeometry& p)
      : x(p.batch, p.in_channels, p.in_h, p.in_w), y(p.batch, p.out_channels, p.out_h, p.out_w), w(p), conv(p) {}
};

// Device memory for an algorithm, from the caching allocator. Released when the call
// returns: later work on the same stream is ordered after the kernels that use it.
struct Workspace {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit Workspace(size_t n) : bytes(n) {
    if (n > 0) ptr = gpu_allocator()->allocate(n);
  }
  ~Workspace() {
    if (ptr) gpu_allocator()->deallocate(ptr, bytes);
  }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
};

// One handle per thread and device (cuDNN handles are not for concurrent use), created by
// initialize() and never destroyed: at exit the CUDA context may already be gone.
thread_local std::map<int, cudnnHandle_t> t_handles;

// The calling thread's handle for the stream's device, bound to the stream.
cudnnHandle_t handle(const Stream& s) {
  initialize(s.device);
  cudnnHandle_t h = t_handles.at(s.device.index);
  SCALPEL_CUDNN_CHECK(cudnnSetStream(h, static_cast<cudaStream_t>(s.handle)));
  return h;
}

// ---- algorithm choice, cached per (direction, device, shape) ----

enum class Direction : int64_t { Forward, BackwardData, BackwardFilter };
using ShapeKey = std::array<int64_t, 17>;
struct Choice {
  int algo = 0;
  size_t workspace = 0;
};

ShapeKey key_of(Direction dir, const Stream& s, const Conv2dGeometry& p) {
  return {static_cast<int64_t>(dir),
          s.device.index,
          p.batch,
          p.in_channels,
          p.in_h,
          p.in_w,
          p.out_channels,
          p.kernel_h,
          p.kernel_w,
          p.stride_h,
          p.stride_w,
          p.pad_top,
          p.pad_left,
          p.dilation_h,
          p.dilation_w,
          p.groups,
          static_cast<int64_t>(algo_search())};
}

struct ChoiceCache {
  std::mutex mutex;
  std::map<ShapeKey, Choice> choices;
};
ChoiceCache& cache() {
  static ChoiceCache c;
  return c;
}

// The first result (cuDNN ranks them best first) that ran and fits the workspace limit.
template <typename Perf>
Choice first_fitting(const Perf* perfs, int count, const char* direction, const Conv2dGeometry& p) {
  for (int i = 0; i < count; ++i)
    if (perfs[i].status == CUDNN_STATUS_SUCCESS && perfs[i].memory <= workspace_limit())
      return {static_cast<int>(perfs[i].algo), perfs[i].memory};
  fail(
      "cuDNN has no {} algorithm for conv {}x{}x{}x{} -> {} ({}x{}, groups {}) within the {} MiB "
      "workspace limit; raise cudnn::set_workspace_limit or use --conv-engine handwritten",
      direction, p.batch, p.in_channels, p.in_h, p.in_w, p.out_channels, p.kernel_h, p.kernel_w, p.groups,
      workspace_limit() >> 20);
}

// Looks the choice up, or makes it with `choose` (which runs cuDNN's heuristics or Find).
template <typename Choose>
Choice cached_choice(Direction dir, const Stream& s, const Conv2dGeometry& p, Choose choose) {
  const ShapeKey key = key_of(dir, s, p);
  ChoiceCache& c = cache();
  {
    std::lock_guard lock(c.mutex);
    const auto it = c.choices.find(key);
    if (it != c.choices.end()) return it->second;
  }
  const Choice choice = choose();
  std::lock_guard lock(c.mutex);
  c.choices.emplace(key, choice);
  return choice;
}

}  // namespace

bool compiled() { return true; }

void initialize(Device device) {
  SCALPEL_CHECK(device.type == DeviceType::CUDA, "cuDNN runs on CUDA devices only, not on {}",
                device.str());
  if (t_handles.count(device.index)) return;
  gpu::require_device(device.index);  // also makes it the current device
  SCALPEL_CHECK(load_error().empty(), "cuDNN {} is not installed here ({}); install it (or put "
                "it on LD_LIBRARY_PATH), or use --conv-engine handwritten", CUDNN_MAJOR, load_error());
  const size_t version = cudnnGetVersion();
  SCALPEL_CHECK(version / 10000 == CUDNN_MAJOR, "cuDNN {} was loaded, but scalpel was built "
                "against cuDNN {}.{}; install cuDNN {} or use --conv-engine handwritten", version,
                CUDNN_MAJOR, CUDNN_MINOR, CUDNN_MAJOR);
  cudnnHandle_t h = nullptr;
  const cudnnStatus_t status = cudnnCreate(&h);
  SCALPEL_CHECK(status == CUDNN_STATUS_SUCCESS, "cuDNN could not start on {}: {} (its libraries "
                "libcudnn_*.so.{} may be missing from the library path); use --conv-engine "
                "handwritten", device.str(), cudnnGetErrorString(status), CUDNN_MAJOR);
  t_handles.emplace(device.index, h);
}

// ---- convolution ----

namespace {

// The cuDNN calls themselves, on a geometry with symmetric padding.
void forward_symmetric(const Stream& s, const Conv2dGeometry& p, const float* x, const float* w, const float* bias,
                       float* y) {
  cudnnHandle_t h = handle(s);
  const ConvDescs d(p);
  const Choice choice = cached_choice(Direction::Forward, s, p, [&] {
    constexpr int kMax = CUDNN_CONVOLUTION_FWD_ALGO_COUNT;
    cudnnConvolutionFwdAlgoPerf_t perfs[kMax];
    int count = 0;
    if (algo_search() == AlgoSearch::Heuristic) {
      SCALPEL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(h, d.x.d, d.w.d, d.conv.d, d.y.d,
                                                                 kMax, &count, perfs));
    } else {  // runs every algorithm on these buffers (y is overwritten below anyway)
      const Workspace ws(workspace_limit());
      SCALPEL_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, d.x.d, x, d.w.d, w, d.conv.d,
                                                                 d.y.d, y, kMax, &count, perfs,
                                                                 ws.ptr, ws.bytes));
    }
    return first_fitting(perfs, count, "forward", p);
  });
  const Workspace ws(choice.workspace);
  const float one = 1.0f, zero = 0.0f;
  SCALPEL_CUDNN_CHECK(cudnnConvolutionForward(h, &one, d.x.d, x, d.w.d, w, d.conv.d,
                                              static_cast<cudnnConvolutionFwdAlgo_t>(choice.algo),
                                              ws.ptr, ws.bytes, &zero, d.y.d, y));
  if (bias) {
    const TensorDesc b(1, p.out_channels, 1, 1);
    SCALPEL_CUDNN_CHECK(cudnnAddTensor(h, &one, b.d, bias, &one, d.y.d, y));
  }
}

void backward_data_symmetric(const Stream& s, const Conv2dGeometry& p, const float* w, const float* dy, float* dx) {
  cudnnHandle_t h = handle(s);
  const ConvDescs d(p);
  const Choice choice = cached_choice(Direction::BackwardData, s, p, [&] {
    constexpr int kMax = CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT;
    cudnnConvolutionBwdDataAlgoPerf_t perfs[kMax];
    int count = 0;
    if (algo_search() == AlgoSearch::Heuristic) {
      SCALPEL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, d.w.d, d.y.d, d.conv.d,
                                                                      d.x.d, kMax, &count, perfs));
    } else {
      const Workspace ws(workspace_limit());
      SCALPEL_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
          h, d.w.d, w, d.y.d, dy, d.conv.d, d.x.d, dx, kMax, &count, perfs, ws.ptr, ws.bytes));
    }
    return first_fitting(perfs, count, "backward-data", p);
  });
  const Workspace ws(choice.workspace);
  const float one = 1.0f, zero = 0.0f;
  SCALPEL_CUDNN_CHECK(cudnnConvolutionBackwardData(
      h, &one, d.w.d, w, d.y.d, dy, d.conv.d, static_cast<cudnnConvolutionBwdDataAlgo_t>(choice.algo),
      ws.ptr, ws.bytes, &zero, d.x.d, dx));
}

void backward_filter_symmetric(const Stream& s, const Conv2dGeometry& p, const float* x, const float* dy, float* dw,
                               float* db) {
  cudnnHandle_t h = handle(s);
  const ConvDescs d(p);
  const Choice choice = cached_choice(Direction::BackwardFilter, s, p, [&] {
    constexpr int kMax = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT;
    cudnnConvolutionBwdFilterAlgoPerf_t perfs[kMax];
    int count = 0;
    if (algo_search() == AlgoSearch::Heuristic) {
      SCALPEL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, d.x.d, d.y.d, d.conv.d,
                                                                        d.w.d, kMax, &count, perfs));
    } else {
      const Workspace ws(workspace_limit());
      SCALPEL_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          h, d.x.d, x, d.y.d, dy, d.conv.d, d.w.d, dw, kMax, &count, perfs, ws.ptr, ws.bytes));
    }
    return first_fitting(perfs, count, "backward-filter", p);
  });
  const Workspace ws(choice.workspace);
  const float one = 1.0f, zero = 0.0f;
  SCALPEL_CUDNN_CHECK(cudnnConvolutionBackwardFilter(
      h, &one, d.x.d, x, d.y.d, dy, d.conv.d,
      static_cast<cudnnConvolutionBwdFilterAlgo_t>(choice.algo), ws.ptr, ws.bytes, &zero, d.w.d, dw));
  if (db) {
    const TensorDesc b(1, p.out_channels, 1, 1);
    SCALPEL_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, d.y.d, dy, &zero, b.d, db));
  }
}

// cuDNN takes one padding per axis, applied on both sides. Asymmetric padding (TF "SAME" with
// an odd total, explicit {top, bottom, left, right}) runs as the symmetric convolution with
// min(top, bottom) and min(left, right) on an input explicitly padded by the excess: the one
// place where scalpel materialises convolution padding (the handwritten kernels take all four
// sides, tensor/conv2d_geometry.h). The data gradient is computed for the padded input and
// cropped back.
struct SymmetricForm {
  Conv2dGeometry g;           // symmetric padding; input grown by the excess
  int64_t top = 0, left = 0;  // where the caller's input sits in the grown one
  bool grown = false;         // false: g is the caller's geometry
};

SymmetricForm symmetric_form(const Conv2dGeometry& p) {
  SCALPEL_CHECK(p.pad_top >= 0 && p.pad_bottom >= 0 && p.pad_left >= 0 && p.pad_right >= 0,
                "cuDNN convolution: padding top {} bottom {} left {} right {} must not be negative "
                "(use --conv-engine handwritten)",
                p.pad_top, p.pad_bottom, p.pad_left, p.pad_right);
  SymmetricForm f;
  f.g = p;
  if (p.symmetric_padding()) return f;
  const int64_t pad_h = std::min(p.pad_top, p.pad_bottom), pad_w = std::min(p.pad_left, p.pad_right);
  f.top = p.pad_top - pad_h;
  f.left = p.pad_left - pad_w;
  f.g.in_h = p.in_h + (p.pad_top - pad_h) + (p.pad_bottom - pad_h);
  f.g.in_w = p.in_w + (p.pad_left - pad_w) + (p.pad_right - pad_w);
  f.g.pad_top = f.g.pad_bottom = pad_h;
  f.g.pad_left = f.g.pad_right = pad_w;
  f.grown = true;
  return f;
}

// A device buffer of the grown input [batch, in_channels, in_h, in_w] of `f`.
struct GrownInput {
  Workspace buffer;
  explicit GrownInput(const SymmetricForm& f)
      : buffer(static_cast<size_t>(f.g.batch * f.g.in_channels * f.g.in_h * f.g.in_w) * sizeof(float)) {}
  float* data() const { return static_cast<float*>(buffer.ptr); }
};

// grown = x placed at (f.top, f.left), zeros around it.
void grow(const Stream& s, const Conv2dGeometry& p, const SymmetricForm& f, const float* x, float* grown) {
  gpu::pad2d(s, x, grown, p.batch * p.in_channels, p.in_h, p.in_w, f.top, f.left, f.g.in_h, f.g.in_w, 0.0f);
}

}  // namespace

void conv2d_forward(const Stream& s, const Conv2dGeometry& p, const float* x, const float* w, const float* bias,
                    float* y) {
  const SymmetricForm f = symmetric_form(p);
  if (!f.grown) return forward_symmetric(s, p, x, w, bias, y);
  const GrownInput xp(f);
  grow(s, p, f, x, xp.data());
  forward_symmetric(s, f.g, xp.data(), w, bias, y);
}

void conv2d_backward_data(const Stream& s, const Conv2dGeometry& p, const float* w, const float* dy, float* dx) {
  const SymmetricForm f = symmetric_form(p);
  if (!f.grown) return backward_data_symmetric(s, p, w, dy, dx);
  const GrownInput dxp(f);
  backward_data_symmetric(s, f.g, w, dy, dxp.data());
  // The crop: pad2d with negative offsets reads the window at (top, left).
  gpu::pad2d(s, dxp.data(), dx, p.batch * p.in_channels, f.g.in_h, f.g.in_w, -f.top, -f.left, p.in_h, p.in_w, 0.0f);
}

void conv2d_backward_filter(const Stream& s, const Conv2dGeometry& p, const float* x, const float* dy, float* dw,
                            float* db) {
  const SymmetricForm f = symmetric_form(p);
  if (!f.grown) return backward_filter_symmetric(s, p, x, dy, dw, db);
  const GrownInput xp(f);
  grow(s, p, f, x, xp.data());
  backward_filter_symmetric(s, f.g, xp.data(), dy, dw, db);
}

}  // namespace scalpel::cuda::cudnn
