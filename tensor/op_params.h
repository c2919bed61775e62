#pragma once
// Plain parameter types shared by the layer ops, the device dispatch table (tensor/backend.h)
// and the device kernels (cuda/kernels/*.cu, which nvcc compiles: no std library types here,
// helpers marked SCALPEL_HOST_DEVICE).
#include <cstdint>

#ifdef __CUDACC__
#define SCALPEL_HOST_DEVICE __host__ __device__
#else
#define SCALPEL_HOST_DEVICE
#endif

namespace scalpel {

// Elementwise binary operations (forward only; their gradients are products and sums of
// these plus a reduction).
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Max, Min, Pow };

// Unary functions with their derivative. `alpha` is the slope of LeakyRelu, unused otherwise.
enum class UnaryOp : uint8_t {
  Relu, Relu6, LeakyRelu, Sigmoid, Tanh, Silu, HardSigmoid, HardSwish, Gelu,
  Exp, Log, Sqrt, Neg, Abs,
};

enum class ReduceOp : uint8_t { Sum, Mean, Max };

enum class UpsampleMode : uint8_t { Nearest, Bilinear };  // bilinear: align_corners=false

// Which implementation runs a convolution on a CUDA device: the project's handwritten
// kernels or the vendor library (cuDNN). Chosen per call, see cuda/conv_library.h.
enum class ConvLibrary : uint8_t { Handwritten, Cudnn };

// 2-D pooling geometry (NCHW), symmetric padding.
struct Pool2dShape {
  int64_t n = 1, c = 1, h = 1, w = 1;
  int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  bool count_include_pad = true;  // average pooling: divide by the full window (PyTorch default)
  SCALPEL_HOST_DEVICE int64_t out_h() const { return (h + 2 * pad_h - kernel_h) / stride_h + 1; }
  SCALPEL_HOST_DEVICE int64_t out_w() const { return (w + 2 * pad_w - kernel_w) / stride_w + 1; }
};

}  // namespace scalpel
