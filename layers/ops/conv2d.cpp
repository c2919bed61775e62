// conv2d: the reference loops, the algorithm dispatch and the autograd wrapper nn::conv2d.
// The fast algorithms live beside this file: conv2d_im2col.cpp, conv2d_depthwise.cpp and
// conv2d_winograd.cpp.
#include "layers/ops/conv2d.h"

#include <atomic>
#include <optional>

#include "autograd/autograd.h"
#include "tensor/backend.h"
#include "layers/functional.h"
#include "layers/ops/batch_tree.h"
#include "layers/ops/conv2d_depthwise.h"
#include "tensor/constants.h"
#include "tensor/error.h"

namespace scalpel::ops {

Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& weight, const nn::Conv2dOptions& o,
                               const std::string& name) {
  SCALPEL_CHECK(x.size() == 4, "{}: input must be 4-D [N, C, H, W], got {}", name, shape_str(x));
  SCALPEL_CHECK(weight.size() == 4, "{}: weight must be 4-D [C_out, C_in/groups, kH, kW], got {}",
                name, shape_str(weight));
  for (int64_t s : x)
    SCALPEL_CHECK(s > 0, "{}: input {} has an empty or negative size", name, shape_str(x));
  for (int64_t s : weight)
    SCALPEL_CHECK(s > 0, "{}: weight {} has an empty or negative size", name, shape_str(weight));
  SCALPEL_CHECK(o.groups >= 1, "{}: groups must be >= 1, got {}", name, o.groups);
  SCALPEL_CHECK(o.stride[0] >= 1 && o.stride[1] >= 1, "{}: stride must be >= 1, got [{}, {}]",
                name, o.stride[0], o.stride[1]);
  SCALPEL_CHECK(o.dilation[0] >= 1 && o.dilation[1] >= 1,
                "{}: dilation must be >= 1, got [{}, {}]", name, o.dilation[0], o.dilation[1]);

  Conv2dGeometry g;
  g.batch = x[0];
  g.in_channels = x[1];
  g.in_h = x[2];
  g.in_w = x[3];
  g.out_channels = weight[0];
  g.kernel_h = weight[2];
  g.kernel_w = weight[3];
  g.stride_h = o.stride[0];
  g.stride_w = o.stride[1];
  g.dilation_h = o.dilation[0];
  g.dilation_w = o.dilation[1];
  g.groups = o.groups;
  SCALPEL_CHECK(g.in_channels % g.groups == 0 && g.out_channels % g.groups == 0,
                "{}: groups {} must divide input channels {} and output channels {} (input {}, "
                "weight {})",
                name, g.groups, g.in_channels, g.out_channels, shape_str(x), shape_str(weight));
  SCALPEL_CHECK(weight[1] == g.in_per_group(),
                "{}: input {} has {} channels, so weight {} with groups {} needs {} input "
                "channels per group, not {}",
                name, shape_str(x), g.in_channels, shape_str(weight), g.groups, g.in_per_group(),
                weight[1]);

  const nn::Padding2d pad =
      o.same ? nn::same_padding(g.in_h, g.in_w, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w,
                                g.dilation_h, g.dilation_w)
             : o.padding;
  SCALPEL_CHECK(pad.top >= 0 && pad.bottom >= 0 && pad.left >= 0 && pad.right >= 0,
                "{}: padding must be >= 0, got top {} bottom {} left {} right {}", name, pad.top,
                pad.bottom, pad.left, pad.right);
  g.pad_top = pad.top;
  g.pad_bottom = pad.bottom;
  g.pad_left = pad.left;
  g.pad_right = pad.right;
  g.set_output_size();
  SCALPEL_CHECK(g.out_h > 0 && g.out_w > 0,
                "{}: kernel {}x{} (dilation [{}, {}]) is larger than the padded input {}x{} "
                "(input {}, padding top {} bottom {} left {} right {})",
                name, g.kernel_h, g.kernel_w, g.dilation_h, g.dilation_w,
                g.in_h + pad.top + pad.bottom, g.in_w + pad.left + pad.right, shape_str(x),
                pad.top, pad.bottom, pad.left, pad.right);
  return g;
}

// ---------------------------------------------------------------- algorithm choice

