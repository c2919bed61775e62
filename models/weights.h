#pragma once
// Loading a weights file's tensors into a model of the zoo: name mapping, strictness, head
// replacement. The file readers are in tensor/io/weights.h (load_weights_file: torch.save zip
// and legacy, safetensors; `module.` prefixes and `state_dict`/`model`/`net` wrappers already
// removed, float16/float64 already float32, NaN/Inf already refused naming the tensor).
//
// Name mapping (WeightsMap::names):
//   - torchvision names map 1:1 (our models use torchvision's state-dict keys, and the
//     MobileNet V1 PyTorch port's keys for mobilenet_v1).
//     DenseNet checkpoints with torchvision's old layer names ("denselayer1.norm.1.weight")
//     are renamed as torchvision's loader does ("denselayer1.norm1.weight").
//   - timm names (recognized by a `conv_stem.weight` entry) map through this table, for
//     timm's efficientnet_b0..b7 onto efficientnet_b0..b7 and mobilenetv1_100 onto
//     mobilenet_v1 (use --padding torch: timm pads symmetrically):
//
//     timm                              efficientnet_bN (torchvision)   mobilenet_v1
//     conv_stem                         features.0.0                    stage1.0.0
//     bn1                               features.0.1                    stage1.0.1
//     blocks.0.j (depthwise-separable)  features.1.j.block                  -
//       conv_dw, bn1                      .0.0, .0.1
//       se.conv_reduce, se.conv_expand    .1.fc1, .1.fc2
//       conv_pw, bn2                      .2.0, .2.1
//     blocks.i.j, i >= 1 (inverted res.) features.(i+1).j.block              -
//       conv_pw, bn1 (expansion)          .0.0, .0.1
//       conv_dw, bn2                      .1.0, .1.1
//       se.conv_reduce, se.conv_expand    .2.fc1, .2.fc2
//       conv_pwl, bn3 (projection)        .3.0, .3.1
//     blocks.i.j (mobilenetv1 "dsa")         -                          k-th block (k counts
//       conv_dw, bn1, conv_pw, bn2                                      blocks over i, j):
//                                                                       stage1.(k+1) k < 5,
//                                                                       stage2.(k-5) k < 11,
//                                                                       stage3.(k-11);
//                                                                       .0 .1 .3 .4
//     conv_head, bn2 (after the blocks) features.8.0, features.8.1          -
//     classifier                        classifier.1                    fc
//   Numerics: timm's efficientnet_b5..b7 use BatchNorm eps 1e-5 where torchvision's use 1e-3,
//   so their logits differ slightly from timm's own.
//
// WeightsMap::order (what Keras does with .h5 files): the file's tensors in file order are
// paired with the model's parameters and buffers in definition order (BatchNorm's
// num_batches_tracked and integer scalars skipped on both sides), whatever their names; the
// counts must agree. The shapes are then checked as for names.
//
// Strictness: every model entry (but num_batches_tracked) must be given, no file entry may be
// left over, and shapes must agree; otherwise Error listing the missing, unexpected and
// shape-mismatched keys, naming the file and the model. One exception, for transfer learning:
// when only the classifier head's shapes differ (a 1000-class checkpoint into --classes 4),
// every other layer is loaded and the head gets a fresh PyTorch-default initialization
// (a new nn.Linear / nn.Conv2d), reported in LoadResult::head_replaced.
//
// Nothing is written into the model unless everything checks out (no partial model).
#include <string>
#include <utility>
#include <vector>

#include "models/model.h"
#include "tensor/io/weights.h"

namespace scalpel::models {

enum class WeightsMap { names, order };
WeightsMap parse_weights_map(const std::string& text);  // "names" | "order"; Error otherwise

struct LoadResult {
  std::string naming;  // "torchvision", "timm" or "order": how names were matched
  // (file name, model name) for every loaded tensor, when naming is "timm" or "order".
  std::vector<std::pair<std::string, std::string>> mapping;
  bool head_replaced = false;  // the head kept a fresh initialization (its shape differs)
  int64_t file_classes = 0;    // classes of the file's head (when head_replaced)
};

// Loads `tensors` (read from `source`, which only names it in messages) into `model`.
// Call outside nn::SkipInitGuard: a replaced head is initialized here.
LoadResult load_weights(Model& model, const NamedTensors& tensors, const std::string& source,
                        WeightsMap map = WeightsMap::names);

// The timm -> model renaming of the table above, for `model_name` (efficientnet_b* or
// mobilenet_v1); Error naming the tensor it has no rule for, or the model when it has no table.
NamedTensors rename_timm(const std::string& model_name, const NamedTensors& tensors, const std::string& source);

}  // namespace scalpel::models
