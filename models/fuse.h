#pragma once
// Inference fusion: fold each eval-mode BatchNorm2d into the Conv2d that feeds it, and run
// the activation after a conv in the conv's output store (fuse_for_inference).
//
// BN(conv(x)) = s * (W x + b - mean) + beta with s = gamma / sqrt(var + eps), per output
// channel, is the conv with W' = s W and b' = s (b - mean) + beta. The pass rewrites the conv's
// weight (and bias, created when the conv had none) in place and marks the BatchNorm2d
// `folded`, so its eval forward returns its input: one elementwise pass over every conv output
// less, the same logits up to float rounding.
#include <cstdint>

#include "layers/module.h"

namespace scalpel::models {

struct FuseReport {
  int64_t batchnorms = 0;  // BatchNorm2d layers called in the probe forward
  int64_t folded = 0;      // of those, folded into their conv
};

// Folds, in place, every BatchNorm2d whose input is the output of a Conv2d and of nothing
// else's input among the module calls of one probe forward on zeros of `input_shape` (pairs
// are found from the data flow, not from names or registration order). A conv whose output
// also feeds another module, a module called more than once per forward, a non-float32 or
// non-CPU parameter leave the pair unfused. Inference only: `model` must be in eval mode
// (Error otherwise), and a fused model must not be trained (its BN layers then no longer see
// the raw conv output). Running it twice folds nothing the second time.
FuseReport fuse_batchnorm(nn::Module& model, const Shape& input_shape);

struct InferenceFuseReport {
  FuseReport batchnorm;
  int64_t activations = 0;  // ActivationLayers now applied in their conv's output store
  int64_t batchnorm_activations = 0;  // ActivationLayers now applied by the BatchNorm2d before them
  int64_t blocks = 0;       // residual blocks now running fused (nn::BasicBlock/Bottleneck/InvertedResidual::fused)
  int64_t prepacked = 0;    // convs whose weights the bf16 GEMM converts once (prepack_constant_a)
  int64_t input_transforms = 0;  // BatchNorm2d layers (with their activation) now applied by the 1x1 conv they feed
  int64_t squeeze_excite_blocks = 0;  // MBConv blocks whose projection applies the SE scales (nn::MBConv::fused)
};

// fuse_batchnorm, then moves each ActivationLayer (relu, relu6, silu/swish, hardswish) that
// directly follows a Conv2d -- the next child of the same Sequential, after the conv's folded
// BatchNorm if any, with the conv's output as its input in a probe forward -- into that
// conv's output store (nn::Conv2d::fused_activation, nn::conv2d_fused): one pass over each
// such output less. An activation that follows a BatchNorm2d left unfolded (DenseNet's
// pre-activation norm1 + relu1) runs in that BN's pass instead (BatchNorm2d::fused_activation).
// A DenseLayer's children are a chain as a Sequential's are. Such an unfolded BN (+ activation)
// whose output only a 1x1 conv of one group reads is then applied by that conv as it packs its
// input for the GEMM (Conv2d::fused_input, BatchNorm2d::applied_by_next_conv): DenseNet's
// norm1 + relu1 before conv1 and each transition's norm + relu before its conv, no pass of
// their own over the growing concatenation. An MBConv (EfficientNet) whose block ends with a
// squeeze-excite and a 1x1 projection (BN folded, no activation) runs fused: the projection's
// GEMM multiplies its input by the SE's per-sample scales as it packs it and adds the residual
// in its store (nn::MBConv::fused). ResNet basic/bottleneck blocks whose BatchNorms all folded run their
// ReLUs and the residual add in the convs' stores (nn::Bottleneck::fused); a MobileNet V2
// InvertedResidual with a residual adds it in its projection's store
// (nn::InvertedResidual::fused). Same contract as
// fuse_batchnorm (eval mode, CPU float32, idempotent);
// the fused layers take their shortcut only in eval mode with gradients off, so Grad-CAM and
// training still see every layer. Last, every non-depthwise conv weight is declared constant
// to the GEMM (prepack_constant_a, tensor/gemm.h), whose bf16 path then converts it once
// instead of per call: a fused model's weights must not be written in place afterwards (replacing the
// tensor is fine: the old packing lapses with the old storage).
InferenceFuseReport fuse_for_inference(nn::Module& model, const Shape& input_shape);

// Training fusion: marks each BatchNorm2d whose output nothing but a ReLU reads to apply that
// ReLU itself in training mode (BatchNorm2d::relu_in_training, nn::batch_norm_relu), and the
// ReLU then passes the rectified tensor on: one pass over those activations less in the
// forward, and one activation tensor less kept for backward. Pairs: a BN followed by a ReLU
// ActivationLayer in a chain (as fuse_for_inference finds them, confirmed with a probe
// forward in eval mode, which leaves the running statistics alone), and the BN + ReLU pairs
// that ResNet blocks' forwards write out (Bottleneck's bn1 and bn2, BasicBlock's bn1,
// PreActBottleneck's preact_bn, bn1 and bn2). Training then gives the same bits as
// without; the model's parameters, buffers and state dict are unchanged. For an unfused CPU
// model (not after fuse_for_inference; a model on a device is left alone), in any mode;
// running it twice marks nothing more. Returns how many BNs it marked.
int64_t fuse_for_training(nn::Module& model, const Shape& input_shape);

}  // namespace scalpel::models