namespace {
std::atomic<CpuConvAlgorithm> g_algorithm{CpuConvAlgorithm::Auto};
std::atomic<int64_t> g_fallbacks{0};
}  // namespace

std::string_view cpu_conv_algorithm_name(CpuConvAlgorithm algorithm) {
  switch (algorithm) {
    case CpuConvAlgorithm::Auto: return "auto";
    case CpuConvAlgorithm::Reference: return "reference";
    case CpuConvAlgorithm::Im2colGemm: return "im2col_gemm";
    case CpuConvAlgorithm::Depthwise: return "depthwise";
    case CpuConvAlgorithm::Winograd: return "winograd";
  }
  return "?";
}

bool cpu_conv_algorithm_supports(CpuConvAlgorithm algorithm, const Conv2dGeometry& g) {
  switch (algorithm) {
    case CpuConvAlgorithm::Auto:
    case CpuConvAlgorithm::Reference:
    case CpuConvAlgorithm::Im2colGemm: return true;
    case CpuConvAlgorithm::Depthwise: return g.is_depthwise();
    case CpuConvAlgorithm::Winograd:
      return g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 &&
             g.dilation_w == 1 && g.groups == 1;
  }
  return false;
}

CpuConvAlgorithm choose_cpu_conv_algorithm(const Conv2dGeometry& g, bool constant_weight) {
  // Depthwise as GEMMs would be one tiny GEMM per channel (BVLC/caffe#5649): never.
  if (g.is_depthwise()) return CpuConvAlgorithm::Depthwise;
  // Winograd pays where its per-call weight transform (36 * C_out * C_in values) is shared by
  // enough 4x4 output tiles, and there are enough channels for its GEMMs and transforms.
  // Measured with bench_conv on AMD Zen 4 (docs/performance.md, "Issue 21, session 10"), with
  // the transforms on vector types: faster than im2col on resnet50's layer3 at batch 8 (128
  // tiles: 5.8-7.6 vs 9.7-9.95 ms), even at batch 1 (16 tiles, weights not kept: 1.5-1.7 vs
  // 1.8), slower on layer4 (4 tiles: 6.5 vs 1.5 ms; 32 at batch 8: 10.7-13.5 vs 12.0).
  // Weights transformed once (constant and small enough to keep) make it pay from 8 tiles:
  // DenseNet's 3x3 -> 32 output channels on 56/28/14 at batch 1: 1.03 / 0.27 / 0.18 vs 2.37 /
  // 0.77 / 0.43 ms (the shifted products); on 7x7 (4 tiles) im2col's flat columns are faster,
  // 0.052 vs 0.068-0.082 ms (session 12).
  constexpr int64_t kMinChannels = 16, kMinOutChannels = 32, kMinTilesKept = 8;
  if (!cpu_conv_algorithm_supports(CpuConvAlgorithm::Winograd, g) || g.in_channels < kMinChannels ||
      g.out_channels < kMinOutChannels)
    return CpuConvAlgorithm::Im2colGemm;
  const int64_t tiles = winograd_tiles(g);
  const bool transformed_once = constant_weight && winograd_keeps_weights(g);
  if (tiles >= kWinogradMinTiles || (transformed_once && tiles >= kMinTilesKept))
    return CpuConvAlgorithm::Winograd;
  return CpuConvAlgorithm::Im2colGemm;
}

CpuConvAlgorithm choose_cpu_conv_weight_gradient_algorithm(const Conv2dGeometry& g) {
  if (g.is_depthwise()) return CpuConvAlgorithm::Depthwise;
  // Each sample's 36 GEMMs reduce over its own tiles only (the batch is added as a tree) and
  // write its transformed gradient dU (36 * C_out * C_in values) back per chunk, so Winograd
  // pays from enough tiles per sample, or from fewer while dU stays within L2. Measured with
  // bench_conv on AMD Zen 4 (docs/performance.md, "Issue 21, session 11"), batch 8, vs im2col:
  // resnet50's layer1 (196 tiles) 5.3 vs 13.2 ms, layer2 (49) 4.5 vs 11.1, layer3 (16, dU 9 MiB)
  // 11.0 vs 10.0, layer4 (4) 41.6 vs 11.8; DenseNet's 3x3 128 -> 32 on 14x14 (16, dU 0.6 MiB)
  // 0.78 vs 1.03.
  constexpr int64_t kMinChannels = 16, kMinOutChannels = 16, kMinSampleTiles = 16, kManySampleTiles = 32;
  constexpr int64_t kMaxL2Gradient = int64_t{1} << 18;  // values of dU (1 MiB of floats)
  if (!cpu_conv_algorithm_supports(CpuConvAlgorithm::Winograd, g) || g.in_channels < kMinChannels ||
      g.out_channels < kMinOutChannels)
    return CpuConvAlgorithm::Im2colGemm;
  Conv2dGeometry sample = g;
  sample.batch = 1;
  const int64_t tiles = winograd_tiles(sample);
  if (tiles >= kManySampleTiles || (tiles >= kMinSampleTiles && 36 * g.in_channels * g.out_channels <= kMaxL2Gradient))
    return CpuConvAlgorithm::Winograd;
  return CpuConvAlgorithm::Im2colGemm;
}

