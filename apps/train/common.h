#pragma once
// Pieces the classification and segmentation training loops share (trainer.h, segmentation.h).
#include <memory>
#include <string>
#include <vector>

#include "layers/optim.h"
#include "models/model.h"

namespace scalpel::train {

// The optimizer `name` (sgd | adam | adamw | rmsprop) over `groups`; `momentum` is SGD's.
// Error naming --optimizer when the name is unknown.
std::unique_ptr<nn::Optimizer> make_optimizer(const std::string& name, std::vector<nn::ParamGroup> groups,
                                              double momentum);

// True when every parameter of `model` is finite (a step can turn the weights non-finite
// before the loss shows it; such weights are never saved).
bool all_finite(const models::Model& model);

}  // namespace scalpel::train
