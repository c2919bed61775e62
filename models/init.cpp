#include "models/init.h"

#include <cmath>

#include "layers/modules.h"

namespace scalpel::models {

void init_torchvision(nn::Module& model, LinearInit linear, ConvInit conv_init) {
  if (nn::init_skipped()) return;
  for (auto& [name, module] : model.named_modules()) {
    if (auto* conv = dynamic_cast<nn::Conv2d*>(module)) {
      kaiming_normal_(conv->weight, std::sqrt(2.0), /*fan_mode_in=*/conv_init == ConvInit::KaimingFanIn);
      if (conv->bias.defined()) conv->bias.zero_();
    } else if (auto* fc = dynamic_cast<nn::Linear*>(module)) {
      if (linear == LinearInit::Default) continue;
      if (linear == LinearInit::Normal001) {
        normal_(fc->weight, 0.0, 0.01);
      } else if (linear == LinearInit::UniformFanOut) {
        const double bound = 1.0 / std::sqrt(static_cast<double>(fc->out_features));
        uniform_(fc->weight, -bound, bound);
      }
      if (fc->bias.defined()) fc->bias.zero_();
    }
  }
}

void init_truncated_normal(nn::Module& model, double default_std, const std::map<std::string, double>& stds) {
  if (nn::init_skipped()) return;
  for (auto& [name, module] : model.named_modules()) {
    Tensor weight, bias;
    if (auto* conv = dynamic_cast<nn::Conv2d*>(module)) {
      weight = conv->weight;
      bias = conv->bias;
    } else if (auto* fc = dynamic_cast<nn::Linear*>(module)) {
      weight = fc->weight;
      bias = fc->bias;
    } else {
      continue;
    }
    const auto it = stds.find(name);
    const double std = it == stds.end() ? default_std : it->second;
    // trunc_normal_'s bounds [-2, 2] are 20 std or more away for every std Inception uses,
    // beyond any normal draw: a plain normal is the same distribution.
    normal_(weight, 0.0, std);
    if (bias.defined()) bias.zero_();
  }
}

void init_keras(nn::Module& model) {
  if (nn::init_skipped()) return;
  for (auto& [name, module] : model.named_modules()) {
    Tensor* weight = nullptr;
    Tensor* bias = nullptr;
    if (auto* conv = dynamic_cast<nn::Conv2d*>(module)) {
      weight = &conv->weight;
      bias = &conv->bias;
    } else if (auto* fc = dynamic_cast<nn::Linear*>(module)) {
      weight = &fc->weight;
      bias = &fc->bias;
    }
    if (!weight) continue;
    xavier_uniform_(*weight);
    if (bias->defined()) bias->zero_();
  }
}

}  // namespace scalpel::models
