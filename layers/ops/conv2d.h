#pragma once
// conv2d raw kernels (no autograd): the reference loops, the fast CPU algorithms, and the
// run-time algorithm choice. The differentiable wrapper is nn::conv2d (layers/functional.h).
//
// Layout, padding and output size: tensor/conv2d_geometry.h (Conv2dGeometry, shared with the
// device backends). Float or double.
//
// Algorithms (all compute the same function and are tested against the reference):
//   Reference   explicit loops over n, oc, oh, ow, ic, kh, kw; single-threaded, for reading.
//   Im2colGemm  per sample and group, unfold the input into columns [C_in/g*kH*kW, OH*OW] and
//               multiply by the weight matrix (tensor/gemm.h); a 1x1 stride-1 unpadded conv
//               is a direct GEMM on the input, without the unfold. Input grads fold back with
//               col2im. Any shape.
//   Depthwise   groups == C_in (channel multiplier C_out/C_in >= 1): direct loops per
//               channel, see layers/ops/conv2d_depthwise.h.
//   Winograd    3x3, stride 1, dilation 1, groups 1, any padding: F(4x4, 3x3) forward, input
//               and weight gradients (layers/ops/conv2d_winograd.cpp, declarations below).
// `Auto` picks Depthwise when it applies, Winograd where choose_cpu_conv_algorithm (forward and
// input gradient) or choose_cpu_conv_weight_gradient_algorithm says it measured faster,
// Im2colGemm otherwise.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>

#include "layers/functional.h"
#include "tensor/conv2d_geometry.h"
#include "tensor/cpu_isa.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

namespace scalpel::ops {

// Validates shapes and options (errors name the layer `name` and the shapes: ranks, sizes,
// channels vs groups, kernel larger than the padded input) and resolves padding (TF SAME too).
Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& weight, const nn::Conv2dOptions& options,
                               const std::string& name);

// The output positions o in [lo, hi) whose input position o * stride + offset lies in
// [0, in): the fast kernels run their inner loops over this range without bounds checks.
struct ConvRange {
  int64_t lo, hi;
};
inline ConvRange conv_valid_range(int64_t out, int64_t in, int64_t stride, int64_t offset) {
  const int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const int64_t hi = in - 1 - offset < 0 ? 0 : std::min(out, (in - 1 - offset) / stride + 1);
  return {std::min(lo, hi), hi};
}

// A stride-1 plane read flat (the depthwise kernels' FlatPlan, im2col's flat columns): output
// pixel p of a block of `pixels` starting at output row oh0 reads input pixel (oh0 + p / out_w
// + row_offset, p % out_w + column_offset). The lanes of the 16 pixels from `first` on whose
// input pixel lies inside the in_h x in_w input (the others are the zero padding, or past the
// block).
inline uint16_t flat_lanes_inside(int64_t first, int64_t pixels, int64_t out_w, int64_t oh0, int64_t row_offset,
                                  int64_t column_offset, int64_t in_h, int64_t in_w) {
  unsigned lanes = 0;
  for (int64_t lane = 0; lane < 16; ++lane) {
    const int64_t p = first + lane, ih = oh0 + p / out_w + row_offset, iw = p % out_w + column_offset;
    if (p < pixels && ih >= 0 && ih < in_h && iw >= 0 && iw < in_w) lanes |= 1u << lane;
  }
  return static_cast<uint16_t>(lanes);
}

enum class CpuConvAlgorithm { Auto, Reference, Im2colGemm, Depthwise, Winograd };
// The fast algorithms, for tests and benchmarks that run each one on the shapes it supports.
inline constexpr CpuConvAlgorithm kFastCpuConvAlgorithms[] = {CpuConvAlgorithm::Im2colGemm, CpuConvAlgorithm::Depthwise,
                                                              CpuConvAlgorithm::Winograd};