void set_cpu_conv_algorithm(CpuConvAlgorithm algorithm) { g_algorithm = algorithm; }
CpuConvAlgorithm cpu_conv_algorithm() { return g_algorithm; }
int64_t cpu_conv_algorithm_fallbacks() { return g_fallbacks; }

namespace {
// The override when it supports g; none when there is none or it cannot run g (a fallback,
// counted): the automatic choice then runs.
std::optional<CpuConvAlgorithm> supported_override(const Conv2dGeometry& g) {
  const CpuConvAlgorithm forced = g_algorithm;
  if (forced == CpuConvAlgorithm::Auto) return std::nullopt;
  if (cpu_conv_algorithm_supports(forced, g)) return forced;
  ++g_fallbacks;
  return std::nullopt;
}
}  // namespace

CpuConvAlgorithm resolve_cpu_conv_algorithm(const Conv2dGeometry& g, const void* weight) {
  return supported_override(g).value_or(choose_cpu_conv_algorithm(g, weight && is_declared_constant(weight)));
}

CpuConvAlgorithm resolve_cpu_conv_weight_gradient_algorithm(const Conv2dGeometry& g) {
  return supported_override(g).value_or(choose_cpu_conv_weight_gradient_algorithm(g));
}

// ---------------------------------------------------------------- reference loops

template <typename T>
void conv2d_forward_reference(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                              T* y) {
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group();
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t oc = 0; oc < g.out_channels; ++oc) {
      const int64_t group = oc / opg;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          T acc = bias ? bias[oc] : T(0);
          for (int64_t icg = 0; icg < ipg; ++icg) {
            const int64_t ic = group * ipg + icg;
            for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
              const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
              if (ih < 0 || ih >= g.in_h) continue;  // zero padding
              for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const int64_t iw = ow * g.stride_w - g.pad_left + kw * g.dilation_w;
                if (iw < 0 || iw >= g.in_w) continue;
                acc += x[((n * g.in_channels + ic) * g.in_h + ih) * g.in_w + iw] *
                       weight[((oc * ipg + icg) * g.kernel_h + kh) * g.kernel_w + kw];
              }
            }
          }
          y[((n * g.out_channels + oc) * g.out_h + oh) * g.out_w + ow] = acc;
        }
    }
}

// The same loops, scattering each output gradient back to the inputs it read.
template <typename T>
void conv2d_backward_input_reference(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                     T* grad_x) {
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group();
  std::fill(grad_x, grad_x + g.batch * g.in_channels * g.in_h * g.in_w, T(0));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t oc = 0; oc < g.out_channels; ++oc) {
      const int64_t group = oc / opg;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const T gy = grad_y[((n * g.out_channels + oc) * g.out_h + oh) * g.out_w + ow];
          for (int64_t icg = 0; icg < ipg; ++icg) {
            const int64_t ic = group * ipg + icg;
            for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
              const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
              if (ih < 0 || ih >= g.in_h) continue;
              for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const int64_t iw = ow * g.stride_w - g.pad_left + kw * g.dilation_w;
                if (iw < 0 || iw >= g.in_w) continue;
                grad_x[((n * g.in_channels + ic) * g.in_h + ih) * g.in_w + iw] +=
                    gy * weight[((oc * ipg + icg) * g.kernel_h + kh) * g.kernel_w + kw];
              }
            }
          }
        }
    }
}

