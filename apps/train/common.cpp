#include "apps/train/common.h"

#include <cmath>

#include "tensor/error.h"

namespace scalpel::train {

std::unique_ptr<nn::Optimizer> make_optimizer(const std::string& name, std::vector<nn::ParamGroup> groups,
                                              double momentum) {
  if (name == "sgd") return std::make_unique<nn::SGD>(std::move(groups), nn::SGDOptions{.momentum = momentum});
  if (name == "adam") return std::make_unique<nn::Adam>(std::move(groups));
  if (name == "adamw") {
    return std::make_unique<nn::Adam>(std::move(groups), nn::AdamOptions{.decoupled_weight_decay = true});
  }
  if (name == "rmsprop") return std::make_unique<nn::RMSprop>(std::move(groups));
  fail("--optimizer: unknown optimizer '{}' (sgd, adam, adamw, rmsprop)", name);
}

bool all_finite(const models::Model& model) {
  for (const auto& p : model.parameters()) {
    const std::vector<float> v = p.to(Device::cpu()).values<float>();
    for (float x : v) {
      if (!std::isfinite(x)) return false;
    }
  }
  return true;
}

}  // namespace scalpel::train
