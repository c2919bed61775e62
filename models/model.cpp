#include "models/model.h"

#include "tensor/error.h"

namespace scalpel::models {

Tensor Model::forward_features(const Tensor& x) {
  check_input(x);
  return features(x);
}

void Model::check_input(const Tensor& x) const {
  SCALPEL_CHECK(x.defined() && x.dim() == 4, "{}: expected an NCHW input [N, {}, H, W], got {}", name_,
                options_.in_channels, x.defined() ? shape_str(x.shape()) : "an undefined tensor");
  SCALPEL_CHECK(x.size(1) == options_.in_channels,
                "{}: input {} has {} channels, the model expects {} (set in_channels to change the stem)", name_,
                shape_str(x.shape()), x.size(1), options_.in_channels);
  SCALPEL_CHECK(x.size(2) >= min_input_size_ && x.size(3) >= min_input_size_,
                "{}: input {} is too small, the network needs at least {}x{} pixels", name_, shape_str(x.shape()),
                min_input_size_, min_input_size_);
  SCALPEL_CHECK(x.size(0) >= 1, "{}: input {} has an empty batch", name_, shape_str(x.shape()));
}

std::vector<std::string> Model::head_parameter_names() const {
  std::vector<std::string> names;
  for (const std::string& head : head_names_) {
    const std::string prefix = head + ".";
    for (const auto& p : named_parameters())
      if (p.name.compare(0, prefix.size(), prefix) == 0) names.push_back(p.name);
  }
  return names;
}

void Model::set_layout(std::string head_name, std::string feature_layer, int64_t feature_dim,
                       int64_t min_input_size) {
  head_names_ = {head_name};
  head_name_ = std::move(head_name);
  feature_layer_ = std::move(feature_layer);
  feature_dim_ = feature_dim;
  min_input_size_ = min_input_size;
}

}  // namespace scalpel::models