template <typename T>
void conv2d_backward_weight_reference(const Conv2dGeometry& g, const T* x, const T* grad_y,
                                      T* grad_weight) {
  const int64_t ipg = g.in_per_group(), opg = g.out_per_group();
  std::fill(grad_weight, grad_weight + g.out_channels * ipg * g.kernel_h * g.kernel_w, T(0));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t oc = 0; oc < g.out_channels; ++oc) {
      const int64_t group = oc / opg;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const T gy = grad_y[((n * g.out_channels + oc) * g.out_h + oh) * g.out_w + ow];
          for (int64_t icg = 0; icg < ipg; ++icg) {
            const int64_t ic = group * ipg + icg;
            for (int64_t kh = 0; kh < g.kernel_h; ++kh) {
              const int64_t ih = oh * g.stride_h - g.pad_top + kh * g.dilation_h;
              if (ih < 0 || ih >= g.in_h) continue;
              for (int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const int64_t iw = ow * g.stride_w - g.pad_left + kw * g.dilation_w;
                if (iw < 0 || iw >= g.in_w) continue;
                grad_weight[((oc * ipg + icg) * g.kernel_h + kh) * g.kernel_w + kw] +=
                    gy * x[((n * g.in_channels + ic) * g.in_h + ih) * g.in_w + iw];
              }
            }
          }
        }
    }
}

template <typename T>
void conv2d_backward_bias(int64_t batch, int64_t channels, int64_t plane, const T* grad_y,
                          T* grad_bias) {
  // Per sample a plane's sum, added over the samples as layers/ops/batch_tree.h's tree.
  for (int64_t c = 0; c < channels; ++c) {
    grad_bias[c] = batch_tree_sum<T>(0, batch, [&](int64_t n) {
      const T* p = grad_y + (n * channels + c) * plane;
      T acc = 0;
      for (int64_t i = 0; i < plane; ++i) acc += p[i];
      return acc;
    });
  }
}

// ---------------------------------------------------------------- dispatch

namespace {
CpuConvAlgorithm check_algorithm(CpuConvAlgorithm algorithm, const Conv2dGeometry& g) {
  if (algorithm == CpuConvAlgorithm::Auto) return choose_cpu_conv_algorithm(g);
  SCALPEL_CHECK(cpu_conv_algorithm_supports(algorithm, g),
                "conv engine {} cannot run this convolution (C_in {}, C_out {}, groups {})",
                cpu_conv_algorithm_name(algorithm), g.in_channels, g.out_channels, g.groups);
  return algorithm;
}
}  // namespace

template <typename T>
void conv2d_forward(CpuConvAlgorithm algorithm, const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                    T* y, const ConvEpilogue<T>& epilogue) {
  switch (check_algorithm(algorithm, g)) {
    case CpuConvAlgorithm::Reference: {
      // The plain loops, then the epilogue as a separate pass over each output plane.
      conv2d_forward_reference(g, x, weight, bias, y);
      const GemmEpilogue<T> e{nullptr, epilogue.activation, epilogue.residual, 0};
      const int64_t plane = g.out_h * g.out_w;
      for (int64_t p = 0; p < g.batch * g.out_channels; ++p) apply_epilogue(e, 0, p * plane, plane, y + p * plane);
      return;
    }
    case CpuConvAlgorithm::Depthwise: return conv2d_forward_depthwise(g, x, weight, bias, y, epilogue);
    case CpuConvAlgorithm::Winograd: return conv2d_forward_winograd(g, x, weight, bias, y, epilogue);
    default: return conv2d_forward_im2col(g, x, weight, bias, y, epilogue);
  }
}

template <typename T>
void conv2d_backward_input(CpuConvAlgorithm algorithm, const Conv2dGeometry& g, const T* grad_y, const T* weight,
                           T* grad_x) {
  switch (check_algorithm(algorithm, g)) {
    case CpuConvAlgorithm::Reference: return conv2d_backward_input_reference(g, grad_y, weight, grad_x);
    case CpuConvAlgorithm::Depthwise: return conv2d_backward_input_depthwise(g, grad_y, weight, grad_x);
    case CpuConvAlgorithm::Winograd: return conv2d_backward_input_winograd(g, grad_y, weight, grad_x);
    default: return conv2d_backward_input_im2col(g, grad_y, weight, grad_x);
  }
}