std::string_view cpu_conv_algorithm_name(CpuConvAlgorithm algorithm);
bool cpu_conv_algorithm_supports(CpuConvAlgorithm algorithm, const Conv2dGeometry& g);
// The algorithm `Auto` resolves to for this shape (never Auto); constant_weight: the weights
// are declared constant (tensor/constants.h), so Winograd transforms them once, not per call.
CpuConvAlgorithm choose_cpu_conv_algorithm(const Conv2dGeometry& g, bool constant_weight = false);
// The same for the weight gradient (what conv2d_backward_weight runs for `Auto`). It depends on
// one sample's shape only, never on the batch size: a batch's gradient is its samples' added as
// a tree, and data-parallel ranks with shards of it must run the same engine to get its bits.
CpuConvAlgorithm choose_cpu_conv_weight_gradient_algorithm(const Conv2dGeometry& g);

// Process-wide algorithm override for nn::conv2d / nn::conv_transpose2d (default Auto), used by
// tests and benchmarks. When the forced algorithm cannot run a shape, the automatic choice runs
// instead and cpu_conv_algorithm_fallbacks() counts it (a loud fallback, never a silent one).
void set_cpu_conv_algorithm(CpuConvAlgorithm algorithm);
CpuConvAlgorithm cpu_conv_algorithm();
int64_t cpu_conv_algorithm_fallbacks();
// The algorithm that will run `g`: the override when it supports g, else the automatic choice
// (for the forward pass, given its `weight`: whether it is declared constant counts).
CpuConvAlgorithm resolve_cpu_conv_algorithm(const Conv2dGeometry& g, const void* weight = nullptr);
// The same for the weight gradient.
CpuConvAlgorithm resolve_cpu_conv_weight_gradient_algorithm(const Conv2dGeometry& g);

// What an inference conv may fuse into its output store (models/fuse.h): after the bias,
//   y = activation(y + residual)
// residual null: none; else a contiguous [N, C_out, OH, OW] tensor (the block's shortcut),
// which may not alias y. The fast algorithms apply it to each output tile while it is in cache.
template <typename T>
struct ConvEpilogue {
  EpilogueActivation activation = EpilogueActivation::none;
  const T* residual = nullptr;
};

// ---- kernels; T is float or double. Outputs are overwritten (never accumulated into). ----
// y = epilogue(conv(x, weight) + bias); bias may be null.
template <typename T>
void conv2d_forward(CpuConvAlgorithm algorithm, const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                    T* y, const ConvEpilogue<T>& epilogue = {});
// grad_x [N, C_in, H, W] = conv2d's adjoint applied to grad_y (also conv_transpose2d's forward).
template <typename T>
void conv2d_backward_input(CpuConvAlgorithm algorithm, const Conv2dGeometry& g, const T* grad_y, const T* weight,
                           T* grad_x);
// grad_weight [C_out, C_in/g, kH, kW] = sum over n, oh, ow of grad_y * x.
// Every algorithm gives the same bits whatever the thread count (forward and grad_x too).
template <typename T>
void conv2d_backward_weight(CpuConvAlgorithm algorithm, const Conv2dGeometry& g, const T* x, const T* grad_y,
                            T* grad_weight);
// grad_bias [C] = sum over n, h, w of grad_y [N, C, H, W] (conv2d and conv_transpose2d).
template <typename T>
void conv2d_backward_bias(int64_t batch, int64_t channels, int64_t plane, const T* grad_y,
                          T* grad_bias);

// Whether the fast algorithms spread g's samples over threads: there are at least as many as
// threads and enough work that starting threads pays (tiny convs, as in gradient checks, stay
// serial). Each GEMM then runs single-threaded, as gemm() does inside a parallel region;
// otherwise samples run one after another and each GEMM may use all threads.
inline bool parallel_over_samples(const Conv2dGeometry& g) {
  constexpr int64_t kMinMacsPerThread = 1 << 18;
  return num_threads() > 1 && g.batch >= num_threads() && g.macs() >= kMinMacsPerThread * num_threads();
}

