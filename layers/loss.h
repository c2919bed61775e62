#pragma once
// Loss functions from logits, differentiable with respect to the logits (targets, class
// weights and pos_weight are constants). float32/float64 logits; class targets are int64.
//
// cross_entropy and binary_cross_entropy_with_logits are fused kernels (a plain reference
// forward and backward in loss.cpp); focal, Dice and MSE are written with differentiable
// ops (autograd/functions.h, layers/functional.h), their formulas stated below.
#include <string>
#include <vector>

#include "autograd/functions.h"

namespace scalpel::nn {

enum class Reduction { None, Mean, Sum };
Reduction parse_reduction(const std::string& text);  // "none" | "mean" | "sum"; Error otherwise

// ---- cross entropy ----
struct CrossEntropyOptions {
  Tensor weight;                // [C] class weights, or undefined (all 1)
  double label_smoothing = 0;   // in [0, 1]
  int64_t ignore_index = -100;  // targets equal to it contribute nothing
  Reduction reduction = Reduction::Mean;
};
// logits [N, C] or [N, C, d1, ...] (e.g. segmentation [N, C, H, W]); target int64 [N] or
// [N, d1, ...] with values in [0, C) or ignore_index. As torch.nn.functional.cross_entropy:
//   loss_i = (1 - eps) * w[t_i] * -log p_i[t_i] + eps / C * sum_c w[c] * -log p_i[c]
// (0 where t_i is ignored), p_i = softmax of row i. Mean divides the sum by the sum of
// w[t_i] over non-ignored targets (by their count without weights); all ignored -> NaN, as
// PyTorch. None returns the per-target losses with the target's shape.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const CrossEntropyOptions& options = {});

// ---- binary cross entropy with logits ----
// logits and target (float, 0..1, soft targets allowed) of the same shape; pos_weight
// broadcasts to the logits (typically [C] for logits [N, C]); weight likewise (per element).
//   loss = -w * (pos_weight * t * log sigmoid(x) + (1 - t) * log(1 - sigmoid(x))), evaluated
// stably as w * ((1 - t) * x + (1 + (pos_weight - 1) * t) * softplus(-x)). Mean over elements.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target, const Tensor& pos_weight = {},
                                        Reduction reduction = Reduction::Mean, const Tensor& weight = {});

// ---- focal loss (Lin et al. 2017) ----
// Softmax (multi-class): logits [N, C], target int64 [N], alpha [C] or undefined (1):
//   p_t = softmax(x)_i[t_i];  loss_i = -alpha[t_i] * (1 - p_t)^gamma * log(p_t)
// Mean = sum_i loss_i / N; sum; or none ([N]). gamma 0 without alpha is cross entropy.
Tensor focal_loss(const Tensor& logits, const Tensor& target, double gamma = 2.0, const Tensor& alpha = {},
                  Reduction reduction = Reduction::Mean);
// Sigmoid (binary / multi-label), as torchvision.ops.sigmoid_focal_loss: logits and float
// target of the same shape, p = sigmoid(x), p_t = p t + (1 - p)(1 - t),
//   loss = alpha_t * bce_with_logits(x, t) * (1 - p_t)^gamma, alpha_t = alpha t + (1 - alpha)(1 - t)
// (alpha < 0: alpha_t = 1). Mean over all elements, sum, or none.
Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& target, double alpha = 0.25, double gamma = 2.0,
                          Reduction reduction = Reduction::Mean);

// ---- soft Dice loss (segmentation) ----
// Multi-class: logits [N, C, H, W], target int64 [N, H, W]; p = softmax over C, t = one-hot.
// Per class c, sums over N, H, W: dice_c = (2 sum(p t) + smooth) / (sum p + sum t + smooth);
// loss = 1 - mean_c dice_c (a scalar).
Tensor dice_loss(const Tensor& logits, const Tensor& target, double smooth = 1.0);
// Binary: logits and float target (0/1) of the same shape, p = sigmoid(x), sums over all
// elements: loss = 1 - (2 sum(p t) + smooth) / (sum p + sum t + smooth).
Tensor binary_dice_loss(const Tensor& logits, const Tensor& target, double smooth = 1.0);

// ---- regression ----
// (x - target)^2, same shapes; mean over elements, sum, or none.
Tensor mse_loss(const Tensor& x, const Tensor& target, Reduction reduction = Reduction::Mean);

// ---- class weights ----
// "balanced" weights for imbalanced data (sklearn's compute_class_weight): w_c = n / (k * n_c)
// for k classes with n_c samples each and n samples in all. Error when a class has no samples.
std::vector<double> balanced_class_weights(const std::vector<int64_t>& counts);
// Class weights from a command-line spec, for classes `class_names` (index order):
//   "balanced"                from `counts` (one per class)
//   "COVID=3,Normal=1"        by name; classes not named get 1
//   "3,1,0.5"                 one number per class, in index order
// Errors name the spec and the offending part (unknown class, wrong count, not a number).
std::vector<double> parse_class_weights(const std::string& spec, const std::vector<std::string>& class_names,
                                        const std::vector<int64_t>& counts = {});

}  // namespace scalpel::nn