template <typename T>
void conv2d_backward_weight(CpuConvAlgorithm algorithm, const Conv2dGeometry& g, const T* x, const T* grad_y,
                            T* grad_weight) {
  switch (algorithm == CpuConvAlgorithm::Auto ? choose_cpu_conv_weight_gradient_algorithm(g)
                                              : check_algorithm(algorithm, g)) {
    case CpuConvAlgorithm::Reference: return conv2d_backward_weight_reference(g, x, grad_y, grad_weight);
    case CpuConvAlgorithm::Depthwise: return conv2d_backward_weight_depthwise(g, x, grad_y, grad_weight);
    case CpuConvAlgorithm::Winograd: return conv2d_backward_weight_winograd(g, x, grad_y, grad_weight);
    default: return conv2d_backward_weight_im2col(g, x, grad_y, grad_weight);
  }
}

#define SCALPEL_CONV2D_INSTANTIATE(T)                                                                        \
  template void conv2d_forward_reference<T>(const Conv2dGeometry&, const T*, const T*, const T*, T*);        \
  template void conv2d_backward_input_reference<T>(const Conv2dGeometry&, const T*, const T*, T*);           \
  template void conv2d_backward_weight_reference<T>(const Conv2dGeometry&, const T*, const T*, T*);          \
  template void conv2d_backward_bias<T>(int64_t, int64_t, int64_t, const T*, T*);                            \
  template void conv2d_forward<T>(CpuConvAlgorithm, const Conv2dGeometry&, const T*, const T*, const T*, T*, \
                                  const ConvEpilogue<T>&);                                                   \
  template void conv2d_backward_input<T>(CpuConvAlgorithm, const Conv2dGeometry&, const T*, const T*, T*);   \
  template void conv2d_backward_weight<T>(CpuConvAlgorithm, const Conv2dGeometry&, const T*, const T*, T*);
SCALPEL_CONV2D_INSTANTIATE(float)
SCALPEL_CONV2D_INSTANTIATE(double)
#undef SCALPEL_CONV2D_INSTANTIATE

}  // namespace scalpel::ops

// ---------------------------------------------------------------- autograd wrapper