// The reference algorithm, callable directly.
template <typename T>
void conv2d_forward_reference(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                              T* y);
template <typename T>
void conv2d_backward_input_reference(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                     T* grad_x);
template <typename T>
void conv2d_backward_weight_reference(const Conv2dGeometry& g, const T* x, const T* grad_y,
                                      T* grad_weight);

// The im2col + GEMM algorithm (layers/ops/conv2d_im2col.cpp), any shape.
template <typename T>
void conv2d_forward_im2col(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                           T* y, const ConvEpilogue<T>& epilogue = {});
// Its pointwise path (g.is_pointwise(), Error otherwise), which conv2d_forward_im2col takes for
// such g, with two inference extras: x's samples x_sample_stride >= C_in * H * W elements apart
// (a channel slice of DenseNet's concatenation buffer, read in place), and an input transform,
// x[n, c] -> activation(x[n, c] * row_scale[c] + row_shift[c]) per input channel, applied as the
// GEMM packs x (GemmPrologue, tensor/gemm.h): the BatchNorm + activation that precede the conv,
// without a pass of their own over the input (models/fuse.h). Its item_stride is per sample
// (sample n reads row_scale + n * item_stride: a squeeze-excite's scales).
template <typename T>
void conv2d_forward_pointwise(const Conv2dGeometry& g, const T* x, int64_t x_sample_stride, const T* weight,
                              const T* bias, T* y, const ConvEpilogue<T>& epilogue,
                              const GemmPrologue<T>& input_transform);
template <typename T>
void conv2d_backward_input_im2col(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                  T* grad_x);
template <typename T>
void conv2d_backward_weight_im2col(const Conv2dGeometry& g, const T* x, const T* grad_y,
                                   T* grad_weight);
// Whether the im2col engine runs g's forward and input gradient as one GEMM over all samples
// (a pointwise conv on a small plane with large weights, or on a plane under 64 pixels that is
// not whole vectors; see conv2d_im2col.cpp) rather than one GEMM per sample. Either way each
// sample gets the same bits.
bool im2col_runs_samples_side_by_side(const Conv2dGeometry& g);
// How many samples its forward puts side by side in one GEMM for a conv through im2col: more
// than 1 on planes under 64 pixels that are not whole vectors (resnet50's 7x7: 49 columns are a
// 48-wide tile and a 16-wide one holding 1) with large weights, so that the tiles fill across
// samples and the weights are read once per call; 1 otherwise. Each sample gets the same bits.
int64_t im2col_samples_per_gemm(const Conv2dGeometry& g);
// Whether its forward runs g as one GEMM per kernel tap on the padded input (a stride-1 conv
// with at most 32 output channels, e.g. DenseNet's 3x3, whose padded input per sample fits
// im2col's scratch budget; see conv2d_im2col.cpp) instead of im2col + one GEMM.
bool im2col_uses_shifted_products(const Conv2dGeometry& g);

// The Winograd F(4x4, 3x3) algorithm (layers/ops/conv2d_winograd.cpp); requires
// cpu_conv_algorithm_supports(Winograd, g) (Error otherwise). Float and double run the same code.
// Per call it transforms the weights (U = G g G^T: 36 * C_out * C_in values, 4x the weight;
// once, on first use, for weights declared constant (tensor/constants.h), as fused models' are,
// when winograd_keeps_weights(g)),
// the input in 6x6 tiles with stride 4 (V = B^T d B), runs 36 GEMMs over the tiles of the
// whole batch (tensor/gemm.h) and transforms back (Y = A^T M A) with bias and epilogue,
// cropping the ragged edge tiles. Interpolation points 0, -1, 1, 1/2, -2 and infinity.
// The per-call weight transform is paid whatever the input size, which is why
// choose_cpu_conv_algorithm wants >= 64 tiles per call (8 for kept weights); float32 is about twice as far from the
// float64 reference as im2col + GEMM. Measured cost and accuracy: docs/performance.md
// ("Winograd: weight-transform cost and accuracy", "Issue 21, session 10").
// 4x4 output tiles per call, and from how many the per-call weight transform pays.
inline int64_t winograd_tiles(const Conv2dGeometry& g) { return g.batch * ((g.out_h + 3) / 4) * ((g.out_w + 3) / 4); }
inline constexpr int64_t kWinogradMinTiles = 64;
// Whether constant weights are transformed once and kept: only below kWinogradKeepBelowTiles
// tiles per call (above, the per-call transform is a small share), and at most
// kWinogradMaxKeptWeights values per layer. Kept
// transforms are 4x the weights and live as long as the model: resnet50 at batch 8 would
// keep 130 MB (past ONNX Runtime's whole peak RSS) to save ~3 % of its time, and even its
// layer1-2's 9 MB, interleaved with the activations' heap chunks, raised its peak RSS by 30-50 MB.
inline constexpr int64_t kWinogradKeepBelowTiles = 192;
inline constexpr int64_t kWinogradMaxKeptWeights = int64_t{1} << 20;
inline bool winograd_keeps_weights(const Conv2dGeometry& g) {
  return winograd_tiles(g) < kWinogradKeepBelowTiles && 36 * g.in_channels * g.out_channels <= kWinogradMaxKeptWeights;
}
template <typename T>
void conv2d_forward_winograd(const Conv2dGeometry& g, const T* x, const T* weight, const T* bias,
                             T* y, const ConvEpilogue<T>& epilogue = {});
// The input gradient, which is itself a stride-1 3x3 conv (of grad_y with the flipped,
// transposed weights), through the same forward.
template <typename T>
void conv2d_backward_input_winograd(const Conv2dGeometry& g, const T* grad_y, const T* weight,
                                    T* grad_x);
// The weight gradient, the forward's adjoint in the transformed domain: per sample, dM = A dY A^T
// per tile and output channel, 36 GEMMs dU[e] = dM[e] V[e]^T over the sample's tiles (C_out x
// C_in each), grad = G^T dU G; the samples added as layers/ops/batch_tree.h's tree, as
// im2col's. Per sample the GEMMs reduce over its tiles only, so it pays on large planes
// (choose_cpu_conv_weight_gradient_algorithm).
template <typename T>
void conv2d_backward_weight_winograd(const Conv2dGeometry& g, const T* x, const T* grad_y, T* grad_weight);

// Which compiled variant of the Winograd transforms runs (process-wide, tensor/cpu_isa.h; the
// GEMMs choose their own kernel). Tests run each one the CPU has.
void set_winograd_isa(Isa level);  // Error when the CPU lacks it
void reset_winograd_isa();         // back to best_isa()

}  // namespace scalpel::ops

namespace scalpel::nn {

// Inference conv with a fused epilogue: activation(conv2d(x, weight, bias) + residual), one
// pass over the output (models/fuse.h wires it into eval-mode Conv2d modules). CPU only and
// not differentiable: Error when gradients would be recorded (grad mode on and an input
// requiring grad) -- training runs the unfused ops. `residual`: undefined, or shaped like the
// output (Error naming both shapes otherwise). Same checks and algorithms as nn::conv2d.
//
// `input`, when not empty, transforms x first, per input channel: x -> activation(x * scale +
// shift), scale and shift [C_in] float tensors of x's dtype on the CPU (either may be
// undefined: 1 and 0) -- an inference BatchNorm + activation that precedes the conv -- or both
// per sample, N * C_in values ([N, C_in, 1, 1]: a squeeze-excite's scales). Only a
// pointwise conv (1x1, stride 1, unpadded; Error otherwise) takes one: it is applied as the GEMM
// packs x (ops::conv2d_forward_pointwise), which also reads x in place when each sample is
// contiguous but samples are further apart (a channel slice of DenseNet's ChannelBuffer).
// (ConvInputTransform: layers/functional.h.)
Tensor conv2d_fused(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options,
                    EpilogueActivation activation, const Tensor& residual, const std::string& name = "conv2d",
                    const ConvInputTransform& input = {});

}  // namespace scalpel::nn