namespace scalpel::nn {

// The device branch (tensor/backend.h): the same geometry, forward and backward.
static Tensor device_conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dGeometry& g) {
  const backend::Conv2dOutput forward = backend::run<backend::Op::conv2d>(x.device(), x, weight, bias, g);
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  // Backward runs on the library (handwritten or cuDNN) the forward used for this layer.
  return record("conv2d", forward.y, {x, weight, bias},
                [g, need_x, need_w, need_b, library = forward.library, xs = need_w ? x.detach() : Tensor(),
                 ws = need_x ? weight.detach() : Tensor()](const Tensor& gy) {
                  const Device device = gy.device();
                  const Tensor gx =
                      need_x ? backend::run<backend::Op::conv2d_backward_data>(device, gy, ws, g, library) : Tensor();
                  backend::Conv2dFilterGrads gw;
                  if (need_w || need_b)
                    gw = backend::run<backend::Op::conv2d_backward_filter>(device, gy, xs, g, need_w, need_b, library);
                  return std::vector<Tensor>{gx, gw.w, gw.bias};
                });
}

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options,
              const std::string& name) {
  const Conv2dGeometry g = ops::conv2d_geometry(x.shape(), weight.shape(), options, name);
  SCALPEL_CHECK(is_floating(x.dtype()) && weight.dtype() == x.dtype() &&
                    (!bias.defined() || bias.dtype() == x.dtype()),
                "{}: input, weight and bias must share one float dtype, got {} and {}{}", name,
                dtype_name(x.dtype()), dtype_name(weight.dtype()),
                bias.defined() ? fmt::format(" and {}", dtype_name(bias.dtype())) : "");
  if (!x.device().is_cpu()) return device_conv2d(x, weight, bias, g);
  SCALPEL_CHECK(x.device().is_cpu() && weight.device().is_cpu() &&
                    (!bias.defined() || bias.device().is_cpu()),
                "{}: only CPU tensors are supported here, got input on {} and weight on {}", name,
                x.device().str(), weight.device().str());
  SCALPEL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == g.out_channels),
                "{}: bias must be [{}] for weight {}, got {}", name, g.out_channels,
                shape_str(weight.shape()), bias.defined() ? shape_str(bias.shape()) : "");
  const Tensor xc = x.contiguous(), wc = weight.contiguous();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  Tensor y = Tensor::empty({g.batch, g.out_channels, g.out_h, g.out_w}, x.dtype());
  dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    ops::conv2d_forward<T>(ops::resolve_cpu_conv_algorithm(g, wc.data<T>()), g, xc.data<T>(), wc.data<T>(),
                           bc.defined() ? bc.data<T>() : nullptr, y.data<T>());
  });
  // Which gradients are wanted is known now; the closure skips the others.
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  return record("conv2d", y, {x, weight, bias},
                [g, need_x, need_w, need_b, xs = need_w ? xc.detach() : Tensor(),
                 ws = need_x ? wc.detach() : Tensor()](const Tensor& gy_in) {
                  const Tensor gy = gy_in.contiguous();
                  Tensor gx, gw, gb;
                  dispatch_floating(gy.dtype(), [&](auto tag) {
                    using T = decltype(tag);
                    if (need_x) {
                      gx = Tensor::empty({g.batch, g.in_channels, g.in_h, g.in_w}, gy.dtype());
                      ops::conv2d_backward_input<T>(ops::resolve_cpu_conv_algorithm(g), g, gy.data<T>(),
                                                    ws.data<T>(), gx.data<T>());
                    }
                    if (need_w) {
                      gw = Tensor::empty({g.out_channels, g.in_per_group(), g.kernel_h, g.kernel_w}, gy.dtype());
                      ops::conv2d_backward_weight<T>(ops::resolve_cpu_conv_weight_gradient_algorithm(g), g,
                                                     xs.data<T>(), gy.data<T>(), gw.data<T>());
                    }
                    if (need_b) {
                      gb = Tensor::empty({g.out_channels}, gy.dtype());
                      ops::conv2d_backward_bias<T>(g.batch, g.out_channels, g.out_h * g.out_w,
                                                   gy.data<T>(), gb.data<T>());
                    }
                  });
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

namespace {

// Whether each sample of x [N, C, H, W] is one contiguous block (samples may be further apart).
bool samples_contiguous(const Tensor& x) {
  const int64_t H = x.size(2), W = x.size(3);
  return x.strides()[3] == 1 && x.strides()[2] == W && x.strides()[1] == H * W && x.strides()[0] >= x.size(1) * H * W;
}

// Checks `input` and returns its values per sample: 0 (one value per channel for every sample)
// or C_in (N * C_in values).
int64_t check_input_transform(const ConvInputTransform& input, const Tensor& x, const Conv2dGeometry& g,
                              const std::string& name) {
  SCALPEL_CHECK(g.is_pointwise(), "{}: an input transform needs a pointwise conv (1x1, stride 1, unpadded), got a {}x{} "
                "kernel with stride {}x{}", name, g.kernel_h, g.kernel_w, g.stride_h, g.stride_w);
  const Tensor& first = input.scale.defined() ? input.scale : input.shift;
  const bool per_sample = first.defined() && first.numel() == g.batch * g.in_channels && first.dim() >= 2;
  const int64_t values = per_sample ? g.batch * g.in_channels : g.in_channels;
  for (const Tensor* t : {&input.scale, &input.shift})
    SCALPEL_CHECK(!t->defined() || (t->numel() == values && t->size(0) == (per_sample ? g.batch : g.in_channels) &&
                                    t->dtype() == x.dtype() && t->device().is_cpu()),
                  "{}: the input transform's scale and shift must both be [{}] or both [{}, {}] {} on the CPU, got {}",
                  name, g.in_channels, g.batch, g.in_channels, dtype_name(x.dtype()), shape_str(t->shape()));
  return per_sample ? g.in_channels : 0;
}

}  // namespace

Tensor conv2d_fused(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options,
                    EpilogueActivation activation, const Tensor& residual, const std::string& name,
                    const ConvInputTransform& input) {
  const Conv2dGeometry g = ops::conv2d_geometry(x.shape(), weight.shape(), options, name);
  SCALPEL_CHECK(!(grad_enabled() && (x.requires_grad() || weight.requires_grad() ||
                                     (bias.defined() && bias.requires_grad()) ||
                                     (residual.defined() && residual.requires_grad()))),
                "{}: the fused conv is for inference only (no gradients); train the unfused model", name);
  SCALPEL_CHECK(is_floating(x.dtype()) && weight.dtype() == x.dtype() && (!bias.defined() || bias.dtype() == x.dtype()) &&
                    (!residual.defined() || residual.dtype() == x.dtype()),
                "{}: input, weight, bias and residual must share one float dtype (input {})", name, dtype_name(x.dtype()));
  SCALPEL_CHECK(x.device().is_cpu() && weight.device().is_cpu() && (!bias.defined() || bias.device().is_cpu()) &&
                    (!residual.defined() || residual.device().is_cpu()),
                "{}: the fused conv runs on the CPU only, got input on {}", name, x.device().str());
  SCALPEL_CHECK(!bias.defined() || (bias.dim() == 1 && bias.size(0) == g.out_channels),
                "{}: bias must be [{}] for weight {}, got {}", name, g.out_channels, shape_str(weight.shape()),
                bias.defined() ? shape_str(bias.shape()) : "");
  const Shape out_shape{g.batch, g.out_channels, g.out_h, g.out_w};
  SCALPEL_CHECK(!residual.defined() || residual.shape() == out_shape, "{}: residual {} must match the output {}", name,
                residual.defined() ? shape_str(residual.shape()) : "", shape_str(out_shape));
  const int64_t transform_item_stride = input.empty() ? 0 : check_input_transform(input, x, g, name);
  const bool in_place = !input.empty() && samples_contiguous(x);
  const Tensor xc = in_place ? x : x.contiguous(), wc = weight.contiguous();
  const Tensor bc = bias.defined() ? bias.contiguous() : Tensor();
  const Tensor rc = residual.defined() ? residual.contiguous() : Tensor();
  const Tensor scale = input.scale.defined() ? input.scale.contiguous() : Tensor();
  const Tensor shift = input.shift.defined() ? input.shift.contiguous() : Tensor();
  Tensor y = Tensor::empty(out_shape, x.dtype());
  dispatch_floating(x.dtype(), [&](auto tag) {
    using T = decltype(tag);
    const ops::ConvEpilogue<T> epilogue{activation, rc.defined() ? rc.data<T>() : nullptr};
    const T* b = bc.defined() ? bc.data<T>() : nullptr;
    if (input.empty())
      return ops::conv2d_forward<T>(ops::resolve_cpu_conv_algorithm(g, wc.data<T>()), g, xc.data<T>(), wc.data<T>(),
                                    b, y.data<T>(), epilogue);
    const GemmPrologue<T> transform{scale.defined() ? scale.data<T>() : nullptr,
                                    shift.defined() ? shift.data<T>() : nullptr, input.activation,
                                    transform_item_stride};
    const int64_t sample_stride = g.batch > 1 ? xc.strides()[0] : g.in_channels * g.in_h * g.in_w;
    ops::conv2d_forward_pointwise<T>(g, xc.data<T>(), sample_stride, wc.data<T>(), b, y.data<T>(), epilogue,
                                     transform);
  });
  return y;
}

}  // namespace scalpel::nn

// This op's row of README.md's op table (scripts/op_table.py writes the table from these rows).
// op table: | conv2d (stride, asymmetric/SAME padding, dilation, groups, bias) | `layers/ops/conv2d.cpp` (`conv2d_*_reference`) |
//   im2col + GEMM and direct 1x1 GEMM (`conv2d_im2col.cpp`), Winograd F(4x4,3x3) for stride-1 3x3 convs on large planes
//   (`conv2d_winograd.cpp`), depthwise loops compiled per ISA (`conv2d_depthwise.cpp`) and AVX-512 row kernels
//   (`conv2d_depthwise_avx512.cpp`); chosen per layer shape by `choose_cpu_conv_algorithm`, forced with
//   `set_cpu_conv_algorithm` | im2col + GEMM, direct (`conv.cu`, `gemm.cu`), depthwise (`depthwise_conv.cu`); any
//   padding in the kernels (`tensor/conv2d_geometry.h`) | forward, backward data and filter (`cudnn.cpp`); asymmetric
//   padding on an explicitly padded input |
